"""The TensorRT backend: version logic, build planning, both execution APIs, caching, contexts and threads.

Without a GPU the engine runs against `fake_tensorrt` (stand-ins of the tensorrt and pycuda.driver APIs); the tests
marked `tensorrt` build and run a real engine where TensorRT and a CUDA device exist.
"""

import json
import logging
import threading

import numpy as np
import pytest
from fake_tensorrt import FakeCuda, engine_io_for, expected_outputs, make_tensorrt

from vqhps_ros.errors import CheckpointError, EngineError, EngineOutOfMemory
from vqhps_ros.runtime import EngineCache, EngineKey, TensorRTEngine, build_engine, export_vqhps
from vqhps_ros.runtime import tensorrt_engine as trt_module
from vqhps_ros.runtime.signatures import vqhps_signature
from vqhps_ros.runtime.tensorrt_engine import (
    BuildPlan,
    TensorRTFeatures,
    build_serialized_engine,
    network_flags,
    parse_version,
    plan_build,
    preferred_graph_precision,
    select_io_api,
)

SIGNATURE = vqhps_signature(6, 162, 4)  # the small graph's


def features(version: str, fp16_flag: bool = True, strongly_typed: bool = True, explicit: bool = True):
    return TensorRTFeatures(parse_version(version), fp16_flag, strongly_typed, explicit)


TRT_8_6 = features("8.6.1.6", strongly_typed=False)
TRT_10_3 = features("10.3.0.26")
TRT_10_12 = features("10.12.0.36")
TRT_11 = features("11.0.0.9", fp16_flag=False, explicit=False)


# ---------------------------------------------------------------------------------------------------- versions


@pytest.mark.parametrize(("text", "expected"), [("8.6.1.6", (8, 6, 1, 6)), ("10.12.0.36", (10, 12, 0, 36)),
                                                ("11.0.0", (11, 0, 0)), ("10.0.0b6", (10, 0, 0)), ("8.5", (8, 5))])
def test_parse_version(text, expected):
    assert parse_version(text) == expected


def test_unreadable_version_is_an_error():
    with pytest.raises(EngineError, match="cannot read the TensorRT version"):
        parse_version("unknown")


# ---------------------------------------------------------------------------------------------------- planning


@pytest.mark.parametrize(
    ("trt", "graph", "precision", "strong", "fp16_flag", "explicit", "noted"),
    [
        (TRT_8_6, "fp32", "fp16", False, True, True, False),  # JetPack 5/6.0: weak typing + FP16 flag
        (TRT_8_6, "fp16", "fp16", False, True, True, False),  # half weights, the flag lets them run in half
        (TRT_8_6, "fp32", "fp32", False, False, True, False),
        (TRT_10_3, "fp32", "fp16", False, True, False, False),
        (TRT_10_3, "fp16", "fp16", True, False, False, False),
        (TRT_10_12, "fp32", "fp16", False, True, False, True),  # still works, flag deprecated: a note
        (TRT_10_12, "fp16", "fp16", True, False, False, False),
        (TRT_10_12, "fp32", "fp32", True, False, False, False),  # weak typing deprecated: strong fp32
        (TRT_11, "fp16", "fp16", True, False, False, False),
        (TRT_11, "fp32", "fp32", True, False, False, False),
    ],
)
def test_build_plans(trt, graph, precision, strong, fp16_flag, explicit, noted):
    plan = plan_build(trt, graph, precision, max_batch=8, opt_batch=2)
    assert (plan.strongly_typed, plan.fp16_flag, plan.explicit_batch_flag) == (strong, fp16_flag, explicit)
    assert bool(plan.notes) == noted
    assert plan.batch_profile == (1, 2, 8) and plan.precision == precision


@pytest.mark.parametrize(
    ("trt", "graph", "precision", "message"),
    [
        (TRT_11, "fp32", "fp16", r"no FP16 builder flag .* \(vqhps-ros export --precision fp16\)"),
        (TRT_10_3, "int8", "fp16", "builds from the fp32 or fp16 graph, this one is int8"),
        (TRT_10_3, "fp16", "fp32", "an fp32 engine needs the fp32 graph"),
        (TRT_10_3, "fp32", "int8", "fp32 or fp16, not 'int8'"),
        (features("10.0.0", fp16_flag=False, strongly_typed=False), "fp16", "fp16", "neither strongly typed"),
    ],
)
def test_impossible_plans_say_what_to_do(trt, graph, precision, message):
    with pytest.raises(EngineError, match=message):
        plan_build(trt, graph, precision, max_batch=8, opt_batch=2)


def test_optimisation_batch_must_lie_in_the_profile():
    with pytest.raises(EngineError, match="optimisation batch must be in 1..4"):
        plan_build(TRT_10_3, "fp32", "fp16", max_batch=4, opt_batch=5)


@pytest.mark.parametrize(("trt", "precision", "expected"),
                         [(TRT_8_6, "fp16", "fp32"), (features("10.11.0"), "fp16", "fp32"), (TRT_10_12, "fp16", "fp16"),
                          (TRT_11, "fp16", "fp16"), (TRT_11, "fp32", "fp32")])
def test_preferred_graph_precision(trt, precision, expected):
    assert preferred_graph_precision(trt, precision) == expected


def test_network_flags_follow_the_plan():
    trt = make_tensorrt(FakeCuda(), strongly_typed=True)
    plan = BuildPlan("fp16", strongly_typed=True, fp16_flag=False, explicit_batch_flag=True, batch_profile=(1, 1, 2))
    assert network_flags(trt, plan) == 0b11
    assert network_flags(trt, BuildPlan("fp16", False, True, False, (1, 1, 2))) == 0


class ContextWith:
    def __init__(self, *methods):
        for method in methods:
            setattr(self, method, lambda *args, **kwargs: True)


@pytest.mark.parametrize(
    ("version", "methods", "api"),
    [
        ((8, 6, 1), ("execute_async_v2", "execute_async_v3"), "bindings"),  # TensorRT 8.x: the binding API
        ((10, 3, 0), ("execute_async_v3",), "tensors"),
        ((11, 0, 0), ("execute_async_v3",), "tensors"),
        ((8, 6, 1), ("execute_async_v3",), "tensors"),  # whatever the context offers
    ],
)
def test_execution_api_by_version_and_context(version, methods, api):
    assert select_io_api(version, ContextWith(*methods)) == api


def test_a_context_without_execute_methods_is_an_error():
    with pytest.raises(EngineError, match="neither execute_async_v2 nor execute_async_v3"):
        select_io_api((10, 0, 0), ContextWith())


# ------------------------------------------------------------------------------------------------------- build


def fake_build(trt_kwargs=None, plan=None, timing=None):
    trt = make_tensorrt(FakeCuda(), **(trt_kwargs or {}))
    trt.calls["engine_io"] = engine_io_for(SIGNATURE)
    plan = plan or BuildPlan("fp16", False, True, True, (1, 2, 8), workspace_bytes=123)
    payload, new_timing = build_serialized_engine(trt, trt.Logger(2), b"onnx bytes", plan, timing)
    return trt, payload, new_timing


def test_build_sets_profile_workspace_precision_and_timing_cache():
    trt, payload, timing = fake_build(timing=b"timing:previous")
    build = trt.calls["last_build"]
    assert build["profiles"] == [{"crops": ((1, 3, 224, 224), (2, 3, 224, 224), (8, 3, 224, 224))}]
    assert build["pool_limits"] == {0: 123} and build["builder_flags"] == [0]  # WORKSPACE, FP16
    assert build["flags"] == 1  # EXPLICIT_BATCH
    assert build["timing_cache"] == b"timing:previous" and build["ignore_mismatch"] is False
    assert build["onnx_bytes"] == len(b"onnx bytes")
    assert timing == b"timing:previous" and json.loads(payload)["fake_engine"] == "8.6.1.6"


def test_strongly_typed_build_sets_no_precision_flag():
    plan = BuildPlan("fp16", strongly_typed=True, fp16_flag=False, explicit_batch_flag=False, batch_profile=(1, 1, 4))
    trt, _, _ = fake_build({"version": "11.0.0", "fp16_flag": False, "strongly_typed": True, "explicit_batch": False},
                           plan)
    assert trt.calls["last_build"]["builder_flags"] == [] and trt.calls["last_build"]["flags"] == 2


def test_unreadable_timing_cache_is_replaced_by_an_empty_one(caplog):
    with caplog.at_level(logging.WARNING, logger="vqhps_ros.runtime.tensorrt_engine"):
        trt, _, timing = fake_build(timing=b"garbage")
    assert "ignoring an unreadable TensorRT timing cache" in caplog.text
    assert trt.calls["last_build"]["timing_cache"] == b"" and timing == b"timing:v1"


def test_parser_errors_and_failed_builds_are_reported():
    with pytest.raises(EngineError, match="cannot parse the ONNX graph: Unsupported op Foo; bad shape"):
        fake_build({"parse_errors": ("Unsupported op Foo", "bad shape")})
    with pytest.raises(EngineError, match="could not build the engine .* lower max_persons"):
        fake_build({"build_fails": True})


# -------------------------------------------------------------------------------------- the engine, with fakes


TENSOR_API_10 = dict(version="10.3.0", strongly_typed=True, bindings_api=False, tensors_api=True)


@pytest.mark.parametrize("api_options", [{}, TENSOR_API_10], ids=["trt8-bindings", "trt10-tensors"])
def test_engine_builds_caches_and_infers_every_person(fake_backend, small_graph, crops, tmp_path, api_options):
    trt, cuda = fake_backend(**api_options)
    engine = TensorRTEngine(small_graph, cache_dir=tmp_path, max_persons=3)
    with engine:
        assert engine.built and engine.engine_path.is_file() and engine.engine_path.parent == tmp_path
        api = "bindings" if not api_options else "tensors"
        assert f"{api} API" in engine.description.detail
        assert engine.description.detail.startswith("fp16: TensorRT default; TensorRT ")
        assert engine.description.device == "cuda:0 Fake Orin (8.7)" and engine.description.max_persons == 3
        output = engine.infer(crops)  # 7 persons: calls of 3, 3, 1
    expected = expected_outputs(crops, SIGNATURE)
    for name, array in expected.items():
        np.testing.assert_allclose(getattr(output, name), array, rtol=1e-6, err_msg=name)
    assert output.indices.dtype == np.int32
    assert trt.calls["builds"] == 1 and len(trt.calls["executions"]) == 3
    assert cuda.pushes == cuda.pops and cuda.stack() == []  # every push popped
    assert cuda.memory == {} and all(context.detached for context in cuda.contexts)  # all freed
    assert len(list(tmp_path.glob("timing-*.cache"))) == 1


def test_second_start_loads_the_cached_engine(fake_backend, small_graph, tmp_path):
    trt, _ = fake_backend()
    report = build_engine(small_graph, cache_dir=tmp_path, max_persons=2)
    assert report.built and "built now" in report.description
    again = build_engine(small_graph, cache_dir=tmp_path, max_persons=2)
    assert (again.built, again.engine_path) == (False, report.engine_path)
    assert trt.calls["builds"] == 1
    assert "(fp16: TensorRT default; " in again.description
    assert "(fp32: requested; " in build_engine(small_graph, tmp_path, "fp32", max_persons=2).description
    assert [path.name for path in tmp_path.glob("timing-*.cache")]  # the timing cache is kept for the next build


def test_engine_of_another_gpu_or_tensorrt_is_rebuilt(fake_backend, small_graph, tmp_path):
    trt, _ = fake_backend()
    first = build_engine(small_graph, cache_dir=tmp_path, max_persons=2).engine_path
    trt, _ = fake_backend(cuda=FakeCuda(gpu_name="Xavier", capability=(7, 2)))
    second = build_engine(small_graph, cache_dir=tmp_path, max_persons=2)
    assert second.built and second.engine_path != first
    trt, _ = fake_backend(version="8.6.2.3")
    assert build_engine(small_graph, cache_dir=tmp_path, max_persons=2).built
    assert len(list(tmp_path.glob("*.engine"))) == 3


def test_entry_the_runtime_refuses_is_rebuilt_with_a_warning(fake_backend, small_graph, tmp_path, caplog):
    trt, _ = fake_backend()
    path = build_engine(small_graph, cache_dir=tmp_path, max_persons=2).engine_path
    key_dict = json.loads(path.read_bytes()[12:12 + int.from_bytes(path.read_bytes()[8:12], "little")])["key"]
    EngineCache(tmp_path).write(EngineKey.from_dict(key_dict), b'{"fake_engine": "7.0"}')  # right key, bad bytes
    with caplog.at_level(logging.WARNING, logger="vqhps_ros.runtime.engine_cache"):
        report = build_engine(small_graph, cache_dir=tmp_path, max_persons=2)
    assert report.built and "TensorRT refuses" in caplog.text and trt.calls["builds"] == 2


def test_corrupt_cached_engine_is_rebuilt(fake_backend, small_graph, tmp_path, caplog):
    fake_backend()
    path = build_engine(small_graph, cache_dir=tmp_path, max_persons=2).engine_path
    path.write_bytes(path.read_bytes()[:-5])
    with caplog.at_level(logging.WARNING, logger="vqhps_ros.runtime.engine_cache"):
        assert build_engine(small_graph, cache_dir=tmp_path, max_persons=2).built
    assert "is corrupt" in caplog.text


def test_any_thread_may_infer_the_context_is_pushed_on_it(fake_backend, small_graph, crops, tmp_path):
    trt, cuda = fake_backend()
    with TensorRTEngine(small_graph, cache_dir=tmp_path, max_persons=4) as engine:
        results, started = {}, threading.Barrier(3)  # all alive at once: distinct thread ids

        def infer(index):
            started.wait()
            results[index] = engine.infer(crops[index:index + 2])

        threads = [threading.Thread(target=infer, args=(index,)) for index in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    # Three threads ran it, each with the context current on it (the fake raises otherwise).
    assert len(set(trt.calls["executions"])) == 3
    for index, output in results.items():
        np.testing.assert_array_equal(output.indices, expected_outputs(crops[index:index + 2], SIGNATURE)["indices"])
    assert cuda.pushes == cuda.pops


def test_out_of_device_memory_is_reported_and_nothing_leaks(fake_backend, small_graph, tmp_path):
    cuda = FakeCuda()
    cuda.fail_allocations_above = 1 << 16  # the vertex buffers are larger
    fake_backend(cuda=cuda)
    with pytest.raises(EngineOutOfMemory, match="cannot allocate the TensorRT buffers for 4 persons"):
        TensorRTEngine(small_graph, cache_dir=tmp_path, max_persons=4).activate()
    assert cuda.memory == {} and cuda.stack() == [] and all(context.detached for context in cuda.contexts)


def test_tensorrt_11_wants_the_fp16_graph(fake_backend, small_graph, small_model, tmp_path):
    trt, _ = fake_backend(version="11.0.0", fp16_flag=False, strongly_typed=True, explicit_batch=False,
                          bindings_api=False, tensors_api=True)
    with pytest.raises(EngineError, match="export --precision fp16"):
        TensorRTEngine(small_graph, cache_dir=tmp_path).activate()
    fp16_graph = export_vqhps(small_model, tmp_path / "small_fp16.onnx", precision="fp16")
    report = build_engine(fp16_graph, cache_dir=tmp_path / "engines", max_persons=2)
    assert report.built and "strongly typed" in report.description
    assert trt.calls["last_build"]["flags"] == 2 and trt.calls["last_build"]["builder_flags"] == []


def test_files_the_tensorrt_backend_cannot_use(fake_backend, small_graph, tmp_path, crops):
    with pytest.raises(CheckpointError, match="does not exist"):
        TensorRTEngine(tmp_path / "absent.onnx", cache_dir=tmp_path).activate()
    with pytest.raises(EngineError, match="runs .* not 'int8'"):
        TensorRTEngine(small_graph, cache_dir=tmp_path, precision="int8").activate()
    cuda = FakeCuda(devices=0)
    fake_backend(cuda=cuda)
    with pytest.raises(EngineError, match="CUDA device 0 requested, 0 present"):
        TensorRTEngine(small_graph, cache_dir=tmp_path).activate()


def test_missing_packages_say_how_to_install(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def without_gpu_packages(name, *args, **kwargs):
        if name.split(".")[0] in ("tensorrt", "pycuda"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_gpu_packages)
    with pytest.raises(EngineError, match="comes with JetPack"):
        trt_module.import_tensorrt()
    with pytest.raises(EngineError, match="pip install pycuda"):
        trt_module.import_pycuda()


# ----------------------------------------------------------------------------------------------- real TensorRT


@pytest.mark.tensorrt
def test_real_tensorrt_engine_matches_onnx_runtime(small_graph, small_model, crops, tmp_path):
    from vqhps_ros.runtime import OnnxRuntimeEngine, measure_precision_cost

    with OnnxRuntimeEngine(small_graph, providers=["CPUExecutionProvider"]) as reference:
        expected = reference.infer(crops)
    with TensorRTEngine(small_graph, cache_dir=tmp_path, precision="fp32", max_persons=4) as engine:
        output = engine.infer(crops)
    np.testing.assert_array_equal(output.indices, expected.indices)
    np.testing.assert_allclose(output.verts, expected.verts, atol=1e-3, rtol=0)
    trt = trt_module.import_tensorrt()
    graph = small_graph
    if preferred_graph_precision(TensorRTFeatures.of(trt), "fp16") == "fp16":
        graph = export_vqhps(small_model, tmp_path / "small_fp16.onnx", precision="fp16")
    with TensorRTEngine(graph, cache_dir=tmp_path, precision="fp16", max_persons=4) as engine:
        cost = measure_precision_cost(expected, engine.infer(crops))
        assert not engine.built or engine.engine_path.is_file()
    assert cost.token_agreement >= 0.9 and cost.vertex_error_mm < 5.0
    with TensorRTEngine(small_graph, cache_dir=tmp_path, precision="fp32", max_persons=4) as engine:
        assert not engine.built  # cached


def test_importing_the_runtime_imports_no_gpu_package():
    import subprocess
    import sys

    code = ("import sys, vqhps_ros.runtime; "
            "print(sorted({'tensorrt', 'pycuda', 'onnx', 'onnxruntime'} & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"

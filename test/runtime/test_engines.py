"""The engine interface on ONNX Runtime and PyTorch: parity, splitting, bad input, life cycle, factory, fallback."""

import logging
import threading

import numpy as np
import pytest
import torch
from cpuinfo_samples import EPYC_AVX2_CPU, XEON_BF16_CPU
from small_model import build_small_model

from vqhps_ros.errors import CheckpointError, EngineError, EngineOutOfMemory, InputError
from vqhps_ros.runtime import (
    EngineDescription,
    EngineOutput,
    FallbackEngine,
    OnnxRuntimeEngine,
    TorchEngine,
    cpu_features,
    create_engine,
    export_mesh_decoder,
    export_vqhps,
    measure_precision_cost,
)
from vqhps_ros.runtime.base import Engine
from vqhps_ros.runtime.factory import auto_candidates
from vqhps_ros.runtime.signatures import vqhps_signature

pytest.importorskip("onnxruntime")

VERTEX_TOLERANCE = 1e-3  # metres, the bound; the small graph agrees to about 1e-7


@pytest.fixture(scope="module")
def onnx_engine(small_graph):
    with OnnxRuntimeEngine(small_graph, threads=1) as engine:
        yield engine


@pytest.fixture(scope="module")
def torch_engine(small_model):
    with TorchEngine(small_model, device="cpu") as engine:
        yield engine


def assert_same_people(output: EngineOutput, expected: EngineOutput, tolerance: float = 1e-5) -> None:
    np.testing.assert_array_equal(output.indices, expected.indices)
    for name in ("token_confidence", "rotmat", "cam", "verts_canonical", "verts", "joints"):
        np.testing.assert_allclose(getattr(output, name), getattr(expected, name), atol=tolerance, rtol=0,
                                   err_msg=name)


def test_onnx_runtime_matches_pytorch(onnx_engine, torch_engine, crops, small_model):
    onnx_output, torch_output = onnx_engine.infer(crops), torch_engine.infer(crops)
    np.testing.assert_array_equal(onnx_output.indices, torch_output.indices)
    np.testing.assert_allclose(onnx_output.verts, torch_output.verts, atol=VERTEX_TOLERANCE, rtol=0)
    assert_same_people(onnx_output, torch_output)
    with torch.no_grad():  # and both are the model's own forward
        direct = small_model(torch.from_numpy(crops))
    np.testing.assert_array_equal(torch_output.indices, direct.indices.numpy())
    np.testing.assert_allclose(torch_output.verts, direct.verts.numpy(), atol=1e-6, rtol=0)


def test_every_backend_returns_the_same_output_type(onnx_engine, torch_engine, crops):
    for engine in (onnx_engine, torch_engine):
        output = engine.infer(crops[:2])
        assert isinstance(output, EngineOutput)
        assert [spec.name for spec in engine.output_metadata] == list(EngineOutput._fields)
        for spec in engine.output_metadata:
            array = getattr(output, spec.name)
            assert array.dtype == np.dtype(spec.dtype) and array.shape[0] == 2, spec.name
        assert [(spec.name, spec.shape) for spec in engine.input_metadata] == [("crops", ("batch", 3, 224, 224))]


def test_more_persons_than_max_persons_are_split_and_none_is_dropped(small_graph, crops, onnx_engine):
    with OnnxRuntimeEngine(small_graph, threads=1, max_persons=3) as engine:
        assert engine.max_persons == 3
        split = engine.infer(crops)  # 7 persons: calls of 3, 3 and 1
    one_by_one = [onnx_engine.infer(crops[index:index + 1]) for index in range(len(crops))]
    assert len(split.indices) == 7
    expected = EngineOutput(*(np.concatenate(arrays) for arrays in zip(*one_by_one, strict=True)))
    assert_same_people(split, expected)


def test_torch_engine_splits_too(small_model, crops, torch_engine):
    with TorchEngine(small_model, device="cpu", max_persons=2) as engine:
        assert_same_people(engine.infer(crops[:5]), torch_engine.infer(crops[:5]))


def test_other_float_types_are_converted(onnx_engine, crops):
    expected = onnx_engine.infer(crops[:2])
    assert_same_people(onnx_engine.infer(crops[:2].astype(np.float64)), expected)
    half = onnx_engine.infer(crops[:2].astype(np.float16))
    assert half.verts.dtype == np.float32 and half.verts.shape == expected.verts.shape


@pytest.mark.parametrize(
    ("make_crops", "message"),
    [
        (lambda crops: crops[0], r"expected shape \(batch, 3, 224, 224\), found \(3, 224, 224\)"),
        (lambda crops: crops[:, :, :112], r"found \(7, 3, 112, 224\)"),
        (lambda crops: crops.transpose(0, 2, 3, 1), r"found \(7, 224, 224, 3\)"),
        (lambda crops: (crops * 50).astype(np.uint8), r"expected float32 values, found uint8"),
        (lambda crops: crops.tolist(), r"expected a numpy array .* found list"),
        (lambda crops: np.where(np.arange(7)[:, None, None, None] == 4, np.nan, crops), r"persons \[4\] hold NaN"),
        (lambda crops: np.where(np.arange(7)[:, None, None, None] == 0, np.inf, crops), r"persons \[0\] hold NaN"),
    ],
)
def test_bad_crops_are_refused_with_what_was_found(onnx_engine, torch_engine, crops, make_crops, message):
    bad = make_crops(crops.copy())
    for engine in (onnx_engine, torch_engine):
        with pytest.raises(InputError, match=message):
            engine.infer(bad)


def test_no_person_gives_empty_outputs(onnx_engine, torch_engine):
    for engine in (onnx_engine, torch_engine):
        output = engine.infer(np.zeros((0, 3, 224, 224), dtype=np.float32))
        assert output.indices.shape == (0, 6) and output.indices.dtype == np.int32
        assert output.verts.shape == (0, 162, 3) and output.joints.shape == (0, 4, 3)


def test_life_cycle_activate_deactivate_and_context_manager(small_graph, crops):
    engine = OnnxRuntimeEngine(small_graph, threads=1)
    assert not engine.is_active
    with pytest.raises(EngineError, match="not active: call activate"):
        engine.infer(crops)
    with engine as active:
        assert active is engine and engine.is_active
        assert engine.activate() is engine  # a second activation does nothing
        assert engine.description.backend == "onnxruntime" and engine.description.precision == "fp32"
        first = engine.infer(crops[:1])
    assert not engine.is_active and engine.session is None
    with pytest.raises(EngineError, match="not active"):
        engine.infer(crops)
    engine.activate()  # and it starts again
    assert_same_people(engine.infer(crops[:1]), first)
    engine.deactivate()


def infer_from_threads(engine, batches):
    """Run engine.infer on each batch from its own thread, all at once; the results in order."""
    results, errors = [None] * len(batches), []

    def run(index):
        try:
            results[index] = engine.infer(batches[index])
        except Exception as error:  # collected and failed on by the caller
            errors.append(error)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(batches))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    return results


@pytest.mark.parametrize("engine_name", ["onnx_engine", "torch_engine"])
def test_any_thread_may_infer(engine_name, request, crops):
    engine = request.getfixturevalue(engine_name)
    batches = [crops[index:index + 2] for index in range(4)]
    expected = [engine.infer(batch) for batch in batches]
    for result, reference in zip(infer_from_threads(engine, batches), expected, strict=True):
        assert_same_people(result, reference)


def test_missing_foreign_and_mismatched_files(tmp_path, small_graph, golden_free_decoder_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        OnnxRuntimeEngine(tmp_path / "absent.onnx").activate()
    (tmp_path / "garbage.onnx").write_bytes(b"not a protobuf")
    with pytest.raises(CheckpointError, match="cannot load ONNX graph"):
        OnnxRuntimeEngine(tmp_path / "garbage.onnx").activate()
    with pytest.raises(CheckpointError, match="expected a VQ-HPS graph"):
        OnnxRuntimeEngine(golden_free_decoder_path).activate()
    with pytest.raises(EngineError, match="holds a fp32 graph, int8 was requested"):
        OnnxRuntimeEngine(small_graph, precision="int8").activate()
    with pytest.raises(EngineError, match="runs .* not 'bf16'"):
        OnnxRuntimeEngine(small_graph, precision="bf16").activate()


@pytest.fixture(scope="module")
def golden_free_decoder_path(small_model, tmp_path_factory):
    """Another graph kind: the small model's mesh decoder."""
    return export_mesh_decoder(small_model.mesh_vqvae, tmp_path_factory.mktemp("decoder") / "decoder.onnx")


def test_fp16_graph_on_onnx_runtime_stays_close(small_model, tmp_path, crops, onnx_engine):
    path = export_vqhps(small_model, tmp_path / "fp16.onnx", precision="fp16")
    with OnnxRuntimeEngine(path, threads=1) as engine:
        assert engine.description.precision == "fp16"
        cost = measure_precision_cost(onnx_engine.infer(crops), engine.infer(crops))
    assert cost.token_agreement >= 0.95 and cost.vertex_error_mm < 1.0


def test_torch_bf16_runs_the_backbones_in_bf16_and_stays_close(small_model, crops, torch_engine):
    # Emulated bf16 rounds like native bf16, so the accuracy holds on any CPU (it is only slower).
    with TorchEngine(small_model, device="cpu", precision="bf16", allow_emulated_bf16=True) as engine:
        backbone = engine._graph.model.regressor.backbone_pose
        assert next(backbone.parameters()).dtype == torch.bfloat16
        assert engine._graph.model.mesh_vqvae.vq_vae.codebook.dtype == torch.float32
        cost = measure_precision_cost(torch_engine.infer(crops), engine.infer(crops))
    assert {parameter.dtype for parameter in small_model.parameters()} == {torch.float32}  # the caller's model
    assert cost.token_agreement >= 0.9 and cost.vertex_error_mm < 5.0


def test_torch_engine_refusals(small_model):
    with pytest.raises(EngineError, match="fp16 is for CUDA devices"):
        TorchEngine(small_model, device="cpu", precision="fp16").activate()
    with pytest.raises(EngineError, match="cuda_graphs needs a CUDA device"):
        TorchEngine(small_model, device="cpu", cuda_graphs=True).activate()
    with pytest.raises(EngineError, match="runs .* not 'int8'"):
        TorchEngine(small_model, device="cpu", precision="int8").activate()
    official = build_small_model()
    official.set_official_batching(True)
    with pytest.raises(InputError, match="official batching"):
        TorchEngine(official)
    with pytest.raises(InputError, match="max_persons must be a positive integer"):
        TorchEngine(small_model, max_persons=0)


@pytest.fixture
def avx2_cpu(monkeypatch):
    """This process runs on an AVX2-only EPYC (no VNNI, no bf16)."""
    monkeypatch.setattr(cpu_features, "this_cpu", lambda: EPYC_AVX2_CPU)
    return EPYC_AVX2_CPU


def test_torch_engine_refuses_bf16_on_a_cpu_without_bf16_instructions(small_model, avx2_cpu):
    with pytest.raises(EngineError) as refusal:
        TorchEngine(small_model, device="cpu", precision="bf16").activate()
    message = str(refusal.value)
    assert message.startswith("bf16 refused: this CPU, AMD EPYC 7742 64-Core Processor (AVX2, no VNNI, no BF16), has "
                              "no bf16 instructions")
    assert "Use fp32, or ONNX Runtime with the int8 graph" in message and "allow_emulated_bf16=True" in message
    with pytest.raises(EngineError, match=r"fp16 is for CUDA devices; on the CPU use fp32, or ONNX Runtime"):
        TorchEngine(small_model, device="cpu", precision="fp16").activate()


def test_emulated_bf16_runs_when_allowed_and_says_so(small_model, crops, avx2_cpu, caplog):
    with caplog.at_level(logging.WARNING), TorchEngine(small_model, device="cpu", precision="bf16",
                                                       allow_emulated_bf16=True) as engine:
        assert engine.infer(crops[:1]).verts.shape == (1, 162, 3)
        detail = engine.description.detail
    assert detail.startswith("bf16: requested, emulated (allow_emulated_bf16); ")
    assert "running emulated bf16 as allowed" in caplog.text


def test_torch_bf16_on_a_cpu_with_bf16_instructions(small_model, monkeypatch):
    monkeypatch.setattr(cpu_features, "this_cpu", lambda: XEON_BF16_CPU)
    with TorchEngine(small_model, device="cpu", precision="bf16") as engine:
        assert engine.description.detail.startswith("bf16: requested; ")
        assert engine.description.detail.endswith("Intel(R) Xeon(R) Platinum 8480+ (AVX2, AVX-512, VNNI, BF16, AMX)")
    with pytest.raises(EngineError, match=r"on the CPU use bf16 \(this CPU has bf16 instructions\), fp32"):
        TorchEngine(small_model, device="cpu", precision="fp16").activate()


def test_descriptions_say_which_precision_runs_and_why(small_model, small_graph):
    with TorchEngine(small_model, device="cpu") as engine:
        assert engine.description.precision == "fp32"
        assert engine.description.detail == f"fp32: default on CPU; 1 thread; {cpu_features.describe()}"
    with OnnxRuntimeEngine(small_graph, threads=1) as engine:
        detail = engine.description.detail
    assert detail.startswith("fp32: the graph file's precision; small.onnx, providers ['CPUExecutionProvider']")
    assert detail.endswith(cpu_features.describe())


# ------------------------------------------------------------------------------------------------------ factory


def test_create_engine_returns_an_active_engine_and_logs_what_runs(small_graph, small_model, crops, caplog):
    with caplog.at_level(logging.INFO, logger="vqhps_ros.runtime"):
        engine = create_engine("onnxruntime", onnx_path=small_graph, threads=1)
    assert engine.is_active
    assert "inference engine: onnxruntime on cpu, fp32, up to 4 persons per call" in caplog.text
    engine.deactivate()
    with create_engine("pytorch", model=small_model, device="cpu") as engine:
        assert engine.description.backend == "pytorch" and engine.description.device == "cpu"


def test_auto_never_chooses_bf16_by_itself(small_model, monkeypatch):
    monkeypatch.setattr(cpu_features, "this_cpu", lambda: XEON_BF16_CPU)  # even where bf16 would be fast
    with create_engine("auto", model=small_model, device="cpu") as engine:
        assert engine.description.precision == "fp32"
        assert engine.description.detail.startswith("fp32: default on CPU")


def test_auto_with_bf16_requested_on_a_cpu_without_it_says_why_nothing_runs(small_model, avx2_cpu):
    with pytest.raises(EngineError, match=r"no inference backend could start: pytorch: bf16 refused: this CPU"):
        create_engine("auto", "bf16", model=small_model, device="cpu")


def test_auto_uses_onnx_runtime_when_tensorrt_cannot_run(small_graph, small_model, crops, caplog, monkeypatch):
    monkeypatch.setattr("vqhps_ros.runtime.factory.cuda_device_count", lambda: 0)
    with caplog.at_level(logging.INFO, logger="vqhps_ros.runtime"):
        engine = create_engine("auto", onnx_path=small_graph, model=small_model, threads=1)
    assert "auto engine: not trying tensorrt" in caplog.text
    assert engine.description.backend == "onnxruntime"
    assert engine.infer(crops[:2]).verts.shape == (2, 162, 3)
    engine.deactivate()
    with create_engine("auto", model=small_model) as engine:  # no graph: PyTorch
        assert engine.description.backend == "pytorch"
    names = [name for name, _ in auto_candidates("bf16", onnx_path=small_graph, model=small_model, cache_dir=None,
                                                 max_persons=None, threads=None, device=None, cuda_graphs=False,
                                                 providers=None)]
    assert names == ["pytorch"]  # neither TensorRT nor ONNX Runtime runs bf16


def test_create_engine_argument_errors(small_graph):
    with pytest.raises(InputError, match="backend must be 'auto' or one of"):
        create_engine("openvino", onnx_path=small_graph)
    with pytest.raises(InputError, match="precision must be one of"):
        create_engine("onnxruntime", "int4", onnx_path=small_graph)
    with pytest.raises(InputError, match="needs model="):
        create_engine("pytorch")
    with pytest.raises(InputError, match="needs onnx_path="):
        create_engine("onnxruntime")
    with pytest.raises(EngineError, match="no inference backend can run here"):
        create_engine("auto")


# ----------------------------------------------------------------------------------------------------- fallback


class ScriptedEngine(Engine):
    """An engine that fails on activation or inference as told, otherwise returns zeros of the small signature."""

    signature_ = vqhps_signature(6, 162, None)

    def __init__(self, name: str, fail_activation: Exception | None = None, fail_inference: Exception | None = None,
                 log: list | None = None):
        super().__init__()
        self.backend = name
        self.fail_activation, self.fail_inference = fail_activation, fail_inference
        self.log = log if log is not None else []

    def _activate(self):
        if self.fail_activation is not None:
            raise self.fail_activation
        self.log.append(f"activate {self.backend}")
        return self.signature_, EngineDescription(self.backend, "test", "fp32", 2)

    def _deactivate(self):
        self.log.append(f"deactivate {self.backend}")

    def _infer_batch(self, crops):
        if self.fail_inference is not None:
            raise self.fail_inference
        self.log.append(f"infer {self.backend} {len(crops)}")
        return {spec.name: np.full([len(crops) if isinstance(size, str) else size for size in spec.shape],
                                   len(self.backend), dtype=spec.dtype) for spec in self.signature_.outputs}


def test_fallback_skips_backends_that_cannot_start(crops, caplog):
    log = []
    engine = FallbackEngine([
        ("tensorrt", lambda: ScriptedEngine("tensorrt", fail_activation=EngineError("no GPU"), log=log)),
        ("onnxruntime", lambda: ScriptedEngine("onnxruntime", fail_activation=ImportError("no onnxruntime"))),
        ("pytorch", lambda: ScriptedEngine("pytorch", log=log)),
    ])  # fmt: skip
    with caplog.at_level(logging.WARNING):
        engine.activate()
    assert engine.description.backend == "pytorch"
    assert engine.failures == ["tensorrt: no GPU", "onnxruntime: no onnxruntime"]
    assert "inference backend tensorrt: no GPU unavailable" in caplog.text
    assert engine.infer(crops[:3]).indices.shape == (3, 6)
    assert log == ["activate pytorch", "infer pytorch 2", "infer pytorch 1"]


def test_fallback_moves_on_when_the_device_runs_out_of_memory(crops):
    log = []
    engine = FallbackEngine([
        ("tensorrt", lambda: ScriptedEngine("tensorrt", fail_inference=EngineOutOfMemory("CUDA OOM"), log=log)),
        ("onnxruntime", lambda: ScriptedEngine("onnxruntime", log=log)),
    ]).activate()  # fmt: skip
    output = engine.infer(crops[:2])
    assert engine.description.backend == "onnxruntime"
    assert np.all(output.indices == len("onnxruntime"))  # every person comes from the engine that ran
    assert log == ["activate tensorrt", "deactivate tensorrt", "activate onnxruntime", "infer onnxruntime 2"]
    assert engine.failures == ["tensorrt: CUDA OOM"]


def test_fallback_reports_every_failure_when_nothing_starts():
    engine = FallbackEngine([("tensorrt", lambda: ScriptedEngine("tensorrt", fail_activation=EngineError("a"))),
                             ("pytorch", lambda: ScriptedEngine("pytorch", fail_activation=EngineError("b")))])
    with pytest.raises(EngineError, match="no inference backend could start: tensorrt: a; pytorch: b"):
        engine.activate()


def test_other_errors_are_not_swallowed_by_the_fallback(crops):
    engine = FallbackEngine([("pytorch", lambda: ScriptedEngine("pytorch", fail_inference=EngineError("bug")))])
    engine.activate()
    with pytest.raises(EngineError, match="bug"):
        engine.infer(crops[:1])


# -------------------------------------------------------------------------------------------------------- CUDA


@pytest.mark.gpu
def test_torch_engine_on_cuda_matches_the_cpu(small_model, crops, torch_engine):
    expected = torch_engine.infer(crops)
    with TorchEngine(small_model, device="cuda") as engine:
        assert engine.description.device.startswith("cuda:")
        np.testing.assert_allclose(engine.infer(crops).verts, expected.verts, atol=VERTEX_TOLERANCE, rtol=0)
    with TorchEngine(small_model, device="cuda", cuda_graphs=True, max_persons=4) as engine:
        first, again = engine.infer(crops), engine.infer(crops)  # captured, then replayed
    assert_same_people(again, first)
    np.testing.assert_allclose(first.verts, expected.verts, atol=VERTEX_TOLERANCE, rtol=0)
    with TorchEngine(small_model, device="cuda", precision="fp16") as engine:
        cost = measure_precision_cost(expected, engine.infer(crops))
    assert cost.token_agreement >= 0.9 and cost.vertex_error_mm < 5.0


@pytest.mark.gpu
def test_onnx_runtime_cuda_provider_matches_the_cpu(small_graph, crops, onnx_engine):
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has no CUDA execution provider (onnxruntime-gpu)")
    with OnnxRuntimeEngine(small_graph) as engine:
        assert engine.description.device.startswith("cuda")
        output = engine.infer(crops)
    np.testing.assert_array_equal(output.indices, onnx_engine.infer(crops).indices)

"""INT8 static quantisation: the calibration reader, what is quantised, the metadata, the accuracy cost."""

import json
import logging

import numpy as np
import pytest
from cpuinfo_samples import EPYC_AVX2_CPU, JETSON_ORIN_CPU, XEON_BF16_CPU, XEON_VNNI_CPU

from vqhps_ros.errors import CheckpointError, InputError
from vqhps_ros.runtime import (
    CropCalibrationReader,
    OnnxRuntimeEngine,
    content_hash,
    cpu_features,
    measure_precision_cost,
    quantize_vqhps,
    read_metadata,
    verify_content_hash,
)
from vqhps_ros.runtime.quantize import BACKBONE_SCOPES, choose_reduce_range, quantized_node_names

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def int8_graph(small_graph, crops, tmp_path_factory):
    """Calibrated on crops 0..3; crops 4..6 are held out for the accuracy checks."""
    return quantize_vqhps(small_graph, tmp_path_factory.mktemp("int8") / "small_int8.onnx", crops[:4])


def test_reader_yields_batches_then_none_and_rewinds(crops):
    reader = CropCalibrationReader(crops[:5].astype(np.float64), batch_size=2)
    assert len(reader) == 3
    sizes = []
    while (batch := reader.get_next()) is not None:
        assert list(batch) == ["crops"] and batch["crops"].dtype == np.float32
        sizes.append(len(batch["crops"]))
    assert sizes == [2, 2, 1]
    reader.rewind()
    np.testing.assert_array_equal(reader.get_next()["crops"], crops[:2])


@pytest.mark.parametrize(
    ("crops_in", "batch_size", "message"),
    [
        (np.zeros((0, 3, 224, 224), np.float32), 1, r"crops of shape \(N >= 1, 3, 224, 224\)"),
        (np.zeros((2, 224, 224, 3), np.float32), 1, r"found \(2, 224, 224, 3\)"),
        (np.zeros((2, 3, 224, 224), np.uint8), 1, "finite floating-point"),
        (np.full((2, 3, 224, 224), np.nan, np.float32), 1, "finite floating-point"),
        (np.zeros((2, 3, 224, 224), np.float32), 0, "batch_size must be at least 1"),
    ],
)
def test_reader_refuses_bad_calibration_data(crops_in, batch_size, message):
    with pytest.raises(InputError, match=message):
        CropCalibrationReader(crops_in, batch_size)


def test_only_the_backbones_are_quantised(int8_graph):
    """Quantised weights feed backbone nodes only, and activations are quantised only where a backbone node (or the
    crops input, which the first convolutions read) produces them."""
    model = onnx.load(int8_graph)
    graph = model.graph
    producers = {name: node for node in graph.node for name in node.output}
    weights = {tensor.name for tensor in graph.initializer if len(tensor.dims) >= 2}
    weight_outputs = {node.output[0] for node in graph.node
                      if node.op_type == "DequantizeLinear" and node.input[0] in weights}
    assert weight_outputs, "no quantised weight at all"
    for node in graph.node:
        if set(node.input) & weight_outputs:
            assert node.name.startswith(BACKBONE_SCOPES), node.name
    for node in graph.node:
        if node.op_type == "QuantizeLinear" and node.input[0] != "crops":
            assert producers[node.input[0]].name.startswith(BACKBONE_SCOPES), node.name
    kept_float = {node.op_type for node in graph.node if node.name.startswith("/model/regressor/transformer/")}
    assert "MatMul" in kept_float and "QuantizeLinear" not in kept_float


def test_int8_metadata_records_the_recipe_and_a_new_hash(int8_graph, small_graph):
    fp32_metadata = read_metadata(onnx.load(small_graph))
    model = onnx.load(int8_graph)
    metadata = read_metadata(model)
    assert metadata["vqhps_ros.precision"] == "int8" and metadata["vqhps_ros.graph"] == "vqhps"
    recipe = json.loads(metadata["vqhps_ros.quantization"])
    assert recipe["format"] == "QDQ" and recipe["calibration_crops"] == 4
    reduce_range, reason = choose_reduce_range()  # this machine's choice
    assert (recipe["reduce_range"], recipe["reduce_range_reason"]) == (reduce_range, reason)
    assert recipe["quantized_on_cpu"] == cpu_features.describe()
    assert recipe["weights"].endswith("7-bit weights (reduce_range)" if reduce_range else "8-bit weights")
    assert recipe["fp32_content_sha256"] == fp32_metadata["vqhps_ros.content_sha256"]
    for key in ("vqhps_ros.regressor.config", "vqhps_ros.pose_init", "vqhps_ros.max_batch", "vqhps_ros.num_joints"):
        assert metadata[key] == fp32_metadata[key]
    assert verify_content_hash(model) == content_hash(model) != fp32_metadata["vqhps_ros.content_sha256"]
    onnx.checker.check_model(model)


def assert_int8_costs_little(cost) -> None:
    assert cost.persons == 3
    assert cost.token_agreement >= 0.9
    assert cost.vertex_error_mm < 5.0 and cost.aligned_metric == "PA-MPJPE"


def test_int8_engine_costs_little_on_held_out_crops(int8_graph, small_graph, crops):
    with OnnxRuntimeEngine(small_graph, threads=1) as fp32, OnnxRuntimeEngine(int8_graph, threads=1) as int8:
        assert int8.description.precision == "int8"
        assert int8.description.detail.startswith("int8: graph quantised at export, ")
        cost = measure_precision_cost(fp32.infer(crops[4:]), int8.infer(crops[4:]))
    assert_int8_costs_little(cost)


@pytest.fixture(scope="module")
def int8_graphs_by_range(small_graph, crops, tmp_path_factory):
    """{reduce_range: graph} for both choices, calibrated like `int8_graph`."""
    folder = tmp_path_factory.mktemp("int8_ranges")
    return {reduce_range: quantize_vqhps(small_graph, folder / f"rr{int(reduce_range)}.onnx", crops[:4],
                                         reduce_range=reduce_range) for reduce_range in (False, True)}


def quantized_weight_range(path) -> tuple[int, int]:
    """(min, max) of the int8 weights the graph dequantises."""
    graph = onnx.load(path).graph
    weights = {tensor.name: onnx.numpy_helper.to_array(tensor) for tensor in graph.initializer
               if tensor.data_type == onnx.TensorProto.INT8 and len(tensor.dims) >= 2}
    used = [weights[node.input[0]] for node in graph.node if node.op_type == "DequantizeLinear"
            and node.input[0] in weights]
    return min(int(array.min()) for array in used), max(int(array.max()) for array in used)


def test_both_weight_ranges_cost_little_on_this_machine(int8_graphs_by_range, small_graph, crops):
    """Whichever this CPU would choose, both graphs stay within the int8 bounds here; the 7-bit one has weights in
    [-64, 64], which cannot saturate VPMADDUBSW's 16-bit pair sums (2 * 255 * 64 < 32768)."""
    assert quantized_weight_range(int8_graphs_by_range[True])[0] >= -64
    assert quantized_weight_range(int8_graphs_by_range[True])[1] <= 64
    assert max(map(abs, quantized_weight_range(int8_graphs_by_range[False]))) > 64
    with OnnxRuntimeEngine(small_graph, threads=1) as fp32:
        reference = fp32.infer(crops[4:])
    for reduce_range, path in int8_graphs_by_range.items():
        with OnnxRuntimeEngine(path, threads=1) as int8:
            bits = "7-bit weights (reduce_range)" if reduce_range else "8-bit weights"
            assert int8.description.detail.startswith(f"int8: graph quantised at export, {bits}; ")
            assert_int8_costs_little(measure_precision_cost(reference, int8.infer(crops[4:])))


@pytest.mark.parametrize(
    ("cpu", "expected", "because"),
    [
        (EPYC_AVX2_CPU, True, "(AVX2, no VNNI, no BF16) has no VNNI: U8S8 kernels use VPMADDUBSW"),
        (XEON_VNNI_CPU, False, "has VNNI: 32-bit accumulation"),
        (XEON_BF16_CPU, False, "has VNNI"),
        (JETSON_ORIN_CPU, False, "Cortex-A78AE (NEON, DOTPROD, no BF16) is not an x86 CPU"),
    ],
)
def test_reduce_range_follows_vnni_unless_requested(cpu, expected, because):
    reduce_range, reason = choose_reduce_range(None, cpu)
    assert reduce_range is expected and because in reason
    assert choose_reduce_range(not expected, cpu) == (not expected, "requested")


def test_the_choice_is_logged_and_eight_bit_weights_warn_on_cpus_without_vnni(int8_graphs_by_range, small_graph,
                                                                             crops, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(cpu_features, "this_cpu", lambda: EPYC_AVX2_CPU)
    with caplog.at_level(logging.INFO, logger="vqhps_ros.runtime"):
        path = quantize_vqhps(small_graph, tmp_path / "avx2.onnx", crops[:2])
    assert "INT8 quantisation with 7-bit weights (reduce_range): AMD EPYC 7742" in caplog.text
    assert json.loads(read_metadata(onnx.load(path))["vqhps_ros.quantization"])["reduce_range"] is True
    caplog.clear()
    with caplog.at_level(logging.WARNING), OnnxRuntimeEngine(int8_graphs_by_range[True], threads=1):
        pass
    assert "no VNNI" not in caplog.text
    with caplog.at_level(logging.WARNING), OnnxRuntimeEngine(int8_graphs_by_range[False], threads=1):
        pass
    assert "rr0.onnx has 8-bit weights, but this CPU (AMD EPYC 7742 64-Core Processor (AVX2, no VNNI, no BF16)) " \
           "has no VNNI" in caplog.text


def test_quantisation_starts_from_the_fp32_whole_model_graph(int8_graph, tmp_path, crops):
    with pytest.raises(CheckpointError, match="starts from the fp32 whole-model graph"):
        quantize_vqhps(int8_graph, tmp_path / "twice.onnx", crops[:2])
    with pytest.raises(CheckpointError, match="does not exist"):
        quantize_vqhps(tmp_path / "absent.onnx", tmp_path / "out.onnx", crops[:2])
    assert not (tmp_path / "twice.onnx").exists() and not (tmp_path / "out.onnx").exists()


def test_scopes_that_match_nothing_are_refused(small_graph):
    with pytest.raises(InputError, match="nothing would be quantised"):
        quantized_node_names(onnx.load(small_graph), ["/model/no_such_module/"])

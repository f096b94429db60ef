"""INT8 static quantisation: the calibration reader, what is quantised, the metadata, the accuracy cost."""

import json

import numpy as np
import pytest

from vqhps_ros.errors import CheckpointError, InputError
from vqhps_ros.runtime import (
    CropCalibrationReader,
    OnnxRuntimeEngine,
    content_hash,
    measure_precision_cost,
    quantize_vqhps,
    read_metadata,
    verify_content_hash,
)
from vqhps_ros.runtime.quantize import BACKBONE_SCOPES, quantized_node_names

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
    assert recipe["fp32_content_sha256"] == fp32_metadata["vqhps_ros.content_sha256"]
    for key in ("vqhps_ros.regressor.config", "vqhps_ros.pose_init", "vqhps_ros.max_batch", "vqhps_ros.num_joints"):
        assert metadata[key] == fp32_metadata[key]
    assert verify_content_hash(model) == content_hash(model) != fp32_metadata["vqhps_ros.content_sha256"]
    onnx.checker.check_model(model)


def test_int8_engine_costs_little_on_held_out_crops(int8_graph, small_graph, crops):
    with OnnxRuntimeEngine(small_graph, threads=1) as fp32, OnnxRuntimeEngine(int8_graph, threads=1) as int8:
        assert int8.description.precision == "int8"
        cost = measure_precision_cost(fp32.infer(crops[4:]), int8.infer(crops[4:]))
    assert cost.persons == 3
    assert cost.token_agreement >= 0.9
    assert cost.vertex_error_mm < 5.0 and cost.aligned_metric == "PA-MPJPE"


def test_quantisation_starts_from_the_fp32_whole_model_graph(int8_graph, tmp_path, crops):
    with pytest.raises(CheckpointError, match="starts from the fp32 whole-model graph"):
        quantize_vqhps(int8_graph, tmp_path / "twice.onnx", crops[:2])
    with pytest.raises(CheckpointError, match="does not exist"):
        quantize_vqhps(tmp_path / "absent.onnx", tmp_path / "out.onnx", crops[:2])
    assert not (tmp_path / "twice.onnx").exists() and not (tmp_path / "out.onnx").exists()


def test_scopes_that_match_nothing_are_refused(small_graph):
    with pytest.raises(InputError, match="nothing would be quantised"):
        quantized_node_names(onnx.load(small_graph), ["/model/no_such_module/"])

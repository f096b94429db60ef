"""Export of the whole VQ-HPS graph: signature, operators, metadata, precisions and refusals."""

import json

import numpy as np
import pytest
import torch
from small_model import SMALL_JOINTS, build_small_model

from vqhps_ros import __version__
from vqhps_ros.errors import InputError
from vqhps_ros.hps import RegressorConfig
from vqhps_ros.runtime import (
    CONTENT_HASH_KEY,
    TENSORRT_OPS,
    content_hash,
    export_vqhps,
    operator_types,
    read_metadata,
    verify_content_hash,
)
from vqhps_ros.runtime.export import remove_identity_nodes

onnx = pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def exported(small_graph):
    return onnx.load(small_graph)


def dims(value):
    return [dim.dim_param or dim.dim_value for dim in value.type.tensor_type.shape.dim]


def test_inputs_and_outputs_have_one_dynamic_batch_axis(exported):
    graph = exported.graph
    assert [(value.name, dims(value)) for value in graph.input] == [("crops", ["batch", 3, 224, 224])]
    assert [(value.name, dims(value)) for value in graph.output] == [
        ("indices", ["batch", 6]), ("token_confidence", ["batch", 6]), ("rotmat", ["batch", 3, 3]),
        ("cam", ["batch", 3]), ("verts_canonical", ["batch", 162, 3]), ("verts", ["batch", 162, 3]),
        ("joints", ["batch", 4, 3]),
    ]  # fmt: skip
    types = {value.name: value.type.tensor_type.elem_type for value in [*graph.input, *graph.output]}
    assert types.pop("indices") == onnx.TensorProto.INT32  # TensorRT 8.x has no 64-bit I/O tensors
    assert set(types.values()) == {onnx.TensorProto.FLOAT}


def test_graph_uses_only_tensorrt_operators_and_no_identity(exported):
    operators = operator_types(exported)
    assert operators <= TENSORRT_OPS, f"outside the allow-list: {sorted(operators - TENSORRT_OPS)}"
    assert {"ArgMax", "Gather", "MatMul", "Conv"} <= operators  # argmax + codebook gather, mesh products, backbone
    assert "Identity" not in operators


def test_onnx_checker_accepts_the_file(small_graph):
    onnx.checker.check_model(str(small_graph), full_check=True)


def test_metadata_describes_the_model(exported, small_model):
    metadata = read_metadata(exported)
    assert metadata["vqhps_ros.graph"] == "vqhps"
    assert metadata["vqhps_ros.version"] == __version__
    assert metadata["vqhps_ros.precision"] == "fp32"
    assert metadata["vqhps_ros.max_batch"] == "4"
    assert RegressorConfig.from_dict(json.loads(metadata["vqhps_ros.regressor.config"])) == small_model.regressor.config
    assert json.loads(metadata["vqhps_ros.mesh_vq.config"]) == small_model.mesh_vqvae.config.to_dict()
    assert (metadata["vqhps_ros.mesh_vq.num_tokens"], metadata["vqhps_ros.mesh_vq.num_vertices"]) == ("6", "162")
    assert metadata["vqhps_ros.num_joints"] == "4"
    assert tuple(json.loads(metadata["vqhps_ros.joint_names"])) == SMALL_JOINTS
    np.testing.assert_array_equal(json.loads(metadata["vqhps_ros.pose_init"]), small_model.pose_init.numpy())
    assert json.loads(metadata["vqhps_ros.source"]) == {"name": "small test model"}
    assert verify_content_hash(exported) == metadata[CONTENT_HASH_KEY] == content_hash(exported)


def test_pose_init_is_a_constant_of_the_graph(exported, small_model):
    """No input feeds it: the 51 values are an initializer or a Constant node of the graph."""
    constants = [onnx.numpy_helper.to_array(tensor) for tensor in exported.graph.initializer]
    constants += [onnx.numpy_helper.to_array(node.attribute[0].t) for node in exported.graph.node
                  if node.op_type == "Constant" and node.attribute[0].name == "value"]
    expected = small_model.pose_init.numpy()
    assert any(array.size == 51 and np.allclose(array.reshape(-1), expected) for array in constants)


def test_model_without_joint_regressor_has_no_joints_output(tmp_path):
    model = build_small_model(with_joints=False)
    path = export_vqhps(model, tmp_path / "no_joints.onnx")
    graph = onnx.load(path).graph
    assert [value.name for value in graph.output][-1] == "verts"
    assert read_metadata(onnx.load(path))["vqhps_ros.num_joints"] == "0"


def test_fp16_graph_has_half_weights_between_float_io_and_leaves_the_model_alone(small_model, tmp_path):
    path = export_vqhps(small_model, tmp_path / "small_fp16.onnx", precision="fp16")
    model = onnx.load(path)
    assert read_metadata(model)["vqhps_ros.precision"] == "fp16"
    weight_types = {tensor.data_type for tensor in model.graph.initializer if len(tensor.dims) >= 2}
    assert weight_types == {onnx.TensorProto.FLOAT16}
    io_types = {value.type.tensor_type.elem_type for value in [*model.graph.input, *model.graph.output[1:]]}
    assert io_types == {onnx.TensorProto.FLOAT}
    assert operator_types(model) <= TENSORRT_OPS
    assert {parameter.dtype for parameter in small_model.parameters()} == {torch.float32}


def test_export_refuses_official_batching(tmp_path):
    model = build_small_model()
    model.set_official_batching(True)
    with pytest.raises(InputError, match="official batching"):
        export_vqhps(model, tmp_path / "official.onnx")
    assert not (tmp_path / "official.onnx").exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda model: model.half(), "float32 model"),
        (lambda model: None, "export precision must be one of"),
    ],
)
def test_export_refuses_half_models_and_unknown_precisions(change, message, tmp_path):
    model = build_small_model()
    change(model)
    precision = "fp32" if message != "export precision must be one of" else "int8"
    with pytest.raises(InputError, match=message):
        export_vqhps(model, tmp_path / "bad.onnx", precision=precision)


def test_export_refuses_a_non_positive_max_persons(small_model, tmp_path):
    with pytest.raises(InputError, match="max_persons must be at least 1"):
        export_vqhps(small_model, tmp_path / "bad.onnx", max_persons=0)


def test_identity_chains_are_removed_and_output_identities_kept():
    helper = onnx.helper
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["a"]), helper.make_node("Identity", ["a"], ["b"]),
         helper.make_node("Relu", ["b"], ["c"]), helper.make_node("Identity", ["c"], ["y"])],
        "chain", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2])],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    assert remove_identity_nodes(model) == 2
    assert [(node.op_type, list(node.input)) for node in model.graph.node] == [("Relu", ["x"]), ("Identity", ["c"])]
    onnx.checker.check_model(model)

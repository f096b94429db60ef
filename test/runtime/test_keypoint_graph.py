"""A keypoint-reading VQ-HPS through the package's file, export and engine path: same numbers on every backend,
its input named and checked, and the estimator built from its file reading keypoints."""

import copy
import logging

import numpy as np
import pytest
import torch

from vqhps_ros.checkpoints import file_sha256
from vqhps_ros.config import load_config
from vqhps_ros.errors import CheckpointError, InputError
from vqhps_ros.estimator import Estimator
from vqhps_ros.hps import (
    ARGMAX,
    EXPECTED,
    VQHPS,
    KeypointMeshRegressor,
    KeypointRegressorConfig,
    TransformerDims,
    load_model,
    save_model,
)
from vqhps_ros.hps.checkpoint import PACKAGE_KEY
from vqhps_ros.humans import POSE_KEYPOINT_SET
from vqhps_ros.runtime import TENSORRT_OPS, OnnxRuntimeEngine, TorchEngine, export_vqhps, operator_types, read_metadata
from vqhps_ros.runtime.loading import load_engine
from vqhps_ros.runtime.signatures import INPUT_KEY, TOKEN_DECODING_KEY

onnx = pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def keypoint_model(small_model) -> VQHPS:
    torch.manual_seed(1)
    dims = TransformerDims(model_dim=32, nhead=4, feedforward_dim=64, dict_size=32, block_size=6, dropout=0.0)
    return VQHPS(KeypointMeshRegressor(KeypointRegressorConfig(dims, hidden=32)), small_model.mesh_vqvae,
                 small_model.pose_init, small_model.joint_regressor, small_model.joint_names, small_model.faces).eval()


@pytest.fixture(scope="module")
def keypoint_graph(keypoint_model, tmp_path_factory):
    return export_vqhps(keypoint_model, tmp_path_factory.mktemp("graphs") / "keypoints.onnx", max_persons=4)


@pytest.fixture(scope="module")
def keypoints() -> np.ndarray:
    rng = np.random.default_rng(2)
    values = rng.uniform(-1, 1, (6, 33, 3)).astype(np.float32)
    values[..., 2] = rng.uniform(size=(6, 33)) > 0.3
    return values


def test_the_graph_reads_keypoints_with_tensorrt_operators_only(keypoint_graph):
    graph = onnx.load(keypoint_graph)
    (graph_input,) = graph.graph.input
    shape = [dim.dim_param or dim.dim_value for dim in graph_input.type.tensor_type.shape.dim]
    assert (graph_input.name, shape) == ("keypoints", ["batch", 33, 3])
    assert operator_types(graph) <= TENSORRT_OPS
    assert read_metadata(graph)[INPUT_KEY] == "keypoints"


def test_onnxruntime_and_pytorch_give_the_same_meshes(keypoint_model, keypoint_graph, keypoints):
    with OnnxRuntimeEngine(keypoint_graph, threads=1) as graph_engine, TorchEngine(keypoint_model) as torch_engine:
        assert graph_engine.input_metadata[0].name == torch_engine.input_metadata[0].name == "keypoints"
        from_graph, from_torch = graph_engine.infer(keypoints), torch_engine.infer(keypoints)
    np.testing.assert_array_equal(from_graph.indices, from_torch.indices)
    np.testing.assert_allclose(from_graph.verts, from_torch.verts, atol=1e-4)
    np.testing.assert_allclose(from_graph.cam, from_torch.cam, atol=1e-5)
    expected = keypoint_model(torch.from_numpy(keypoints))
    np.testing.assert_array_equal(from_torch.indices, expected.indices.numpy())


def test_an_engine_of_a_keypoint_graph_refuses_crops(keypoint_graph):
    with OnnxRuntimeEngine(keypoint_graph) as engine:
        with pytest.raises(InputError, match=r"keypoints: expected shape \(batch, 33, 3\), found \(2, 3, 224, 224\)"):
            engine.infer(np.zeros((2, 3, 224, 224), np.float32))
        nan = np.zeros((3, 33, 3), np.float32)
        nan[1, 4, 0] = np.nan
        with pytest.raises(InputError, match=r"persons \[1\] hold NaN"):
            engine.infer(nan)


def test_model_files_keep_what_the_regressor_reads(keypoint_model, keypoints, tmp_path):
    path = tmp_path / "keypoints.pt"
    save_model(keypoint_model, path)
    loaded = load_model(path)
    assert isinstance(loaded.regressor, KeypointMeshRegressor)
    with torch.no_grad():
        np.testing.assert_array_equal(loaded(torch.from_numpy(keypoints)).verts, keypoint_model(
            torch.from_numpy(keypoints)).verts)
    with pytest.raises(CheckpointError, match="official batching applies to image regressors"):
        load_model(path, official_batching=True)
    data = torch.load(path, weights_only=False)
    data[PACKAGE_KEY]["input"] = "depth_images"
    torch.save(data, path)
    with pytest.raises(CheckpointError, match="reads 'depth_images'; this version knows"):
        load_model(path)


def test_the_estimator_of_a_keypoint_model_file_reads_keypoints(keypoint_model, tmp_path):
    path = tmp_path / "keypoints.pt"
    save_model(keypoint_model, path)
    config = load_config(overrides=[f"model.path={path}", "model.backend=pytorch", "persons.source=detections"])
    estimator = Estimator.from_config(config)
    try:
        assert estimator.reads_keypoints and estimator.inputs.landmarker is not None
        assert estimator.topology.keypoint_set == POSE_KEYPOINT_SET  # every person carries keypoints
        assert estimator.inputs.min_keypoints == config.model.min_keypoints
    finally:
        estimator.close()


def test_a_graph_exported_with_expected_decoding_says_so_and_matches_pytorch(keypoint_model, keypoints, tmp_path):
    expected_model = copy.deepcopy(keypoint_model)
    expected_model.set_token_decoding(EXPECTED)
    graph = export_vqhps(expected_model, tmp_path / "expected.onnx", max_persons=4)
    assert read_metadata(onnx.load(graph))[TOKEN_DECODING_KEY] == EXPECTED
    with OnnxRuntimeEngine(graph, threads=1) as engine:
        from_graph = engine.infer(keypoints)
    with torch.no_grad():
        from_torch, argmax = expected_model(torch.from_numpy(keypoints)), keypoint_model(torch.from_numpy(keypoints))
    np.testing.assert_allclose(from_graph.verts, from_torch.verts.numpy(), atol=1e-4)
    np.testing.assert_array_equal(from_graph.indices, argmax.indices.numpy())
    assert np.abs(from_graph.verts - argmax.verts.numpy()).max() > 1e-3  # an untrained network hesitates


def test_the_configured_decoding_reaches_the_engine_of_a_model_file_and_is_reported_for_graphs(
        keypoint_model, keypoint_graph, keypoints, tmp_path, caplog):
    path = tmp_path / "keypoints.pt"
    save_model(keypoint_model, path)
    outputs = {}
    for decoding in (EXPECTED, ARGMAX):
        config = load_config(overrides=[f"model.path={path}", "model.backend=onnxruntime", "model.threads=1",
                                        f"model.token_decoding={decoding}", f"model.engine_cache_dir={tmp_path}"])
        loaded = load_engine(config.model)
        with loaded.engine as engine:
            outputs[decoding] = engine.infer(keypoints).verts
    assert sorted(graph.name for graph in (tmp_path / "graphs").iterdir()) == [
        f"keypoints-{file_sha256(path)[:16]}-{decoding}.onnx" for decoding in (ARGMAX, EXPECTED)]
    with torch.no_grad():
        np.testing.assert_allclose(outputs[ARGMAX], keypoint_model(torch.from_numpy(keypoints)).verts, atol=1e-4)
    assert np.abs(outputs[EXPECTED] - outputs[ARGMAX]).max() > 1e-3

    graph_config = load_config(overrides=[f"model.path={keypoint_graph}", "model.backend=onnxruntime"])
    with caplog.at_level(logging.WARNING, logger="vqhps_ros.runtime.loading"), load_engine(graph_config.model).engine:
        pass
    assert f"model.token_decoding expected does not apply to {keypoint_graph}, which decodes argmax" in caplog.text

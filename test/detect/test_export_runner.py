"""The exported graphs: operators TensorRT parses, metadata, and ONNX Runtime equal to PyTorch through the runner."""

import importlib.util
import json

import numpy as np
import pytest

from vqhps_ros.detect import (
    POSE_DETECTOR_GRAPH,
    POSE_LANDMARK_GRAPH,
    DetectionRunner,
    Roi,
    crop_roi,
    full_image_roi,
)
from vqhps_ros.detect import export as detect_export
from vqhps_ros.detect.keypoints import sigmoid
from vqhps_ros.errors import EngineError, InputError
from vqhps_ros.runtime import GRAPH_KEY, TENSORRT_OPS, operator_types, read_metadata, verify_content_hash

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """A graph cache holding both exported graphs (each export traces its network once)."""
    folder = tmp_path_factory.mktemp("detect_graphs")
    for graph in (POSE_DETECTOR_GRAPH, POSE_LANDMARK_GRAPH):
        detect_export.cached_graph_path(graph, folder)
    return folder


@pytest.fixture(scope="module")
def inputs(photo_frames, sample_frames):
    """Detector batch (2, 3, 224, 224) and landmark batch (3, 3, 256, 256) from a photo and a synthetic frame."""
    images = [photo_frames[0].image, sample_frames[0].image]
    frames = np.stack([crop_roi(image, full_image_roi(image.shape[:2]), 224, "zero") for image in images])
    rois = [Roi((250.0, 240.0), 500.0), Roi((256.0, 255.0), 260.0, 0.3), Roi((600.0, 300.0), 300.0)]
    crops = np.stack([crop_roi(images[index > 0], roi, 256) for index, roi in enumerate(rois)])
    return {POSE_DETECTOR_GRAPH: frames.astype(np.float32).transpose(0, 3, 1, 2) / 127.5 - 1.0,
            POSE_LANDMARK_GRAPH: crops.astype(np.float32).transpose(0, 3, 1, 2) / 255.0}


@pytest.mark.parametrize("graph", [POSE_DETECTOR_GRAPH, POSE_LANDMARK_GRAPH])
def test_exported_graph_parses_in_tensorrt_and_says_what_it_is(cache_dir, graph):
    path = detect_export.cached_graph_path(graph, cache_dir)
    model = onnx.load(path)
    assert operator_types(model) <= TENSORRT_OPS
    metadata = read_metadata(model)
    assert metadata[GRAPH_KEY] == graph
    source = json.loads(metadata["vqhps_ros.detect.source"])
    assert source["sha256"] == detect_export.source_file(graph).sha256
    verify_content_hash(model, str(path))
    assert [value.name for value in model.graph.input] == [("image" if graph == POSE_DETECTOR_GRAPH else "crop")]
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"


@pytest.mark.parametrize("graph", [POSE_DETECTOR_GRAPH, POSE_LANDMARK_GRAPH])
def test_onnxruntime_equals_pytorch(cache_dir, inputs, graph):
    with DetectionRunner(graph, "onnxruntime", cache_dir=cache_dir) as onnx_runner, \
            DetectionRunner(graph, "pytorch", device="cpu") as torch_runner:
        assert (onnx_runner.backend, torch_runner.backend) == ("onnxruntime", "pytorch")
        batch = inputs[graph]
        from_onnx, from_torch = onnx_runner.infer(batch), torch_runner.infer(batch)
        single = onnx_runner.infer(batch[1:2])  # batch size is free; each row is its own
    assert list(from_onnx) == list(from_torch)
    for name, expected in from_torch.items():
        assert from_onnx[name].shape == expected.shape and from_onnx[name].dtype == np.float32
        assert_same(name, from_onnx[name], expected)
        assert_same(name, single[name][0], from_onnx[name][1])


def assert_same(name: str, found: np.ndarray, expected: np.ndarray) -> None:
    """Equal up to float32 rounding (see test_networks): pixels, logits and mask probabilities within 1e-2 (the
    mask's logits reach 1e3, where rounding moves them by ~1: compared as probabilities), pose presence and world
    points within 1e-3."""
    if name == "segmentation":
        found, expected = sigmoid(found), sigmoid(expected)
    tolerance = 1e-3 if name in ("pose_presence", "world_landmarks") else 1e-2
    np.testing.assert_allclose(found, expected, atol=tolerance, rtol=0, err_msg=name)


def test_auto_runs_onnxruntime_and_falls_back_to_pytorch(cache_dir, monkeypatch):
    with DetectionRunner(POSE_DETECTOR_GRAPH, "auto", cache_dir=cache_dir) as runner:
        assert runner.backend == "onnxruntime"
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "onnxruntime" else real_find_spec(name, *args))
    with DetectionRunner(POSE_DETECTOR_GRAPH, "auto", cache_dir=cache_dir) as runner:
        assert runner.backend == "pytorch"
    with pytest.raises(EngineError, match="onnxruntime not installed"):
        DetectionRunner(POSE_DETECTOR_GRAPH, "onnxruntime", cache_dir=cache_dir).activate()


def test_a_corrupt_cached_graph_is_exported_again(tmp_path):
    path = detect_export.cached_graph_path(POSE_DETECTOR_GRAPH, tmp_path)
    path.write_bytes(b"not an onnx file")
    with DetectionRunner(POSE_DETECTOR_GRAPH, "onnxruntime", cache_dir=tmp_path) as runner:
        assert runner.infer(np.zeros((1, 3, 224, 224), np.float32))["raw_scores"].shape == (1, 2254)
    assert onnx.load(path).graph.input[0].name == "image"


def test_runner_rejects_bad_input(cache_dir):
    with pytest.raises(InputError, match="backend"):
        DetectionRunner(POSE_DETECTOR_GRAPH, "tensorflow")
    runner = DetectionRunner(POSE_LANDMARK_GRAPH, "onnxruntime", cache_dir=cache_dir)
    with pytest.raises(EngineError, match="not active"):
        runner.infer(np.zeros((1, 3, 256, 256), np.float32))
    with runner:
        with pytest.raises(InputError, match="shape"):
            runner.infer(np.zeros((1, 3, 224, 224), np.float32))
        with pytest.raises(InputError, match="NaN"):
            runner.infer(np.full((1, 3, 256, 256), np.nan, np.float32))
        empty = runner.infer(np.zeros((0, 3, 256, 256), np.float32))
        assert empty["landmarks"].shape == (0, 39, 5) and empty["pose_presence"].shape == (0,)


def test_sessions_spin_unless_told_to_sleep_between_runs(cache_dir):
    pytest.importorskip("onnxruntime")
    from vqhps_ros.runtime.onnx_runtime import SPINNING_OPTION, create_session

    graph = detect_export.cached_graph_path(POSE_DETECTOR_GRAPH, cache_dir)  # exported by the tests above
    options = create_session(graph, threads=1, spinning=False).get_session_options()
    assert options.get_session_config_entry(SPINNING_OPTION) == "0" and options.intra_op_num_threads == 1
    assert create_session(graph).get_session_options().get_session_config_entry(SPINNING_OPTION) == "1"


def test_a_runner_that_no_backend_can_start_says_why_each_failed(cache_dir, monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None if name in (
        "onnxruntime", "tensorrt", "pycuda") else real_find_spec(name, *args))

    def broken(self):
        raise RuntimeError("no memory for the weights")

    monkeypatch.setattr(DetectionRunner, "_start_pytorch", broken)
    runner = DetectionRunner(POSE_DETECTOR_GRAPH, "auto", cache_dir=cache_dir)
    with pytest.raises(EngineError, match="tensorrt and pycuda not installed; onnxruntime not installed; pytorch "
                                          "failed to start: no memory for the weights"):
        runner.activate()
    assert not runner.is_active

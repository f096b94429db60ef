"""The detection graphs on TensorRT: the person detector's runners build, cache and run their engines through the
package's TensorRT engine (here against `fake_tensorrt`; a real engine needs TensorRT and a CUDA device)."""

import importlib.util
import logging

import numpy as np
import pytest
from fake_tensorrt import FakeCuda, engine_io_for, expected_outputs, make_tensorrt

from vqhps_ros.detect import (
    POSE_DETECTOR_GRAPH,
    POSE_LANDMARK_GRAPH,
    BuiltinPersonDetector,
    DetectionRunner,
    DetectorSettings,
    cached_graph_path,
    pose_landmark_signature,
)
from vqhps_ros.errors import EngineError
from vqhps_ros.runtime import tensorrt_engine

pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    """The exported landmark graph's cache folder."""
    folder = tmp_path_factory.mktemp("detect_graphs")
    cached_graph_path(POSE_LANDMARK_GRAPH, folder)
    return folder


@pytest.fixture
def fake_trt(monkeypatch):
    """A fake TensorRT 10.3 (named tensors API) and pycuda serving the landmark graph's tensors; also makes them
    look installed, with one CUDA device, for `auto`."""
    def install(**options):
        cuda = FakeCuda()
        trt = make_tensorrt(cuda, **{"version": "10.3.0", "bindings_api": False, "tensors_api": True, **options})
        trt.calls["engine_io"] = engine_io_for(pose_landmark_signature())
        monkeypatch.setattr(tensorrt_engine, "import_tensorrt", lambda: trt)
        monkeypatch.setattr(tensorrt_engine, "import_pycuda", lambda: cuda)
        return trt, cuda

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: object() if name in ("tensorrt", "pycuda") else real_find_spec(name, *args))
    monkeypatch.setattr("vqhps_ros.runtime.factory.cuda_device_count", lambda: 1)
    return install


def crops(count: int) -> np.ndarray:
    return np.random.default_rng(count).uniform(0.0, 1.0, (count, 3, 256, 256)).astype(np.float32)


def test_the_landmark_model_runs_on_tensorrt_in_batches_of_its_profile(fake_trt, graphs, tmp_path):
    trt, cuda = fake_trt()
    batch = crops(5)
    runner = DetectionRunner(POSE_LANDMARK_GRAPH, "tensorrt", cache_dir=graphs, engine_cache_dir=tmp_path,
                             max_batch=2)
    with runner:
        assert runner.backend == "tensorrt" and runner.description.startswith("tensorrt cuda:0 Fake Orin")
        outputs = runner.infer(batch)  # 5 crops: calls of 2, 2 and 1
    expected = expected_outputs(batch, pose_landmark_signature())
    assert list(outputs) == list(expected)
    for name, array in expected.items():
        np.testing.assert_allclose(outputs[name], array, rtol=1e-6, err_msg=name)
    assert trt.calls["last_build"]["profiles"] == [{"crop": ((1, 3, 256, 256), (2, 3, 256, 256), (2, 3, 256, 256))}]
    assert len(trt.calls["executions"]) == 3
    assert cuda.memory == {} and cuda.stack() == []  # deactivation freed the engine's device memory
    assert len(list(tmp_path.glob("*.engine"))) == 1  # in the engine cache, next to the mesh network's


def test_auto_prefers_tensorrt_and_falls_back_when_it_fails_to_start(fake_trt, graphs, tmp_path, caplog):
    fake_trt()
    with DetectionRunner(POSE_LANDMARK_GRAPH, "auto", cache_dir=graphs, engine_cache_dir=tmp_path) as runner:
        assert runner.backend == "tensorrt"
    fake_trt(build_fails=True)
    with caplog.at_level(logging.WARNING), DetectionRunner(POSE_LANDMARK_GRAPH, "auto", cache_dir=graphs,
                                                           engine_cache_dir=tmp_path / "other") as runner:
        assert runner.backend == "onnxruntime"
    assert "not running on tensorrt (tensorrt failed to start" in caplog.text
    fake_trt(build_fails=True)
    with pytest.raises(EngineError, match="pose_landmarker: tensorrt failed to start"):
        DetectionRunner(POSE_LANDMARK_GRAPH, "tensorrt", cache_dir=graphs,
                        engine_cache_dir=tmp_path / "third").activate()


def test_a_graph_of_another_kind_is_refused(fake_trt, graphs, tmp_path):
    fake_trt()
    landmark_graph = cached_graph_path(POSE_LANDMARK_GRAPH, graphs)
    with pytest.raises(EngineError, match="expected a pose_detector graph"):
        DetectionRunner(POSE_DETECTOR_GRAPH, "tensorrt", onnx_path=landmark_graph, engine_cache_dir=tmp_path).activate()


@pytest.mark.parametrize("zoom_grid, tiles_per_run, detector_batch", [(2, 1, 2), (1, 3, 1), (2, 9, 5)])
def test_the_detectors_profiles_hold_a_runs_images_and_the_persons(zoom_grid, tiles_per_run, detector_batch):
    detector = BuiltinPersonDetector(DetectorSettings(backend="tensorrt", zoom_grid=zoom_grid,
                                                      tiles_per_run=tiles_per_run, max_persons=3,
                                                      engine_cache_dir="/tmp/engines"))
    assert (detector.detector.max_batch, detector.landmarker.max_batch) == (detector_batch, 3)
    assert detector.landmarker.engine_cache_dir == "/tmp/engines" and not detector.detector.is_active


@pytest.mark.tensorrt
def test_real_tensorrt_landmarks_match_onnx_runtime(graphs, tmp_path, shared_bags):
    from vqhps_ros.detect import crop_roi, full_image_roi
    from vqhps_ros.io import read_frames

    photos = [frame.image for index, frame in enumerate(read_frames(shared_bags / "ros2_jazzy_photos_mcap"))
              if index in (0, 10, 20)]  # Grace Hopper, Eileen Collins, the cameraman
    batch = np.stack([crop_roi(image, full_image_roi(image.shape[:2]), 256) for image in photos])
    batch = batch.astype(np.float32).transpose(0, 3, 1, 2) / 255.0
    with DetectionRunner(POSE_LANDMARK_GRAPH, "onnxruntime", cache_dir=graphs, providers=["CPUExecutionProvider"]
                         ) as reference:
        expected = reference.infer(batch)
    with DetectionRunner(POSE_LANDMARK_GRAPH, "tensorrt", cache_dir=graphs, engine_cache_dir=tmp_path) as runner:
        outputs = runner.infer(batch)  # fp16, TensorRT's default
    # a person in each crop: fp16 keeps the body landmarks within 2 px of 256 and the presence within 0.05
    np.testing.assert_allclose(outputs["landmarks"][:, :33, :2], expected["landmarks"][:, :33, :2], atol=2.0, rtol=0)
    np.testing.assert_allclose(outputs["pose_presence"], expected["pose_presence"], atol=0.05, rtol=0)

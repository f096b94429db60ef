"""Fixtures of the ROS tests: the tests' rclpy node, `ros2 launch` of the estimator, the bags as rclpy messages.

Nothing here imports rclpy at import time: without ROS (the plain .venv run) the `ros` tests are collected and
skipped by test/conftest.py before any of these fixtures runs. In the ROS environment (`make ros-test`, i.e.
`tools/ros2_env.sh python -m pytest -m ros test/ros`) they drive the node built by colcon into .ros_ws.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE_BAG = REPO_ROOT / "vqhps_ros" / "data" / "sample_bag"
# The backend and a short start: ONNX Runtime on the CPU runs everywhere; the graph exported by the first configure
# of a run is reused by every later node of the run (engine_cache_dir). These tests check the node's plumbing frame
# by frame (ids are the detections' ids, every detected person is published at once), so the temporal stage is off
# and persons come from the detections only; test/temporal tests the temporal stage, and the replay tests run it
# through the same Estimator. One test runs the default person source (the built-in detector) on the real photos.
# The plumbing tests run the bundled image model: it gives one person per detection box, so what arrives can be
# checked box by box (the default keypoint model skips boxes whose keypoints it cannot read; the built-in detector
# test runs it).
BASE_ARGUMENTS = {"backend": "onnxruntime", "image_topic": "/camera/image_raw",
                  "camera_info_topic": "/camera/camera_info", "detections_topic": "/camera/detections",
                  "compressed": "true", "temporal": "false", "person_source": "detections", "model": "bundled:image"}


def _harness_module():
    pytest.importorskip("rclpy", reason="needs rclpy (a ROS 2 install; run `make ros-test`)")
    import ros_harness

    return ros_harness


@pytest.fixture(scope="session")
def rh():
    """The ros_harness module (imported only when ROS is there)."""
    return _harness_module()


@pytest.fixture(scope="session")
def ros(rh):
    harness = rh.Harness()
    yield harness
    harness.close()


@pytest.fixture(scope="session")
def engine_cache_dir(tmp_path_factory) -> Path:
    return Path(os.environ.get("VQHPS_ROS_TEST_ENGINE_CACHE") or tmp_path_factory.mktemp("engines"))


@pytest.fixture(scope="session")
def launch_estimator(rh, ros, engine_cache_dir, tmp_path_factory):
    """launch_estimator(node_name, **launch_arguments) -> Launch; every launch left running is stopped at the end.
    An argument given as None is left out (the launch file's default)."""
    logs = tmp_path_factory.mktemp("launch_logs")
    launches = []

    def start(node_name: str, **arguments) -> object:
        values = {**BASE_ARGUMENTS, "engine_cache_dir": str(engine_cache_dir), "node_name": node_name,
                  **{key: str(value) for key, value in arguments.items()}}
        values = {key: value for key, value in values.items() if arguments.get(key, "") is not None}
        launch = rh.Launch(logs / f"{node_name}_{len(launches)}.log", values)
        launches.append(launch)
        return launch

    yield start
    for launch in launches:
        launch.stop()


@pytest.fixture(scope="session")
def sample_frames(rh) -> list:
    """The sample bag (150 frames at 15 Hz: CompressedImage, CameraInfo, Detection2DArray with track ids 1-3)."""
    return rh.read_bag(SAMPLE_BAG)


@pytest.fixture(scope="session")
def photo_frames(rh, shared_bags) -> dict:
    """The two bags recorded by a real ROS 2: "mcap" (raw rgb8 Image 320x240), "sqlite3" (jpeg CompressedImage)."""
    return {"mcap": rh.read_bag(shared_bags / "ros2_jazzy_photos_mcap"),
            "sqlite3": rh.read_bag(shared_bags / "ros2_jazzy_photos_sqlite3")}

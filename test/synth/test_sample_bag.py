"""The shipped sample bag and the tool that makes it: readable by rosbags alone, images decode, truth agrees."""

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest
from rosbags.highlevel import AnyReader

from vqhps_ros.body import free_body_h36m_regressor
from vqhps_ros.synth import SceneGenerator

REPO_ROOT = Path(__file__).resolve().parents[2]
BAG = REPO_ROOT / "vqhps_ros" / "data" / "sample_bag"
TOPICS = {"/camera/image_raw/compressed": "sensor_msgs/msg/CompressedImage",
          "/camera/camera_info": "sensor_msgs/msg/CameraInfo",
          "/camera/detections": "vision_msgs/msg/Detection2DArray"}
# Recorded by ROS 2 Jazzy's rosbag2 in ../shared/bags (see its README): the hash of the real vision_msgs type.
JAZZY_DETECTION2DARRAY_RIHS01 = "RIHS01_214274120007f4a683866481336b70310268cfa107aebe9d594a6acf75bda968"


def _load_tool():
    spec = importlib.util.spec_from_file_location("make_sample_bag", REPO_ROOT / "tools" / "make_sample_bag.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _read(path: Path) -> dict[str, list]:
    """topic -> [(log time, message)], deserialised with the definitions stored in the bag itself."""
    messages: dict[str, list] = {}
    with AnyReader([path]) as reader:
        assert {c.topic: c.msgtype for c in reader.connections} == TOPICS
        for connection, timestamp, raw in reader.messages():
            messages.setdefault(connection.topic, []).append((timestamp, reader.deserialize(raw, connection.msgtype)))
    return messages


@pytest.fixture(scope="module")
def bag():
    return _read(BAG)


@pytest.fixture(scope="module")
def truth():
    with np.load(BAG / "ground_truth.npz") as archive:
        return dict(archive)


def test_bag_is_small_mcap_and_ten_seconds_at_15_hz(bag):
    files = list(BAG.iterdir())
    assert sum(path.stat().st_size for path in files) < 15e6
    assert [path.suffix for path in files if path.suffix == ".mcap"] == [".mcap"]
    stamps = {topic: np.array([t for t, _ in entries]) for topic, entries in bag.items()}
    for topic, times in stamps.items():
        assert len(times) == 150, topic
        np.testing.assert_allclose(np.diff(times), 1e9 / 15, atol=1)
        np.testing.assert_array_equal(times, stamps["/camera/camera_info"])
    for entries in bag.values():
        for timestamp, message in entries:
            assert message.header.frame_id == "camera_color_optical_frame"
            assert message.header.stamp.sec * 10**9 + message.header.stamp.nanosec == timestamp


def test_images_decode_and_camera_info_matches_the_truth(bag, truth):
    for _, message in bag["/camera/image_raw/compressed"][::15]:
        image = cv2.imdecode(np.asarray(message.data), cv2.IMREAD_COLOR)
        assert image is not None and image.shape == (480, 640, 3) and image.std() > 10
    info = bag["/camera/camera_info"][0][1]
    assert (info.height, info.width) == (480, 640) and info.distortion_model == "plumb_bob"
    np.testing.assert_allclose(info.k.reshape(3, 3), truth["intrinsics"])
    np.testing.assert_array_equal(truth["image_size"], [480, 640])


def test_detections_are_the_truths_boxes_of_the_people_seen(bag, truth):
    people_per_frame = []
    for frame, (timestamp, message) in enumerate(bag["/camera/detections"]):
        rows = np.flatnonzero(truth["frame_index"] == frame)
        assert np.all(truth["stamp_ns"][rows] == timestamp)
        detected = {str(truth["track_id"][row]): truth["boxes"][row] for row in rows if truth["detected"][row]}
        assert {d.id for d in message.detections} == set(detected)
        for detection in message.detections:
            x, y, w, h = detected[detection.id]
            assert detection.results[0].hypothesis.class_id == "person"
            np.testing.assert_allclose([detection.bbox.center.position.x, detection.bbox.center.position.y,
                                        detection.bbox.size_x, detection.bbox.size_y], [x + w / 2, y + h / 2, w, h])
        people_per_frame.append(len(rows))
    assert min(people_per_frame) >= 1 and max(people_per_frame) == 3
    assert set(truth["track_id"].tolist()) == {1, 2, 3}
    assert (~truth["detected"]).any()  # some people are hidden or leaving the view: occlusions happen


def test_truth_parameters_rebuild_the_joints(truth):
    rows = np.arange(0, len(truth["frame_index"]), 37)
    vertices = SceneGenerator().camera_vertices(truth["betas"][rows], truth["body_pose"][rows],
                                                truth["global_orient"][rows], truth["translation"][rows])
    np.testing.assert_allclose(free_body_h36m_regressor()(vertices), truth["joints_h36m_camera"][rows], atol=1e-4)


def test_vision_msgs_definitions_hash_like_real_ros2():
    typestore = _load_tool().make_typestore()
    assert typestore.hash_rihs01("vision_msgs/msg/Detection2DArray") == JAZZY_DETECTION2DARRAY_RIHS01


def test_the_tool_writes_a_bag_that_reads_back(tmp_path):
    summary = _load_tool().make_sample_bag(tmp_path / "short", seconds=0.4, fps=15.0, seed=7)
    assert summary["frames"] == 6
    messages = _read(tmp_path / "short")
    assert all(len(entries) == 6 for entries in messages.values())
    with np.load(tmp_path / "short" / "ground_truth.npz") as archive:
        assert set(archive["frame_index"].tolist()) == set(range(6))
    with pytest.raises(FileExistsError):
        _load_tool().make_sample_bag(tmp_path / "short", seconds=0.4)

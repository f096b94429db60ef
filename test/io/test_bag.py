"""Frames from bags: the shipped sample bag and bags written by a real ROS 2 recorder (mcap and sqlite3)."""

from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from vqhps_ros.errors import InputError
from vqhps_ros.io import camera_matrix, decode_compressed_image, decode_raw_image, read_frames
from vqhps_ros.io.bag import MAX_WAITING, _frames

SAMPLE_BAG = "data/sample_bag"


@pytest.fixture(scope="module")
def sample_frames(request):
    return list(read_frames(request.config.rootpath / SAMPLE_BAG))


def test_sample_bag_frames_match_the_ground_truth(sample_frames, request):
    with np.load(request.config.rootpath / SAMPLE_BAG / "ground_truth.npz") as truth:
        stamps, boxes, detected = truth["stamp_ns"], truth["boxes"], truth["detected"]
        intrinsics = truth["intrinsics"]
    assert len(sample_frames) == 150
    assert [frame.stamp_ns for frame in sample_frames] == sorted(set(stamps.tolist()))
    for frame in sample_frames:
        assert frame.image.shape == (480, 640, 3) and frame.image.dtype == np.uint8
        assert frame.frame_id == "camera_color_optical_frame"
        np.testing.assert_allclose(frame.intrinsics, intrinsics)
        rows = (stamps == frame.stamp_ns) & detected
        assert len(frame.boxes) == rows.sum()
        np.testing.assert_allclose(np.sort(frame.boxes, axis=0), np.sort(boxes[rows], axis=0), atol=1e-6)


@pytest.mark.parametrize("name, shape, focal", [("ros2_jazzy_photos_mcap", (240, 320, 3), 288.0),
                                                ("ros2_jazzy_photos_sqlite3", (480, 640, 3), 576.0)])
def test_bags_recorded_by_ros2_read_with_their_own_definitions(shared_bags, name, shape, focal):
    frames = list(read_frames(shared_bags / name))
    assert len(frames) == 30
    for frame in frames:
        assert frame.image.shape == shape and frame.intrinsics[0, 0] == focal  # fx = 0.9 * width
        assert len(frame.boxes) == 1 and frame.detection_ids == ("1",)
        x, y, w, h = frame.boxes[0]
        assert w > 0 and h > 0 and x < shape[1] and y < shape[0] and x + w > 0 and y + h > 0
    assert len({frame.image.tobytes() for frame in frames}) > 3  # three photographs, shifted between frames


def test_missing_bag_and_missing_topic_are_named(shared_bags, tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        list(read_frames(tmp_path / "nothing"))
    with pytest.raises(InputError, match=r"topic '/camera/rgb'.*the bag has: /camera/camera_info"):
        list(read_frames(shared_bags / "ros2_jazzy_photos_mcap", image_topic="/camera/rgb"))


def raw_image(encoding: str, pixels: np.ndarray, padding: int = 0):
    height, width = pixels.shape[:2]
    rows = pixels.reshape(height, -1)
    padded = np.concatenate([rows, np.zeros((height, padding), np.uint8)], axis=1)
    return SimpleNamespace(encoding=encoding, height=height, width=width, step=padded.shape[1],
                           data=padded.tobytes())


def test_raw_encodings_become_rgb_and_row_padding_is_skipped():
    rgb = np.random.default_rng(0).integers(0, 255, (4, 5, 3), dtype=np.uint8)
    np.testing.assert_array_equal(decode_raw_image(raw_image("rgb8", rgb, padding=3)), rgb)
    np.testing.assert_array_equal(decode_raw_image(raw_image("bgr8", rgb[..., ::-1].copy())), rgb)
    gray = rgb[..., 0]
    np.testing.assert_array_equal(decode_raw_image(raw_image("mono8", gray)), np.repeat(gray[..., None], 3, 2))


def test_bad_images_raise_clear_errors():
    with pytest.raises(InputError, match="unsupported image encoding '16UC1'"):
        decode_raw_image(SimpleNamespace(encoding="16UC1", height=1, width=1, step=2, data=b"\0\0"))
    with pytest.raises(InputError, match=r"needs 4 rows of at least 15 bytes, found step 15 and 30 bytes"):
        decode_raw_image(SimpleNamespace(encoding="rgb8", height=4, width=5, step=15, data=bytes(30)))
    with pytest.raises(InputError, match="does not decode"):
        decode_compressed_image(SimpleNamespace(format="jpeg", data=b"not a jpeg"))
    ok, jpeg = cv2.imencode(".jpg", np.full((8, 8, 3), (0, 0, 255), np.uint8))  # BGR red
    assert decode_compressed_image(SimpleNamespace(format="jpeg", data=jpeg.tobytes()))[0, 0, 0] > 200
    with pytest.raises(InputError, match="no calibration"):
        camera_matrix(SimpleNamespace(k=[0.0] * 9))


class FakeReader:
    """Images stamped 0..n-1 with detections for the even stamps only, logged after their image."""

    def __init__(self, count: int):
        self.image = SimpleNamespace(msgtype="sensor_msgs/msg/Image")
        self.detections = SimpleNamespace(msgtype="vision_msgs/msg/Detection2DArray")
        self.count = count

    def messages(self, connections):
        for stamp in range(self.count):
            yield self.image, stamp, ("image", stamp)
            if stamp % 2 == 0:
                yield self.detections, stamp, ("detections", stamp)

    def deserialize(self, raw, msgtype):
        kind, stamp = raw
        header = SimpleNamespace(stamp=SimpleNamespace(sec=0, nanosec=stamp), frame_id="camera")
        if kind == "image":
            return SimpleNamespace(header=header, **vars(raw_image("mono8", np.full((2, 2), stamp, np.uint8))))
        box = SimpleNamespace(center=SimpleNamespace(position=SimpleNamespace(x=5.0, y=5.0)), size_x=2.0, size_y=4.0)
        return SimpleNamespace(header=header, detections=[SimpleNamespace(bbox=box, id=str(stamp))])


def test_frames_without_detections_are_kept_and_waiting_stays_bounded():
    reader = FakeReader(4 * MAX_WAITING)
    frames = list(_frames(reader, reader.image, None, reader.detections))
    assert sorted(frame.stamp_ns for frame in frames) == list(range(4 * MAX_WAITING))  # none dropped
    for frame in frames:
        expected = [[4.0, 3.0, 2.0, 4.0]] if frame.stamp_ns % 2 == 0 else np.zeros((0, 4))
        np.testing.assert_array_equal(frame.boxes, expected)
        assert frame.image[0, 0, 0] == frame.stamp_ns

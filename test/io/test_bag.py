"""Frames from bags: the shipped sample bag, bags written by a real ROS 2 recorder (mcap and sqlite3), and small
bags written here with the settings recorders vary (storage, zstd compression, encodings, topic names)."""

import os
import re

import numpy as np
import pytest
import yaml
from bags import BagSpec, FrameSpec, expected_pixels, frame_specs, intrinsics_of, person_boxes, write_bag

from vqhps_ros.data import sample_bag_path
from vqhps_ros.errors import InputError
from vqhps_ros.io import FrameAssembler, open_bag, read_frames, select_topics

SHARED_BAGS = {  # name: image message type, image encoding or format, (height, width)
    "ros2_jazzy_photos_mcap": ("sensor_msgs/msg/Image", "rgb8", (240, 320)),
    "ros2_jazzy_photos_sqlite3": ("sensor_msgs/msg/CompressedImage", "jpg", (480, 640)),
}
SHARED_TOPICS = ("/camera/camera_info (sensor_msgs/msg/CameraInfo), "
                 "/camera/detections (vision_msgs/msg/Detection2DArray), /camera/image_raw (sensor_msgs/msg/Image)")


@pytest.fixture(scope="module")
def sample_frames():
    return list(read_frames(sample_bag_path()))


@pytest.fixture(scope="module")
def truth():
    with np.load(sample_bag_path() / "ground_truth.npz") as data:
        return {name: data[name] for name in data.files}


def test_sample_bag_frames_match_the_ground_truth(sample_frames, truth):
    assert len(sample_frames) == 150
    assert [frame.stamp_ns for frame in sample_frames] == sorted(set(truth["stamp_ns"].tolist()))
    height, width = truth["image_size"].tolist()
    for frame in sample_frames:
        assert frame.image.shape == (height, width, 3) and frame.image.dtype == np.uint8
        assert frame.frame_id == "camera_color_optical_frame"
        np.testing.assert_allclose(frame.intrinsics, truth["intrinsics"], rtol=1e-12)
        rows = (truth["stamp_ns"] == frame.stamp_ns) & truth["detected"]
        assert frame.detections is not None and len(frame.detections) == rows.sum()
        by_id = {detection.id: detection for detection in frame.detections}
        assert sorted(by_id) == sorted(str(track) for track in truth["track_id"][rows])
        for track, box, visible in zip(truth["track_id"][rows], truth["boxes"][rows], truth["visible_fraction"][rows],
                                       strict=True):
            detection = by_id[str(track)]
            np.testing.assert_allclose(detection.box, box, atol=1e-6)
            assert detection.class_id == "person"
            assert detection.score == pytest.approx(0.5 + 0.5 * visible)  # how make_sample_bag scores


def test_sample_bag_has_frames_with_people_not_detected(sample_frames, truth):
    # persons hidden or too small have no Detection2D: the frame holds fewer detections than people present
    assert (~truth["detected"]).sum() > 0
    present = sum(len(frame.detections) for frame in sample_frames)
    assert present == truth["detected"].sum() < len(truth["detected"])


@pytest.mark.parametrize("name", SHARED_BAGS)
def test_bags_recorded_by_ros2_read_with_their_own_definitions(shared_bags, name):
    msgtype, encoding, (height, width) = SHARED_BAGS[name]
    with open_bag(shared_bags / name) as reader:
        topics = select_topics(reader)
        assert topics.image.msgtype == msgtype and topics.image.msgcount == 30
        _, _, raw = next(reader.messages(connections=[topics.image]))
        first = reader.deserialize(raw, msgtype)
        assert (first.encoding if msgtype.endswith("/Image") else first.format) == encoding
    frames = list(read_frames(shared_bags / name))
    assert len(frames) == 30
    for frame in frames:
        assert frame.image_size == (height, width) and frame.frame_id == "camera_color_optical_frame"
        # fx = fy = 0.9 * width, principal point at the centre (see the bags' README)
        np.testing.assert_array_equal(frame.intrinsics, [[0.9 * width, 0, width / 2], [0, 0.9 * width, height / 2],
                                                         [0, 0, 1]])
        (detection,) = frame.detections
        assert (detection.class_id, detection.score, detection.id) == ("person", 0.9, "1")
        x, y, w, h = detection.box
        assert w > 0 and h > 0 and 0 <= x < width and 0 <= y < height  # it may overhang the bottom
    assert len({frame.image.tobytes() for frame in frames}) > 3  # three photographs, shifted between frames
    assert all(np.diff([frame.stamp_ns for frame in frames]) > 0)


def test_empty_topic_names_leave_camera_info_and_detections_out(shared_bags):
    bag = shared_bags / "ros2_jazzy_photos_mcap"
    frames = list(read_frames(bag, detections_topic=""))
    assert len(frames) == 30 and all(frame.detections is None for frame in frames)
    without_info = FrameAssembler(expect_detections=True)
    assert list(read_frames(bag, camera_info_topic="", assembler=without_info)) == []
    assert without_info.counts == {"no_camera_info": 30}
    with_fov = FrameAssembler(expect_detections=True, fallback_fov_deg=90.0)
    frames = list(read_frames(bag, camera_info_topic="", assembler=with_fov))
    assert len(frames) == 30 and frames[0].intrinsics[0, 0] == pytest.approx(160.0)  # (320 / 2) / tan(45 deg)


# ---------------------------------------------------------------------------------------- bags written here

VARIANTS = {
    "mcap raw rgb8": BagSpec(),
    "mcap zstd file bgr8": BagSpec(compression="file", encoding="bgr8"),
    "mcap zstd message mono8": BagSpec(compression="message", encoding="mono8"),
    "sqlite3 png": BagSpec(storage="sqlite3", encoding="png"),
    "sqlite3 zstd file jpeg": BagSpec(storage="sqlite3", compression="file", encoding="jpeg"),
    "sqlite3 zstd message rgb8": BagSpec(storage="sqlite3", compression="message"),
    "other topic names": BagSpec(image_topic="/front/image", camera_info_topic="/front/camera_info",
                                 detections_topic="/people/boxes", frame_id="front_optical"),
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_recorder_setting_reads_back_the_written_frames(tmp_path, variant):
    spec = VARIANTS[variant]
    written = frame_specs(6)
    bag = write_bag(tmp_path / "bag", written, spec)
    metadata = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert metadata["storage_identifier"] == spec.storage
    assert (metadata["compression_mode"], metadata["compression_format"]) == (
        (spec.compression, "zstd") if spec.compression else ("", ""))
    suffix = {"mcap": ".mcap", "sqlite3": ".db3"}[spec.storage] + (".zstd" if spec.compression == "file" else "")
    assert [name for name in os.listdir(bag) if name != "metadata.yaml"] == [f"bag{suffix}"]
    frames = list(read_frames(bag))
    assert [frame.stamp_ns for frame in frames] == [frame.stamp_ns for frame in written]
    for frame, source in zip(frames, written, strict=True):
        assert frame.frame_id == spec.frame_id
        np.testing.assert_array_equal(frame.intrinsics, intrinsics_of(source.size))
        assert [d.id for d in frame.detections] == [str(n) for n in range(1, len(source.boxes) + 1)]
        np.testing.assert_allclose(np.reshape([d.box for d in frame.detections], (-1, 4)), np.reshape(source.boxes,
                                                                                                    (-1, 4)))
        expected = expected_pixels(spec, source)
        if spec.encoding == "jpeg":
            assert np.abs(frame.image.astype(int) - expected).mean() < 3
        else:
            np.testing.assert_array_equal(frame.image, expected)


def test_a_single_bag_file_reads_like_its_folder(tmp_path):
    bag = write_bag(tmp_path / "bag", frame_specs(3), BagSpec(storage="sqlite3"))
    from_file = list(read_frames(bag / "bag.db3"))
    from_folder = list(read_frames(bag))
    assert [f.stamp_ns for f in from_file] == [f.stamp_ns for f in from_folder] and len(from_file) == 3
    assert all(np.array_equal(a.image, b.image) for a, b in zip(from_file, from_folder, strict=True))


def test_frames_without_a_detection_message_go_on_without_detections(tmp_path):
    written = frame_specs(4)
    written[1] = FrameSpec(written[1].stamp_ns, boxes=None)  # the detector skipped this image
    assembler = FrameAssembler(expect_detections=True, detection_timeout_s=0.2)
    frames = list(read_frames(write_bag(tmp_path / "bag", written), assembler=assembler))
    # frame 1 goes on without detections as soon as frame 2 is complete: frames stay in stamp order
    assert [frame.stamp_ns for frame in frames] == [spec.stamp_ns for spec in written]
    assert [None if f.detections is None else len(f.detections) for f in frames] == [0, None, 2, 0]
    assert assembler.counts == {"detections_timeout": 1}


def test_undecodable_images_are_skipped_and_counted(tmp_path):
    written = frame_specs(5)
    written[2] = FrameSpec(written[2].stamp_ns, boxes=person_boxes(written[2].size, 1), damage="undecodable")
    assembler = FrameAssembler(expect_detections=True)
    frames = list(read_frames(write_bag(tmp_path / "bag", written), assembler=assembler))
    assert [frame.stamp_ns for frame in frames] == [written[i].stamp_ns for i in (0, 1, 3, 4)]
    assert assembler.counts == {"image_undecodable": 1}


# ---------------------------------------------------------------------------------------------------- errors


def test_a_missing_bag_is_named(tmp_path):
    with pytest.raises(InputError, match=f"bag {tmp_path / 'nothing'} does not exist"):
        list(read_frames(tmp_path / "nothing"))


def test_a_folder_without_metadata_says_what_to_do(tmp_path):
    bag = write_bag(tmp_path / "bag", frame_specs(2))
    (bag / "metadata.yaml").unlink()  # what an interrupted `ros2 bag record` leaves
    with pytest.raises(InputError, match="has no metadata.yaml.*give its .mcap or .db3 file"):
        list(read_frames(bag))
    assert len(list(read_frames(bag / "bag.mcap"))) == 2


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_a_truncated_bag_is_an_input_error(tmp_path, storage):
    bag = write_bag(tmp_path / "bag", frame_specs(20, size=(240, 320)), BagSpec(storage=storage))
    (data,) = [path for path in bag.iterdir() if path.name != "metadata.yaml"]
    os.truncate(data, data.stat().st_size // 2)
    with pytest.raises(InputError, match="truncated or corrupt"):
        list(read_frames(bag))


def test_a_missing_topic_lists_the_topics_of_the_bag(shared_bags):
    with pytest.raises(InputError, match=re.escape(
            "expected topic '/camera/rgb' of type sensor_msgs/msg/Image or sensor_msgs/msg/CompressedImage in the "
            f"bag, none matches; the bag has: {SHARED_TOPICS}")):
        list(read_frames(shared_bags / "ros2_jazzy_photos_mcap", image_topic="/camera/rgb"))
    with pytest.raises(InputError, match=r"topic '/camera/info' of type sensor_msgs/msg/CameraInfo.*none matches.*"
                                         r"/camera/image_raw \(sensor_msgs/msg/Image\)"):
        list(read_frames(shared_bags / "ros2_jazzy_photos_mcap", camera_info_topic="/camera/info"))


def test_a_topic_of_another_type_is_not_taken(tmp_path):
    bag = write_bag(tmp_path / "bag", frame_specs(2))
    with open_bag(bag) as reader:
        with pytest.raises(InputError, match=r"topic '/camera/camera_info' of type sensor_msgs/msg/Image or .*"
                                             r"none matches; the bag has: /camera/camera_info"):
            select_topics(reader, image_topic="/camera/camera_info")


def test_ambiguous_topics_must_be_chosen_and_the_choice_is_read(tmp_path):
    bag = write_bag(tmp_path / "bag", frame_specs(3), BagSpec(second_image_topic="/camera/image_rect"))
    with pytest.raises(InputError, match=r"one topic of type sensor_msgs/msg/Image or sensor_msgs/msg/CompressedImage"
                                         r" in the bag, several match \(choose one with its option\); the bag has: "
                                         r"/camera/camera_info .*/camera/image_raw .*/camera/image_rect"):
        list(read_frames(bag))
    assert len(list(read_frames(bag, image_topic="/camera/image_rect"))) == 3

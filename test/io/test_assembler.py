"""FrameAssembler: images, camera_info and detections paired by stamp, with bounded buffers, timeouts and counts.

Messages are made by hand (only their fields are read): stamps in seconds on a receive clock that the test
advances, raw rgb8 images of a few pixels.
"""

import logging
from types import SimpleNamespace

import numpy as np
import pytest

from vqhps_ros.config import load_config
from vqhps_ros.io.assembler import (
    MAX_WAITING,
    CameraInfo,
    FrameAssembler,
    detections_from_message,
    intrinsics_for_size,
    intrinsics_from_fov,
    stamp_ns,
)

NS = 1_000_000_000
T0 = 1_700_000_000 * NS  # stamps and receive times of the tests start here
FRAME_ID = "camera_color_optical_frame"
SIZE = (4, 6)  # height, width of the test images
K = np.array([[5.0, 0.0, 3.0], [0.0, 5.0, 2.0], [0.0, 0.0, 1.0]])


def at(seconds: float) -> int:
    """T0 + seconds, in nanoseconds."""
    return T0 + int(round(seconds * NS))


def header(stamp: int, frame_id: str = FRAME_ID):
    return SimpleNamespace(stamp=SimpleNamespace(sec=stamp // NS, nanosec=stamp % NS), frame_id=frame_id)


def image(stamp: int, size=SIZE, value: int = 7, frame_id: str = FRAME_ID, data: bytes | None = None):
    """A raw rgb8 sensor_msgs/Image whose every byte is `value` (or `data`)."""
    height, width = size
    data = bytes([value]) * (height * width * 3) if data is None else data
    return SimpleNamespace(header=header(stamp, frame_id), encoding="rgb8", height=height, width=width,
                           step=width * 3, is_bigendian=0, data=data)


def camera_info(stamp: int, k=K, size=SIZE):
    return SimpleNamespace(header=header(stamp), k=np.asarray(k, float).reshape(-1).tolist(), height=size[0],
                           width=size[1])


def detection(center, size, results=(), id_="7", layout="vision_msgs_4"):
    """A Detection2D with its box's centre and size; results are (class_id, score) hypotheses."""
    x, y = center
    if layout == "vision_msgs_4":  # Humble and later: centre in a Pose2D, hypotheses nested
        bbox_center = SimpleNamespace(position=SimpleNamespace(x=x, y=y), theta=0.0)
        hypotheses = [SimpleNamespace(hypothesis=SimpleNamespace(class_id=c, score=s), pose=None) for c, s in results]
    else:  # vision_msgs 2/3 (Foxy): centre in a geometry_msgs/Pose2D, hypotheses flat with `id`
        bbox_center = SimpleNamespace(x=x, y=y, theta=0.0)
        hypotheses = [SimpleNamespace(id=c, score=s, pose=None) for c, s in results]
    bbox = SimpleNamespace(center=bbox_center, size_x=size[0], size_y=size[1])
    return SimpleNamespace(bbox=bbox, results=hypotheses, id=id_)


def detections(stamp: int, *items):
    """A Detection2DArray; by default one person box of 2 x 3 pixels centred at (3, 2)."""
    items = items or (detection((3.0, 2.0), (2.0, 3.0), [("person", 0.9)]),)
    return SimpleNamespace(header=header(stamp), detections=list(items))


def assembler(**options) -> FrameAssembler:
    options.setdefault("expect_detections", True)
    return FrameAssembler(**options)


def stamps(frames) -> list[int]:
    return [frame.stamp_ns for frame in frames]


# ------------------------------------------------------------------------------------------------ messages


def test_stamps_are_integer_nanoseconds_of_sec_and_nanosec():
    assert stamp_ns(header(1_700_000_000 * NS + 5)) == 1_700_000_000_000_000_005
    assert stamp_ns(SimpleNamespace(stamp=SimpleNamespace(sec=2, nanosec=999_999_999))) == 2_999_999_999


@pytest.mark.parametrize("layout", ["vision_msgs_4", "vision_msgs_2"])
def test_detections_give_top_left_boxes_and_the_best_hypothesis(layout):
    message = detections(T0, detection((50.0, 40.0), (20.0, 30.0), [("chair", 0.2), ("person", 0.8)], "12", layout),
                         detection((10.0, 10.0), (4.0, 6.0), [], "", layout))
    person, unknown = detections_from_message(message)
    np.testing.assert_array_equal(person.box, [40.0, 25.0, 20.0, 30.0])  # centre (50, 40) minus half the size
    assert person.box.dtype == np.float64
    assert (person.class_id, person.score, person.id) == ("person", 0.8, "12")
    np.testing.assert_array_equal(unknown.box, [8.0, 7.0, 4.0, 6.0])
    assert (unknown.class_id, unknown.score, unknown.id) == ("", 1.0, "")  # no hypothesis: unknown class, score 1


def test_numeric_class_ids_of_older_messages_become_strings():
    (only,) = detections_from_message(detections(T0, detection((5, 5), (2, 2), [(0, 0.7)], layout="vision_msgs_2")))
    assert (only.class_id, only.score) == ("0", 0.7)


# ------------------------------------------------------------------------------------------------- pairing


def test_without_a_detection_source_each_image_is_a_frame_at_once():
    frames = FrameAssembler(expect_detections=False).add_image(image(at(0)), received_ns=at(0))
    assert stamps(frames) == [at(0)] and frames[0].detections is None and frames[0].frame_id == FRAME_ID


def test_detections_after_their_image_complete_it():
    pairing = assembler()
    assert pairing.add_image(image(at(0)), received_ns=at(0)) == []  # waits for its detections
    (frame,) = pairing.add_detections(detections(at(0)), received_ns=at(0.05))
    assert frame.stamp_ns == at(0)
    (person,) = frame.detections
    np.testing.assert_array_equal(person.box, [2.0, 0.5, 2.0, 3.0])
    assert not pairing.counts


def test_detections_before_their_image_wait_for_it():
    pairing = assembler()
    assert pairing.add_detections(detections(at(0)), received_ns=at(0)) == []
    (frame,) = pairing.add_image(image(at(0)), received_ns=at(0.01))
    assert frame.stamp_ns == at(0) and len(frame.detections) == 1
    assert not pairing.counts


def test_an_empty_detection_array_is_an_answer_not_a_timeout():
    pairing = assembler()
    pairing.add_image(image(at(0)), received_ns=at(0))
    (frame,) = pairing.add_detections(SimpleNamespace(header=header(at(0)), detections=[]), received_ns=at(0))
    assert frame.detections == ()
    assert not pairing.counts


def test_detections_pair_by_exact_stamp_and_frames_leave_in_stamp_order():
    pairing = assembler()
    for seconds in (0.0, 0.1, 0.2):
        assert pairing.add_image(image(at(seconds)), received_ns=at(0.2)) == []
    completed = pairing.add_detections(detections(at(0.1)), received_ns=at(0.25))
    # the detector answered 0.1 s: the 0.0 s image it passed goes on first, without detections
    assert stamps(completed) == [at(0.0), at(0.1)]
    assert completed[0].detections is None and len(completed[1].detections) == 1
    assert pairing.add_detections(detections(at(0.0)), received_ns=at(0.26)) == []
    assert pairing.counts["detections_late"] == 1
    (last,) = pairing.add_detections(detections(at(0.2)), received_ns=at(0.27))
    assert last.stamp_ns == at(0.2) and len(last.detections) == 1


# -------------------------------------------------------------------------------------------- timeouts, bounds


def test_an_image_goes_on_without_detections_once_the_timeout_passes_on_the_receive_clock():
    pairing = assembler(detection_timeout_s=0.2)
    pairing.add_image(image(at(0)), received_ns=at(0))
    assert pairing.add_image(image(at(0.1)), received_ns=at(0.19)) == []  # 0.19 s < 0.2 s: still waiting
    # the third image arrives 0.2 s after the first: the first goes on, without detections
    (timed_out,) = pairing.add_image(image(at(0.2)), received_ns=at(0.2))
    assert timed_out.stamp_ns == at(0) and timed_out.detections is None
    assert pairing.counts == {"detections_timeout": 1}
    assert stamps(pairing.expire(received_ns=at(0.45))) == [at(0.1), at(0.2)]  # expire() alone does the same
    assert pairing.counts == {"detections_timeout": 3}


def test_the_timeout_runs_on_receive_time_not_on_stamps():
    pairing = assembler(detection_timeout_s=0.2)
    pairing.add_image(image(at(0)), received_ns=at(100))
    # stamps 5 s apart, received 0.1 s apart (a detector catching up): nobody has timed out
    assert pairing.add_image(image(at(5)), received_ns=at(100.1)) == []
    assert stamps(pairing.add_detections(detections(at(0)), received_ns=at(100.15))) == [at(0)]
    assert not pairing.counts


def test_detections_of_an_image_that_already_went_on_are_counted_as_late():
    pairing = assembler(detection_timeout_s=0.2)
    pairing.add_image(image(at(0)), received_ns=at(0))
    (frame,) = pairing.add_detections(detections(at(0.5)), received_ns=at(0.3))  # any message expires the image
    assert frame.stamp_ns == at(0) and frame.detections is None
    assert pairing.add_detections(detections(at(0)), received_ns=at(0.31)) == []
    assert pairing.counts == {"detections_timeout": 1, "detections_late": 1}


def test_images_waiting_for_detections_are_bounded_and_the_oldest_go_on_first():
    pairing = assembler(detection_timeout_s=10.0)
    released = []
    for index in range(MAX_WAITING + 3):
        released += pairing.add_image(image(at(index)), received_ns=at(0))  # all at once: no timeout
    assert stamps(released) == [at(0), at(1), at(2)]
    assert all(frame.detections is None for frame in released)
    assert pairing.counts == {"detections_timeout": 3}
    # the end of the bag: the waiting rest, in order, also without detections
    assert stamps(pairing.flush()) == [at(index) for index in range(3, MAX_WAITING + 3)]
    assert pairing.counts == {"detections_timeout": MAX_WAITING + 3}
    assert pairing.flush() == []


def test_detections_waiting_for_their_image_are_bounded():
    pairing = assembler(detection_timeout_s=10.0)
    for index in range(MAX_WAITING + 2):
        assert pairing.add_detections(detections(at(index)), received_ns=at(0)) == []
    assert pairing.counts == {"detections_unmatched": 2}  # the two oldest were dropped
    assert pairing.add_image(image(at(0)), received_ns=at(0)) == []  # its detections are gone: it waits
    passed, paired = pairing.add_image(image(at(2)), received_ns=at(0))
    assert passed.stamp_ns == at(0) and passed.detections is None  # a newer frame completed: in stamp order
    assert paired.stamp_ns == at(2) and len(paired.detections) == 1


def test_stamps_going_back_reset_every_buffer_with_a_warning(caplog):
    pairing = assembler(detection_timeout_s=10.0)
    pairing.add_camera_info(camera_info(at(10)))
    pairing.add_image(image(at(10)), received_ns=at(0))
    pairing.add_image(image(at(11)), received_ns=at(0))
    pairing.add_detections(detections(at(12)), received_ns=at(0))
    with caplog.at_level(logging.WARNING, logger="vqhps_ros.io.assembler"):
        assert pairing.add_image(image(at(1)), received_ns=at(0.1)) == []  # a looping bag starts again
    assert pairing.counts == {"time_reset": 1}
    assert any("went back" in record.getMessage() and record.levelno == logging.WARNING for record in caplog.records)
    (after_reset,) = pairing.flush()  # the images waiting before the reset were dropped, not released
    assert after_reset.stamp_ns == at(1) and after_reset.camera_info is None  # so was the camera_info
    # stamps after the reset compare with the new ones: detections at 12 s were dropped with the rest
    pairing.add_image(image(at(12)), received_ns=at(0.2))
    assert pairing.add_detections(detections(at(12)), received_ns=at(0.3))[0].stamp_ns == at(12)
    assert pairing.counts["time_reset"] == 1


def test_equal_stamps_are_not_a_reset():
    pairing = FrameAssembler(expect_detections=False)
    pairing.add_image(image(at(1)), received_ns=at(0))
    assert len(pairing.add_image(image(at(1)), received_ns=at(0.1))) == 1
    assert not pairing.counts


# ----------------------------------------------------------------------------------------- decoding, intrinsics


def frame_of(pairing: FrameAssembler, message, received_ns: int = T0):
    """The decoded frame of one image message (None when skipped); no detection source."""
    (assembled,) = pairing.add_image(message, received_ns)
    return pairing.to_frame(assembled)


def test_a_frame_has_the_decoded_image_the_stamp_frame_and_the_camera_info_intrinsics():
    pairing = FrameAssembler(expect_detections=False)
    pairing.add_camera_info(camera_info(at(0)))
    frame = frame_of(pairing, image(at(0), value=200, frame_id="front_optical"))
    assert frame.image.shape == (4, 6, 3) and frame.image.dtype == np.uint8 and np.all(frame.image == 200)
    assert (frame.stamp_ns, frame.frame_id, frame.detections) == (at(0), "front_optical", None)
    np.testing.assert_array_equal(frame.intrinsics, K)


@pytest.mark.parametrize("info_stamp, image_stamp, fresh", [
    (0.0, 1.0, True), (1.0, 0.0, True),  # either side of the image, within the age
    (0.0, 1.5, True), (0.0, 1.6, False),  # the age is inclusive
])  # fmt: skip
def test_camera_info_serves_images_stamped_within_its_max_age(info_stamp, image_stamp, fresh):
    pairing = FrameAssembler(expect_detections=False, camera_info_max_age_s=1.5)
    pairing.add_camera_info(camera_info(at(info_stamp)))
    frame = frame_of(pairing, image(at(image_stamp)))
    if fresh:
        np.testing.assert_array_equal(frame.intrinsics, K)
        assert not pairing.counts
    else:
        assert frame is None
        assert pairing.counts == {"no_camera_info": 1}


def test_fallback_intrinsics_serve_when_camera_info_is_missing_or_stale():
    fallback = np.array([[100.0, 0.0, 2.5], [0.0, 110.0, 1.5], [0.0, 0.0, 1.0]])
    pairing = FrameAssembler(expect_detections=False, camera_info_max_age_s=1.0, fallback_intrinsics=fallback,
                             fallback_fov_deg=60.0)
    np.testing.assert_array_equal(frame_of(pairing, image(at(0))).intrinsics, fallback)  # no camera_info yet
    pairing.add_camera_info(camera_info(at(1)))
    np.testing.assert_array_equal(frame_of(pairing, image(at(1.5))).intrinsics, K)  # fresh camera_info first
    np.testing.assert_array_equal(frame_of(pairing, image(at(3))).intrinsics, fallback)  # stale: the fallback
    assert not pairing.counts


@pytest.mark.parametrize("fov, focal", [(90.0, 3.0), (60.0, 3.0 / np.tan(np.radians(30.0)))])
def test_the_fov_fallback_builds_k_from_the_image_size(fov, focal):
    pairing = FrameAssembler(expect_detections=False, fallback_fov_deg=fov)
    frame = frame_of(pairing, image(at(0), size=(4, 6)))
    # f = (width / 2) / tan(fov / 2); square pixels; principal point at the centre of the pixel grid
    np.testing.assert_allclose(frame.intrinsics, [[focal, 0, 2.5], [0, focal, 1.5], [0, 0, 1]], rtol=1e-12)
    np.testing.assert_allclose(intrinsics_from_fov((480, 640), 90.0), [[320, 0, 319.5], [0, 320, 239.5], [0, 0, 1]])


def test_without_camera_info_or_fallback_a_frame_is_skipped_and_counted():
    pairing = FrameAssembler(expect_detections=False)
    assert frame_of(pairing, image(at(0))) is None
    assert frame_of(pairing, image(at(1))) is None
    assert pairing.counts == {"no_camera_info": 2}


def test_an_uncalibrated_camera_info_is_counted_and_ignored():
    pairing = FrameAssembler(expect_detections=False)
    pairing.add_camera_info(camera_info(at(0), k=np.zeros(9)))
    assert frame_of(pairing, image(at(0))) is None
    assert pairing.counts == {"camera_info_uncalibrated": 1, "no_camera_info": 1}
    pairing.add_camera_info(camera_info(at(0)))
    pairing.add_camera_info(camera_info(at(0), k=np.zeros(9)))  # keeps the last calibrated one
    np.testing.assert_array_equal(frame_of(pairing, image(at(0))).intrinsics, K)
    assert pairing.counts["camera_info_uncalibrated"] == 2


def test_camera_info_of_another_resolution_is_rescaled_with_pixel_centres():
    # a 640 x 480 calibration whose principal point is the exact image centre, for images resized to 320 x 240
    info = CameraInfo(T0, np.array([[500.0, 0.0, 319.5], [0.0, 520.0, 239.5], [0.0, 0.0, 1.0]]), 640, 480)
    counts = {"camera_info_rescaled": 0}
    rescaled = intrinsics_for_size(info, (240, 320), counts)
    # x_new + 0.5 = (x + 0.5) * s: focal lengths scale by s, cx' = s cx + (s - 1) / 2 = 0.5 * 319.5 - 0.25 = 159.5,
    # the centre of the 320-pixel row again
    np.testing.assert_allclose(rescaled, [[250.0, 0.0, 159.5], [0.0, 260.0, 119.5], [0.0, 0.0, 1.0]])
    assert counts == {"camera_info_rescaled": 1}
    # width and height scale independently (1280 x 480: s_x = 2, s_y = 1)
    np.testing.assert_allclose(intrinsics_for_size(info, (480, 1280), counts),
                               [[1000.0, 0.0, 639.5], [0.0, 520.0, 239.5], [0.0, 0.0, 1.0]])
    assert counts == {"camera_info_rescaled": 2}


def test_camera_info_for_another_resolution_rescales_frames_through_the_assembler():
    pairing = FrameAssembler(expect_detections=False)
    pairing.add_camera_info(camera_info(at(0), k=[[10, 0, 5.5], [0, 10, 3.5], [0, 0, 1]], size=(8, 12)))
    frame = frame_of(pairing, image(at(0), size=(4, 6)))
    np.testing.assert_allclose(frame.intrinsics, [[5, 0, 2.5], [0, 5, 1.5], [0, 0, 1]])
    assert pairing.counts == {"camera_info_rescaled": 1}


@pytest.mark.parametrize("info_size", [(0, 0), (0, 12), (8, 0)])
def test_camera_info_without_a_size_is_taken_as_the_images(info_size):
    info = CameraInfo(T0, K, width=info_size[1], height=info_size[0])
    counts = {}
    np.testing.assert_array_equal(intrinsics_for_size(info, SIZE, counts), K)
    assert counts == {}


def test_an_undecodable_image_is_skipped_and_counted_and_the_next_one_decodes():
    pairing = FrameAssembler(expect_detections=False, fallback_fov_deg=60.0)
    assert frame_of(pairing, image(at(0), data=bytes(10))) is None  # 10 bytes for 4 x 6 rgb8 pixels
    assert pairing.counts == {"image_undecodable": 1}
    assert frame_of(pairing, image(at(1))).image.shape == (4, 6, 3)
    assert pairing.counts == {"image_undecodable": 1}


def test_an_image_size_change_is_counted_with_a_warning(caplog):
    pairing = FrameAssembler(expect_detections=False, fallback_fov_deg=90.0)
    frame_of(pairing, image(at(0), size=(4, 6)))
    frame_of(pairing, image(at(1), size=(4, 6)))
    with caplog.at_level(logging.WARNING, logger="vqhps_ros.io.assembler"):
        bigger = frame_of(pairing, image(at(2), size=(8, 12)))
    assert bigger.image_size == (8, 12)
    np.testing.assert_allclose(bigger.intrinsics[0], [6.0, 0.0, 5.5])  # the fov fallback follows the new size
    frame_of(pairing, image(at(3), size=(8, 12)))
    assert pairing.counts == {"image_size_changed": 1}
    assert any("size changed from (4, 6) to (8, 12)" in record.getMessage() for record in caplog.records)


def test_from_config_reads_the_persons_and_camera_sections():
    config = load_config(overrides=["persons.detection_timeout=0.5", "camera.camera_info_max_age=2",
                                    "camera.fallback_intrinsics=[100, 110, 3, 2]",
                                    "camera.fallback_horizontal_fov_deg=70"])
    pairing = FrameAssembler.from_config(config, expect_detections=True)
    assert pairing.expect_detections
    assert (pairing.detection_timeout_ns, pairing.camera_info_max_age_ns) == (NS // 2, 2 * NS)
    np.testing.assert_array_equal(pairing.fallback_intrinsics, [[100, 0, 3], [0, 110, 2], [0, 0, 1]])
    assert pairing.fallback_fov_deg == 70.0
    defaults = FrameAssembler.from_config(load_config(), expect_detections=False)
    assert defaults.fallback_intrinsics is None and defaults.fallback_fov_deg == 0.0


def test_a_looping_bag_keeps_what_already_belongs_to_the_new_timeline():
    pairing = assembler(detection_timeout_s=10.0)
    for second in (10, 11):
        pairing.add_camera_info(camera_info(at(second)))
        pairing.add_detections(detections(at(second)), received_ns=at(0))
        pairing.add_image(image(at(second)), received_ns=at(0))
    # the loop starts again: its first camera_info and detections come before its first image
    pairing.add_camera_info(camera_info(at(1)))
    assert pairing.add_detections(detections(at(1)), received_ns=at(0.1)) == []  # looks late for now
    (first,) = pairing.add_image(image(at(1)), received_ns=at(0.1))
    assert first.stamp_ns == at(1) and len(first.detections) == 1  # paired after all
    assert first.camera_info is not None and first.camera_info.stamp_ns == at(1)
    assert pairing.counts == {"time_reset": 1}  # and not counted as late

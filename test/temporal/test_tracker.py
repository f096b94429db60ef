"""The tracker on hand-made detections: crossings, occlusions, confirmation and ending, predicted boxes and their flag,
resets, long gaps, bounds and upstream ids."""

import logging
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest
from world import IMAGE_SIZE, START_NS, K, World, walker

from vqhps_ros.config import TemporalConfig
from vqhps_ros.humans import Detection, Frame, FrameResult
from vqhps_ros.persons import DetectionFilter
from vqhps_ros.temporal import TemporalTracker, box_iou_matrix

SETTINGS = TemporalConfig(confirm_hits=2, predicted_frames=4, max_misses=8, max_age=1.0)


def tracker(**changes) -> TemporalTracker:
    return TemporalTracker(replace(SETTINGS, **changes), max_persons=8, min_box_size=16.0)


def ids_of(result, world, t=None):
    """{person name: published id} of a frame, by which person each published box shows."""
    t = (result.stamp_ns - START_NS) / 1e9 if t is None else t
    return {world.seen_in(human.box, t).name: human.id for human in result.humans}


def test_two_people_keep_their_ids_through_a_crossing():
    # one walks right at 3 m, the other left at 5 m; their boxes overlap for about a second around frame 22
    world = World(tracker(), [walker(1, -1.5, 3.0, 1.0), walker(2, 1.8, 5.0, -1.2)])
    seen = [ids_of(world.step(index), world) for index in range(45)]
    boxes = [[person.box(index / 15) for person in world.people] for index in range(45)]
    assert max(box_iou_matrix(a[None], b[None])[0, 0] for a, b in boxes) > 0.3  # they do overlap
    ids = {name: {frame[name] for frame in seen if name in frame} for name in (1, 2)}
    assert len(ids[1]) == 1 and len(ids[2]) == 1 and ids[1] != ids[2]
    assert all(len(frame) == 2 for frame in seen[1:])  # both published from the second frame (confirm_hits 2)


def test_a_crossing_with_noisy_network_roots_keeps_ids():
    rng = np.random.default_rng(0)

    def noisy(human):  # 15 cm of depth noise, as the weak-perspective placement gives
        shift = np.array([0.0, 0.0, rng.normal(0, 0.15)])
        return replace(human, translation=human.translation + shift, vertices=human.vertices + shift.astype(np.float32),
                       joints=human.joints + shift.astype(np.float32))

    world = World(tracker(), [walker(1, -1.5, 3.0, 1.0), walker(2, 1.8, 5.0, -1.2)], fps=30.0)
    seen = [ids_of(world.step(index, noise=noisy), world) for index in range(90)]
    assert all(len({frame[name] for frame in seen if name in frame}) == 1 for name in (1, 2))


def test_a_short_occlusion_keeps_the_id_with_flagged_predicted_persons():
    # person 1 stands at 5 m; person 2 walks in front of it; the detector misses person 1 in frames 20-25
    world = World(tracker(), [walker(1, 0.0, 5.0, 0.0), walker(2, -2.5, 3.0, 0.0)])
    before = world.step(0)
    before = world.step(1)
    first_id = ids_of(before, world)[1]
    flagged = []
    for index in range(2, 30):
        visible = [2] if 20 <= index < 26 else [1, 2]
        result = world.step(index, visible=visible)
        mine = [human for human in result.humans if world.seen_in(human.box, (result.stamp_ns - START_NS) / 1e9)
                and world.seen_in(human.box, (result.stamp_ns - START_NS) / 1e9).name == 1]
        if 20 <= index < 26:
            flagged.append([(human.valid, human.id, human.score) for human in mine])
        else:
            assert [human.id for human in mine] == [first_id] and mine[0].valid
    # predicted_frames = 4: frames 20-23 publish person 1 from a predicted box, flagged; 24 and 25 nothing
    assert [len(frame) for frame in flagged] == [1, 1, 1, 1, 0, 0]
    assert all(valid is False and id_ == first_id and score == pytest.approx(0.8 * 0.5)
               for frame in flagged[:4] for valid, id_, score in frame)


def test_predicted_boxes_are_cropped_only_for_confirmed_tracks_and_a_few_frames():
    world = World(tracker(predicted_frames=2), [walker(1, 0.0, 4.0, 0.5)])
    for index in range(10):
        world.step(index)
    counts = []
    for index in range(10, 15):
        frame = Frame(np.zeros((*IMAGE_SIZE, 3), np.uint8), world.stamp(index), "camera", K, ())
        persons = world.tracker.persons(frame, (), Counter())
        counts.append(len(persons))
        if persons:
            expected = world.people[0].box((world.stamp(index) - START_NS) / 1e9)
            np.testing.assert_allclose(persons[0].box[:2], expected[:2], atol=3.0)  # constant velocity: on target
        world.tracker.update(FrameResult(world.stamp(index), "camera", IMAGE_SIZE, []), [])
    assert counts == [1, 1, 0, 0, 0]


def test_a_track_is_confirmed_after_k_hits_and_a_one_frame_false_positive_never_published():
    world = World(tracker(confirm_hits=3), [walker(1, 0.0, 4.0, 0.0)])
    published = [len(world.step(index).humans) for index in range(5)]
    assert published == [0, 0, 1, 1, 1]
    ghost = np.array([20.0, 20.0, 60.0, 150.0])
    world.people.append(walker(9, -2.9, 4.0, 0.0))  # a person the "network" sees in the ghost box
    world.people[-1].box = lambda t: ghost
    result = world.step(5, visible=[1], extra_boxes=[ghost])
    assert len(result.humans) == 1 and result.skipped["tentative_track"] == 1
    assert len(world.step(6, visible=[1]).humans) == 1 and len(world.tracker.tracks) == 1  # tentative: gone


def test_a_track_ends_after_m_misses_or_t_seconds_and_ids_are_not_reused():
    world = World(tracker(predicted_frames=0, max_misses=3, max_age=10.0), [walker(1, 0.0, 4.0, 0.0)])
    first = world.step(1)
    first = ids_of(world.step(2), world)[1]
    for index in range(3, 6):
        world.step(index, visible=[])
        assert len(world.tracker.tracks) == 1
    world.step(6, visible=[])
    assert world.tracker.tracks == []  # the 4th miss
    world.step(7)
    again = world.step(8)
    assert ids_of(again, world)[1] != first
    # by time: one frame after a 1.5 s gap is past max_age even though it is the first miss
    world = World(tracker(predicted_frames=0, max_misses=100, max_age=1.0), [walker(1, 0.0, 4.0, 0.0)])
    world.step(0)
    world.step(1)
    world.step(25, visible=[])
    assert world.tracker.tracks == []


def test_stamps_going_backwards_reset_tracks_with_a_warning(caplog):
    world = World(tracker(), [walker(1, 0.0, 4.0, 0.0)])
    world.step(10)
    before = ids_of(world.step(11), world)[1]
    with caplog.at_level(logging.WARNING, logger="vqhps_ros.temporal.tracker"):
        result = world.step(3)  # a looping bag
    assert "before the previous frame" in caplog.text and "1 tracks reset" in caplog.text
    assert result.skipped["tracks_reset_backward_stamp"] == 1 and result.humans == []  # a new, tentative track
    after = ids_of(world.step(4), world)[1]
    assert after != before


def test_a_repeated_stamp_is_not_a_reset():
    world = World(tracker(), [walker(1, 0.0, 4.0, 0.3)])
    world.step(0)
    first = world.step(1)
    again = world.step(1)
    assert [h.id for h in again.humans] == [h.id for h in first.humans]
    np.testing.assert_allclose(again.humans[0].translation, first.humans[0].translation)


def test_long_gaps_restart_the_filters_instead_of_extrapolating():
    settings = dict(reinit_gap=0.5, max_age=5.0, max_misses=100, predicted_frames=0)
    world = World(tracker(**settings), [walker(1, -1.0, 4.0, 0.25)])
    for index in range(10):
        result = world.step(index)
    truth = world.people[0].position((world.stamp(9) - START_NS) / 1e9)
    lag = truth[0] - result.humans[0].translation[0]
    assert lag > 0.005  # moving at 0.25 m/s: smoothing lags a little behind
    result = world.step(20)  # 0.73 s later: the person moved 0.18 m
    truth = world.people[0].position((world.stamp(20) - START_NS) / 1e9)
    np.testing.assert_allclose(result.humans[0].translation, truth, atol=1e-9)  # restarted at the measurement
    assert result.humans[0].id == "1"


def test_filtered_meshes_are_consistent_and_projected():
    rng = np.random.default_rng(1)

    def noisy(human):
        return replace(human, vertices=human.vertices + rng.normal(0, 0.02, human.vertices.shape).astype(np.float32))

    world = World(tracker(), [walker(1, 0.0, 4.0, 0.0)])
    errors_out = []
    for index in range(40):
        t = (world.stamp(index) - START_NS) / 1e9
        result = world.step(index, noise=noisy)
        if not result.humans:
            continue
        human = result.humans[0]
        truth = world.people[0].human(t)
        errors_out.append(np.abs(human.vertices - truth.vertices).mean())
        projected = human.vertices @ K.T
        np.testing.assert_allclose(human.vertices_2d, projected[:, :2] / projected[:, 2:], rtol=1e-4)
        np.testing.assert_allclose(human.root_position, human.joints[0], atol=1e-6)
        assert human.vertices.dtype == np.float32 and human.joints.dtype == np.float32
    errors_in = 0.02 * np.sqrt(2 / np.pi)  # mean |N(0, 0.02)|
    assert np.mean(errors_out[10:]) < 0.6 * errors_in


def test_hundreds_of_detections_are_bounded_and_counted():
    settings = replace(SETTINGS, max_tracks=5)
    tracker_ = TemporalTracker(settings, max_persons=8, min_box_size=16.0)
    people = [walker(index, -3.0 + 0.25 * index, 6.0 + 0.1 * index, 0.0, seed=index) for index in range(300)]
    world = World(tracker_, people)
    result = world.step(0)
    # the estimator's person source keeps max_persons; the tracker bounds again what reaches it
    assert result.skipped["over_max_persons"] == 300 - 8
    assert len(tracker_.tracks) == 5 and result.skipped["over_max_tracks"] == 3
    for index in range(1, 5):
        world.step(index)
    assert len(tracker_.tracks) <= 5


def test_upstream_ids_are_a_hint_and_ids_that_change_every_frame_do_no_harm():
    # two people side by side, 0.7 m apart: the upstream ids break the tie when boxes alone are ambiguous
    world = World(tracker(), [walker(1, -0.2, 4.0, 0.0), walker(2, 0.5, 4.0, 0.0)])
    seen = [ids_of(world.step(index, detection_ids={1: f"a{index}", 2: f"b{index * 7}"}), world) for index in range(20)]
    assert all(len({frame[name] for frame in seen[1:]}) == 1 for name in (1, 2))
    assert {h.detection_id for h in world.step(20, detection_ids={1: "x"}).humans} == {"x", ""}


def test_trusted_upstream_ids_decide_between_equal_boxes():
    settings = replace(SETTINGS, trust_detection_ids=True, detection_id_bonus=0.5)
    people = [walker(1, 0.0, 4.0, 0.0), walker(2, 0.05, 4.0, 0.0)]  # nearly the same box
    world = World(TemporalTracker(settings), people)
    for index in range(3):
        world.step(index, detection_ids={1: "left", 2: "right"})
    track_of = {track.upstream_id: track.id for track in world.tracker.tracks}
    stamp = world.stamp(3)
    t = (stamp - START_NS) / 1e9
    swapped = [Detection(people[1].box(t), 0.9, "person", "right"), Detection(people[0].box(t), 0.9, "person", "left")]
    frame = Frame(np.zeros((*IMAGE_SIZE, 3), np.uint8), stamp, "camera", K, tuple(swapped))
    world.tracker.persons(frame, frame.detections, Counter())
    humans = [people[1].human(t, swapped[0].box, "right"), people[0].human(t, swapped[1].box, "left")]
    result = world.tracker.update(FrameResult(stamp, "camera", IMAGE_SIZE, humans), [0, 1])
    assert {human.detection_id: human.id for human in result.humans} == track_of


def test_update_without_persons_treats_every_human_as_detected():
    world = World(tracker(), [walker(1, 0.0, 4.0, 0.0)])
    t = 0.0
    for index in range(3):
        human = world.people[0].human(t + index / 15)
        result = world.tracker.update(FrameResult(world.stamp(index), "camera", IMAGE_SIZE, [human]))
    assert [h.id for h in result.humans] == ["1"]


def test_a_zero_size_detection_is_dropped_before_the_tracker_and_the_track_goes_on():
    world = World(tracker(), [walker(1, 0.0, 4.0, 0.0)])
    for index in range(3):
        world.step(index)
    stamp = world.stamp(3)
    box = world.people[0].box((stamp - START_NS) / 1e9)
    frame = Frame(np.zeros((*IMAGE_SIZE, 3), np.uint8), stamp, "camera", K,
                  (Detection(np.array([100.0, 100.0, 0.0, 0.0]), 0.9, "person", ""), Detection(box, 0.9, "person", "")))
    skipped = Counter()
    persons = world.tracker.persons(frame, DetectionFilter().persons(frame, skipped), skipped)
    assert skipped == {"invalid_box": 1} and [p.box.tolist() for p in persons] == [box.tolist()]
    human = world.people[0].human((stamp - START_NS) / 1e9, box)
    result = world.tracker.update(FrameResult(stamp, "camera", IMAGE_SIZE, [human], {}, dict(skipped)), [0])
    assert [h.id for h in result.humans] == ["1"] and result.skipped == {"invalid_box": 1}

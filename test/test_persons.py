"""Person sources: which detections of a frame are people to crop (DetectionFilter), what a frame without
detections gives, and how the built-in detector's persons join the external ones (sources auto and both)."""

from collections import Counter

import numpy as np
import pytest

from vqhps_ros.config import load_config
from vqhps_ros.humans import BodyKeypoints, Detection, Frame
from vqhps_ros.persons import (
    CombinedSource,
    DetectionFilter,
    FullFrame,
    describe_source,
    merged_persons,
    person_source_from_config,
    visible_box_size,
)

HEIGHT, WIDTH = 100, 200
K = np.array([[200.0, 0.0, 99.5], [0.0, 200.0, 49.5], [0.0, 0.0, 1.0]])
BOX = (50.0, 10.0, 40.0, 80.0)  # a good box inside the image


def person(box=BOX, score: float = 0.9, class_id: str = "person", id_: str = "") -> Detection:
    return Detection(np.asarray(box, dtype=np.float64), score, class_id, id_)


def frame(detections) -> Frame:
    return Frame(np.zeros((HEIGHT, WIDTH, 3), np.uint8), 1, "camera", K,
                 None if detections is None else tuple(detections))


def kept(person_filter: DetectionFilter, detections) -> tuple[tuple[Detection, ...], Counter]:
    skipped = Counter()
    return person_filter.persons(frame(detections), skipped), skipped


def test_only_person_classes_are_kept():
    detections = [person(class_id=name, id_=name or "none") for name in ("person", "0", "car", "", "Person")]
    people, skipped = kept(DetectionFilter(), detections)
    assert [p.class_id for p in people] == ["person", "0"]  # COCO-80's person is class "0"; case matters
    assert skipped == {"not_a_person_class": 3}
    people, skipped = kept(DetectionFilter(class_ids=("*",)), detections)
    assert len(people) == 5 and not skipped
    people, _ = kept(DetectionFilter(class_ids=("pedestrian",)), detections + [person(class_id="pedestrian")])
    assert [p.class_id for p in people] == ["pedestrian"]


def test_weak_and_nan_scores_are_dropped():
    detections = [person(score=0.29), person(score=0.3), person(score=1.0), person(score=float("nan"))]
    people, skipped = kept(DetectionFilter(min_score=0.3), detections)
    assert [p.score for p in people] == [1.0, 0.3]  # best first; the threshold itself passes
    assert skipped == {"low_score": 2}


@pytest.mark.parametrize("box, visible", [
    ((50, 10, 16, 16), True),
    ((50, 10, 15.9, 80), False),  # too narrow
    ((50, 10, 40, 15), False),  # too short
    ((-30, 10, 40, 80), False),  # 40 wide, but only 10 pixels of it inside the image
    ((190, 10, 40, 80), False),  # the same at the right edge
    ((-30, -5, 60, 120), True),  # overhangs every side it can and still shows 30 x 100
])  # fmt: skip
def test_boxes_whose_visible_part_is_smaller_than_min_box_size_are_dropped(box, visible):
    people, skipped = kept(DetectionFilter(min_box_size=16), [person(box)])
    assert len(people) == int(visible)
    assert skipped == ({} if visible else {"box_too_small": 1})


def test_with_min_box_size_zero_a_box_still_needs_a_whole_visible_pixel():
    people, skipped = kept(DetectionFilter(min_box_size=0), [person((10, 10, 0.5, 50)), person((10, 10, 1, 1))])
    assert len(people) == 1 and skipped == {"box_too_small": 1}


@pytest.mark.parametrize("box", [
    (np.nan, 10, 40, 80), (50, 10, np.inf, 80), (50, 10, 0, 80), (50, 10, 40, -80),
    (250, 10, 40, 80),  # right of the image
    (-100, 10, 40, 80),  # left of it
    (50, 100, 40, 80),  # starting at the bottom edge: nothing inside
    (50, 10, 40),  # not four numbers
])  # fmt: skip
def test_malformed_or_outside_boxes_are_invalid(box):
    people, skipped = kept(DetectionFilter(min_box_size=0), [person(box), person()])
    assert len(people) == 1 and people[0].box.tolist() == list(BOX)
    assert skipped == {"invalid_box": 1}


def test_visible_box_size_is_the_part_inside_the_image():
    assert visible_box_size(np.array([-10.0, 90.0, 30.0, 30.0]), (HEIGHT, WIDTH)) == (20.0, 10.0)
    assert visible_box_size(np.array([0.0, 0.0, 200.0, 100.0]), (HEIGHT, WIDTH)) == (200.0, 100.0)
    assert visible_box_size(np.array([200.0, 0.0, 5.0, 5.0]), (HEIGHT, WIDTH)) is None


def test_max_persons_keeps_the_best_scores_in_order():
    scores = [0.5, 0.95, 0.4, 0.8, 0.7]
    detections = [person(score=score, id_=str(index)) for index, score in enumerate(scores)]
    people, skipped = kept(DetectionFilter(max_persons=2), detections)
    assert [(p.id, p.score) for p in people] == [("1", 0.95), ("3", 0.8)]
    assert skipped == {"over_max_persons": 3}


def test_counts_add_up_over_reasons_and_only_kept_ones_count_towards_max_persons():
    detections = [person(score=0.9), person(score=0.8), person(score=0.1), person(class_id="dog"),
                  person((np.nan, 0, 1, 1)), person(score=0.7)]
    people, skipped = kept(DetectionFilter(max_persons=2), detections)
    assert [p.score for p in people] == [0.9, 0.8]
    assert skipped == {"low_score": 1, "not_a_person_class": 1, "invalid_box": 1, "over_max_persons": 1}


def test_without_detections_full_frame_gives_the_whole_image_as_one_person():
    people, skipped = kept(DetectionFilter(without_detections="full_frame"), None)
    (whole,) = people
    np.testing.assert_array_equal(whole.box, [0.0, 0.0, WIDTH, HEIGHT])
    assert (whole.score, whole.class_id, whole.id) == (1.0, "", "")
    assert not skipped


def test_without_detections_skip_gives_nobody_and_counts_the_frame():
    people, skipped = kept(DetectionFilter(without_detections="skip"), None)
    assert people == () and skipped == {"frame_without_detections": 1}


@pytest.mark.parametrize("fallback", ["skip", "full_frame"])
def test_a_detector_that_saw_nobody_is_not_a_missing_detector(fallback):
    people, skipped = kept(DetectionFilter(without_detections=fallback), [])
    assert people == () and not skipped


def test_from_config_reads_the_persons_section():
    config = load_config(overrides=["persons.class_ids=[pedestrian,'*']", "persons.min_score=0.5",
                                    "persons.min_box_size=4", "persons.max_persons=3",
                                    "persons.without_detections=full_frame"])
    person_filter = DetectionFilter.from_config(config.persons)
    assert person_filter.class_ids == {"pedestrian", "*"}
    assert (person_filter.min_score, person_filter.min_box_size, person_filter.max_persons) == (0.5, 4.0, 3)
    assert person_filter.without_detections == "full_frame"


# --- the built-in detector beside external detections ----------------------------------------------------------


def found(box, score: float, id_: str) -> Detection:
    """A person as the built-in detector gives it: a box, a track number and keypoints."""
    keypoints = BodyKeypoints("points", np.zeros((2, 2), np.float32), np.ones(2, np.float32))
    return Detection(np.asarray(box, dtype=np.float64), score, "person", id_, keypoints)


class FakeBuiltin:
    """A built-in source that finds the given persons on every frame, and records its calls."""

    def __init__(self, *persons: Detection):
        self.found = tuple(persons)
        self.frames = 0
        self.closed = False

    def persons(self, frame: Frame, skipped: Counter) -> tuple[Detection, ...]:
        self.frames += 1
        return self.found

    def close(self) -> None:
        self.closed = True


def test_auto_takes_the_frames_detections_when_it_has_them_and_the_builtin_detector_otherwise():
    builtin = FakeBuiltin(found((10, 10, 30, 60), 0.99, "1"))
    source = CombinedSource(DetectionFilter(), builtin, mode="auto")
    skipped = Counter()
    assert source.persons(frame([person(id_="yolo")]), skipped)[0].id == "yolo" and builtin.frames == 0
    assert source.persons(frame([]), skipped) == ()  # the detector spoke and saw nobody: nobody
    (own,) = source.persons(frame(None), skipped)  # no detections for this frame: the built-in detector
    assert own.id == "1" and own.keypoints is not None and builtin.frames == 1
    assert not skipped
    source.close()
    assert builtin.closed


def test_both_merges_overlapping_boxes_into_one_person_with_the_builtin_box_and_keypoints():
    builtin = FakeBuiltin(found((50, 10, 40, 80), 0.7, "1"), found((150, 20, 20, 60), 0.95, "2"))
    external = [person((52, 12, 40, 76), 0.9, id_="yolo_7"), person((0, 0, 30, 30), 0.4, id_="yolo_8")]
    skipped = Counter()
    merged = CombinedSource(DetectionFilter(), builtin, mode="both").persons(frame(external), skipped)
    assert [(p.id, p.score) for p in merged] == [("2", 0.95), ("yolo_7", 0.9), ("yolo_8", 0.4)]
    np.testing.assert_array_equal(merged[1].box, [50, 10, 40, 80])  # the built-in box, the external id and score
    assert merged[1].keypoints is builtin.found[0].keypoints and merged[2].keypoints is None
    assert not skipped
    alone = CombinedSource(DetectionFilter(), builtin, mode="both").persons(frame(None), skipped)
    assert [p.id for p in alone] == ["2", "1"] and not skipped  # no external source is no fallback count


def test_both_bounds_the_merged_persons_and_counts_the_rest():
    builtin = FakeBuiltin(*(found((20 * i, 0, 15, 40), 0.5 + 0.01 * i, str(i)) for i in range(5)))
    skipped = Counter()
    merged = CombinedSource(DetectionFilter(), builtin, mode="both", max_persons=3).persons(
        frame([person((150, 50, 30, 40), 0.99)]), skipped)
    assert [p.score for p in merged] == [0.99, 0.54, 0.53] and skipped == {"over_max_persons": 3}


def test_merging_matches_each_box_once_best_overlap_first():
    own = (found((0, 0, 40, 80), 0.8, "1"),)
    external = (person((0, 0, 40, 80), 0.3, id_="a"), person((2, 2, 40, 80), 0.6, id_="b"))
    merged = merged_persons(own, external, min_iou=0.5)
    assert [(p.id, p.score) for p in merged] == [("a", 0.8), ("b", 0.6)]  # "a" overlaps exactly: it is the match


def test_full_frame_ignores_detections():
    (whole,) = FullFrame().persons(frame([person()]), Counter())
    np.testing.assert_array_equal(whole.box, [0.0, 0.0, WIDTH, HEIGHT])


@pytest.mark.parametrize("source, kind", [
    ("detections", DetectionFilter), ("full_frame", FullFrame), ("builtin", FakeBuiltin), ("both", CombinedSource),
    ("auto", CombinedSource),
])  # fmt: skip
def test_the_configured_source_is_built(monkeypatch, source, kind):
    monkeypatch.setattr("vqhps_ros.persons.builtin_detector_from_config", lambda config: FakeBuiltin())
    config = load_config(overrides=[f"persons.source={source}", "persons.max_persons=5", "detector.merge_iou=0.4"])
    built = person_source_from_config(config)
    assert isinstance(built, kind)
    if kind is CombinedSource:
        assert (built.mode, built.merge_iou, built.max_persons) == (source, 0.4, 5)
        assert describe_source(built).startswith(f"{source}: external detections")
        assert isinstance(built.external, DetectionFilter) and isinstance(built.builtin, FakeBuiltin)


def test_the_builtin_detector_is_configured_from_the_detector_section(tmp_path):
    pytest.importorskip("torch")
    config = load_config(overrides=["persons.source=builtin", "persons.max_persons=3", "detector.max_persons=6",
                                    "detector.backend=pytorch", "detector.detect_every=2", "detector.zoom_grid=1",
                                    "detector.tracking=false", "detector.min_pose_score=0.7", "model.threads=1",
                                    f"detector.graph_cache_dir={tmp_path}"])
    detector = person_source_from_config(config)
    settings = detector.settings
    assert (settings.max_persons, settings.backend, settings.detect_every, settings.zoom_grid) == (3, "pytorch", 2, 1)
    assert (settings.tracking, settings.min_pose_score, settings.threads) == (False, 0.7, 1)
    assert detector.detector.is_active and detector.landmarker.is_active  # loaded at configure, not on frame one
    assert "pytorch" in detector.description and describe_source(detector).startswith("built-in detector, detector: ")
    detector.close()
    assert not detector.detector.is_active and not detector.landmarker.is_active


def test_warming_up_a_combined_source_warms_its_detector():
    class Warmed(FakeBuiltin):
        warmed = 0

        def warm_up(self):
            self.warmed += 1

    builtin = Warmed()
    CombinedSource(DetectionFilter(), builtin, mode="auto").warm_up()
    CombinedSource(DetectionFilter(), FakeBuiltin(), mode="auto").warm_up()  # a source without networks: nothing
    assert builtin.warmed == 1

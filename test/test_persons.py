"""DetectionFilter: which detections of a frame are people to crop, and what a frame without detections gives."""

from collections import Counter

import numpy as np
import pytest

from vqhps_ros.config import load_config
from vqhps_ros.humans import Detection, Frame
from vqhps_ros.persons import DetectionFilter, visible_box_size

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

"""Box recall and precision against ground truth."""

import math

import numpy as np

from vqhps_ros.detect import BoxCounts, counted_people, frame_counts, match_boxes


def test_matching_is_one_to_one_best_iou_first():
    truth = np.array([[0.0, 0, 10, 20], [100.0, 0, 10, 20]])
    predicted = np.array([[1.0, 0, 10, 20], [0.0, 0, 10, 20], [100.0, 5, 10, 20], [300.0, 0, 10, 10]])
    matches = match_boxes(predicted, truth)
    assert [(i, j) for i, j, _ in matches] == [(1, 0), (2, 1)]  # the exact box wins truth 0; box 3 matches nothing


def test_counts_leave_small_and_hidden_people_optional():
    truth = np.array([[0.0, 0, 30, 100], [100.0, 0, 15, 40], [200.0, 0, 30, 100]])
    visible = np.array([0.9, 0.9, 0.2])
    counted = counted_people(truth, visible)  # the second is under 60 px, the third mostly hidden
    assert counted.tolist() == [True, False, False]
    found_small = frame_counts(truth[:2], truth, counted)
    assert (found_small.counted, found_small.found, found_small.predicted, found_small.correct) == (1, 1, 2, 2)
    missed = frame_counts(np.array([[500.0, 0, 30, 100]]), truth, counted)
    assert (missed.found, missed.correct) == (0, 0)
    total = BoxCounts()
    total.add(found_small)
    total.add(missed)
    assert total.recall == 0.5 and total.precision == 2 / 3
    assert math.isnan(BoxCounts().recall) and math.isnan(BoxCounts().precision)

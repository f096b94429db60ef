"""Anchors, decoding and weighted non-maximum suppression, on hand-made network outputs."""

import numpy as np

from vqhps_ros.detect import decode_detections, ssd_anchor_centers, weighted_nms
from vqhps_ros.detect.anchors import iou_matrix, scored_candidates


def logit(probability: float) -> float:
    return float(np.log(probability / (1 - probability)))


def test_anchor_grid_is_mediapipes():
    centers = ssd_anchor_centers()
    assert centers.shape == (2254, 2)
    # stride 8: 28 x 28 cells, 2 anchors each, row-major; the first two share the first cell's centre
    np.testing.assert_allclose(centers[:2], [[0.5 / 28, 0.5 / 28]] * 2)
    np.testing.assert_allclose(centers[2], [1.5 / 28, 0.5 / 28])
    np.testing.assert_allclose(centers[2 * 28], [0.5 / 28, 1.5 / 28])
    # stride 16 starts at 1568 (14 x 14 x 2), the three stride-32 layers share a 7 x 7 grid with 6 anchors a cell
    np.testing.assert_allclose(centers[1568], [0.5 / 14, 0.5 / 14])
    np.testing.assert_allclose(centers[1568 + 392:1568 + 392 + 6], [[0.5 / 7, 0.5 / 7]] * 6)
    np.testing.assert_allclose(centers[-1], [6.5 / 7, 6.5 / 7])


def raw_outputs(people: dict[int, tuple[float, list[float]]]) -> tuple[np.ndarray, np.ndarray]:
    """raw (2254, 12) and scores (2254,) with every anchor at probability 0.01, except `people`:
    anchor index -> (probability, 12 raw values)."""
    boxes = np.zeros((2254, 12), dtype=np.float32)
    scores = np.full(2254, logit(0.01), dtype=np.float32)
    for index, (probability, values) in people.items():
        boxes[index] = values
        scores[index] = logit(probability)
    return boxes, scores


def test_decoding_adds_the_anchor_centre_in_input_pixels():
    anchors = ssd_anchor_centers()
    index = 1568 + 2 * (14 * 3 + 5)  # stride 16, row 3, column 5: centre (88, 56) pixels
    values = [4.0, -2.0, 40.0, 60.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
    boxes, keypoints, scores = scored_candidates(*raw_outputs({index: (0.9, values)}), anchors)
    np.testing.assert_allclose(scores, [0.9], rtol=1e-6)
    np.testing.assert_allclose(boxes[0], [92 - 20, 54 - 30, 92 + 20, 54 + 30], atol=1e-4)
    np.testing.assert_allclose(keypoints[0], [[89, 58], [91, 60], [93, 62], [95, 64]], atol=1e-4)


def test_every_separate_person_is_kept_and_overlaps_are_merged_by_score():
    anchors = ssd_anchor_centers()
    left, also_left, right = 2 * (28 * 10 + 5), 2 * (28 * 10 + 6), 2 * (28 * 10 + 20)
    # two anchors 8 px apart see the same 40 x 80 box (IoU 0.67); a third sees a person far to the right
    people = {
        left: (0.9, [0, 0, 40, 80, 0, 10, 0, 30, 0, -10, 0, 0]),
        also_left: (0.6, [0, 0, 40, 80, 0, 10, 0, 30, 0, -10, 0, 0]),
        right: (0.7, [0, 0, 30, 60, 0, 8, 0, 20, 0, -8, 0, 0]),
    }
    detections = decode_detections(*raw_outputs(people), anchors)
    assert [round(d.score, 3) for d in detections] == [0.9, 0.7]
    left_x, also_left_x = anchors[left, 0] * 224, anchors[also_left, 0] * 224
    merged_x = (0.9 * left_x + 0.6 * also_left_x) / 1.5  # score-weighted mean of the merged boxes
    np.testing.assert_allclose(detections[0].box, [merged_x - 20, anchors[left, 1] * 224 - 40, merged_x + 20,
                                                   anchors[left, 1] * 224 + 40], atol=1e-4)
    np.testing.assert_allclose(detections[0].keypoints[1], [merged_x, anchors[left, 1] * 224 + 30], atol=1e-4)
    np.testing.assert_allclose(detections[1].keypoints[0], anchors[right] * 224 + [0, 8], atol=1e-4)


def test_min_score_and_max_detections_bound_the_candidates():
    anchors = ssd_anchor_centers()
    people = {2 * (28 * row + column): (0.55 + 0.01 * column, [0, 0, 10, 10] + [0] * 8)
              for row in (3, 13, 23) for column in (4, 14, 24)}  # nine separate 10 x 10 boxes
    assert len(decode_detections(*raw_outputs(people), anchors)) == 9
    assert len(decode_detections(*raw_outputs(people), anchors, min_score=0.6)) == 6
    best = decode_detections(*raw_outputs(people), anchors, max_detections=2)
    assert [round(d.score, 2) for d in best] == [0.79, 0.79]


def test_no_person_and_broken_outputs_give_no_candidates():
    anchors = ssd_anchor_centers()
    assert decode_detections(*raw_outputs({}), anchors) == []
    boxes, scores = raw_outputs({100: (0.9, [0] * 12)})
    boxes[100, 0] = np.nan
    assert decode_detections(boxes, scores, anchors) == []
    assert decode_detections(boxes, np.full(2254, np.nan, np.float32), anchors) == []


def test_weighted_nms_handles_empty_and_degenerate_boxes():
    assert weighted_nms(np.zeros((0, 4)), np.zeros((0, 4, 2)), np.zeros(0)) == []
    boxes = np.array([[5.0, 5.0, 5.0, 5.0], [5.0, 5.0, 5.0, 5.0]])  # empty boxes: IoU 0 with everything
    kept = weighted_nms(boxes, np.zeros((2, 4, 2)), np.array([0.9, 0.8]))
    assert [d.score for d in kept] == [0.9, 0.8]


def test_iou_matrix():
    a = np.array([[0.0, 0.0, 10.0, 10.0]])
    b = np.array([[5.0, 0.0, 15.0, 10.0], [20.0, 20.0, 30.0, 30.0], [0.0, 0.0, 10.0, 10.0]])
    np.testing.assert_allclose(iou_matrix(a, b), [[50 / 150, 0.0, 1.0]])

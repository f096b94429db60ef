"""Post-processing of the landmark model: heatmap refinement, projection through a rotated ROI, boxes."""

import math

import numpy as np
import pytest

from vqhps_ros.detect import Roi, person_keypoints, segmentation_in_image
from vqhps_ros.detect.keypoints import refine_with_heatmaps

NO_HEAT = -20.0  # heatmap logit: confidence ~0


def test_heatmap_refinement_moves_confident_landmarks_to_the_weighted_cell():
    heatmaps = np.full((3, 64, 64), NO_HEAT, dtype=np.float32)
    heatmaps[0, 20, 30] = 10.0  # one confident cell: the landmark moves onto its index, mediapipe's formula
    heatmaps[1, 10, 10] = heatmaps[1, 10, 12] = 10.0  # two equal cells: their mean
    xy = np.array([[31.5 / 64 * 256, 21.9 / 64 * 256], [11.0 / 64 * 256, 10.5 / 64 * 256], [-3.0, 100.0]])
    refined = refine_with_heatmaps(xy, heatmaps)
    np.testing.assert_allclose(refined[0], [30 / 64 * 256, 20 / 64 * 256], atol=1e-3)
    np.testing.assert_allclose(refined[1], [11 / 64 * 256, 10 / 64 * 256], atol=1e-3)
    np.testing.assert_allclose(refined[2], xy[2])  # outside the heatmap: left alone


def test_weak_heatmaps_leave_landmarks_alone():
    heatmaps = np.full((1, 64, 64), -1.0, dtype=np.float32)  # confidence 0.27 < 0.5 everywhere
    xy = np.array([[100.3, 50.7]])
    np.testing.assert_allclose(refine_with_heatmaps(xy, heatmaps), xy)


def model_outputs():
    """Hand-made landmark outputs: landmark 0 at the crop centre, 1 on the vertical axis 88 px above it, the
    alignment points on that axis; a 100 x 200 px mask in the crop's middle (holding every landmark); no heat."""
    landmarks = np.zeros((39, 5), dtype=np.float32)
    landmarks[:, :2] = 128.0
    landmarks[1, :3] = (128.0, 40.0, -64.0)
    landmarks[33, :2], landmarks[34, :2] = (128.0, 160.0), (128.0, 60.0)
    landmarks[:, 3:] = 5.0  # visible and present
    segmentation = np.full((256, 256), -10.0, dtype=np.float32)
    segmentation[28:228, 78:178] = 10.0
    world = np.zeros((39, 3), dtype=np.float32)
    world[0] = (0.1, 0.0, 0.3)
    return landmarks, segmentation, np.full((39, 64, 64), NO_HEAT, np.float32), world


def test_keypoints_are_projected_through_the_rotated_roi():
    landmarks, segmentation, heatmaps, world = model_outputs()
    roi = Roi((300.0, 200.0), 128.0, math.pi / 2)  # 0.5 image px per crop px; the crop's top is the image's right
    person = person_keypoints(landmarks, 0.97, segmentation, heatmaps, world, roi, (480, 640), 0.8, track_id=3)
    np.testing.assert_allclose(person.keypoints[0], [300, 200, 0], atol=1e-4)
    np.testing.assert_allclose(person.keypoints[1], [300 + 44, 200, -32], atol=1e-4)  # z scales like x
    np.testing.assert_allclose(person.world_keypoints[0], [0.0, 0.1, 0.3], atol=1e-6)  # turned a quarter
    np.testing.assert_allclose(person.alignment_points, [[300 - 16, 200], [300 + 34, 200]], atol=1e-4)
    next_roi = person.next_roi()
    assert next_roi.center == pytest.approx((284.0, 200.0)) and next_roi.size == pytest.approx(2 * 50 * 1.25)
    assert next_roi.rotation == pytest.approx(math.pi / 2)
    assert person.keypoints.shape == (33, 3) and person.visibility.min() > 0.99 and person.presence.min() > 0.99
    assert (person.score, person.detection_score, person.track_id) == (0.97, 0.8, 3)
    # the mask (crop rows 28..227, columns 78..177) lies on its side in the image: 100 x 50 px
    np.testing.assert_allclose(person.box, [300 - 50, 200 - 25, 100, 50], atol=0.5)


def test_without_a_mask_the_box_holds_the_keypoints_with_margins():
    landmarks, segmentation, heatmaps, world = model_outputs()
    landmarks[:33, :2] = np.stack([np.linspace(28, 228, 33), np.linspace(28, 228, 33)], axis=1)
    person = person_keypoints(landmarks, 0.9, np.full((256, 256), -10.0, np.float32), heatmaps, world,
                              Roi((300.0, 200.0), 256.0, 0.0), (480, 640))
    x, y, w, h = person.box
    assert x < 300 - 100 and y < 200 - 100 and x + w > 300 + 100 and y + h > 200 + 100


def test_segmentation_in_image():
    landmarks, segmentation, heatmaps, world = model_outputs()
    person = person_keypoints(landmarks, 0.9, segmentation, heatmaps, world, Roi((300.0, 200.0), 256.0, 0.0),
                              (480, 640))
    mask = segmentation_in_image(person, (480, 640))
    assert mask.shape == (480, 640) and mask[200, 300] > 0.99 and mask[200, 100] == 0.0 and mask[50, 300] < 0.01

"""Regions of interest: from alignment points (rotation and scale, hand-computed), crops, letterbox and tiles."""

import math

import numpy as np
import pytest

from vqhps_ros.boxes import box_iou
from vqhps_ros.detect import Roi, crop_roi, full_image_roi, roi_from_alignment_points, zoom_tiles
from vqhps_ros.detect.geometry import apply_affine, clip_box, normalize_radians


@pytest.mark.parametrize(("scale_point", "rotation"), [
    ((100.0, 100.0), 0.0),  # head straight up: an upright person
    ((200.0, 200.0), math.pi / 2),  # head to the right: turn the ROI a quarter clockwise
    ((0.0, 200.0), -math.pi / 2),  # head to the left
    ((100.0, 300.0), -math.pi),  # upside down (wrapped into [-pi, pi))
    ((100.0 - 100 / math.sqrt(2), 200.0 - 100 / math.sqrt(2)), -math.pi / 4),  # head up-left
])
def test_roi_from_alignment_points(scale_point, rotation):
    roi = roi_from_alignment_points((100.0, 200.0), scale_point)
    assert roi.center == (100.0, 200.0)
    assert roi.size == pytest.approx(2 * 100 * 1.25)  # twice the hip-to-scale-point radius, times 1.25
    assert roi.rotation == pytest.approx(rotation)


def test_a_rotated_roi_puts_the_head_at_the_top_of_its_crop():
    roi = roi_from_alignment_points((100.0, 200.0), (200.0, 200.0))  # head to the right
    to_image = roi.tensor_to_image(256)
    np.testing.assert_allclose(apply_affine(to_image, [[128, 128]]), [[100, 200]])
    np.testing.assert_allclose(apply_affine(to_image, [[128, 0]]), [[100 + 125, 200]], atol=1e-9)
    np.testing.assert_allclose(apply_affine(to_image, [[0, 128]]), [[100, 200 - 125]], atol=1e-9)
    np.testing.assert_allclose(roi.corners()[0], [225, 75], atol=1e-9)  # the crop's top-left corner


def test_crop_roi_samples_the_image_where_the_roi_says():
    image = np.zeros((200, 300, 3), dtype=np.uint8)
    image[100, 150] = 255  # the ROI's centre
    image[100, 180] = (0, 255, 0)  # 30 px to its right
    upright = crop_roi(image, Roi((150.0, 100.0), 64.0, 0.0), 64)
    assert upright.shape == (64, 64, 3)
    assert tuple(upright[32, 32]) == (255, 255, 255)
    assert tuple(upright[32, 62]) == (0, 255, 0)
    turned = crop_roi(image, Roi((150.0, 100.0), 64.0, math.pi / 2), 64)  # the image's right is the crop's top
    assert tuple(turned[2, 32]) == (0, 255, 0)


def test_letterbox_covers_the_frame_with_zero_borders():
    image = np.full((480, 640, 3), 200, dtype=np.uint8)
    roi = full_image_roi(image.shape[:2])
    assert roi == Roi((320.0, 240.0), 640.0, 0.0)
    np.testing.assert_allclose(apply_affine(roi.tensor_to_image(224), [[0, 0], [224, 224]]), [[0, -80], [640, 560]])
    crop = crop_roi(image, roi, 224, border="zero")
    assert crop[0].max() == 0 and crop[-1].max() == 0  # the bands above and below the frame
    assert (crop[60:164] == 200).all()


def test_zoom_tiles_cover_the_image_at_twice_the_scale():
    tiles = zoom_tiles((480, 640), 2)
    assert len(tiles) == 4 and zoom_tiles((480, 640), 1) == []
    assert all(tile.size == pytest.approx(360.0) and tile.rotation == 0.0 for tile in tiles)
    assert [tile.center for tile in tiles] == [(180.0, 180.0), (460.0, 180.0), (180.0, 300.0), (460.0, 300.0)]
    corners = np.concatenate([tile.corners() for tile in tiles])
    np.testing.assert_allclose(corners.min(axis=0), [0, 0])
    np.testing.assert_allclose(corners.max(axis=0), [640, 480])


def test_normalize_radians_and_boxes():
    assert normalize_radians(math.pi) == pytest.approx(-math.pi)
    assert normalize_radians(3 * math.pi / 2) == pytest.approx(-math.pi / 2)
    np.testing.assert_allclose(clip_box(np.array([-10.0, 5.0, 30.0, 500.0]), (100, 50)), [0, 5, 20, 95])
    assert box_iou(np.array([0.0, 0, 10, 10]), np.array([5.0, 0, 10, 10])) == pytest.approx(1 / 3)
    assert box_iou(np.array([0.0, 0, 0, 10]), np.array([0.0, 0, 0, 10])) == 0.0
    assert not Roi((1.0, 2.0), 0.5).is_usable() and not Roi((np.nan, 2.0), 50.0).is_usable()

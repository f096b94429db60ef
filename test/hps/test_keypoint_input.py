"""The keypoint model's input from keypoints found in an image: which keypoints count as seen, where they land in
the crop, and keypoints of another definition refused."""

import numpy as np
import pytest

from vqhps_ros.errors import InputError
from vqhps_ros.hps.crops import BOX_RESCALE, crop_geometry_from_boxes
from vqhps_ros.hps.keypoint_input import enough_seen, keypoint_model_input, seen_keypoints
from vqhps_ros.humans import POSE_KEYPOINT_SET, BodyKeypoints

IMAGE_SIZE = (480, 640)
BOX = np.array([200.0, 100.0, 100.0, 200.0])  # centre (250, 200), crop side BOX_RESCALE * 200


def pose_keypoints(points, visibility=1.0, presence=None) -> BodyKeypoints:
    points = np.asarray(points, dtype=np.float32)
    visibility = np.broadcast_to(np.float32(visibility), (33,)).copy()
    presence = None if presence is None else np.broadcast_to(np.float32(presence), (33,)).copy()
    return BodyKeypoints(POSE_KEYPOINT_SET, points, visibility, presence=presence)


def test_keypoints_land_in_normalised_crop_coordinates():
    half_side = BOX_RESCALE * 200 / 2
    points = np.tile([250.0, 200.0], (33, 1))  # the box centre ...
    points[1] = [250.0 + half_side, 200.0]  # ... the crop's right edge ...
    points[2] = [250.0, 200.0 - half_side / 2]  # ... halfway up
    inputs = keypoint_model_input([pose_keypoints(points)], crop_geometry_from_boxes(BOX[None]), IMAGE_SIZE)
    assert inputs.shape == (1, 33, 3) and inputs.dtype == np.float32
    np.testing.assert_allclose(inputs[0, 0], [0.0, 0.0, 1.0], atol=0.01)
    np.testing.assert_allclose(inputs[0, 1], [1.0, 0.0, 1.0], atol=0.01)
    np.testing.assert_allclose(inputs[0, 2], [0.0, -0.5, 1.0], atol=0.01)


def test_a_keypoint_is_seen_when_visible_present_finite_and_inside_the_image():
    points = np.tile([250.0, 200.0], (33, 1))
    points[3] = [-5.0, 200.0]  # left of the image
    points[4] = [250.0, 480.0]  # below the last row
    points[5] = [np.nan, 200.0]
    visibility = np.ones(33, np.float32)
    visibility[6] = 0.49
    presence = np.ones(33, np.float32)
    presence[7] = 0.2
    keypoints = BodyKeypoints(POSE_KEYPOINT_SET, points.astype(np.float32), visibility, presence=presence)
    seen = seen_keypoints(keypoints, IMAGE_SIZE)
    assert np.flatnonzero(~seen).tolist() == [3, 4, 5, 6, 7]
    inputs = keypoint_model_input([keypoints], crop_geometry_from_boxes(BOX[None]), IMAGE_SIZE)[0]
    np.testing.assert_array_equal(inputs[~seen], 0.0)  # unseen: no position, visibility 0
    assert np.isfinite(inputs).all()
    without_presence = BodyKeypoints(POSE_KEYPOINT_SET, points.astype(np.float32), visibility)
    assert np.flatnonzero(~seen_keypoints(without_presence, IMAGE_SIZE)).tolist() == [3, 4, 5, 6]
    assert enough_seen(keypoints, IMAGE_SIZE, min_keypoints=28) and not enough_seen(keypoints, IMAGE_SIZE, 29)


def test_keypoints_of_another_definition_are_refused_naming_the_expected_set():
    coco = BodyKeypoints("coco_17", np.zeros((17, 2), np.float32), np.ones(17, np.float32))
    with pytest.raises(InputError, match="33 keypoints of 'mediapipe_pose_33'.*found 17 keypoints of 'coco_17'"):
        keypoint_model_input([coco], crop_geometry_from_boxes(BOX[None]), IMAGE_SIZE)
    with pytest.raises(InputError, match="2 keypoint sets for 1 crops"):
        keypoint = pose_keypoints(np.zeros((33, 2)))
        keypoint_model_input([keypoint, keypoint], crop_geometry_from_boxes(BOX[None]), IMAGE_SIZE)
    empty = keypoint_model_input([], crop_geometry_from_boxes(np.zeros((0, 4))), IMAGE_SIZE)
    assert empty.shape == (0, 33, 3)

"""Overlays: boxes, ids and the built-in detector's keypoints drawn over the image."""

import numpy as np

from vqhps_ros.humans import POSE_KEYPOINT_SET, POSE_LANDMARK_BONES, POSE_LANDMARK_NAMES, BodyKeypoints, Human
from vqhps_ros.overlay import draw_humans


def human_with_keypoints(points: np.ndarray | None, visibility: np.ndarray | None) -> Human:
    zeros = np.zeros((4, 3), np.float32)
    return Human(id="7", score=1.0, box=np.array([10.0, 10.0, 100.0, 200.0]), tokens=np.zeros(2, np.int64),
                 token_confidence=np.ones(2, np.float32), vertices=zeros, joints=None, joints_2d=None,
                 vertices_2d=np.zeros((4, 2), np.float32), root_position=np.zeros(3), root_rotation=np.eye(3),
                 crop_camera=np.array([1.0, 0.0, 0.0]), translation=np.zeros(3),
                 keypoints=None if points is None else BodyKeypoints(POSE_KEYPOINT_SET, points, visibility))


def test_seen_keypoints_and_their_limbs_are_drawn_and_unseen_ones_are_not():
    rng = np.random.default_rng(0)
    points = rng.uniform(30, 190, (33, 2)).astype(np.float32)
    visibility = np.ones(33, np.float32)
    hidden = POSE_LANDMARK_NAMES.index("left_wrist")
    visibility[hidden] = 0.1
    points[hidden] = [150.0, 230.0]  # alone in its corner of the image
    canvas = draw_humans(np.zeros((240, 240, 3), np.uint8), [human_with_keypoints(points, visibility)],
                         np.eye(3), faces=None)
    for index in np.flatnonzero(visibility >= 0.5):
        x, y = np.round(points[index]).astype(int)
        assert canvas[y, x].any(), POSE_LANDMARK_NAMES[index]
    assert not canvas[228:233, 148:153].any()  # the unseen wrist: no dot, and no limb to it
    assert any(hidden in bone for bone in POSE_LANDMARK_BONES)


def test_people_without_keypoints_get_their_box_only():
    canvas = draw_humans(np.zeros((240, 240, 3), np.uint8), [human_with_keypoints(None, None)], np.eye(3), None)
    assert canvas[10, 10:110].any() and not canvas[100:150, 40:80].any()  # the box's top edge, an empty inside

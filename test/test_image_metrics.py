"""Image-space measures without 3D truth: mask IoU, mesh silhouettes, and PCK of the mesh's pose landmarks."""

import numpy as np
import pytest

from vqhps_ros.body import free_body_pose_landmarks, load_free_body_data
from vqhps_ros.errors import InputError
from vqhps_ros.hps.camera import project_points
from vqhps_ros.humans import POSE_KEYPOINT_SET, BodyKeypoints, Human
from vqhps_ros.image_metrics import landmark_hits, mask_iou, mesh_silhouette

K = np.array([[500.0, 0, 320], [0, 500.0, 240], [0, 0, 1]])
IMAGE_SIZE = (480, 640)


@pytest.fixture(scope="module")
def body():
    """The free body's rest mesh, centred, with its faces."""
    data = load_free_body_data()
    return data.v_template - data.v_template.mean(axis=0), data.faces


def human_at(vertices, keypoints=None) -> Human:
    points = project_points(vertices.astype(np.float64)[None], K)[0]
    low, high = points.min(axis=0), points.max(axis=0)
    zeros = np.zeros(3)
    return Human("1", 1.0, np.concatenate([low, high - low]), np.zeros(54, np.int64), np.ones(54, np.float32),
                 vertices.astype(np.float32), None, None, points.astype(np.float32), zeros, np.eye(3), zeros, zeros,
                 keypoints=keypoints)


def test_mask_iou_counts_overlap_over_union():
    first, second = np.zeros((4, 4), bool), np.zeros((4, 4), bool)
    first[:2] = True  # 8 pixels
    second[1:3] = True  # 8 pixels, 4 shared
    assert mask_iou(first, second) == pytest.approx(4 / 12)
    assert mask_iou(first, first) == 1.0 and mask_iou(np.zeros((2, 2)), np.zeros((2, 2))) == 1.0
    with pytest.raises(InputError, match="masks of different sizes"):
        mask_iou(first, np.zeros((3, 4), bool))


def test_the_silhouette_covers_the_projected_mesh(body):
    vertices, faces = body
    placed = vertices + np.array([0.0, 0.0, 4.0])
    silhouette = mesh_silhouette([human_at(placed)], faces, K, IMAGE_SIZE)
    rows, columns = np.nonzero(silhouette)
    points = project_points(placed.astype(np.float64)[None], K)[0]
    assert silhouette.sum() > 2000  # a person 4 m away at f = 500 px is about 200 px tall
    np.testing.assert_allclose([columns.min(), rows.min()], points.min(axis=0), atol=2)
    np.testing.assert_allclose([columns.max(), rows.max()], points.max(axis=0), atol=2)
    assert not mesh_silhouette([], faces, K, IMAGE_SIZE).any()


def test_pck_counts_seen_keypoints_near_the_projected_mesh_landmarks(body):
    vertices, _ = body
    placed = vertices + np.array([0.0, 0.0, 4.0])
    landmarks = free_body_pose_landmarks().matrix
    exact = project_points((landmarks @ placed.astype(np.float64))[None], K)[0].astype(np.float32)
    visibility = np.ones(33, np.float32)
    visibility[:3] = 0.0  # unseen keypoints are not counted
    on_the_mesh = BodyKeypoints(POSE_KEYPOINT_SET, exact, visibility)
    assert landmark_hits(human_at(placed, on_the_mesh), landmarks, K, IMAGE_SIZE) == (30, 30)
    box_side = float(np.max(human_at(placed).box[2:]))
    shifted = exact.copy()
    shifted[10:20, 0] += 0.15 * box_side  # ten keypoints beyond 0.1 of the box size
    shifted[20:25, 0] += 0.05 * box_side  # five within it
    hits = landmark_hits(human_at(placed, BodyKeypoints(POSE_KEYPOINT_SET, shifted, visibility)), landmarks, K,
                         IMAGE_SIZE)
    assert hits == (20, 30)
    assert landmark_hits(human_at(placed), landmarks, K, IMAGE_SIZE) == (0, 0)
    with pytest.raises(InputError, match="landmark regressor must be"):
        landmark_hits(human_at(placed, on_the_mesh), landmarks[:, :10], K, IMAGE_SIZE)

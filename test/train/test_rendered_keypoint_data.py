"""Keypoint training samples from renders with the landmark model's own keypoints
(`train.rendered_keypoint_data`): the estimator's input rule, keypoints and targets of the same people, the
training tensors."""

import numpy as np
import pytest

from vqhps_ros.body import free_body_pose_landmarks
from vqhps_ros.hps.camera import weak_perspective_project
from vqhps_ros.hps.crops import apply_affines, crop_geometry_from_boxes, crop_to_normalized
from vqhps_ros.models import load_image_model
from vqhps_ros.train.keypoint_hps import joined, tokenised
from vqhps_ros.train.rendered_keypoint_data import rendered_keypoint_samples


@pytest.fixture(scope="module")
def samples():
    return rendered_keypoint_samples(seed=7, num_frames=8)


def true_keypoints(samples) -> np.ndarray:
    """(N, 33, 2) the free body's landmarks of the samples' true meshes, in the normalised crops of their boxes."""
    landmarks = free_body_pose_landmarks()
    vertices = np.einsum("nij,nvj->nvi", samples.rotation, samples.canonical_vertices.astype(np.float64))
    points = landmarks(vertices) + samples.translation[:, None, :]
    pixels = np.einsum("nij,nkj->nki", samples.intrinsics, points)
    pixels = pixels[..., :2] / pixels[..., 2:]
    return crop_to_normalized(apply_affines(crop_geometry_from_boxes(samples.boxes).crop_from_image, pixels))


def test_the_people_the_estimator_would_read_with_their_truth(samples):
    assert len(samples) >= 5
    assert samples.keypoints.shape == (len(samples), 33, 3) and samples.canonical_vertices.shape[1:] == (1229, 3)
    seen = samples.keypoints[..., 2] == 1
    assert np.all(seen.sum(axis=1) >= 8)  # model.min_keypoints
    assert np.all(samples.keypoints[~seen][:, :2] == 0)
    np.testing.assert_allclose(samples.canonical_vertices.mean(axis=1), 0.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.det(samples.rotation), 1.0, atol=1e-9)
    # the landmark model's keypoints lie near the true landmarks of the same person (crop edges at +-1) ...
    truth = true_keypoints(samples)
    offsets = np.linalg.norm(samples.keypoints[..., :2] - truth, axis=2)
    per_person = np.array([np.median(offsets[index][seen[index]]) for index in range(len(samples))])
    assert np.median(per_person) < 0.05
    # ... and the crop camera projects the true mesh there too
    rotated = np.einsum("nij,nvj->nvi", samples.rotation, samples.canonical_vertices.astype(np.float64))
    projected = weak_perspective_project(free_body_pose_landmarks()(rotated), samples.crop_camera)
    assert np.median(np.linalg.norm(projected - truth, axis=2)) < 0.05


def test_no_frames_give_no_samples_of_the_same_layout():
    empty = rendered_keypoint_samples(seed=7, num_frames=0)
    assert len(empty) == 0 and empty.keypoints.shape == (0, 33, 3) and empty.canonical_vertices.shape == (0, 1229, 3)


def test_samples_become_training_tensors_and_join_the_sampled_ones(samples):
    model = load_image_model()
    tensors = tokenised(samples, model, chunk=4)
    assert tensors["tokens"].shape == (len(samples), 54) and int(tensors["tokens"].max()) < 512
    assert tensors["keypoints"].shape == (len(samples), 33, 3) and tensors["rotation"].shape == (len(samples), 3, 3)
    both = joined([tensors, tensors])
    assert all(len(both[name]) == 2 * len(samples) for name in tensors)

"""Keypoint training samples without rendering (`train.keypoint_data`): geometry, the measured noise, truncation."""

import numpy as np
import pytest

from vqhps_ros.errors import InputError
from vqhps_ros.hps.camera import weak_perspective_project
from vqhps_ros.hps.crops import crop_geometry_from_boxes, crop_to_normalized
from vqhps_ros.humans import POSE_LANDMARK_NAMES
from vqhps_ros.train.keypoint_data import KeypointNoise, KeypointSampler, KeypointSampling


@pytest.fixture(scope="module")
def sampler():
    return KeypointSampler()


def exact(sampler, **settings) -> KeypointSampler:
    return KeypointSampler(KeypointSampling(noise=KeypointNoise.none(), **settings), sampler.landmarks,
                           sampler.generator)


def true_pixels(sampler, samples) -> np.ndarray:
    """(N, 33, 2) the true landmarks in the image, from the samples' targets."""
    vertices = np.einsum("nij,nvj->nvi", samples.rotation, samples.canonical_vertices.astype(np.float64))
    projected = np.einsum("nij,nkj->nki", samples.intrinsics,
                          sampler.landmarks(vertices) + samples.translation[:, None, :])
    return projected[..., :2] / projected[..., 2:]


def clean_keypoints(sampler, samples) -> np.ndarray:
    """(N, 33, 2) the true landmarks in the samples' normalised crops."""
    affines = crop_geometry_from_boxes(samples.boxes).crop_from_image
    pixels = true_pixels(sampler, samples)
    return crop_to_normalized(np.einsum("nij,nkj->nki", affines[:, :, :2], pixels) + affines[:, None, :, 2])


def test_exact_keypoints_are_the_landmarks_in_the_crop_and_the_camera_projects_the_mesh_there(sampler):
    samples = exact(sampler, truncation=0.0).sample(np.random.default_rng(1), 200)
    assert samples.keypoints.shape == (200, 33, 3) and samples.canonical_vertices.shape[1:] == (1229, 3)
    np.testing.assert_allclose(samples.canonical_vertices.mean(axis=1), 0.0, atol=1e-5)
    seen = samples.keypoints[..., 2] == 1
    assert seen.mean() > 0.9 and np.all(samples.keypoints[~seen][:, :2] == 0)
    truth = clean_keypoints(sampler, samples)
    np.testing.assert_allclose(samples.keypoints[..., :2][seen], truth[seen], atol=1e-5)
    assert np.abs(samples.keypoints[..., :2][seen]).max() <= 1.0  # inside the crop: the box holds the body
    # the weak-perspective crop camera puts the landmarks where the keypoints are, up to perspective
    rotated = np.einsum("nij,nvj->nvi", samples.rotation, samples.canonical_vertices.astype(np.float64))
    projected = weak_perspective_project(sampler.landmarks(rotated), samples.crop_camera)
    assert np.median(np.abs(projected - truth)[seen]) < 0.03
    np.testing.assert_allclose(np.linalg.det(samples.rotation), 1.0, atol=1e-9)


def test_the_measured_noise_is_applied_per_landmark(sampler):
    noise = sampler.settings.noise
    samples = sampler.sample(np.random.default_rng(2), 3000)
    seen = samples.keypoints[..., 2] == 1
    pixels = true_pixels(sampler, samples)[~samples.truncated]
    in_view = ((pixels >= 0) & (pixels <= [639, 479])).all(axis=2)  # of the people the image shows whole
    seen_in_view = seen[~samples.truncated].sum(axis=0) / in_view.sum(axis=0)
    np.testing.assert_allclose(seen_in_view, noise.seen_share, atol=0.03)
    heights = samples.boxes[:, 3] / (1.2 * samples.boxes[:, 2:].max(axis=1))  # box height in crop half-sides / 2
    offsets = (samples.keypoints[..., :2] - clean_keypoints(sampler, samples)) / (2 * heights[:, None, None])
    distances = np.linalg.norm(offsets, axis=2)  # box heights
    for row, name in enumerate(POSE_LANDMARK_NAMES):
        near = distances[seen[:, row], row]
        near = near[near <= 0.1]
        assert np.sqrt(np.mean(near**2) / 2) == pytest.approx(noise.inlier_sd[row], rel=0.25), name
        assert np.mean(distances[seen[:, row], row] > 0.1) <= noise.wild_share[row] + 0.03, name


def test_truncated_people_are_seen_from_the_cut_up(sampler):
    samples = exact(sampler, truncation=1.0).sample(np.random.default_rng(3), 300)
    assert samples.truncated.all()
    seen = samples.keypoints[..., 2] == 1
    ankles = [POSE_LANDMARK_NAMES.index(name) for name in ("left_ankle", "right_ankle")]
    shoulders = [POSE_LANDMARK_NAMES.index(name) for name in ("left_shoulder", "right_shoulder")]
    assert seen[:, ankles].mean() < 0.05 and seen[:, shoulders].mean() > 0.9
    full = exact(sampler, truncation=0.0).sample(np.random.default_rng(3), 300)
    aspect = lambda boxes: np.median(boxes[:, 3] / boxes[:, 2])  # noqa: E731
    assert aspect(samples.boxes) < 0.8 * aspect(full.boxes)  # the box stops at the cut


def test_portraits_are_drawn_and_every_person_shows_enough_landmarks(sampler):
    portraits = exact(sampler, truncation=1.0, cut_range=(0.2, 0.25)).sample(np.random.default_rng(4), 200)
    seen = portraits.keypoints[..., 2] == 1
    shoulders = [POSE_LANDMARK_NAMES.index(name) for name in ("left_shoulder", "right_shoulder")]
    hips = [POSE_LANDMARK_NAMES.index(name) for name in ("left_hip", "right_hip")]
    assert seen[:, shoulders].mean() > 0.5 and seen[:, hips].mean() < 0.1  # head and shoulders, no hips
    assert seen.sum(axis=1).min() >= 8  # as the estimator needs (model.min_keypoints)
    strict = exact(sampler, min_landmarks_in_view=20).sample(np.random.default_rng(4), 200)
    assert (strict.keypoints[..., 2] == 1).sum(axis=1).min() >= 20


def test_samples_follow_the_seed(sampler):
    first, second = (sampler.sample(np.random.default_rng(7), 50) for _ in range(2))
    np.testing.assert_array_equal(first.keypoints, second.keypoints)
    np.testing.assert_array_equal(first.crop_camera, second.crop_camera)


@pytest.mark.parametrize("settings", [dict(truncation=1.5), dict(fov_deg=(90.0, 60.0)), dict(distance_m=(0.0, 2.0)),
                                      dict(cut_range=(0.6, 0.3)), dict(min_landmarks_in_view=0)])
def test_unusable_settings_are_refused(settings):
    with pytest.raises(InputError, match="unusable keypoint sampling settings"):
        KeypointSampling(noise=KeypointNoise.none(), **settings)
    with pytest.raises(InputError, match="seen_share must be 33 finite values"):
        KeypointNoise(np.ones(5), np.zeros(33), np.zeros(33))

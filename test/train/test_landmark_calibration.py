"""Fitting and measuring the free body's pose landmarks against the landmark model (`train.landmark_calibration`):
the fit recovers known landmarks exactly and resists wild guesses; on renders it never saw, the shipped fit is
closer to the landmark model than the prior."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from vqhps_ros.body import free_body_pose_landmarks, load_free_body_data, prior_pose_landmarks
from vqhps_ros.body.joints import JointRegressor
from vqhps_ros.train.landmark_calibration import (
    LandmarkObservations,
    fit_landmark_weights,
    landmark_errors,
    observe_landmarks,
)


@pytest.fixture(scope="module")
def body():
    return load_free_body_data()


def synthetic_observations(body, truth: JointRegressor, people: int = 40, seed: int = 0) -> LandmarkObservations:
    """The rest body turned and placed in front of a camera; the 'model' puts each landmark exactly at truth's."""
    rng = np.random.default_rng(seed)
    rest = body.v_template.astype(np.float64) - body.v_template.mean(axis=0)
    rotations = Rotation.from_euler("y", rng.uniform(-np.pi, np.pi, (people, 1))).as_matrix()
    vertices = np.einsum("nij,vj->nvi", rotations, rest) + rng.uniform([-0.5, -0.2, 3.0], [0.5, 0.2, 6.0],
                                                                       (people, 1, 3))
    intrinsics = np.tile(np.array([[600.0, 0, 320], [0, 600.0, 240], [0, 0, 1]]), (people, 1, 1))
    observations = LandmarkObservations(vertices, intrinsics, np.tile([0.0, 0.0, 100.0, 200.0], (people, 1)),
                                        np.tile([480.0, 640.0], (people, 1)), np.zeros((people, 33, 2)),
                                        np.ones((people, 33)), np.ones((people, 33)), np.ones(people))
    return LandmarkObservations(**{**observations.__dict__, "landmarks": observations.project(truth(vertices))})


def test_the_fit_recovers_landmarks_made_of_nearby_vertices(body):
    prior = prior_pose_landmarks(body)
    rest = body.v_template.astype(np.float64)
    near = np.argsort(np.linalg.norm(rest - prior(rest)[0], axis=1))[[3, 9]]  # two vertices near the nose
    matrix = prior.matrix.copy()
    matrix[0] = 0.0
    matrix[0, near] = [0.3, 0.7]
    truth = JointRegressor(matrix, prior.joint_names)
    observations = synthetic_observations(body, truth)
    fitted = fit_landmark_weights(observations, prior, rest)
    assert landmark_errors(observations, prior).median_distance[0] > 1e-3
    assert landmark_errors(observations, fitted).median_distance[0] < 1e-4  # box heights
    np.testing.assert_allclose(fitted(rest)[0], truth(rest)[0], atol=2e-3)  # metres, rest pose


def test_wild_guesses_do_not_pull_the_fit(body):
    prior = prior_pose_landmarks(body)
    observations = synthetic_observations(body, prior)
    landmarks = observations.landmarks.copy()
    landmarks[:5, :, 0] += 60.0  # an eighth of the people: every landmark a third of the box off
    wild = LandmarkObservations(**{**observations.__dict__, "landmarks": landmarks})
    errors = landmark_errors(wild, fit_landmark_weights(wild, prior, body.v_template.astype(np.float64)))
    assert np.nanmax(errors.median_distance) < 2e-3
    assert np.all(errors.wild_share >= 5 / 40 - 1e-9)  # the guesses stay counted as wild


@pytest.mark.slow
def test_on_renders_it_never_saw_the_shipped_fit_is_closer_to_the_landmark_model_than_the_prior(body):
    observations = observe_landmarks(seed=3000, num_frames=30)  # the fit used seed 1000
    assert len(observations) >= 25 and observations.seen().mean() > 0.7
    prior = landmark_errors(observations, prior_pose_landmarks(body)).median_distance
    fitted = landmark_errors(observations, free_body_pose_landmarks()).median_distance
    assert np.nanmedian(fitted) < 0.02 < np.nanmedian(prior)  # box heights
    assert np.sum(fitted < prior) >= 25  # of 33 landmarks

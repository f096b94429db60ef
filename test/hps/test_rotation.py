"""The numpy rotation conversions (`hps.rotation`): the same rotations as scipy's, in batches and one at a time,
and the same as the torch Rodrigues of the networks."""

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from vqhps_ros.hps.rotation import (
    axis_angle_to_matrix,
    axis_angle_to_matrix_np,
    cross_matrices,
    matrix_to_axis_angle_np,
)


def axis_angles(count: int, seed: int = 3) -> np.ndarray:
    """(count, 3) random axes with angles up to 3 radians (below 180 degrees, where axis-angle is unique)."""
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(count, 3))
    return vectors * rng.uniform(0.0, 3.0, (count, 1)) / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_axis_angle_and_matrix_agree_with_scipy_both_ways():
    vectors = axis_angles(200)
    matrices = axis_angle_to_matrix_np(vectors)
    np.testing.assert_allclose(matrices, Rotation.from_rotvec(vectors).as_matrix(), atol=1e-12)
    np.testing.assert_allclose(matrix_to_axis_angle_np(matrices), vectors, atol=1e-7)
    one = vectors[7]
    np.testing.assert_allclose(axis_angle_to_matrix_np(one), matrices[7], atol=1e-15)
    np.testing.assert_allclose(matrix_to_axis_angle_np(matrices[7]), one, atol=1e-7)
    batched = axis_angle_to_matrix_np(vectors.reshape(20, 10, 3))
    assert batched.shape == (20, 10, 3, 3)
    np.testing.assert_allclose(batched.reshape(200, 3, 3), matrices)


def test_no_turn_is_the_identity_both_ways_and_matches_the_torch_formula():
    np.testing.assert_array_equal(axis_angle_to_matrix_np(np.zeros(3)), np.eye(3))
    np.testing.assert_array_equal(matrix_to_axis_angle_np(np.eye(3)), np.zeros(3))
    vectors = axis_angles(50, seed=4)
    np.testing.assert_allclose(axis_angle_to_matrix_np(vectors),
                               axis_angle_to_matrix(torch.from_numpy(vectors)).numpy(), atol=1e-12)


def test_cross_matrices_give_the_cross_product():
    rng = np.random.default_rng(5)
    vectors, others = rng.normal(size=(2, 30, 3))
    np.testing.assert_allclose(np.einsum("nij,nj->ni", cross_matrices(vectors), others), np.cross(vectors, others),
                               atol=1e-12)

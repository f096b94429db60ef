"""Metrics on hand-computed cases: MPJPE, PA-MPJPE, PVE, acceleration error, the official mesh evaluation."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from vqhps_ros.body import H36M_TO_J17, JointRegressor
from vqhps_ros.errors import InputError
from vqhps_ros.metrics import accel_error, evaluate_meshes, mpjpe, pa_mpjpe, procrustes_align, pve


@pytest.fixture(scope="module")
def joints() -> np.ndarray:
    """(4, 17, 3) non-planar joint sets in metres."""
    return np.random.default_rng(0).normal(scale=0.4, size=(4, 17, 3))


def _similar_copy(points: np.ndarray) -> np.ndarray:
    rotation = Rotation.from_euler("xyz", [30, -50, 80], degrees=True).as_matrix()
    return 1.7 * points @ rotation.T + np.array([0.3, -1.2, 4.0])


@pytest.mark.parametrize("align", ["root", "centroid", "none"])
def test_identical_inputs_give_zero(joints, align):
    np.testing.assert_array_equal(mpjpe(joints, joints, align=align), np.zeros(4))
    np.testing.assert_allclose(pa_mpjpe(joints, joints), 0.0, atol=1e-9)
    np.testing.assert_array_equal(pve(joints, joints), np.zeros(4))


def test_translation_vanishes_after_alignment(joints):
    shifted = joints + np.array([0.5, -0.25, 2.0])
    np.testing.assert_allclose(mpjpe(shifted, joints, align="root"), 0.0, atol=1e-9)
    np.testing.assert_allclose(mpjpe(shifted, joints, align="centroid"), 0.0, atol=1e-9)
    np.testing.assert_allclose(pve(shifted, joints), 0.0, atol=1e-9)
    np.testing.assert_allclose(mpjpe(shifted, joints, align="none"), np.linalg.norm([0.5, -0.25, 2.0]) * 1000)


def test_one_joint_offset_gives_its_share_in_millimetres(joints):
    moved = joints.copy()
    moved[:, 5] += np.array([0.03, 0.0, 0.04])  # 50 mm on one joint of 17, the root untouched
    np.testing.assert_allclose(mpjpe(moved, joints, align="root"), 50.0 / 17)
    np.testing.assert_allclose(mpjpe(moved, joints, align="none"), 50.0 / 17)
    # centroid alignment spreads the offset: the moved joint is off by 16/17 of it, the others by 1/17
    np.testing.assert_allclose(mpjpe(moved, joints, align="centroid"), 50.0 * (16 / 17 + 16 / 17) / 17)


def test_root_alignment_uses_the_root_joint(joints):
    moved = joints.copy()
    moved[:, 0] += np.array([0.0, 0.1, 0.0])  # move the pelvis only: every other joint is 100 mm off after
    np.testing.assert_allclose(mpjpe(moved, joints, align="root"), 100.0 * 16 / 17)
    np.testing.assert_allclose(mpjpe(moved, joints, align="root", root_index=3), 100.0 / 17)


def test_similarity_transform_vanishes_only_after_procrustes(joints):
    transformed = _similar_copy(joints)
    np.testing.assert_allclose(pa_mpjpe(transformed, joints), 0.0, atol=1e-9)
    np.testing.assert_allclose(procrustes_align(transformed, joints), joints, atol=1e-12)
    assert np.all(mpjpe(transformed, joints, align="root") > 100.0)


def test_procrustes_never_reflects(joints):
    mirrored = joints * np.array([-1.0, 1.0, 1.0])
    assert np.all(pa_mpjpe(mirrored, joints) > 10.0)
    aligned = procrustes_align(mirrored, joints)
    # the fitted map is a proper similarity: it preserves orientation (positive triple products)
    edges = aligned[:, 1:4] - aligned[:, :1]
    source_edges = mirrored[:, 1:4] - mirrored[:, :1]
    assert np.all(np.sign(np.linalg.det(edges)) == np.sign(np.linalg.det(source_edges)))


def test_procrustes_of_a_degenerate_source_is_the_target_centroid(joints):
    collapsed = np.zeros_like(joints)
    aligned = procrustes_align(collapsed, joints)
    np.testing.assert_allclose(aligned, np.broadcast_to(joints.mean(axis=1, keepdims=True), joints.shape))


def test_acceleration_error_of_constant_velocity_offsets_is_zero():
    frames = np.arange(10, dtype=np.float64)[:, None, None]
    start = np.random.default_rng(1).normal(size=(1, 5, 3))
    velocity = np.random.default_rng(2).normal(size=(1, 5, 3))
    motion = start + velocity * frames  # (10, 5, 3)
    shifted = motion + np.array([1.0, 2.0, 3.0])
    errors = accel_error(shifted, motion)
    assert errors.shape == (8,)
    np.testing.assert_allclose(errors, 0.0, atol=1e-9)
    batched = accel_error(np.stack([shifted, motion]), np.stack([motion, motion]))
    assert batched.shape == (2, 8)


def test_acceleration_error_hand_computed():
    """One of 2 joints displaced by 10 mm at frame 3: windows starting at 1, 2, 3 see 1x, 2x, 1x of it."""
    gt = np.zeros((6, 2, 3))
    pred = gt.copy()
    pred[3, 1, 0] = 0.010
    np.testing.assert_allclose(accel_error(pred, gt), [0.0, 5.0, 10.0, 5.0])
    valid = np.array([True, True, True, True, True, False])
    np.testing.assert_allclose(accel_error(pred, gt, valid), [0.0, 5.0, 10.0, np.nan])


def test_official_mesh_evaluation_centres_meshes_and_uses_17_joints():
    rng = np.random.default_rng(3)
    vertices = 30
    matrix = rng.uniform(0, 1, (17, vertices))
    regressor = JointRegressor(matrix / matrix.sum(axis=1, keepdims=True))
    gt = rng.normal(scale=0.3, size=(2, vertices, 3))
    pred = gt + np.array([1.0, 2.0, 3.0])  # a global offset disappears with the centroid centring
    pred[:, 7] += np.array([0.0, 0.0, 0.030])
    result = evaluate_meshes(pred, gt, regressor)
    assert set(result) == {"mpjpe", "pa_mpjpe", "pve", "pa_pve"}
    vertex_offset = np.zeros((vertices, 3))
    vertex_offset[7, 2] = 0.030
    vertex_offset -= vertex_offset.mean(axis=0)  # the centring moves every vertex by -1/30 of the bump
    expected_pve = np.linalg.norm(vertex_offset, axis=1).mean() * 1000
    np.testing.assert_allclose(result["pve"], expected_pve)
    joint_offset = regressor.matrix.astype(np.float64) @ vertex_offset
    expected_mpjpe = np.linalg.norm(joint_offset[list(H36M_TO_J17)], axis=1).mean() * 1000
    np.testing.assert_allclose(result["mpjpe"], expected_mpjpe, rtol=1e-6)
    # the official PA metrics use the uncentred meshes; Procrustes makes the centring irrelevant
    np.testing.assert_allclose(result["pa_pve"], pa_mpjpe(pred, gt), rtol=1e-9)
    j17 = regressor.select(H36M_TO_J17)
    np.testing.assert_allclose(result["pa_mpjpe"], pa_mpjpe(j17(pred), j17(gt)), atol=1e-5)
    assert np.all(result["pa_mpjpe"] > 0)


def test_bad_inputs_raise(joints):
    with pytest.raises(InputError, match=r"same shape \(B, P, 3\)"):
        mpjpe(joints, joints[:, :16])
    with pytest.raises(InputError, match=r"same shape \(B, P, 3\)"):
        pa_mpjpe(joints[0], joints[0])
    with pytest.raises(InputError, match="alignment"):
        mpjpe(joints, joints, align="pelvis")
    with pytest.raises(InputError, match="root index"):
        mpjpe(joints, joints, root_index=17)
    with pytest.raises(InputError, match="at least 3 frames"):
        accel_error(joints[:2], joints[:2])
    with pytest.raises(InputError, match="validity mask"):
        accel_error(joints, joints, valid=np.ones(3, dtype=bool))

"""Random poses within joint limits, mirrored sides, smooth motion, and the walking cycle."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from vqhps_ros.errors import InputError
from vqhps_ros.synth import BODY_JOINT_NAMES, joint_limits, sample_motion, sample_pose_euler, sample_poses
from vqhps_ros.synth.poses import (
    ARCHETYPE_PROBABILITIES,
    archetype_euler,
    bspline_curve,
    euler_to_axis_angle,
    mirror_euler,
    walk_cycle_euler,
)

JOINT = {name: index for index, name in enumerate(BODY_JOINT_NAMES)}


def test_limits_are_ordered_and_left_right_mirrored():
    limits = joint_limits()
    assert limits.shape == (23, 3, 2) and np.all(limits[..., 0] <= limits[..., 1])
    mirrored_lower = mirror_euler(limits[..., 0])
    mirrored_upper = mirror_euler(limits[..., 1])
    np.testing.assert_allclose(np.minimum(mirrored_lower, mirrored_upper), limits[..., 0])
    np.testing.assert_allclose(np.maximum(mirrored_lower, mirrored_upper), limits[..., 1])


@pytest.mark.parametrize("archetype", [None, *ARCHETYPE_PROBABILITIES])
def test_random_poses_stay_within_the_limits(archetype):
    rng = np.random.default_rng(0)
    angles = sample_pose_euler(rng, 200, archetype)
    limits = joint_limits()
    assert np.all(angles >= limits[..., 0] - 1e-12) and np.all(angles <= limits[..., 1] + 1e-12)
    assert angles.std(axis=0).mean() > 0.02  # they do vary
    poses = euler_to_axis_angle(angles)
    np.testing.assert_allclose(Rotation.from_rotvec(poses.reshape(-1, 3)).as_matrix(),
                               Rotation.from_euler("xyz", angles.reshape(-1, 3)).as_matrix(), atol=1e-12)


def test_standing_people_hang_their_arms_and_crouching_ones_bend_their_knees():
    rng = np.random.default_rng(1)
    standing, crouching = sample_pose_euler(rng, 50, "stand"), sample_pose_euler(rng, 50, "crouch")
    assert np.median(standing[:, JOINT["left_shoulder"], 2]) < -1.0 < 1.0 < np.median(
        standing[:, JOINT["right_shoulder"], 2])  # arms lowered from the T-pose on both sides
    assert np.all(standing[:, JOINT["left_shoulder"], 2] < -0.25)
    assert np.all(standing[:, JOINT["right_shoulder"], 2] > 0.25)
    assert np.all(crouching[:, JOINT["left_knee"], 0] > 1.5) and np.all(crouching[:, JOINT["left_hip"], 0] < -1.2)


def test_mirroring_swaps_sides_and_is_an_involution():
    wave = archetype_euler("wave")
    mirrored = mirror_euler(wave)
    np.testing.assert_allclose(mirror_euler(mirrored), wave)
    np.testing.assert_allclose(mirrored[JOINT["right_elbow"]], wave[JOINT["left_elbow"]] * [1, -1, -1])
    with pytest.raises(InputError, match="archetype"):
        archetype_euler("dance")


def test_same_seed_same_poses():
    first = sample_poses(np.random.default_rng(5), 4)
    np.testing.assert_array_equal(first, sample_poses(np.random.default_rng(5), 4))
    assert first.shape == (4, 23, 3)


def test_walk_cycle_alternates_legs_and_swings_arms_against_them():
    offsets = walk_cycle_euler(np.array([np.pi / 2, 3 * np.pi / 2]))
    left_forward, right_forward = offsets
    assert left_forward[JOINT["left_hip"], 0] < 0 < left_forward[JOINT["right_hip"], 0]  # x < 0: thigh forwards
    assert right_forward[JOINT["right_hip"], 0] < 0 < right_forward[JOINT["left_hip"], 0]
    assert left_forward[JOINT["left_shoulder"], 1] > 0  # the left arm swings back (y > 0) as the left leg leads


def test_bspline_stays_within_its_keys_and_is_smooth():
    keys = np.random.default_rng(2).uniform(-1, 1, size=(8, 5))
    curve = bspline_curve(keys, 200)
    assert np.all(curve >= keys.min(axis=0) - 1e-12) and np.all(curve <= keys.max(axis=0) + 1e-12)
    second_difference = np.abs(np.diff(curve, n=2, axis=0)).max()
    assert second_difference < 1e-2
    with pytest.raises(InputError, match="at least 4"):
        bspline_curve(keys[:3], 10)


@pytest.mark.parametrize("walking", [False, True])
def test_motion_is_smooth_at_the_frame_rate(walking):
    poses = sample_motion(np.random.default_rng(3), 60, fps=15.0, walking=walking)
    assert poses.shape == (60, 23, 3)
    rotations = Rotation.from_rotvec(poses.reshape(-1, 3)).as_matrix().reshape(60, 23, 3, 3)
    relative = np.einsum("tjab,tjac->tjbc", rotations[:-1], rotations[1:])  # R_t^T R_{t+1}
    step = np.arccos(np.clip((np.trace(relative, axis1=2, axis2=3) - 1) / 2, -1, 1))
    assert step.max() < np.deg2rad(15)  # no joint turns more than 15 degrees between frames at 15 Hz
    total = np.arccos(np.clip((np.trace(np.einsum("jab,jac->jbc", rotations[0], rotations[-1]), axis1=1, axis2=2)
                               - 1) / 2, -1, 1))
    assert total.max() > np.deg2rad(5)  # and it does move

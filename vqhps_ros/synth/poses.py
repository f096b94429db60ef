"""Plausible random body poses within joint limits, and smooth motion sequences, for SMPL-tree bodies.

A pose is SMPL's `body_pose`: (23, 3) axis-angle rotations of joints 1..23 (`SMPL_24_JOINT_NAMES[1:]`), each in
its parent's frame, the rest pose being SMPL's T-pose (y up, x the body's left, z forward). Poses are built from
per-joint Euler angles (extrinsic x, then y, then z: for an arm, the twist about the limb first, then the swing)
kept inside `JOINT_LIMITS_DEG`. In these angles, for the LEFT side:

* hips: x < 0 swings the thigh forward, z > 0 spreads it outwards; knees: x > 0 bends; ankles: x > 0 points the toes;
* shoulders: z < 0 lowers the arm from the T-pose (about -70 hangs it at the side), y < 0 swings it forwards,
  x twists it about its own axis; elbows: y < 0 bends the forearm forwards (palms down in the T-pose);
* spine, neck, head: x > 0 bends forwards, y turns, z tilts sideways.

The right side mirrors the left: its angles are (x, -y, -z) of the left's. Random poses are an archetype (standing,
walking, reaching, waving, bending, crouching) plus Gaussian deviations, clipped to the limits. Motion sequences
are uniform cubic B-splines through random key poses (a B-spline stays inside the convex box of its keys, so the
limits still hold), with a walking cycle added for walkers.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from ..body.joints import SMPL_24_JOINT_NAMES
from ..errors import InputError

BODY_JOINT_NAMES = SMPL_24_JOINT_NAMES[1:]
NUM_BODY_JOINTS = len(BODY_JOINT_NAMES)

JOINT_LIMITS_DEG = {
    "left_hip": ((-120, 30), (-40, 40), (-25, 50)),
    "left_knee": ((0, 145), (-8, 8), (-5, 5)),
    "left_ankle": ((-30, 45), (-15, 15), (-20, 20)),
    "left_foot": ((-25, 25), (-5, 5), (-5, 5)),
    "spine1": ((-20, 50), (-25, 25), (-20, 20)),
    "spine2": ((-15, 30), (-20, 20), (-15, 15)),
    "spine3": ((-15, 25), (-20, 20), (-15, 15)),
    "neck": ((-35, 45), (-45, 45), (-30, 30)),
    "head": ((-25, 30), (-35, 35), (-20, 20)),
    "left_collar": ((-15, 15), (-20, 15), (-15, 30)),
    "left_shoulder": ((-100, 60), (-110, 45), (-90, 80)),
    "left_elbow": ((-80, 60), (-150, 0), (-10, 10)),
    "left_wrist": ((-40, 40), (-30, 30), (-70, 70)),
    "left_hand": ((-10, 10), (-10, 10), (-60, 15)),
}
"""Per joint (x, y, z) ranges in degrees of the Euler angles described in the module docstring; left side only."""

SPREAD_DEG = {"hip": 8, "knee": 8, "ankle": 6, "foot": 4, "spine": 5, "neck": 10, "head": 10, "collar": 4,
              "shoulder": 14, "elbow": 14, "wrist": 12, "hand": 10}
"""Standard deviation of the random deviation around an archetype, by joint kind."""

_STANDING = {"left_shoulder": (0, 0, -72), "left_elbow": (0, -15, 0)}
ARCHETYPES_DEG = {
    "stand": _STANDING,
    "reach": {"left_shoulder": (0, -70, -15), "left_elbow": (0, -20, 0), "right_shoulder": (0, 0, 72)},
    "wave": {"left_shoulder": (-90, 0, 30), "left_elbow": (0, -95, 0), "right_shoulder": (0, 0, 72)},
    "bend": {"spine1": (35, 0, 0), "spine2": (15, 0, 0), "left_shoulder": (0, -45, -60), "left_elbow": (0, -30, 0)},
    "crouch": {"left_hip": (-100, 0, 15), "left_knee": (120, 0, 0), "left_ankle": (-20, 0, 0), "spine1": (25, 0, 0),
               "left_shoulder": (0, -40, -60), "left_elbow": (0, -40, 0)},
}
"""Archetype centres (x, y, z) in degrees. A left-side entry also sets the mirrored right side unless the archetype
gives that side explicitly."""

ARCHETYPE_PROBABILITIES = {"stand": 0.3, "walk": 0.3, "reach": 0.12, "wave": 0.1, "bend": 0.1, "crouch": 0.08}


def _right_name(name: str) -> str | None:
    return "right_" + name.removeprefix("left_") if name.startswith("left_") else None


def joint_limits() -> np.ndarray:
    """(23, 3, 2) lower and upper Euler angle limits in radians, right side mirrored from the left."""
    limits = np.zeros((NUM_BODY_JOINTS, 3, 2))
    for name, ranges in JOINT_LIMITS_DEG.items():
        limits[BODY_JOINT_NAMES.index(name)] = np.deg2rad(ranges)
        right = _right_name(name)
        if right is not None:
            mirrored = [ranges[0], (-ranges[1][1], -ranges[1][0]), (-ranges[2][1], -ranges[2][0])]
            limits[BODY_JOINT_NAMES.index(right)] = np.deg2rad(mirrored)
    return limits


def _spread() -> np.ndarray:
    """(23,) deviation scale in radians."""
    kinds = [next(kind for kind in SPREAD_DEG if kind in name) for name in BODY_JOINT_NAMES]
    return np.deg2rad([SPREAD_DEG[kind] for kind in kinds])


def mirror_euler(angles: np.ndarray) -> np.ndarray:
    """(..., 23, 3) Euler angles -> the mirrored pose (left and right swapped, y and z negated)."""
    permutation = [BODY_JOINT_NAMES.index(_swap_side(name)) for name in BODY_JOINT_NAMES]
    return angles[..., permutation, :] * np.array([1.0, -1.0, -1.0])


def _swap_side(name: str) -> str:
    if name.startswith("left_"):
        return "right_" + name.removeprefix("left_")
    if name.startswith("right_"):
        return "left_" + name.removeprefix("right_")
    return name


def euler_to_axis_angle(angles: np.ndarray) -> np.ndarray:
    """(..., 3) extrinsic x-y-z Euler angles (radians) -> (..., 3) axis-angle."""
    angles = np.asarray(angles, dtype=np.float64)
    return Rotation.from_euler("xyz", angles.reshape(-1, 3)).as_rotvec().reshape(angles.shape)


def clip_to_limits(angles: np.ndarray) -> np.ndarray:
    """(..., 23, 3) Euler angles clipped into `joint_limits()`."""
    limits = joint_limits()
    return np.clip(angles, limits[..., 0], limits[..., 1])


def archetype_euler(name: str, walk_phase: float = 0.0) -> np.ndarray:
    """(23, 3) Euler angles (radians) at the centre of an archetype; `walk_phase` (radians) for "walk"."""
    if name == "walk":
        return walk_cycle_euler(np.array([walk_phase]))[0] + archetype_euler("stand")
    if name not in ARCHETYPES_DEG:
        raise InputError(f"unknown pose archetype {name!r}; expected one of {sorted(ARCHETYPE_PROBABILITIES)}")
    angles = np.zeros((NUM_BODY_JOINTS, 3))
    centres = ARCHETYPES_DEG[name]
    for joint, values in centres.items():
        angles[BODY_JOINT_NAMES.index(joint)] = np.deg2rad(values)
        right = _right_name(joint)
        if right is not None and right not in centres:
            angles[BODY_JOINT_NAMES.index(right)] = np.deg2rad(values) * np.array([1.0, -1.0, -1.0])
    return angles


def walk_cycle_euler(phase: np.ndarray, stride: float = 1.0) -> np.ndarray:
    """(T,) gait phases in radians -> (T, 23, 3) Euler offsets of a walking cycle (legs and arm swing).

    stride scales the amplitudes (1: an ordinary walk). The left thigh is forwards at phase pi / 2, the right
    one at 3 pi / 2; each knee bends most while its leg swings forwards; the arms swing against the legs.
    """
    phase = np.asarray(phase, dtype=np.float64)
    offsets = np.zeros((len(phase), NUM_BODY_JOINTS, 3))
    for name, phase_offset, side in (("left", 0.0, 1.0), ("right", np.pi, -1.0)):
        swing = np.sin(phase + phase_offset)  # > 0: this leg is in front
        lift = np.clip(np.sin(phase + phase_offset + 0.6), 0.0, None)  # the knee bends as the leg swings forwards
        offsets[:, BODY_JOINT_NAMES.index(f"{name}_hip"), 0] = -np.deg2rad(25) * stride * swing
        offsets[:, BODY_JOINT_NAMES.index(f"{name}_knee"), 0] = np.deg2rad(8 + 40 * lift) * stride
        offsets[:, BODY_JOINT_NAMES.index(f"{name}_ankle"), 0] = np.deg2rad(8) * stride * swing
        # the arm swings against its leg; y angles are mirrored on the right side
        offsets[:, BODY_JOINT_NAMES.index(f"{name}_shoulder"), 1] = side * np.deg2rad(20) * stride * swing
        offsets[:, BODY_JOINT_NAMES.index(f"{name}_elbow"), 1] = -side * np.deg2rad(10 * (1 - swing)) * stride
    return offsets


def sample_pose_euler(rng: np.random.Generator, count: int, archetype: str | None = None,
                      deviation_scale: float = 1.0, mirror_probability: float = 0.5) -> np.ndarray:
    """(count, 23, 3) random Euler poses (radians) within the limits; random archetypes unless one is given.

    Each archetype centre is mirrored with `mirror_probability` (right-handed reaches and waves as often as
    left-handed ones)."""
    names = list(ARCHETYPE_PROBABILITIES)
    weights = np.array([ARCHETYPE_PROBABILITIES[name] for name in names])
    poses = np.empty((count, NUM_BODY_JOINTS, 3))
    spread = _spread()[:, None] * deviation_scale
    for index in range(count):
        name = archetype or names[rng.choice(len(names), p=weights / weights.sum())]
        centre = archetype_euler(name, walk_phase=rng.uniform(0, 2 * np.pi))
        if rng.uniform() < mirror_probability:
            centre = mirror_euler(centre)
        poses[index] = centre + rng.normal(size=(NUM_BODY_JOINTS, 3)) * spread
    return clip_to_limits(poses)


def sample_poses(rng: np.random.Generator, count: int, archetype: str | None = None,
                 deviation_scale: float = 1.0) -> np.ndarray:
    """(count, 23, 3) random axis-angle body poses (`body_pose` of smplx, reshaped) within the joint limits."""
    return euler_to_axis_angle(sample_pose_euler(rng, count, archetype, deviation_scale))


def bspline_curve(keys: np.ndarray, num_frames: int) -> np.ndarray:
    """Uniform cubic B-spline through (K, ...) control values, sampled at num_frames -> (num_frames, ...).

    The curve is C2-smooth, and each sample is a convex combination of four consecutive keys.
    """
    keys = np.asarray(keys, dtype=np.float64)
    if len(keys) < 4:
        raise InputError(f"a cubic B-spline needs at least 4 keys, found {len(keys)}")
    position = np.linspace(0.0, len(keys) - 3, num_frames, endpoint=False)
    segment = np.minimum(position.astype(int), len(keys) - 4)
    t = (position - segment)[:, None]
    basis = np.concatenate([(1 - t) ** 3, 3 * t**3 - 6 * t**2 + 4, -3 * t**3 + 3 * t**2 + 3 * t + 1, t**3], 1) / 6
    stacked = np.stack([keys[segment + k] for k in range(4)], axis=1)  # (T, 4, ...)
    return np.einsum("tk,tk...->t...", basis, stacked)


def sample_motion(rng: np.random.Generator, num_frames: int, fps: float, walking: bool = False,
                  archetype: str | None = None, key_interval_s: float = 1.2,
                  walk_cadence_hz: float = 0.9) -> np.ndarray:
    """(num_frames, 23, 3) axis-angle body poses of one smooth motion, within the joint limits.

    Key poses (an archetype kept for the whole sequence, random unless given, with fresh deviations) every
    `key_interval_s` seconds are joined by a cubic B-spline; a walker also gets a gait cycle at `walk_cadence_hz`
    strides per second on top of standing keys.
    """
    if num_frames < 1 or fps <= 0:
        raise InputError(f"expected num_frames >= 1 and fps > 0, found {num_frames} and {fps}")
    duration = num_frames / fps
    num_keys = int(np.ceil(duration / key_interval_s)) + 4
    if walking or archetype == "walk":  # a walk is a gait cycle over standing keys
        walking, archetype = True, "stand"
    if archetype is None:
        names = [name for name in ARCHETYPE_PROBABILITIES if name != "walk"]
        archetype = names[rng.integers(len(names))]
    keys = sample_pose_euler(rng, num_keys, archetype, deviation_scale=0.8, mirror_probability=0.0)
    if rng.uniform() < 0.5:  # one side for the whole sequence: keys of both sides would blend into a mix
        keys = mirror_euler(keys)
    angles = bspline_curve(keys, num_frames)
    if walking:
        phase = 2 * np.pi * walk_cadence_hz * np.arange(num_frames) / fps + rng.uniform(0, 2 * np.pi)
        angles = angles + walk_cycle_euler(phase, stride=rng.uniform(0.7, 1.2))
    return euler_to_axis_angle(clip_to_limits(angles))

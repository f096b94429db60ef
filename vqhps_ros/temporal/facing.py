"""Facing continuity: a track keeps the way its person faces unless the image insists otherwise for a while.

From one image, a body seen from the back and its reflection in depth (front and back exchanged, left and right
swapped) cast nearly the same outline and keypoints, and a regressor that cannot tell them apart outputs the wrong
one for some frames: the mesh then faces the camera while the person faces away, every left limb lies on the right
one, and the vertices are tens of centimetres off although the silhouette fits. Between two frames a person cannot
make that change (it would be a half turn within a frame and a mirrored pose), so a measurement whose reflection
lies much nearer the track's body than the measurement itself is taken as reflected: the track filters the
reflection. A person who does face the other way than the track thinks (the track started on a reflected frame)
makes the regressor insist: after `hold` seconds of reflected measurements in a row, the track takes the
measurement as it is and restarts its orientation and body filters from it.

The reflection is the mirror image in the plane through the person's root that faces the camera, with each vertex
swapped for its mirror twin (and each joint for its left/right partner): in camera coordinates Z (v_twin - t) + t
with Z = I - 2 d d^T, d the unit ray to the root t. Split as the filters' decomposition (camera = rotation @ body
+ translation), with M the reflection x -> -x of the body frame, whose x axis is the body's left-right axis: the
body becomes M body_twin, the rotation Z rotation M (a rotation: two reflections) and the translation stays.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..errors import InputError

BODY_MIRROR = np.array([-1.0, 1.0, 1.0])  # x -> -x in the body frame (x: the body's left-right axis)
# A reflection is taken only when it lies at most this share of the measurement's distance from the track's body:
# near-symmetric poses seen from the side (arms down, legs together) are close both ways and keep the measurement.
REFLECTION_MARGIN = 0.5


@dataclass(frozen=True)
class FacingSettings:
    min_change: float = 0.1  # metres: mean vertex distance to the track's body below which a measurement is kept
    hold: float = 1.0  # seconds of reflected measurements in a row after which the track turns to them

    def __post_init__(self):
        if self.min_change <= 0 or self.hold < 0:
            raise InputError(f"invalid facing settings {self}: a positive min_change and a hold >= 0 needed")


class FacingGuard:
    """Reflects bodies of one mesh topology in depth and says when a measurement is a reflection of the track's body
    (see the module docstring). vertex_twins (V,): each vertex's mirror twin; joint_partners (J,) or None: each
    joint's left/right partner (`hps.vertex_mirror`, `hps.mirrored_names`). A pose here is a body in the tracker's
    decomposition (a dataclass with translation (3,), rotation (3, 3) and body-frame vertices and joints)."""

    def __init__(self, vertex_twins: np.ndarray, joint_partners: np.ndarray | None = None,
                 settings: FacingSettings = FacingSettings()):
        self.vertex_twins = _permutation(vertex_twins, "vertex_twins")
        self.joint_partners = None if joint_partners is None else _permutation(joint_partners, "joint_partners")
        self.settings = settings

    def nearer_reflection(self, measured, track):
        """The measurement reflected in depth when the reflection is much nearer the track's body than the
        measurement (a measurement at least `min_change` from it); else None."""
        if measured.vertices.shape != track.vertices.shape:
            return None
        seen, kept = turned_body(measured), turned_body(track)
        direct = mean_distance(seen, kept)
        if direct < self.settings.min_change:
            return None
        # the reflection turned into the camera frame, without building its decomposition unless it is taken
        reflection = depth_reflection(measured.translation).astype(np.float32) @ seen[:, self.vertex_twins]
        return self.reflected(measured) if mean_distance(reflection, kept) <= REFLECTION_MARGIN * direct else None

    def reflected(self, pose):
        """The pose reflected in depth (the translation unchanged). InputError when the mesh or its joints are not
        of this topology."""
        if len(pose.vertices) != len(self.vertex_twins):
            raise InputError(f"expected a mesh of {len(self.vertex_twins)} vertices to reflect, found "
                             f"{len(pose.vertices)}")
        joints = None
        if pose.joints is not None:
            if self.joint_partners is None or len(pose.joints) != len(self.joint_partners):
                raise InputError(f"expected {0 if self.joint_partners is None else len(self.joint_partners)} joints "
                                 f"with left/right partners to reflect, found {len(pose.joints)}")
            joints = pose.joints[self.joint_partners] * BODY_MIRROR.astype(pose.joints.dtype)
        rotation = depth_reflection(pose.translation) @ pose.rotation * BODY_MIRROR  # Z R M: M scales R's columns
        vertices = pose.vertices[self.vertex_twins] * BODY_MIRROR.astype(pose.vertices.dtype)
        return replace(pose, rotation=rotation, vertices=vertices, joints=joints)


def depth_reflection(translation: np.ndarray) -> np.ndarray:
    """(3, 3) reflection along the unit ray to `translation` (camera frame): I - 2 d d^T."""
    ray = np.asarray(translation, dtype=np.float64)
    norm = np.linalg.norm(ray)
    if not norm > 0:
        raise InputError(f"a body's root must be away from the camera centre to reflect it in depth, found {ray}")
    ray = ray / norm
    return np.eye(3) - 2.0 * np.outer(ray, ray)


def turned_body(pose) -> np.ndarray:
    """(3, V) float32: the pose's vertices turned into the camera frame, its translation left out. Coordinates in
    rows and float32 (ample for centimetres) keep the check cheap: the tracker makes it for every person."""
    return pose.rotation.astype(np.float32) @ pose.vertices.T.astype(np.float32, copy=False)


def mean_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean distance between corresponding points (columns) of two (3, V) point sets."""
    return float(np.sqrt(((a - b) ** 2).sum(axis=0)).mean())


def _permutation(values, name: str) -> np.ndarray:
    indices = np.asarray(values, dtype=np.int64)
    if indices.ndim != 1 or not np.array_equal(np.sort(indices), np.arange(len(indices))):
        raise InputError(f"{name} must be a permutation of 0..N-1 (each index its partner's), found {indices.size} "
                         f"indices, {np.unique(indices).size} distinct, of shape {indices.shape}")
    return indices

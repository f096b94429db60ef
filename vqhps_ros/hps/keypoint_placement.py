"""Placing a mesh on its person's 2D body keypoints: the translation, and then the orientation, that project the
mesh's own pose landmarks onto the keypoints the landmark model found in the image (`POSE_KEYPOINT_SET`; persons
without them, or with keypoints of another set, keep the network's placement).

The network places a mesh through its weak-perspective crop camera, a guess from the crop alone: an error in its
scale or offset moves the whole mesh off the person even when the pose is right. The keypoints fix that cheaply.
With the mesh's shape and rotation kept, the translation T that projects its landmarks L_i (relative to the mesh
origin) onto the keypoints (u_i, v_i) through the intrinsics solves a linear least-squares problem, two rows per
seen keypoint:

    fx (X_i + Tx) - (u_i - cx) (Z_i + Tz) = 0        fy (Y_i + Ty) - (v_i - cy) (Z_i + Tz) = 0

Each row is divided by the landmark's depth at the current estimate, so that its residual is in pixels; rows are
reweighted by their residual (Cauchy weights, at `robust_share` of the box's longer side) against the landmark
model's wild guesses; one more row, worth about `depth_prior` keypoints, keeps the depth near the network's where
the keypoints span too little to fix it (the body's size in the image is the only cue to its depth, and the
keypoints' noise moves it).

With `orient`, the mesh is then also turned about its origin: Gauss-Newton steps on a rotation increment and the
translation together, from the translation above, on the same pixel residuals, weights and depth prior, plus a
prior that holds the rotation near the network's (`rotation_prior`: worth about that many keypoints moved by the
keypoints' spread times the angle). The network reads the body's pose well from the keypoints but its global
orientation less so (a few degrees of tilt or heading move the hands and feet by centimetres); the 33 landmarks of
a rigid body fix it, and the network's pose (the shape of the landmark cloud) is kept.

The fit is refused, and the network's placement kept, when fewer than `min_keypoints` keypoints are seen, when it
is not finite, when it would put part of the mesh behind the camera, or when it changes the depth by more than
`max_depth_ratio` either way. A turn refused by the same tests, or beyond `max_turn_deg`, leaves the mesh only
moved.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..errors import InputError
from ..humans import BodyKeypoints
from .camera import project_points
from .keypoint_input import is_pose_keypoint_set, seen_keypoints
from .predict import PersonMesh
from .rotation import axis_angle_to_matrix_np, cross_matrices, matrix_to_axis_angle_np

CONVERGED = 1e-4  # a Gauss-Newton step below this (radians, metres) ends the orientation fit


@dataclass(frozen=True)
class PlacementSettings:
    """See the module docstring; `iterations` of reweighting (and as many Gauss-Newton steps with `orient`)."""

    min_keypoints: int = 6
    robust_share: float = 0.05
    depth_prior: float = 16.0
    max_depth_ratio: float = 2.0
    iterations: int = 5
    orient: bool = True
    rotation_prior: float = 1.0
    max_turn_deg: float = 60.0

    def __post_init__(self):
        if not (self.min_keypoints >= 2 and self.robust_share > 0 and self.depth_prior >= 0
                and self.max_depth_ratio > 1 and self.iterations >= 1 and self.rotation_prior >= 0
                and 0 < self.max_turn_deg <= 180):
            raise InputError(f"unusable keypoint placement settings: {self}")


class KeypointPlacement:
    """Moves placed meshes onto their keypoints. landmarks: (33, V) the mesh's pose landmarks as a regressor of its
    vertices (`body.pose_landmarks`), in the keypoints' order."""

    def __init__(self, landmarks: np.ndarray, settings: PlacementSettings | None = None):
        self.landmarks = np.asarray(landmarks, dtype=np.float64)
        if self.landmarks.ndim != 2:
            raise InputError(f"the pose landmarks must be a (K, V) regressor, found shape {self.landmarks.shape}")
        self.settings = settings or PlacementSettings()

    def place(self, people: list[PersonMesh], keypoints: list[BodyKeypoints | None], intrinsics,
              image_size: tuple[int, int]) -> list[PersonMesh]:
        """Each person moved onto its keypoints where the fit is accepted, else as it was."""
        return [self.place_one(person, points, intrinsics, image_size)
                for person, points in zip(people, keypoints, strict=True)]

    def place_one(self, person: PersonMesh, keypoints: BodyKeypoints | None, intrinsics,
                  image_size: tuple[int, int]) -> PersonMesh:
        if not self._applies(person, keypoints):
            return person
        seen = seen_keypoints(keypoints, image_size)
        if seen.sum() < self.settings.min_keypoints:
            return person
        origin = np.asarray(person.translation, dtype=np.float64)
        relative = self.landmarks[seen] @ person.vertices.astype(np.float64) - origin
        target = np.asarray(keypoints.points, dtype=np.float64)[seen]
        intrinsics = np.asarray(intrinsics, dtype=np.float64)
        box_size = float(np.max(person.box[2:]))
        translation = fit_translation(relative, target, intrinsics, origin, box_size, self.settings)
        if translation is None or not self._acceptable(person, origin, translation, np.eye(3)):
            return person
        if self.settings.orient:
            turned = fit_orientation(relative, target, intrinsics, translation, origin, box_size, self.settings)
            if turned is not None and self._acceptable(person, origin, turned[1], turned[0]):
                return moved(person, turned[1], intrinsics, turned[0])
        return moved(person, translation, intrinsics)

    def _applies(self, person: PersonMesh, keypoints: BodyKeypoints | None) -> bool:
        """A placed person with keypoints of the landmarks' set (keypoints of another set are left to the model
        inputs to refuse: this stage only improves on the network's placement)."""
        return (keypoints is not None and person.is_placed and is_pose_keypoint_set(keypoints)
                and len(keypoints.points) == len(self.landmarks) and len(person.vertices) == self.landmarks.shape[1])

    def _acceptable(self, person: PersonMesh, origin: np.ndarray, translation: np.ndarray, turn: np.ndarray) -> bool:
        ratio = translation[2] / origin[2]
        depths = (person.vertices.astype(np.float64) - origin) @ turn[2] + translation[2]
        angle = np.degrees(np.linalg.norm(matrix_to_axis_angle_np(turn)))
        return bool(1 / self.settings.max_depth_ratio <= ratio <= self.settings.max_depth_ratio
                    and np.all(depths > 0) and angle <= self.settings.max_turn_deg)


def fit_translation(relative: np.ndarray, target: np.ndarray, intrinsics: np.ndarray, start: np.ndarray,
                    box_size: float, settings: PlacementSettings) -> np.ndarray | None:
    """(3,) the translation projecting the points `relative` (K, 3) onto `target` (K, 2) pixels, from `start`
    (the network's); None when the solution is not finite or puts a point on or behind the camera plane."""
    focal, centre = intrinsics[[0, 1], [0, 1]], intrinsics[:2, 2]
    offsets = target - centre  # (K, 2)
    # rows: fx Tx - (u - cx) Tz = (u - cx) Z - fx X, and the same in y
    matrix = np.zeros((len(relative), 2, 3))
    matrix[:, 0, 0], matrix[:, 1, 1] = focal[0], focal[1]
    matrix[:, :, 2] = -offsets
    values = offsets * relative[:, 2:3] - focal * relative[:, :2]
    # a relative depth change d moves a keypoint by about d times its distance from the keypoints' centre
    prior_scale = np.sqrt(settings.depth_prior) * keypoint_spread(target) / start[2]
    translation, weights = start.copy(), np.ones(len(relative))
    for _ in range(settings.iterations):
        depth = relative[:, 2] + translation[2]
        if not np.all(depth > 0):
            return None
        scale = (np.sqrt(weights) / depth)[:, None, None]
        rows = np.concatenate([(matrix * scale).reshape(-1, 3), [[0.0, 0.0, prior_scale]]])
        rhs = np.concatenate([(values * scale[..., 0]).reshape(-1), [prior_scale * start[2]]])
        translation = np.linalg.lstsq(rows, rhs, rcond=None)[0]
        if not np.all(np.isfinite(translation)):
            return None
        weights = _robust_weights(relative + translation, target, intrinsics, settings.robust_share * box_size)
    if not np.all(relative[:, 2] + translation[2] > 0):
        return None
    return translation


def fit_orientation(relative: np.ndarray, target: np.ndarray, intrinsics: np.ndarray, start: np.ndarray,
                    network_translation: np.ndarray, box_size: float, settings: PlacementSettings
                    ) -> tuple[np.ndarray, np.ndarray] | None:
    """(turn (3, 3), translation (3,)): the rotation about the origin and the translation projecting `relative`
    (K, 3) onto `target` (K, 2), by Gauss-Newton from no turn and `start`; the depth prior pulls towards
    `network_translation`'s depth. None when a step is not finite or puts a point on or behind the camera plane."""
    focal, centre = intrinsics[[0, 1], [0, 1]], intrinsics[:2, 2]
    spread = keypoint_spread(target)
    depth_scale = np.sqrt(settings.depth_prior) * spread / network_translation[2]
    rotation_scale = np.sqrt(settings.rotation_prior) * spread
    prior_rows = np.zeros((4, 6))
    prior_rows[:3, :3] = rotation_scale * np.eye(3)
    prior_rows[3, 5] = depth_scale
    turn, translation = np.eye(3), np.asarray(start, dtype=np.float64).copy()
    for _ in range(settings.iterations):
        turned = relative @ turn.T
        points = turned + translation
        if not np.all(points[:, 2] > 0):
            return None
        residual = focal * points[:, :2] / points[:, 2:3] + centre - target  # (K, 2) pixels
        weights = np.sqrt(_cauchy_weights(np.linalg.norm(residual, axis=1), settings.robust_share * box_size))
        by_point = _projection_jacobian(points, focal)  # (K, 2, 3)
        # a small turn w moves a point p by w x p, i.e. by -[p]x w
        jacobian = np.concatenate([-by_point @ cross_matrices(turned), by_point], axis=2) * weights[:, None, None]
        rows = np.concatenate([jacobian.reshape(-1, 6), prior_rows])
        rhs = np.concatenate([-(residual * weights[:, None]).reshape(-1),
                              -rotation_scale * matrix_to_axis_angle_np(turn),
                              [-depth_scale * (translation[2] - network_translation[2])]])
        step = np.linalg.lstsq(rows, rhs, rcond=None)[0]
        if not np.all(np.isfinite(step)):
            return None
        turn = axis_angle_to_matrix_np(step[:3]) @ turn
        translation = translation + step[3:]
        if np.abs(step).max() < CONVERGED:
            break
    if not np.all(relative @ turn[2] + translation[2] > 0):
        return None
    return turn, translation


def _projection_jacobian(points: np.ndarray, focal: np.ndarray) -> np.ndarray:
    """(K, 2, 3) derivative of the pinhole projection of each camera-frame point (K, 3)."""
    jacobian = np.zeros((len(points), 2, 3))
    depth = points[:, 2]
    jacobian[:, 0, 0], jacobian[:, 1, 1] = focal[0] / depth, focal[1] / depth
    jacobian[:, :, 2] = -focal * points[:, :2] / depth[:, None] ** 2
    return jacobian


def keypoint_spread(target: np.ndarray) -> float:
    """RMS distance (pixels) of the keypoints (K, 2) from their centre: how far a relative depth change, or a turn,
    moves them, which scales both fits' priors into pixels."""
    return float(np.sqrt(np.mean(np.sum((target - target.mean(axis=0)) ** 2, axis=1))))


def _cauchy_weights(residual: np.ndarray, scale: float) -> np.ndarray:
    """1 / (1 + (residual / scale)^2): a keypoint far off loses its pull altogether (a Huber weight would keep a
    constant pull, and a few wild keypoints move the depth); 0 for a non-finite residual."""
    return np.nan_to_num(1.0 / (1.0 + (residual / scale) ** 2), nan=0.0)


def _robust_weights(points: np.ndarray, target: np.ndarray, intrinsics: np.ndarray, scale: float) -> np.ndarray:
    """`_cauchy_weights` of the points' reprojection residuals."""
    return _cauchy_weights(np.linalg.norm(project_points(points, intrinsics) - target, axis=1), scale)


def moved(person: PersonMesh, translation: np.ndarray, intrinsics, turn: np.ndarray | None = None) -> PersonMesh:
    """The person with its mesh and joints turned by `turn` (3, 3; default none) about its origin and moved to
    `translation`, its rotation turned with them, and its 2D points projected again."""
    translation = np.asarray(translation, dtype=np.float64)
    turn = np.eye(3) if turn is None else np.asarray(turn, dtype=np.float64)

    def placed(points: np.ndarray) -> np.ndarray:
        return ((points.astype(np.float64) - person.translation) @ turn.T + translation).astype(np.float32)

    vertices = placed(person.vertices)
    joints = None if person.joints is None else placed(person.joints)
    return replace(
        person, vertices=vertices, joints=joints, translation=translation, rotation=turn @ person.rotation,
        vertices_2d=project_points(vertices.astype(np.float64), intrinsics).astype(np.float32),
        joints_2d=None if joints is None else project_points(joints.astype(np.float64), intrinsics).astype(np.float32))

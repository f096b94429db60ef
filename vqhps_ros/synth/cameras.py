"""Random pinhole cameras and their placement in a synthetic room.

World frame: y up, floor at y = 0, metres; the camera looks roughly along +z. Camera frame: OpenCV (x right, y down,
z forward), `x_camera = rotation @ x_world + translation`. Intrinsics follow `vqhps_ros.hps.camera` (pixel centres
at integer coordinates).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError

WORLD_UP = np.array([0.0, 1.0, 0.0])


@dataclass(frozen=True)
class Camera:
    """intrinsics (3, 3) pixels; rotation (3, 3) and translation (3,) world -> camera; image_size (H, W)."""

    intrinsics: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    image_size: tuple[int, int]

    @property
    def position(self) -> np.ndarray:
        """(3,) camera centre in the world."""
        return -self.rotation.T @ self.translation

    def world_to_camera(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) world points -> (..., 3) camera-frame points."""
        return np.asarray(points) @ self.rotation.T + self.translation

    def floor_homography(self) -> np.ndarray:
        """(3, 3) map of floor points (X, Z, 1) (world metres on y = 0) -> homogeneous image pixels."""
        return self.intrinsics @ np.column_stack([self.rotation[:, 0], self.rotation[:, 2], self.translation])


def intrinsics_from_fov(image_size: tuple[int, int], horizontal_fov_deg: float,
                        principal_offset: tuple[float, float] = (0.0, 0.0), aspect: float = 1.0) -> np.ndarray:
    """(3, 3) K of an image (H, W) with this horizontal field of view; principal point = centre + offset (pixels)."""
    height, width = image_size
    if not 1.0 < horizontal_fov_deg < 179.0:
        raise InputError(f"expected a horizontal field of view in (1, 179) degrees, found {horizontal_fov_deg}")
    focal = (width / 2.0) / np.tan(np.deg2rad(horizontal_fov_deg) / 2.0)
    return np.array([[focal, 0.0, (width - 1) / 2.0 + principal_offset[0]],
                     [0.0, focal * aspect, (height - 1) / 2.0 + principal_offset[1]],
                     [0.0, 0.0, 1.0]])


def look_at(position, target, roll_rad: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """World -> camera rotation (3, 3) and translation (3,) of a camera at `position` looking at `target`."""
    position, target = np.asarray(position, dtype=np.float64), np.asarray(target, dtype=np.float64)
    forward = target - position
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, WORLD_UP)
    if np.linalg.norm(right) < 1e-6:
        raise InputError("the camera cannot look straight up or down (its roll would be undefined)")
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    rotation = np.stack([right, down, forward])  # rows: the camera axes in world coordinates
    cos, sin = np.cos(roll_rad), np.sin(roll_rad)
    rotation = np.array([[cos, -sin, 0.0], [sin, cos, 0.0], [0.0, 0.0, 1.0]]) @ rotation
    return rotation, -rotation @ position


@dataclass(frozen=True)
class CameraRanges:
    """Ranges of the random cameras: horizontal field of view (degrees), camera height (m), distance to the
    point looked at (m), height of that point (m), roll (degrees), principal point offset (fraction of the size)."""

    fov_deg: tuple[float, float] = (45.0, 75.0)
    height_m: tuple[float, float] = (0.6, 1.9)
    target_distance_m: tuple[float, float] = (3.0, 6.0)
    target_height_m: tuple[float, float] = (0.7, 1.2)
    roll_deg: float = 3.0
    principal_offset: float = 0.02


def sample_camera(rng: np.random.Generator, image_size: tuple[int, int],
                  ranges: CameraRanges = CameraRanges()) -> Camera:
    """A random camera at the world origin's vertical, looking along +z at a point in the room."""
    height, width = image_size
    offset = rng.uniform(-ranges.principal_offset, ranges.principal_offset, size=2) * np.array([width, height])
    intrinsics = intrinsics_from_fov(image_size, rng.uniform(*ranges.fov_deg), (offset[0], offset[1]))
    position = np.array([0.0, rng.uniform(*ranges.height_m), 0.0])
    target = np.array([0.0, rng.uniform(*ranges.target_height_m), rng.uniform(*ranges.target_distance_m)])
    rotation, translation = look_at(position, target, np.deg2rad(rng.uniform(-ranges.roll_deg, ranges.roll_deg)))
    return Camera(intrinsics, rotation, translation, (height, width))


def horizontal_half_fov(camera: Camera) -> float:
    """Half the horizontal field of view in radians."""
    width = camera.image_size[1]
    return float(np.arctan2(width / 2.0, camera.intrinsics[0, 0]))

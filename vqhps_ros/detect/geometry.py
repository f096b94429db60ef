"""Regions of interest: the rotated squares the networks look at, and the maps between them and the image.

Pixels: OpenCV's convention (pixel (i, j) has its centre at x = j, y = i), x right, y down. A `Roi` is a square of
side `size` pixels centred at `center`, turned by `rotation` radians (positive turns the square's x axis from the
image's x axis towards its y axis, i.e. clockwise on screen; 0 = an upright person). It is mediapipe's
NormalizedRect, in pixels.

A network input of S x S pixels covers the ROI corner to corner, as mediapipe's ImageToTensorCalculator does: tensor
point (u, v) is the image point

    center + R(rotation) @ ((u / S - 1/2) * size, (v / S - 1/2) * size)

and pixel (u, v) of the tensor samples the image there (bilinear). The detector sees the whole image letterboxed
into its square (`full_image_roi`), the landmark model a person's ROI.

ROI from two alignment points (mediapipe's AlignmentPointsRectsCalculator + RectTransformationCalculator as the pose
graphs configure them): centre = the first point, side = 2 |second - first| * 1.25, and the rotation that turns the
first -> second vector to point up (target angle 90 degrees): rotation = pi/2 - atan2(-(y1 - y0), x1 - x0), wrapped
into [-pi, pi).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

ROI_SCALE = 1.25  # RectTransformationCalculator scale_x = scale_y in mediapipe's pose graphs
ROTATION_TARGET = math.pi / 2  # rotation_vector_target_angle_degrees: 90


@dataclass(frozen=True)
class Roi:
    """A rotated square in image pixels (see the module docstring)."""

    center: tuple[float, float]  # x, y pixels
    size: float  # side, pixels
    rotation: float = 0.0  # radians, clockwise on screen

    def tensor_to_image(self, tensor_size: int) -> np.ndarray:
        """(2, 3) affine map from tensor pixels (u, v, 1) to image pixels."""
        cos, sin = math.cos(self.rotation), math.sin(self.rotation)
        step = self.size / tensor_size
        half = self.size / 2.0
        x, y = self.center
        return np.array([[cos * step, -sin * step, x - cos * half + sin * half],
                         [sin * step, cos * step, y - sin * half - cos * half]])

    def corners(self) -> np.ndarray:
        """(4, 2) image pixels of the square's corners: top-left, top-right, bottom-right, bottom-left of the ROI."""
        unit = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
        return apply_affine(self.tensor_to_image(1), unit)

    def is_usable(self) -> bool:
        return bool(np.all(np.isfinite(self.center)) and math.isfinite(self.size) and self.size >= 1.0
                    and math.isfinite(self.rotation))


def apply_affine(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(N, 2) points mapped by a (2, 3) affine matrix."""
    points = np.asarray(points, dtype=np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def normalize_radians(angle: float) -> float:
    """The angle wrapped into [-pi, pi)."""
    return angle - 2.0 * math.pi * math.floor((angle + math.pi) / (2.0 * math.pi))


def full_image_roi(image_size: tuple[int, int]) -> Roi:
    """The square around the whole (height, width) image: letterboxing (the detector's input). Its centre is
    mediapipe's (0.5, 0.5) of the image, (W/2, H/2) in pixels."""
    height, width = image_size
    return Roi((width / 2.0, height / 2.0), float(max(width, height)), 0.0)


def zoom_tiles(image_size: tuple[int, int], grid: int, overlap: float = 0.125) -> list[Roi]:
    """`grid` x `grid` overlapping square tiles over the image (none for grid < 2), row by row: the detector sees
    people in them `grid` times larger than in the letterboxed frame. Side: the longer image side / grid, plus
    `overlap`; centres evenly spaced so the tiles reach the image's borders."""
    if grid < 2:
        return []
    height, width = image_size
    side = max(width, height) / grid * (1.0 + overlap)

    def centers(length: int) -> np.ndarray:
        if length <= side:
            return np.full(grid, length / 2.0)
        return np.linspace(side / 2.0, length - side / 2.0, grid)

    return [Roi((float(x), float(y)), side, 0.0) for y in centers(height) for x in centers(width)]


def roi_from_alignment_points(center_point, scale_point, scale: float = ROI_SCALE) -> Roi:
    """The ROI of a person from the detector's (or the landmark model's) two alignment points, in image pixels:
    the body centre (mid-hip) and a point whose distance from it is the radius of the body's circle."""
    (x0, y0), (x1, y1) = np.asarray(center_point, float), np.asarray(scale_point, float)
    radius = math.hypot(x1 - x0, y1 - y0)
    rotation = normalize_radians(ROTATION_TARGET - math.atan2(-(y1 - y0), x1 - x0))
    return Roi((float(x0), float(y0)), 2.0 * radius * scale, rotation)


def crop_roi(image: np.ndarray, roi: Roi, tensor_size: int, border: str = "replicate") -> np.ndarray:
    """The S x S x C crop of `image` that the ROI covers (bilinear). border: "replicate" (the landmark model's
    input, mediapipe's default) or "zero" (the detector's letterbox, BORDER_ZERO)."""
    border_mode = cv2.BORDER_REPLICATE if border == "replicate" else cv2.BORDER_CONSTANT
    return cv2.warpAffine(image, roi.tensor_to_image(tensor_size), (tensor_size, tensor_size),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=border_mode, borderValue=0)


def box_of_points(points: np.ndarray) -> np.ndarray:
    """(4,) x, y, w, h of the bounds of (N, 2) points."""
    low, high = points.min(axis=0), points.max(axis=0)
    return np.array([low[0], low[1], high[0] - low[0], high[1] - low[1]], dtype=np.float64)


def clip_box(box: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """The part of an (x, y, w, h) box inside the image (width or height 0 when outside)."""
    height, width = image_size
    x0, y0 = np.clip(box[0], 0, width), np.clip(box[1], 0, height)
    x1, y1 = np.clip(box[0] + box[2], 0, width), np.clip(box[1] + box[3], 0, height)
    return np.array([x0, y0, x1 - x0, y1 - y0], dtype=np.float64)

"""Humans drawn over their image, for a person to look at: shaded meshes, boxes, ids, and the keypoints the
built-in detector found (its limbs as thin lines, each seen keypoint as a dot).

Meshes are rendered with the package's torch rasteriser (`synth.render_meshes`, no OpenGL), so overlays look the
same in CI, on a laptop and on a robot.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from .humans import POSE_LANDMARK_BONES, Human
from .io.messages import track_color

MESH_OPACITY = 0.6
SEEN = 0.5  # keypoint visibility from which it is drawn


def draw_humans(image: np.ndarray, humans: list[Human], intrinsics: np.ndarray, faces: np.ndarray | None
                ) -> np.ndarray:
    """image: H x W x 3 uint8 RGB -> a copy with each human's mesh blended in, its box, its id and its keypoints."""
    canvas = _blend_meshes(image, humans, intrinsics, faces)
    for human in humans:
        color = tuple(int(255 * c) for c in track_color(human.id))
        if human.keypoints is not None:
            _draw_keypoints(canvas, human.keypoints.points, human.keypoints.visibility, color)
        x, y, w, h = np.round(human.box).astype(int)
        cv2.rectangle(canvas, (x, y), (x + w, y + h), color, 1)
        cv2.putText(canvas, human.id, (x + 2, max(y - 4, 12)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, color, 1,
                    cv2.LINE_AA)
    return canvas


def _draw_keypoints(canvas: np.ndarray, points: np.ndarray, visibility: np.ndarray, color) -> None:
    seen = (np.asarray(visibility) >= SEEN) & np.isfinite(points).all(axis=1)
    pixels = np.round(np.asarray(points)).astype(int)
    for start, end in POSE_LANDMARK_BONES:
        if seen[start] and seen[end]:
            cv2.line(canvas, tuple(pixels[start]), tuple(pixels[end]), color, 1, cv2.LINE_AA)
    for index in np.flatnonzero(seen):
        cv2.circle(canvas, tuple(pixels[index]), 3, (255, 255, 255), -1, cv2.LINE_AA)
        cv2.circle(canvas, tuple(pixels[index]), 2, color, -1, cv2.LINE_AA)


def _blend_meshes(image: np.ndarray, humans: list[Human], intrinsics, faces) -> np.ndarray:
    canvas = np.ascontiguousarray(image).copy()
    if faces is None or len(faces) == 0 or not humans:
        return canvas
    from .synth import render_meshes

    faces_tensor = torch.from_numpy(np.asarray(faces, dtype=np.int64))
    meshes = [(torch.from_numpy(human.vertices.astype(np.float64)), faces_tensor) for human in humans]
    colors = [np.asarray(track_color(human.id)) for human in humans]
    rendering = render_meshes(meshes, intrinsics, image.shape[:2], colors=colors, background=image)
    covered = rendering.masks.any(dim=0).cpu().numpy()[..., None]
    blended = ((1 - MESH_OPACITY) * canvas + MESH_OPACITY * rendering.rgb_uint8()).astype(np.uint8)
    return np.where(covered, blended, canvas)


def encode_rgb(image: np.ndarray, suffix: str = ".jpg") -> bytes:
    """RGB uint8 -> encoded file bytes (".jpg" or ".png")."""
    ok, encoded = cv2.imencode(suffix, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError(f"OpenCV could not encode a {image.shape} image as {suffix}")
    return encoded.tobytes()

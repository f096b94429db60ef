"""A personalised texture per track: one colour per mesh vertex, learnt over frames from the image.

A vertex takes a colour sample from a frame only where it is seen (rendered with every person of the frame, so
others hide it: `renderings.visible_vertices`) and faces the camera (`renderings.facing_camera` at least
`min_facing`: grazing views smear the background into the colour). The sample is the image's colour at the
projected vertex. Each vertex keeps a weighted mean; the weight grows with the cosine of each accepted sample and
stops at `max_weight`, so the texture keeps adapting (lighting changes, a jacket taken off) at a bounded rate.

Occlusion by what has no mesh (a table, a person the detector missed) must not overwrite a learnt texture: once a
vertex's weight reaches `trusted_weight`, a sample farther than `outlier_distance` (RGB, 0-1 per channel) from its
colour is rejected, and a frame in which most of the trusted vertices it sees are rejected is skipped as a whole
(something covers the person) and counted. The texture is reset when its track ends.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import InputError

UNTEXTURED = 0.5  # the grey a vertex without colour is rendered in (the displacement network reads it as none)


@dataclass(frozen=True)
class TextureSettings:
    min_facing: float = 0.3  # cosine between vertex normal and view direction
    max_weight: float = 8.0  # in units of a frontal sample
    trusted_weight: float = 2.0
    outlier_distance: float = 0.25  # RGB distance, channels in [0, 1]
    max_rejected_share: float = 0.5  # of the trusted vertices a frame sees, beyond which the frame is skipped

    def __post_init__(self):
        weights_ordered = 0 < self.trusted_weight <= self.max_weight
        if not (-1.0 <= self.min_facing < 1.0) or not weights_ordered:
            raise InputError(f"invalid texture settings {self}: need -1 <= min_facing < 1 and "
                             "0 < trusted_weight <= max_weight")


class VertexTexture:
    """The texture of one track's mesh of `num_vertices` vertices (see the module docstring)."""

    def __init__(self, num_vertices: int, settings: TextureSettings | None = None):
        self.settings = settings or TextureSettings()
        self.colours = np.zeros((num_vertices, 3), dtype=np.float32)
        self.weights = np.zeros(num_vertices, dtype=np.float32)
        self.skipped_frames = 0

    @property
    def coverage(self) -> float:
        """Share of the vertices that have a colour."""
        return float((self.weights > 0).mean())

    def rendering_colours(self) -> np.ndarray:
        """(V, 3) float32 colours to render the mesh with: the learnt ones, UNTEXTURED grey where there are none."""
        return np.where(self.weights[:, None] > 0, self.colours, UNTEXTURED).astype(np.float32)

    def reset(self) -> None:
        self.colours[:] = 0.0
        self.weights[:] = 0.0

    def update(self, image: np.ndarray, vertices_2d: np.ndarray, visible: np.ndarray, facing: np.ndarray) -> int:
        """Learn from one frame: image (H, W, 3) uint8 RGB, the vertices' pixels (V, 2), visibility (V,) bool and
        facing cosines (V,). Returns how many vertices took the frame's colour (0 when the frame was skipped)."""
        samples, usable = self._samples(image, vertices_2d, visible, facing)
        trusted = usable & (self.weights >= self.settings.trusted_weight)
        far = np.linalg.norm(samples - self.colours, axis=1) > self.settings.outlier_distance
        if trusted.any() and (far & trusted).sum() > self.settings.max_rejected_share * trusted.sum():
            self.skipped_frames += 1
            return 0
        accepted = usable & ~(far & trusted)
        gain = np.clip(facing[accepted], 0.0, 1.0).astype(np.float32)
        total = np.minimum(self.weights[accepted] + gain, self.settings.max_weight)
        share = (gain / np.maximum(total, 1e-6))[:, None]
        self.colours[accepted] = (1.0 - share) * self.colours[accepted] + share * samples[accepted]
        self.weights[accepted] = total
        return int(accepted.sum())

    def _samples(self, image, vertices_2d, visible, facing) -> tuple[np.ndarray, np.ndarray]:
        count = len(self.weights)
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise InputError(f"expected an H x W x 3 uint8 RGB image, found {image.shape} {image.dtype}")
        points = np.asarray(vertices_2d, dtype=np.float32)
        if points.shape != (count, 2) or np.shape(visible) != (count,) or np.shape(facing) != (count,):
            raise InputError(f"expected {count} vertex pixels (V, 2), visibilities and facings, found "
                             f"{points.shape}, {np.shape(visible)}, {np.shape(facing)}")
        height, width = image.shape[:2]
        inside = (np.isfinite(points).all(axis=1) & (points[:, 0] >= 0) & (points[:, 0] <= width - 1)
                  & (points[:, 1] >= 0) & (points[:, 1] <= height - 1))
        usable = inside & np.asarray(visible, dtype=bool) & (np.asarray(facing) >= self.settings.min_facing)
        where = np.where(usable[:, None], points, 0.0).astype(np.float32)
        samples = cv2.remap(image, where[:, None, 0], where[:, None, 1], cv2.INTER_LINEAR)[:, 0]
        return samples.astype(np.float32) / 255.0, usable

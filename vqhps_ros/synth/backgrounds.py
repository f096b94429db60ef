"""Procedural backgrounds and lighting: a floor in perspective, a back wall with furniture-like blocks, lights.

The floor is a texture in floor coordinates (metres) warped into the image by the camera's floor homography, so it
has the right perspective; it ends at a back wall `wall_distance` metres ahead. The wall is painted in image space:
a vertical gradient, low-frequency noise, and random rectangles (doors, shelves, windows). Lighting is a random
directional light for the people (camera frame), an ambient level and a colour tint applied to the whole frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .appearance import random_color
from .cameras import Camera

FLOOR_TEXTURE_PIXELS = 512
FLOOR_TEXTURE_METRES = 16.0


@dataclass(frozen=True)
class Lighting:
    """direction (3,) unit camera-frame vector towards the light; ambient and diffuse shading weights; tint (3,)
    RGB gains applied to the whole frame."""

    direction: np.ndarray
    ambient: float
    diffuse: float
    tint: np.ndarray


def sample_lighting(rng: np.random.Generator) -> Lighting:
    """A light above the scene, from somewhere in front of the people (behind or beside the camera)."""
    elevation = rng.uniform(np.deg2rad(20), np.deg2rad(70))
    azimuth = rng.uniform(-np.deg2rad(70), np.deg2rad(70))
    direction = np.array([np.sin(azimuth) * np.cos(elevation), -np.sin(elevation),
                          -np.cos(azimuth) * np.cos(elevation)])
    warmth = rng.uniform(-0.08, 0.08)
    return Lighting(direction, float(rng.uniform(0.25, 0.5)), float(rng.uniform(0.45, 0.8)),
                    np.array([1.0 + warmth, 1.0, 1.0 - warmth]))


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    """(H, W) float32 noise in [-1, 1], smooth over about H / cells pixels (bicubic upsampling of a coarse grid)."""
    coarse = rng.uniform(-1.0, 1.0, size=(cells + 1, cells + 1)).astype(np.float32)
    return np.clip(cv2.resize(coarse, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC), -1.0, 1.0)


def floor_texture(rng: np.random.Generator) -> np.ndarray:
    """(S, S, 3) float32 RGB texture covering FLOOR_TEXTURE_METRES: tiles, planks or carpet."""
    size = FLOOR_TEXTURE_PIXELS
    base, other = random_color(rng).astype(np.float32), random_color(rng).astype(np.float32)
    coordinates = np.arange(size, dtype=np.float32) * np.float32(FLOOR_TEXTURE_METRES / size)
    x, z = np.meshgrid(coordinates, coordinates)
    kind = rng.integers(3)
    if kind == 0:  # square tiles with grout lines
        tile = rng.uniform(0.3, 1.0)
        checker = ((np.floor(x / tile) + np.floor(z / tile)) % 2)[..., None]
        texture = base * (1 - checker) + (0.7 * base + 0.3 * other) * checker
        grout = (np.minimum(x % tile, z % tile) < 0.012)[..., None]
        texture = np.where(grout, 0.6 * base, texture)
    elif kind == 1:  # planks along z
        width = rng.uniform(0.1, 0.25)
        plank = np.floor(x / width)
        shade = 0.85 + 0.3 * ((plank * 0.618) % 1.0)
        texture = base[None, None] * shade[..., None]
        texture = np.where((x % width < 0.006)[..., None], 0.5 * base, texture)
    else:  # carpet: smooth noise
        texture = np.broadcast_to(base, (size, size, 3)).copy()
    texture = texture * (1.0 + 0.12 * smooth_noise(rng, (size, size), 24))[..., None]
    return np.clip(texture, 0, 1).astype(np.float32)


def wall_image(rng: np.random.Generator, image_size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) float32 wall: a vertical gradient, soft noise and a few furniture-like rectangles."""
    height, width = image_size
    top, bottom = random_color(rng), random_color(rng)
    ramp = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    wall = (top * (1 - ramp) + bottom * ramp) * np.ones((1, width, 1), dtype=np.float32)
    wall *= (1.0 + 0.1 * smooth_noise(rng, image_size, 6))[..., None]
    for _ in range(rng.integers(1, 7)):
        x0, y0 = rng.uniform(-0.1, 1.0) * width, rng.uniform(-0.1, 0.9) * height
        w, h = rng.uniform(0.05, 0.4) * width, rng.uniform(0.05, 0.6) * height
        color = tuple(float(c) for c in random_color(rng))
        cv2.rectangle(wall, (int(x0), int(y0)), (int(x0 + w), int(y0 + h)), color, thickness=-1)
        if rng.uniform() < 0.5:  # a frame or shelf edge
            edge = tuple(float(c) * 0.6 for c in color)
            cv2.rectangle(wall, (int(x0), int(y0)), (int(x0 + w), int(y0 + h)), edge, thickness=int(rng.integers(2, 6)))
    return np.clip(wall, 0, 1)


def room_background(rng: np.random.Generator, camera: Camera, wall_distance: float | None = None) -> np.ndarray:
    """(H, W, 3) float32 RGB in [0, 1]: the floor up to a back wall `wall_distance` metres ahead (random: 6-14 m)."""
    height, width = camera.image_size
    wall_distance = wall_distance if wall_distance is not None else float(rng.uniform(6.0, 14.0))
    ahead = floor_depth_map(camera)
    floor = ahead < wall_distance

    texture = floor_texture(rng)
    pixels_per_metre = FLOOR_TEXTURE_PIXELS / FLOOR_TEXTURE_METRES
    shift = np.array([[pixels_per_metre, 0, FLOOR_TEXTURE_PIXELS / 2], [0, pixels_per_metre, 0], [0, 0, 1]])
    image_from_texture = camera.floor_homography() @ np.linalg.inv(shift)  # texture (col, row) -> image pixel
    floor_image = cv2.warpPerspective(texture, image_from_texture, (width, height), flags=cv2.INTER_LINEAR,
                                      borderMode=cv2.BORDER_REFLECT)
    shade = np.clip(1.1 - 0.04 * np.where(floor, ahead, 0.0), 0.6, 1.1)[..., None]  # far floor is darker
    return np.where(floor[..., None], floor_image * shade, wall_image(rng, (height, width))).astype(np.float32)


def floor_depth_map(camera: Camera) -> np.ndarray:
    """(H, W) float32: how far ahead (world z from the camera) each pixel's ray meets the floor; inf if never."""
    height, width = camera.image_size
    # The world direction of the ray through (u, v) is linear in u and v: R^T K^-1 (u, v, 1).
    coefficients = (camera.rotation.T @ np.linalg.inv(camera.intrinsics)).astype(np.float32)  # rows: x, y, z
    u = np.arange(width, dtype=np.float32)[None, :]
    v = np.arange(height, dtype=np.float32)[:, None]
    down = coefficients[1, 0] * u + coefficients[1, 1] * v + coefficients[1, 2]
    forward = coefficients[2, 0] * u + coefficients[2, 1] * v + coefficients[2, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        reach = np.float32(camera.position[1]) / -down  # ray length factor to the floor
        ahead = np.where(down < -1e-6, reach * forward, np.inf)
    return np.where(ahead > 0, ahead, np.inf).astype(np.float32)


def finish_frame(rng: np.random.Generator, image: np.ndarray, lighting: Lighting) -> np.ndarray:
    """Float RGB (H, W, 3) in [0, 1] -> uint8: tint, exposure, slight blur (anti-aliasing) and sensor noise."""
    gain = (lighting.tint * rng.uniform(0.85, 1.15)).astype(np.float32)
    image = cv2.GaussianBlur(image.astype(np.float32) * gain, (0, 0), rng.uniform(0.3, 0.9))
    noise = rng.standard_normal(size=image.shape, dtype=np.float32) * np.float32(rng.uniform(0.0, 0.015))
    return (np.clip(image + noise, 0, 1) * 255 + 0.5).astype(np.uint8)

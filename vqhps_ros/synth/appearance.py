"""Random body shapes and clothing-like per-vertex colours for synthetic people.

Shapes: the free body's betas are a PCA of Anny phenotypes scaled to unit variance, so N(0, I) spans the sampled
adult population; draws are clipped to +-`BETA_LIMIT` to stay inside it.

Colours: every vertex gets a blend of region colours weighted by its skinning weights, so region borders are
soft. Regions follow the joints: skin (head, and hands and forearms unless the sleeves are long), top (torso,
collars, upper arms), bottom (pelvis, thighs, and shanks unless the legs are bare), shoes (ankles and feet).
Tops get horizontal stripes or a plain colour; a little per-vertex noise breaks flat areas.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..body.joints import SMPL_24_JOINT_NAMES

BETA_LIMIT = 2.2

SKIN_TONES = np.array([
    [0.98, 0.84, 0.74], [0.93, 0.75, 0.62], [0.84, 0.64, 0.50], [0.71, 0.51, 0.38], [0.55, 0.38, 0.27],
    [0.40, 0.27, 0.19], [0.30, 0.20, 0.14],
])
"""Linear-ish RGB of a range of skin tones, light to dark."""

_TOP_JOINTS = ("spine1", "spine2", "spine3", "neck", "left_collar", "right_collar", "left_shoulder",
               "right_shoulder")
_BOTTOM_JOINTS = ("pelvis", "left_hip", "right_hip")


def sample_betas(rng: np.random.Generator, count: int, num_betas: int = 10, scale: float = 1.0) -> np.ndarray:
    """(count, num_betas) float32 shape coefficients ~ N(0, scale^2), clipped to +-BETA_LIMIT."""
    return np.clip(rng.normal(0.0, scale, size=(count, num_betas)), -BETA_LIMIT, BETA_LIMIT).astype(np.float32)


@dataclass(frozen=True)
class Outfit:
    """Colours of one person (RGB in [0, 1]) and garment choices."""

    skin: np.ndarray
    top: np.ndarray
    bottom: np.ndarray
    shoes: np.ndarray
    long_sleeves: bool
    long_legs: bool
    stripe_period_m: float  # 0: a plain top
    stripe_color: np.ndarray


def random_color(rng: np.random.Generator) -> np.ndarray:
    """A clothing colour: random hue, mostly muted, sometimes dark or light."""
    hue = rng.uniform(0, 1)
    saturation = rng.choice([rng.uniform(0.0, 0.15), rng.uniform(0.2, 0.8)])
    value = rng.uniform(0.15, 0.95)
    return _hsv_to_rgb(hue, saturation, value)


def _hsv_to_rgb(hue: float, saturation: float, value: float) -> np.ndarray:
    k = (np.array([5.0, 3.0, 1.0]) + hue * 6.0) % 6.0
    return value - value * saturation * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)


def sample_outfit(rng: np.random.Generator) -> Outfit:
    skin = SKIN_TONES[rng.integers(len(SKIN_TONES))] * rng.uniform(0.92, 1.05)
    striped = rng.uniform() < 0.3
    return Outfit(
        skin=np.clip(skin, 0, 1), top=random_color(rng), bottom=random_color(rng),
        shoes=random_color(rng) * rng.uniform(0.3, 0.8), long_sleeves=bool(rng.uniform() < 0.6),
        long_legs=bool(rng.uniform() < 0.8), stripe_period_m=float(rng.uniform(0.03, 0.12)) if striped else 0.0,
        stripe_color=random_color(rng),
    )


def region_of_joints(outfit: Outfit) -> dict[str, str]:
    """SMPL joint name -> region ("skin", "top", "bottom", "shoes") for this outfit."""
    regions = {name: "skin" for name in SMPL_24_JOINT_NAMES}
    regions.update({name: "top" for name in _TOP_JOINTS})
    regions.update({name: "bottom" for name in _BOTTOM_JOINTS})
    regions.update({f"{side}_{part}": "shoes" for side in ("left", "right") for part in ("ankle", "foot")})
    for side in ("left", "right"):
        if outfit.long_sleeves:
            regions[f"{side}_elbow"] = "top"
        if outfit.long_legs:
            regions[f"{side}_knee"] = "bottom"
    regions["neck"] = "skin"
    return regions


def vertex_colors(outfit: Outfit, skinning_weights: np.ndarray, rest_vertices: np.ndarray,
                  rng: np.random.Generator) -> np.ndarray:
    """(V, 3) per-vertex RGB in [0, 1] from skinning weights (V, 24) and the rest mesh (V, 3) (for the stripes)."""
    regions = region_of_joints(outfit)
    top = np.tile(outfit.top, (len(rest_vertices), 1))
    if outfit.stripe_period_m > 0:
        on_stripe = np.sin(2 * np.pi * rest_vertices[:, 1] / outfit.stripe_period_m) > 0
        top[on_stripe] = outfit.stripe_color
    palette = {"skin": np.broadcast_to(outfit.skin, top.shape), "top": top,
               "bottom": np.broadcast_to(outfit.bottom, top.shape), "shoes": np.broadcast_to(outfit.shoes, top.shape)}
    colors = np.zeros_like(top)
    for joint, name in enumerate(SMPL_24_JOINT_NAMES):
        colors += skinning_weights[:, joint : joint + 1] * palette[regions[name]]
    colors *= rng.uniform(0.93, 1.07, size=(len(colors), 1))  # fabric and skin are never perfectly flat
    return np.clip(colors, 0.0, 1.0)

"""Alignment refinement: the renderings of each person's current mesh and the personalised texture of each track
(the dense displacement network and the optimisation that use them are still to come)."""

from .renderings import PersonRendering, crop_intrinsics, facing_camera, render_in_crop, visible_vertices
from .texture import TextureSettings, VertexTexture

__all__ = [
    "PersonRendering",
    "TextureSettings",
    "VertexTexture",
    "crop_intrinsics",
    "facing_camera",
    "render_in_crop",
    "visible_vertices",
]

"""Alignment refinement: the renderings of each person's current mesh, the personalised texture of each track, and
the optimisation of a person's mesh against 2D targets in a time budget (the dense displacement network that will
give those targets is still to come; the 33 body keypoints give sparse ones)."""

from .optimize import NOT_IMPROVED, REFINED, TOO_FEW_TARGETS, MeshRefiner, PersonState, RefineResult, RefineSettings
from .renderings import PersonRendering, crop_intrinsics, facing_camera, render_in_crop, visible_vertices
from .texture import TextureSettings, VertexTexture

__all__ = [
    "NOT_IMPROVED",
    "REFINED",
    "TOO_FEW_TARGETS",
    "MeshRefiner",
    "PersonState",
    "RefineResult",
    "RefineSettings",
    "PersonRendering",
    "TextureSettings",
    "VertexTexture",
    "crop_intrinsics",
    "facing_camera",
    "render_in_crop",
    "visible_vertices",
]

"""Alignment refinement: the renderings of each person's current mesh, the personalised texture of each track, the
displacement network that finds where the rendering lies in the image (dense 2D targets; the 33 body keypoints give
sparse ones), the optimisation of a person's mesh against 2D targets in a time budget, and the estimator's stage
that runs them per frame."""

from .displacement import (
                           CROP_SIZE,
                           DisplacementNet,
                           image_crop,
                           load_displacement_net,
                           network_input,
                           sample_field,
                           save_displacement_net,
)
from .optimize import NOT_IMPROVED, REFINED, TOO_FEW_TARGETS, MeshRefiner, PersonState, RefineResult, RefineSettings
from .renderings import PersonRendering, crop_intrinsics, facing_camera, render_in_crop, visible_vertices
from .stage import BOTH, DENSE, SIGNALS, SPARSE, AlignmentRefinement, StageSettings
from .texture import TextureSettings, VertexTexture

__all__ = [
    "BOTH",
    "CROP_SIZE",
    "DENSE",
    "SIGNALS",
    "SPARSE",
    "AlignmentRefinement",
    "DisplacementNet",
    "StageSettings",
    "image_crop",
    "load_displacement_net",
    "network_input",
    "sample_field",
    "save_displacement_net",
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

"""The temporal stage: track ids, predicted boxes for missed people, facing continuity, One-Euro filters, token
hysteresis.

Causal (each output depends on the current and past frames only) and cheap (about a millisecond per person on a
CPU). Imports numpy and scipy only. `TemporalTracker` is what the estimator runs when `temporal.enabled` is true.
"""

from .association import MotionModel, assign, association_cost, box_iou_matrix
from .facing import FacingGuard, FacingSettings, depth_reflection
from .filters import (
    BodyFilter,
    OneEuroFilter,
    RotationOneEuroFilter,
    project_to_rotation,
    rotation_exp,
    rotation_log,
    smoothing_factor,
)
from .tokens import TokenHysteresis
from .tracker import TemporalTracker, Track

__all__ = [
    "BodyFilter",
    "FacingGuard",
    "FacingSettings",
    "MotionModel",
    "OneEuroFilter",
    "RotationOneEuroFilter",
    "TemporalTracker",
    "TokenHysteresis",
    "Track",
    "assign",
    "association_cost",
    "box_iou_matrix",
    "depth_reflection",
    "project_to_rotation",
    "rotation_exp",
    "rotation_log",
    "smoothing_factor",
]

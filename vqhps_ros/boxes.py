"""Overlap of (x, y, w, h) pixel boxes, shared by the tracker, the detector and the scoring (numpy only)."""

from __future__ import annotations

import numpy as np


def box_iou_matrix(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """(N, 4) and (M, 4) x, y, w, h boxes -> (N, M) intersection over union (0 for empty boxes)."""
    first = np.asarray(first, dtype=np.float64).reshape(-1, 4)
    second = np.asarray(second, dtype=np.float64).reshape(-1, 4)
    low = np.maximum(first[:, None, :2], second[None, :, :2])
    high = np.minimum(first[:, None, :2] + first[:, None, 2:], second[None, :, :2] + second[None, :, 2:])
    intersection = np.prod(np.clip(high - low, 0.0, None), axis=2)
    areas_first = np.clip(first[:, 2], 0, None) * np.clip(first[:, 3], 0, None)
    areas_second = np.clip(second[:, 2], 0, None) * np.clip(second[:, 3], 0, None)
    union = areas_first[:, None] + areas_second[None, :] - intersection
    return np.divide(intersection, union, out=np.zeros_like(union), where=union > 0)


def box_iou(first: np.ndarray, second: np.ndarray) -> float:
    """Intersection over union of two x, y, w, h boxes (0 when either is empty)."""
    return float(box_iou_matrix(first, second)[0, 0])

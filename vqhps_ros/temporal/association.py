"""Assignment of persons to tracks: the Hungarian algorithm (scipy) on a cost of box overlap and root distance.

Each track predicts where its person is at the frame's stamp with a constant-velocity model (`MotionModel`): its box
in the image and its root (the mesh centre, camera frame). The cost of giving person p to track t is

    cost = iou_weight (1 - IoU(box_t, box_p)) + root_weight min(|root_t - root_p| / root_gate, 1)
           - detection_id_bonus [the upstream tracker gave p the id that t had last]

and a pair is admissible only if IoU >= min_iou and the root distance <= root_gate. Before the network has run,
persons have boxes only and the root term is left out. Inadmissible pairs are never assigned.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..boxes import box_iou_matrix

INADMISSIBLE = 1e6


class MotionModel:
    """A constant-velocity model of a vector on stamps; the velocity is an exponential average of the measured ones.

    smoothing in [0, 1]: weight of the newest velocity (0: the velocity stays zero); reinit_gap_s: after a longer
    gap the velocity restarts at zero (no extrapolation across gaps).
    """

    def __init__(self, value, stamp_ns: int, smoothing: float, reinit_gap_s: float):
        self.value = np.array(value, dtype=np.float64)
        self.velocity = np.zeros_like(self.value)  # per second
        self.stamp_ns = int(stamp_ns)
        self.smoothing = float(smoothing)
        self.reinit_gap_s = float(reinit_gap_s)

    def predict(self, stamp_ns: int) -> np.ndarray:
        dt_s = (int(stamp_ns) - self.stamp_ns) / 1e9
        if dt_s <= 0 or dt_s > self.reinit_gap_s:
            return self.value.copy()
        return self.value + self.velocity * dt_s

    def update(self, value, stamp_ns: int) -> None:
        value = np.asarray(value, dtype=np.float64)
        dt_s = (int(stamp_ns) - self.stamp_ns) / 1e9
        if dt_s > self.reinit_gap_s:
            self.velocity = np.zeros_like(self.value)
        elif dt_s > 0:
            self.velocity = self.velocity + self.smoothing * ((value - self.value) / dt_s - self.velocity)
        self.value = value.copy()
        self.stamp_ns = int(stamp_ns)


def association_cost(track_boxes: np.ndarray, boxes: np.ndarray, settings, track_roots: np.ndarray | None = None,
                     roots: np.ndarray | None = None, same_id: np.ndarray | None = None) -> np.ndarray:
    """(T, P) cost of the module docstring, INADMISSIBLE where a gate refuses the pair.

    track_boxes (T, 4) predicted, boxes (P, 4); track_roots (T, 3) predicted and roots (P, 3), or None (boxes
    only); same_id (T, P) bool: the upstream id of person p is track t's last one. settings: a TemporalConfig.
    """
    overlap = box_iou_matrix(track_boxes, boxes)
    cost = settings.iou_weight * (1.0 - overlap)
    admissible = overlap >= max(settings.min_iou, 1e-9)
    if track_roots is not None and roots is not None:
        distance = np.linalg.norm(np.asarray(track_roots)[:, None, :] - np.asarray(roots)[None, :, :], axis=2)
        cost = cost + settings.root_weight * np.minimum(distance / settings.root_gate, 1.0)
        admissible &= distance <= settings.root_gate
    if same_id is not None and settings.trust_detection_ids:
        cost = cost - settings.detection_id_bonus * same_id
    return np.where(admissible, cost, INADMISSIBLE)


def assign(cost: np.ndarray) -> list[tuple[int, int]]:
    """(row, column) pairs of the least-cost assignment that uses admissible pairs only."""
    cost = np.asarray(cost, dtype=np.float64)
    if cost.size == 0 or not (cost < INADMISSIBLE).any():
        return []
    rows, columns = linear_sum_assignment(cost)
    return [(int(r), int(c)) for r, c in zip(rows, columns, strict=True) if cost[r, c] < INADMISSIBLE]


def box_state(box) -> np.ndarray:
    """x, y, w, h -> the motion model's state: centre x, centre y, width, height."""
    x, y, w, h = np.asarray(box, dtype=np.float64)
    return np.array([x + w / 2, y + h / 2, w, h])


def state_box(state) -> np.ndarray:
    """The motion model's state -> x, y, w, h (sizes kept at least 1 pixel)."""
    cx, cy, w, h = np.asarray(state, dtype=np.float64)
    w, h = max(w, 1.0), max(h, 1.0)
    return np.array([cx - w / 2, cy - h / 2, w, h])

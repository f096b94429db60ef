"""Recall and precision of person boxes against ground truth (the sample bag's `ground_truth.npz`).

A true person counts when it is at least `min_height` pixels tall and at least `min_visible` visible (the issue's
target: 60 px, half visible); smaller or more hidden people are "optional": finding them is no error, missing them
neither. Boxes match one to one, greedily by IoU (highest first) from `min_iou` up. Recall = matched counted people
/ counted people; precision = predicted boxes that match any true person (counted or optional) / predicted boxes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..boxes import box_iou

MIN_IOU = 0.5
MIN_HEIGHT = 60.0
MIN_VISIBLE = 0.5


@dataclass
class BoxCounts:
    counted: int = 0  # true people that must be found
    found: int = 0  # of those, matched by a predicted box
    predicted: int = 0  # predicted boxes
    correct: int = 0  # predicted boxes matching a true person (counted or optional)

    @property
    def recall(self) -> float:
        return self.found / self.counted if self.counted else float("nan")

    @property
    def precision(self) -> float:
        return self.correct / self.predicted if self.predicted else float("nan")

    def add(self, other: BoxCounts) -> None:
        self.counted += other.counted
        self.found += other.found
        self.predicted += other.predicted
        self.correct += other.correct


def match_boxes(predicted: np.ndarray, truth: np.ndarray, min_iou: float = MIN_IOU) -> list[tuple[int, int, float]]:
    """Greedy one-to-one matches (predicted index, true index, IoU) of (P, 4) and (T, 4) x, y, w, h boxes."""
    pairs = [(box_iou(p, t), i, j) for i, p in enumerate(predicted) for j, t in enumerate(truth)]
    matches, used_predicted, used_truth = [], set(), set()
    for iou, i, j in sorted(pairs, reverse=True):
        if iou < min_iou:
            break
        if i not in used_predicted and j not in used_truth:
            matches.append((i, j, iou))
            used_predicted.add(i)
            used_truth.add(j)
    return matches


def frame_counts(predicted: np.ndarray, truth: np.ndarray, counted: np.ndarray, min_iou: float = MIN_IOU) -> BoxCounts:
    """Counts of one frame: predicted (P, 4), truth (T, 4) boxes, counted (T,) bool (which true people count)."""
    predicted = np.asarray(predicted, dtype=np.float64).reshape(-1, 4)
    truth = np.asarray(truth, dtype=np.float64).reshape(-1, 4)
    counted = np.asarray(counted, dtype=bool).reshape(-1)
    matches = match_boxes(predicted, truth, min_iou)
    return BoxCounts(counted=int(counted.sum()), found=sum(1 for _, j, _ in matches if counted[j]),
                     predicted=len(predicted), correct=len(matches))


def counted_people(boxes: np.ndarray, visible_fraction: np.ndarray, min_height: float = MIN_HEIGHT,
                   min_visible: float = MIN_VISIBLE) -> np.ndarray:
    """(T,) bool: the true people a detector must find."""
    return (np.asarray(boxes)[:, 3] >= min_height) & (np.asarray(visible_fraction) >= min_visible)

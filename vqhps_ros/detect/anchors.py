"""The pose detector's SSD anchors, the decoding of its raw outputs, and multi-person weighted non-maximum suppression.

Facts of mediapipe's pose detection graph (`pose_detection_cpu.pbtxt`, SsdAnchorsCalculator and
TensorsToDetectionsCalculator options):

- Anchors: a 224 x 224 input, strides 8, 16, 32, 32, 32 (the three stride-32 layers share one grid), anchor offset
  0.5, fixed anchor size (w = h = 1), one aspect ratio plus the interpolated scale, i.e. two anchors per cell and
  layer: 28*28*2 + 14*14*2 + 7*7*6 = 2254 anchors, each a centre in [0, 1] of the input, row-major per layer.
- Raw boxes (2254, 12): x, y, w, h of the box then x, y of 4 keypoints, in input pixels relative to the anchor
  centre ("reverse output order"): value / 224 * anchor size + anchor centre gives normalised input coordinates.
  Keypoints: 0 = mid-hip centre, 1 = a point at the full-body circle's radius from it (the two alignment points
  of the body ROI), 2 = mid-shoulder centre, 3 = the upper body circle's radius point.
- Scores: logits, clipped to [-100, 100] and passed through a sigmoid; kept from 0.5 up (our default too).
- Non-maximum suppression: IoU above 0.3 merges, "weighted": the kept detection's box and keypoints become the
  score-weighted mean of the detections it suppresses (itself included), its score stays the best one.
  mediapipe's pose pipeline then keeps only the first detection; here every kept one is a person candidate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DETECTOR_INPUT_SIZE = 224
ANCHOR_STRIDES = (8, 16, 32, 32, 32)
ANCHORS_PER_LAYER = 2  # aspect ratio 1.0 and the interpolated scale
NUM_ANCHORS = 2254
NUM_KEYPOINTS = 4
SCORE_CLIP = 100.0
MIN_SCORE = 0.5
NMS_IOU = 0.3


@dataclass(frozen=True)
class RawDetection:
    """One decoded detection, in detector input pixels (0..224)."""

    box: np.ndarray  # (4,) x0, y0, x1, y1
    keypoints: np.ndarray  # (4, 2) x, y (see the module docstring for their meaning)
    score: float  # in [0, 1]


def ssd_anchor_centers(input_size: int = DETECTOR_INPUT_SIZE, strides=ANCHOR_STRIDES,
                       anchors_per_layer: int = ANCHORS_PER_LAYER) -> np.ndarray:
    """(N, 2) anchor centres x, y in [0, 1] of the input, in the network's output order."""
    centers = []
    layer = 0
    while layer < len(strides):
        same = layer
        while same < len(strides) and strides[same] == strides[layer]:
            same += 1
        cells = int(np.ceil(input_size / strides[layer]))
        per_cell = anchors_per_layer * (same - layer)
        rows, columns = np.meshgrid(np.arange(cells), np.arange(cells), indexing="ij")
        grid = np.stack([(columns + 0.5) / cells, (rows + 0.5) / cells], axis=-1).reshape(-1, 1, 2)
        centers.append(np.repeat(grid, per_cell, axis=1).reshape(-1, 2))
        layer = same
    return np.concatenate(centers).astype(np.float64)


def decode_boxes(raw_boxes: np.ndarray, anchor_centers: np.ndarray,
                 input_size: int = DETECTOR_INPUT_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """raw (N, 12) -> boxes (N, 4) x0, y0, x1, y1 and keypoints (N, 4, 2), in input pixels."""
    raw = np.asarray(raw_boxes, dtype=np.float64).reshape(len(anchor_centers), -1)
    anchors_px = anchor_centers * input_size
    center = raw[:, 0:2] + anchors_px
    half = raw[:, 2:4] / 2.0
    boxes = np.concatenate([center - half, center + half], axis=1)
    keypoints = raw[:, 4:4 + 2 * NUM_KEYPOINTS].reshape(-1, NUM_KEYPOINTS, 2) + anchors_px[:, None, :]
    return boxes, keypoints


def sigmoid_scores(raw_scores: np.ndarray) -> np.ndarray:
    clipped = np.clip(np.asarray(raw_scores, dtype=np.float64).reshape(-1), -SCORE_CLIP, SCORE_CLIP)
    return 1.0 / (1.0 + np.exp(-clipped))


def decode_detections(raw_boxes: np.ndarray, raw_scores: np.ndarray, anchor_centers: np.ndarray,
                      min_score: float = MIN_SCORE, iou_threshold: float = NMS_IOU,
                      max_detections: int | None = None) -> list[RawDetection]:
    """Every person candidate of one image: decoded, thresholded, merged by weighted NMS, best first.

    raw_boxes (2254, 12) and raw_scores (2254,) or (2254, 1) are the network's outputs for one image. Non-finite
    values (a broken input) give no candidate. max_detections: keep at most this many (None: all).
    """
    boxes, keypoints, scores = scored_candidates(raw_boxes, raw_scores, anchor_centers, min_score)
    return weighted_nms(boxes, keypoints, scores, iou_threshold, max_detections)


def scored_candidates(raw_boxes: np.ndarray, raw_scores: np.ndarray, anchor_centers: np.ndarray,
                      min_score: float = MIN_SCORE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The decoded anchors scoring at least `min_score`, before suppression: boxes (N, 4) x0, y0, x1, y1 and
    keypoints (N, 4, 2) in input pixels, scores (N,). Anchors with non-finite values are left out."""
    scores = sigmoid_scores(raw_scores)
    boxes, keypoints = decode_boxes(raw_boxes, anchor_centers)
    finite = np.isfinite(scores) & np.isfinite(boxes).all(axis=1) & np.isfinite(keypoints).all(axis=(1, 2))
    keep = np.flatnonzero(finite & (scores >= min_score))
    return boxes[keep], keypoints[keep], scores[keep]


def weighted_nms(boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, iou_threshold: float = NMS_IOU,
                 max_detections: int | None = None) -> list[RawDetection]:
    """Weighted non-maximum suppression (see the module docstring). boxes (N, 4) x0, y0, x1, y1; keypoints
    (N, K, 2); scores (N,). Ties keep the input order (a stable sort)."""
    order = np.argsort(-scores, kind="stable")
    remaining = order
    kept: list[RawDetection] = []
    while len(remaining) and (max_detections is None or len(kept) < max_detections):
        best = remaining[0]
        overlaps = iou_matrix(boxes[best][None], boxes[remaining])[0]
        merged = remaining[overlaps > iou_threshold]
        merged = merged if len(merged) else remaining[:1]  # a degenerate (empty) best box still counts once
        weights = scores[merged] / scores[merged].sum()
        kept.append(RawDetection(box=weights @ boxes[merged], keypoints=np.tensordot(weights, keypoints[merged], 1),
                                 score=float(scores[best])))
        remaining = remaining[~np.isin(remaining, merged)]
    return kept


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) intersection over union of x0, y0, x1, y1 boxes; 0 where the union is empty."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    low = np.maximum(a[:, None, :2], b[None, :, :2])
    high = np.minimum(a[:, None, 2:], b[None, :, 2:])
    intersection = np.clip(high - low, 0.0, None).prod(axis=2)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0.0, None).prod(axis=1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0.0, None).prod(axis=1)
    union = area_a[:, None] + area_b[None, :] - intersection
    return np.where(union > 0, intersection / np.where(union > 0, union, 1.0), 0.0)

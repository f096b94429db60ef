"""Person sources: which boxes of a frame go to the mesh network.

A person source turns a `Frame` into the detections to crop. The estimator asks one source per frame; the
default, `DetectionFilter`, reads the frame's external detections (`vision_msgs/Detection2DArray`), keeps people
(by class), drops weak, tiny and malformed boxes, keeps the best `max_persons`, and applies the configured
fallback for frames without detections. A built-in detector is another source behind the same `PersonSource`
interface. Tracked people whom the detections miss are added after the source, by the temporal stage
(`estimator.TemporalStage.persons`: their predicted boxes), within the same `max_persons` budget.
"""

from __future__ import annotations

from collections import Counter
from typing import Protocol

import numpy as np

from .humans import Detection, Frame

ANY_CLASS = "*"


class PersonSource(Protocol):
    def persons(self, frame: Frame, skipped: Counter) -> tuple[Detection, ...]:
        """The people of `frame`, best first; what is left out is counted in `skipped` (reason -> count)."""
        ...


class DetectionFilter:
    """The frame's own detections, filtered (see the module docstring).

    class_ids: classes that are people ("*" accepts all); min_score: in [0, 1]; min_box_size: pixels, the
    smaller side of the box's part inside the image; without_detections: "skip" (no people) or "full_frame" (the
    whole image as one person, for a camera that frames one person, e.g. a kiosk).
    """

    def __init__(self, class_ids=("person", "0"), min_score: float = 0.3, min_box_size: float = 16.0,
                 max_persons: int = 8, without_detections: str = "skip"):
        self.class_ids = frozenset(class_ids)
        self.min_score = float(min_score)
        self.min_box_size = float(min_box_size)
        self.max_persons = int(max_persons)
        self.without_detections = without_detections

    @classmethod
    def from_config(cls, persons_config) -> DetectionFilter:
        return cls(persons_config.class_ids, persons_config.min_score, persons_config.min_box_size,
                   persons_config.max_persons, persons_config.without_detections)

    def persons(self, frame: Frame, skipped: Counter) -> tuple[Detection, ...]:
        if frame.detections is None:
            return self._fallback(frame, skipped)
        kept = [d for d in frame.detections if self._is_person(d, frame.image_size, skipped)]
        kept.sort(key=lambda detection: -detection.score)
        if len(kept) > self.max_persons:
            skipped["over_max_persons"] += len(kept) - self.max_persons
        return tuple(kept[: self.max_persons])

    def _is_person(self, detection: Detection, image_size: tuple[int, int], skipped: Counter) -> bool:
        if ANY_CLASS not in self.class_ids and detection.class_id not in self.class_ids:
            skipped["not_a_person_class"] += 1
            return False
        if not np.isfinite(detection.score) or detection.score < self.min_score:
            skipped["low_score"] += 1
            return False
        visible = visible_box_size(detection.box, image_size)
        if visible is None:
            skipped["invalid_box"] += 1
            return False
        if min(visible) < max(self.min_box_size, 1.0):
            skipped["box_too_small"] += 1
            return False
        return True

    def _fallback(self, frame: Frame, skipped: Counter) -> tuple[Detection, ...]:
        if self.without_detections == "full_frame":
            height, width = frame.image_size
            return (Detection(np.array([0.0, 0.0, width, height]), 1.0, "", ""),)
        skipped["frame_without_detections"] += 1
        return ()


def visible_box_size(box: np.ndarray, image_size: tuple[int, int]) -> tuple[float, float] | None:
    """(width, height) of the part of an (x, y, w, h) box inside the image; None for a NaN, infinite, empty or
    negative box, or one entirely outside the image."""
    box = np.asarray(box, dtype=np.float64)
    if box.shape != (4,) or not np.all(np.isfinite(box)) or box[2] <= 0 or box[3] <= 0:
        return None
    height, width = image_size
    x0, y0 = max(box[0], 0.0), max(box[1], 0.0)
    x1, y1 = min(box[0] + box[2], float(width)), min(box[1] + box[3], float(height))
    if x1 <= x0 or y1 <= y0:
        return None
    return x1 - x0, y1 - y0

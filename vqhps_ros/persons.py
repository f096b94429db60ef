"""Person sources: which boxes of a frame go to the mesh network.

A person source turns a `Frame` into the detections to crop. The estimator asks one source per frame, chosen by
`persons.source` (`person_source_from_config`):

- `detections`: `DetectionFilter` reads the frame's external detections (`vision_msgs/Detection2DArray`), keeps
  people (by class), drops weak, tiny and malformed boxes, keeps the best `max_persons`, and applies the configured
  fallback (`without_detections`) to frames without detections;
- `builtin`: the built-in detector (`detect.BuiltinPersonDetector`: mediapipe's pose networks), whose persons carry
  body keypoints and a mask;
- `both`: the two, merged by IoU (`CombinedSource`);
- `auto`: the external detections of frames that have them (a detections source is configured and spoke in time),
  the built-in detector for the others;
- `full_frame`: the whole image as one person (a camera that frames one person, e.g. a kiosk).

Tracked people whom the source misses are added after it, by the temporal stage (`estimator.TemporalStage.persons`:
their predicted boxes), within the same `max_persons` budget.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Protocol

import numpy as np

from .errors import InputError
from .humans import Detection, Frame

ANY_CLASS = "*"


class PersonSource(Protocol):
    def persons(self, frame: Frame, skipped: Counter) -> tuple[Detection, ...]:
        """The people of `frame`, best first; what is left out is counted in `skipped` (reason -> count)."""
        ...

    def close(self) -> None:
        """Release what the source holds (networks); it is not used again."""
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

    def close(self) -> None:
        pass

    def _fallback(self, frame: Frame, skipped: Counter) -> tuple[Detection, ...]:
        if self.without_detections == "full_frame":
            return FullFrame().persons(frame, skipped)
        skipped["frame_without_detections"] += 1
        return ()


class FullFrame:
    """The whole image as one person, whatever the frame's detections say."""

    def persons(self, frame: Frame, skipped: Counter) -> tuple[Detection, ...]:
        height, width = frame.image_size
        return (Detection(np.array([0.0, 0.0, width, height]), 1.0, "", ""),)

    def close(self) -> None:
        pass


class CombinedSource:
    """External detections and a built-in detector's persons together.

    mode "auto": the external detections (filtered) of frames that have them, the built-in persons otherwise.
    mode "both": both on every frame, merged: an external box and a built-in person whose boxes overlap with IoU
    `merge_iou` or more (matched greedily, best overlap first) are one person, who keeps the built-in box and
    keypoints, the external id (an upstream tracker's) and the higher score; the others stay as they are. At
    most `max_persons`, best score first; the rest are counted as "over_max_persons".
    """

    def __init__(self, external: DetectionFilter, builtin: PersonSource, mode: str = "both",
                 merge_iou: float = 0.5, max_persons: int = 8):
        if mode not in ("auto", "both"):
            raise InputError(f"CombinedSource mode must be 'auto' or 'both', got {mode!r}")
        self.external = external
        self.builtin = builtin
        self.mode = mode
        self.merge_iou = float(merge_iou)
        self.max_persons = int(max_persons)

    def persons(self, frame: Frame, skipped: Counter) -> tuple[Detection, ...]:
        if self.mode == "auto":
            source = self.builtin if frame.detections is None else self.external
            return source.persons(frame, skipped)
        external = self.external.persons(frame, skipped) if frame.detections is not None else ()
        merged = merged_persons(self.builtin.persons(frame, skipped), external, self.merge_iou)
        if len(merged) > self.max_persons:
            skipped["over_max_persons"] += len(merged) - self.max_persons
        return merged[: self.max_persons]

    def warm_up(self) -> None:
        if hasattr(self.builtin, "warm_up"):
            self.builtin.warm_up()

    def close(self) -> None:
        self.builtin.close()


def merged_persons(builtin: tuple[Detection, ...], external: tuple[Detection, ...], min_iou: float
                   ) -> tuple[Detection, ...]:
    """The persons of two sources, each person once (see `CombinedSource`), best score first."""
    from .detect.evaluation import match_boxes  # geometry only; the detect package is loaded by then

    merged = list(builtin)
    matched_external = set()
    if builtin and external:
        pairs = match_boxes(np.stack([d.box for d in builtin]), np.stack([d.box for d in external]), min_iou)
        for own, other, _ in pairs:
            mine, theirs = builtin[own], external[other]
            merged[own] = replace(mine, score=max(mine.score, theirs.score), id=theirs.id or mine.id)
            matched_external.add(other)
    merged += [d for index, d in enumerate(external) if index not in matched_external]
    merged.sort(key=lambda detection: -detection.score)
    return tuple(merged)


def describe_source(source: PersonSource) -> str:
    """One line for logs and diagnostics: the kind of source, and what runs its networks."""
    if isinstance(source, CombinedSource):
        joined = "else" if source.mode == "auto" else "merged with"
        return f"{source.mode}: external detections, {joined} the {describe_source(source.builtin)}"
    if isinstance(source, DetectionFilter):
        return "external detections"
    if isinstance(source, FullFrame):
        return "full frame"
    return f"built-in detector, {getattr(source, 'description', type(source).__name__)}"


def person_source_from_config(config) -> PersonSource:
    """The person source `config.persons.source` names, its detector (if any) loaded and ready.

    config: an `EstimatorConfig` (the persons and detector sections are read, and model.threads and
    model.engine_cache_dir, which the detector's engines share).
    """
    persons = config.persons
    if persons.source == "full_frame":
        return FullFrame()
    external = DetectionFilter.from_config(persons)
    if persons.source == "detections":
        return external
    builtin = builtin_detector_from_config(config)
    if persons.source == "builtin":
        return builtin
    return CombinedSource(external, builtin, persons.source, config.detector.merge_iou, persons.max_persons)


def builtin_detector_from_config(config):
    """A `detect.BuiltinPersonDetector` with the configured settings, its networks loaded (exported on first use)."""
    from .detect import BuiltinPersonDetector, DetectorSettings

    detector = config.detector
    settings = DetectorSettings(
        backend=detector.backend, threads=config.model.threads or None,
        graph_cache_dir=detector.graph_cache_dir or None, engine_cache_dir=config.model.engine_cache_dir or None,
        min_detection_score=detector.min_detection_score,
        min_pose_score=detector.min_pose_score, max_persons=min(detector.max_persons, config.persons.max_persons),
        tracking=detector.tracking, detect_every=detector.detect_every, zoom_grid=detector.zoom_grid,
        tiles_per_run=detector.tiles_per_run)
    return BuiltinPersonDetector(settings).activate()


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

"""The built-in person source: mediapipe's pose detector finds people, its landmark model confirms and describes them,
and people seen in one frame are followed into the next by their keypoints.

Per frame (`BuiltinPersonDetector.detect_people`):

1. Candidates: the ROIs of the people of the previous frame, from their alignment keypoints (mediapipe's ROI from
   landmarks), then, when the detector runs, its candidates (all anchors decoded, weighted NMS: every person, not
   just the best one), minus those whose ROI is a tracked person's (`same_region`).
2. The detector looks at the letterboxed frame and, in turn, `tiles_per_run` of `zoom_grid` x `zoom_grid` zoomed
   tiles (people two or more times larger there: the face-based detector misses small faces); one batch, one
   suppression over all. It runs on the first frame, whenever nobody is tracked or a tracked person was lost in
   the previous frame, and otherwise every `detect_every` frames, to pick up newcomers. With `tracking=False` it
   runs on every frame and only its candidates count.
3. At most `max_persons` candidates (tracked ones first, then by detector score; the rest are counted as
   "over_max_persons"), cropped (rotated ROIs, 256 x 256) and run through the landmark model in one batch.
4. A candidate whose pose presence is below `min_pose_score` is dropped ("low_pose_score"); of two persons whose
   visible keypoints nearly coincide (`same_person`), the weaker is dropped ("duplicate_person").

Bad input (not an H x W x 3 uint8 image, a side under `MIN_IMAGE_SIDE` pixels) gives no persons and resets the
tracks; an image without people gives no persons. Neither is an error nor counted.

The detector finds people by their face: people facing away are found only while they are tracked (after having
been found once), small people mostly in the zoom tiles.
"""

from __future__ import annotations

import itertools
import logging
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from ..humans import Detection, Frame
from .anchors import DETECTOR_INPUT_SIZE, MIN_SCORE, NMS_IOU, scored_candidates, ssd_anchor_centers, weighted_nms
from .geometry import Roi, apply_affine, crop_roi, full_image_roi, roi_from_alignment_points, zoom_tiles
from .keypoints import (
    LANDMARK_INPUT_SIZE,
    PersonKeypoints,
    batch_person_keypoints,
    body_keypoints,
    landmark_model_input,
)
from .runner import DetectionRunner
from .signatures import POSE_DETECTOR_GRAPH, POSE_LANDMARK_GRAPH

LOG = logging.getLogger(__name__)

MIN_IMAGE_SIDE = 16  # pixels: smaller images hold no findable person
PERSON_CLASS = "person"


@dataclass(frozen=True)
class DetectorSettings:
    """Parameters of the built-in person source (see the module docstring)."""

    backend: str = "auto"  # "auto", "tensorrt", "onnxruntime" or "pytorch"
    threads: int | None = None  # CPU threads of the backend (None: its default)
    graph_cache_dir: str | None = None  # where exported graphs are kept (None: ~/.cache/vqhps_ros/detect)
    engine_cache_dir: str | None = None  # where TensorRT engines are kept (None: the engines' default cache)
    min_detection_score: float = MIN_SCORE  # detector candidates from this score up, in [0, 1]
    nms_iou: float = NMS_IOU  # detector boxes overlapping more are merged (weighted NMS)
    min_pose_score: float = 0.5  # landmark model's pose presence needed to keep a person, in [0, 1]
    max_persons: int = 4  # landmark model runs per frame (people returned at most)
    tracking: bool = True  # follow people by their keypoints from frame to frame
    detect_every: int = 5  # while everyone is tracked, the detector still runs every N frames (1: every frame)
    zoom_grid: int = 2  # the frame is also covered by grid x grid zoomed tiles (1: none) ...
    tiles_per_run: int = 1  # ... of which each detector run looks at this many, in turn (0: none)
    same_roi_distance: float = 0.2  # a detector ROI whose centre lies closer to a tracked one (fraction of its
    #                                 size), at a similar size, is that person
    duplicate_distance: float = 0.1  # fraction of the box size under which two persons' keypoints coincide

    def __post_init__(self):
        for name in ("min_detection_score", "min_pose_score", "nms_iou"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise InputError(f"detector setting {name} must be in [0, 1], got {value}")
        for name, low in (("max_persons", 1), ("detect_every", 1), ("zoom_grid", 1), ("tiles_per_run", 0)):
            value = getattr(self, name)
            if not isinstance(value, int) or value < low:
                raise InputError(f"detector setting {name} must be an integer of at least {low}, got {value!r}")
        for name in ("duplicate_distance", "same_roi_distance"):
            if not getattr(self, name) >= 0.0:
                raise InputError(f"detector setting {name} must be >= 0, got {getattr(self, name)}")


@dataclass(frozen=True)
class Candidate:
    """A region to run the landmark model on."""

    roi: Roi
    detection_score: float
    track_id: int
    tracked: bool  # from the previous frame's keypoints (False: from the detector)


@dataclass
class TrackState:
    """What the detector carries from frame to frame (bounded: at most max_persons candidates)."""

    image_size: tuple[int, int] | None = None
    candidates: list[Candidate] = field(default_factory=list)
    person_lost: bool = False
    frames_since_detection: int = 0
    next_tile: int = 0  # the zoom tile the next detector run starts with


class BuiltinPersonDetector:
    """A `persons.PersonSource` (and `detect_people` for the keypoints) built on mediapipe's pose networks.

    detector_runner / landmark_runner: `DetectionRunner`s to use (default: built from `settings.backend`,
    `settings.threads` and `settings.graph_cache_dir`, activated on first use). One instance follows one camera
    stream, frame after frame, from one thread at a time (its tracks are per-stream state).
    """

    def __init__(self, settings: DetectorSettings = DetectorSettings(), detector_runner: DetectionRunner | None = None,
                 landmark_runner: DetectionRunner | None = None):
        self.settings = settings
        self.detector = detector_runner or self._runner(POSE_DETECTOR_GRAPH, self._detector_batch())
        self.landmarker = landmark_runner or self._runner(POSE_LANDMARK_GRAPH, settings.max_persons)
        self.anchor_centers = ssd_anchor_centers()
        self.state = TrackState()
        self.people: list[PersonKeypoints] = []  # the last frame's persons, in the order `persons` returned them
        self.detector_runs = 0
        self.landmark_runs = 0
        self._track_ids = itertools.count(1)

    def _runner(self, graph: str, max_batch: int) -> DetectionRunner:
        settings = self.settings
        return DetectionRunner(graph, settings.backend, threads=settings.threads, cache_dir=settings.graph_cache_dir,
                               max_batch=max_batch, engine_cache_dir=settings.engine_cache_dir)

    def _detector_batch(self) -> int:
        """Images per detector run: the whole frame and this run's zoomed tiles (`_tiles_of_this_run`)."""
        tiles = self.settings.zoom_grid ** 2 if self.settings.zoom_grid > 1 else 0
        return 1 + min(self.settings.tiles_per_run, tiles)

    def activate(self) -> BuiltinPersonDetector:
        """Load both networks now (exporting their graphs on first use) rather than on the first frame."""
        self.detector.activate()
        self.landmarker.activate()
        return self

    def warm_up(self) -> None:
        """Both networks once on a blank input (the first frame then runs at full speed)."""
        self.detector.activate().infer(np.zeros((1, 3, DETECTOR_INPUT_SIZE, DETECTOR_INPUT_SIZE), np.float32))
        self.landmarker.activate().infer(np.zeros((1, 3, LANDMARK_INPUT_SIZE, LANDMARK_INPUT_SIZE), np.float32))

    def close(self) -> None:
        """Release both networks; a later frame loads them again."""
        self.detector.deactivate()
        self.landmarker.deactivate()
        self.reset()

    @property
    def description(self) -> str:
        """What runs the two networks (the runners' descriptions once active)."""
        return (f"detector: {self.detector.description or 'not loaded'}; "
                f"landmarks: {self.landmarker.description or 'not loaded'}")

    def reset(self) -> None:
        """Forget the tracked people (a new camera, a jump in time)."""
        self.state = TrackState()
        self.people = []

    # --------------------------------------------------------------------------------------------- PersonSource

    def persons(self, frame: Frame, skipped: Counter) -> tuple[Detection, ...]:
        """The frame's people as boxes (from their keypoints), best pose score first; `people` holds their
        keypoints in the same order. Detection.id is the person's track number while tracked."""
        people = self.detect_people(frame.image, skipped)
        return tuple(Detection(person.box.copy(), person.score, PERSON_CLASS, str(person.track_id),
                               body_keypoints(person))
                     for person in people)

    # ---------------------------------------------------------------------------------------------------- frames

    def detect_people(self, image: np.ndarray, skipped: Counter | None = None) -> list[PersonKeypoints]:
        """The people of one RGB uint8 image (frames of one camera, in order), best pose score first."""
        skipped = skipped if skipped is not None else Counter()
        if not is_usable_image(image):
            self.reset()
            return []
        image = np.ascontiguousarray(image)  # OpenCV refuses negative strides (a flipped view)
        image_size = (int(image.shape[0]), int(image.shape[1]))
        if self.state.image_size != image_size:
            self.reset()
            self.state.image_size = image_size
        candidates = list(self.state.candidates) if self.settings.tracking else []
        if self._should_detect(candidates):
            candidates += self._detector_candidates(image, candidates)
            self.state.frames_since_detection = 0
        else:
            self.state.frames_since_detection += 1
        candidates = self._bounded(candidates, skipped)
        people = self._confirmed(self._landmarks(image, candidates), skipped)
        self._remember(candidates, people)
        self.people = people
        return people

    def _should_detect(self, tracked: list[Candidate]) -> bool:
        if not self.settings.tracking or not tracked or self.state.person_lost:
            return True
        if len(tracked) >= self.settings.max_persons:
            return False
        return self.state.frames_since_detection + 1 >= self.settings.detect_every

    def _detector_candidates(self, image: np.ndarray, tracked: list[Candidate]) -> list[Candidate]:
        """New people from the detector (whole frame and this run's zoom tiles, suppressed together): ROIs from
        its alignment keypoints, minus those of tracked people."""
        regions = [full_image_roi(image.shape[:2]), *self._tiles_of_this_run(image.shape[:2])]
        crops = np.stack([crop_roi(image, region, DETECTOR_INPUT_SIZE, border="zero") for region in regions])
        outputs = self.detector.activate().infer(crops.astype(np.float32).transpose(0, 3, 1, 2) / 127.5 - 1.0)
        self.detector_runs += 1
        boxes, keypoints, scores = [], [], []
        for index, region in enumerate(regions):
            region_boxes, region_keypoints, region_scores = scored_candidates(
                outputs["raw_boxes"][index], outputs["raw_scores"][index], self.anchor_centers,
                self.settings.min_detection_score)
            to_image = region.tensor_to_image(DETECTOR_INPUT_SIZE)
            boxes.append(apply_affine(to_image, region_boxes.reshape(-1, 2)).reshape(-1, 4))
            keypoints.append(apply_affine(to_image, region_keypoints.reshape(-1, 2)).reshape(-1, 4, 2))
            scores.append(region_scores)
        detections = weighted_nms(np.concatenate(boxes), np.concatenate(keypoints), np.concatenate(scores),
                                  self.settings.nms_iou)
        found: list[Candidate] = []
        for detection in detections:
            roi = roi_from_alignment_points(detection.keypoints[0], detection.keypoints[1])
            if roi.is_usable() and not any(same_region(roi, other.roi, self.settings.same_roi_distance)
                                           for other in tracked + found):
                found.append(Candidate(roi, detection.score, next(self._track_ids), tracked=False))
        return found

    def _tiles_of_this_run(self, image_size: tuple[int, int]) -> list[Roi]:
        tiles = zoom_tiles(image_size, self.settings.zoom_grid)
        count = min(self.settings.tiles_per_run, len(tiles))
        chosen = [tiles[(self.state.next_tile + step) % len(tiles)] for step in range(count)]
        self.state.next_tile = (self.state.next_tile + count) % max(len(tiles), 1)
        return chosen

    def _bounded(self, candidates: list[Candidate], skipped: Counter) -> list[Candidate]:
        ordered = sorted(candidates, key=lambda candidate: (not candidate.tracked, -candidate.detection_score))
        limit = self.settings.max_persons
        if len(ordered) > limit:
            skipped["over_max_persons"] += len(ordered) - limit
        return ordered[:limit]

    def _landmarks(self, image: np.ndarray, candidates: list[Candidate]) -> list[PersonKeypoints]:
        if not candidates:
            return []
        outputs = self.landmarker.activate().infer(landmark_model_input(image, [c.roi for c in candidates]))
        self.landmark_runs += len(candidates)
        return [batch_person_keypoints(outputs, index, candidate.roi, image.shape[:2], candidate.detection_score,
                                       candidate.track_id)
                for index, candidate in enumerate(candidates)]

    def _confirmed(self, people: list[PersonKeypoints], skipped: Counter) -> list[PersonKeypoints]:
        """People with a pose, best first, without duplicates."""
        kept: list[PersonKeypoints] = []
        for person in sorted(people, key=lambda person: (-round(person.score, 2), person.track_id)):
            if not person.score >= self.settings.min_pose_score:
                skipped["low_pose_score"] += 1
            elif any(same_person(person, other, self.settings.duplicate_distance) for other in kept):
                skipped["duplicate_person"] += 1
            else:
                kept.append(person)
        return kept

    def _remember(self, candidates: list[Candidate], people: list[PersonKeypoints]) -> None:
        kept_ids = {person.track_id for person in people}
        self.state.person_lost = any(c.tracked and c.track_id not in kept_ids for c in candidates)
        if not self.settings.tracking:
            return
        self.state.candidates = [Candidate(person.next_roi(), person.detection_score, person.track_id, tracked=True)
                                 for person in people if person.next_roi().is_usable()]


def is_usable_image(image) -> bool:
    """An H x W x 3 uint8 array with both sides at least MIN_IMAGE_SIDE pixels."""
    return (isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8
            and min(image.shape[:2]) >= MIN_IMAGE_SIDE)


def same_region(a: Roi, b: Roi, max_distance: float) -> bool:
    """Whether two ROIs frame the same person: centres (the hips) closer than max_distance of the larger size,
    sizes within a factor 1.5."""
    larger, smaller = max(a.size, b.size), min(a.size, b.size)
    distance = float(np.hypot(a.center[0] - b.center[0], a.center[1] - b.center[1]))
    return distance < max_distance * larger and smaller * 1.5 >= larger


def same_person(a: PersonKeypoints, b: PersonKeypoints, max_distance: float) -> bool:
    """Whether two persons are one: the median distance between their keypoints that both see (visibility 0.5
    and up; all of them if none is) is under max_distance of the larger box side. People who overlap in the
    image still differ in their faces and most joints."""
    both = (a.visibility >= 0.5) & (b.visibility >= 0.5)
    points = both if both.any() else np.ones_like(both)
    distance = np.linalg.norm(a.keypoints[points, :2] - b.keypoints[points, :2], axis=1)
    scale = max(a.box[2], a.box[3], b.box[2], b.box[3], 1.0)
    return float(np.median(distance)) < max_distance * scale

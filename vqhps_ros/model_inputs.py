"""What the mesh network reads for the persons of a frame: their image crops, or their body keypoints.

`CropInputs` crops every person box (`hps.crop_people`). `KeypointInputs` serves keypoint-reading models
(`hps.KeypointMeshRegressor`): a person whose source found keypoints (the built-in detector) keeps them; for the
others (boxes from a detections topic, boxes the tracker predicts for missed people) the landmark model of the
built-in detector runs on the square around the box, all such boxes in one batch. The keypoints become the
network input in each person's crop (`hps.keypoint_model_input`) and travel on with the person (published in
`HumanMesh.keypoints_2d`). A person is skipped and counted when:

- "too_few_keypoints": fewer than `min_keypoints` keypoints are seen (the landmark model finds no body in the box,
  or sees it too little to read a pose: a person mostly outside the image, seen from too close, occluded);
- "foreign_keypoint_set": its keypoints follow another definition than `humans.POSE_KEYPOINT_SET` (a custom person
  source; logged once with what was expected).

Both return `ModelInputs`: the batch, the crops' geometry, and which of the given persons it holds.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, replace

import numpy as np

from .errors import InputError
from .hps.crops import CropGeometry, crop_geometry_from_boxes
from .hps.keypoint_input import (
    DEFAULT_MIN_KEYPOINTS,
    SEEN,
    check_keypoint_set,
    enough_seen,
    keypoint_model_input,
)
from .hps.predict import crop_people
from .humans import BodyKeypoints, Detection, Frame

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelInputs:
    """batch: the network input, one row per kept person; geometry: their crops; detections: the kept persons (with
    the keypoints they were read from); indices: the position of each among the persons given."""

    batch: np.ndarray
    geometry: CropGeometry
    detections: tuple[Detection, ...]
    indices: tuple[int, ...]

    @property
    def boxes(self) -> np.ndarray:
        return boxes_of(self.detections)


def boxes_of(detections) -> np.ndarray:
    """(N, 4) float64 x, y, w, h of the persons (N may be 0)."""
    return np.array([detection.box for detection in detections], dtype=np.float64).reshape(-1, 4)


class CropInputs:
    """The image model's input: the 224 x 224 crop of every person box."""

    def prepare(self, frame: Frame, detections: tuple[Detection, ...], skipped: Counter) -> ModelInputs:
        crops = crop_people(frame.image, boxes_of(detections))
        return ModelInputs(crops.images, crops.geometry, tuple(detections), tuple(range(len(detections))))

    def warm_up(self) -> None:
        pass

    def close(self) -> None:
        pass


class KeypointInputs:
    """The keypoint model's input (see the module docstring). landmarker: a `detect.DetectionRunner` of the landmark
    graph, activated on first use (None: persons without keypoints are skipped as too_few_keypoints)."""

    def __init__(self, landmarker=None, min_keypoints: int = DEFAULT_MIN_KEYPOINTS):
        if min_keypoints < 1:
            raise InputError(f"min_keypoints must be at least 1, got {min_keypoints}")
        self.landmarker = landmarker
        self.min_keypoints = min_keypoints
        self._warned_foreign = False

    def prepare(self, frame: Frame, detections: tuple[Detection, ...], skipped: Counter) -> ModelInputs:
        completed = self._with_keypoints(frame, detections)
        kept = [index for index, detection in enumerate(completed) if self._readable(detection, frame, skipped)]
        persons = tuple(completed[index] for index in kept)
        geometry = crop_geometry_from_boxes(boxes_of(persons))
        batch = keypoint_model_input([detection.keypoints for detection in persons], geometry, frame.image_size)
        return ModelInputs(batch, geometry, persons, tuple(kept))

    def _with_keypoints(self, frame: Frame, detections: tuple[Detection, ...]) -> list[Detection]:
        """The persons, those without keypoints given the landmark model's (None where it finds no body)."""
        missing = [index for index, detection in enumerate(detections) if detection.keypoints is None]
        completed = list(detections)
        if not missing or self.landmarker is None:
            return completed
        from .detect.keypoints import body_keypoints, keypoints_in_boxes

        found = keypoints_in_boxes(self.landmarker.activate(), frame.image, [detections[i].box for i in missing])
        for index, person in zip(missing, found, strict=True):
            if person.score >= SEEN:  # the landmark model's own test that the square shows a body
                completed[index] = replace(detections[index], keypoints=body_keypoints(person))
        return completed

    def _readable(self, detection: Detection, frame: Frame, skipped: Counter) -> bool:
        keypoints: BodyKeypoints | None = detection.keypoints
        if keypoints is not None:
            try:
                check_keypoint_set(keypoints)
            except InputError as error:
                skipped["foreign_keypoint_set"] += 1
                if not self._warned_foreign:
                    LOG.warning("persons skipped: %s", error)
                    self._warned_foreign = True
                return False
        if keypoints is None or not enough_seen(keypoints, frame.image_size, self.min_keypoints):
            skipped["too_few_keypoints"] += 1
            return False
        return True

    def warm_up(self) -> None:
        if self.landmarker is not None:
            from .detect.keypoints import LANDMARK_INPUT_SIZE

            size = LANDMARK_INPUT_SIZE
            self.landmarker.activate().infer(np.zeros((1, 3, size, size), dtype=np.float32))

    def close(self) -> None:
        if self.landmarker is not None:
            self.landmarker.deactivate()

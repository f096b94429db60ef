"""The input of a keypoint-reading VQ-HPS (`KeypointMeshRegressor`) from the body keypoints found in an image.

Each person's keypoints must be mediapipe's 33 pose landmarks (`humans.POSE_KEYPOINT_SET`), in image pixels. A
keypoint counts as seen when the keypoint model gives it visibility and presence of at least SEEN and it lies
inside the image: the rule under which the landmark model's behaviour was measured on renders
(`train.landmark_calibration`) and hence the one the training samples follow. Seen keypoints are mapped into the
person's crop (the square the image model would crop from the box, `crop_geometry_from_boxes`) in normalised crop
coordinates; unseen ones are (0, 0) with visibility 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import InputError
from ..humans import POSE_KEYPOINT_SET, POSE_LANDMARK_NAMES, BodyKeypoints
from .crops import CropGeometry, apply_affines, crop_to_normalized

SEEN = 0.5  # visibility and presence from which the landmark model's keypoint counts as seen
DEFAULT_MIN_KEYPOINTS = 8  # seen keypoints a keypoint-reading model needs to read a pose (config model.min_keypoints)


def seen_keypoints(keypoints: BodyKeypoints, image_size: tuple[int, int]) -> np.ndarray:
    """(K,) bool: visibility (and presence, when given) at least SEEN, finite, inside the (H, W) image."""
    points = np.asarray(keypoints.points, dtype=np.float64)
    height, width = image_size
    with np.errstate(invalid="ignore"):
        inside = ((points[:, 0] >= 0) & (points[:, 0] <= width - 1)
                  & (points[:, 1] >= 0) & (points[:, 1] <= height - 1))
    seen = inside & (np.asarray(keypoints.visibility) >= SEEN)
    if keypoints.presence is not None:
        seen &= np.asarray(keypoints.presence) >= SEEN
    return seen


def enough_seen(keypoints: BodyKeypoints, image_size: tuple[int, int],
                min_keypoints: int = DEFAULT_MIN_KEYPOINTS) -> bool:
    """Whether a keypoint model can read this person: at least `min_keypoints` of its keypoints seen."""
    return int(seen_keypoints(keypoints, image_size).sum()) >= min_keypoints


def is_pose_keypoint_set(keypoints: BodyKeypoints) -> bool:
    """Whether these are the 33 pose landmarks (`POSE_KEYPOINT_SET`) the keypoint model and the mesh's landmarks
    are defined for."""
    return keypoints.keypoint_set == POSE_KEYPOINT_SET and len(keypoints.points) == len(POSE_LANDMARK_NAMES)


def check_keypoint_set(keypoints: BodyKeypoints) -> None:
    """InputError unless these are the 33 pose landmarks the keypoint model reads."""
    count = len(keypoints.points)
    if not is_pose_keypoint_set(keypoints):
        raise InputError(f"the keypoint model reads the {len(POSE_LANDMARK_NAMES)} keypoints of "
                         f"'{POSE_KEYPOINT_SET}' ({', '.join(POSE_LANDMARK_NAMES[:3])}, ...), found {count} keypoints "
                         f"of '{keypoints.keypoint_set}'")


def keypoint_model_input(keypoints: Sequence[BodyKeypoints], geometry: CropGeometry, image_size: tuple[int, int]
                         ) -> np.ndarray:
    """(N, 33, 3) float32 x, y (normalised crop coordinates of each person's crop in `geometry`), visibility 0/1."""
    if len(keypoints) != len(geometry.centers):
        raise InputError(f"{len(keypoints)} keypoint sets for {len(geometry.centers)} crops")
    if not keypoints:
        return np.zeros((0, len(POSE_LANDMARK_NAMES), 3), dtype=np.float32)
    for person in keypoints:
        check_keypoint_set(person)
    seen = np.stack([seen_keypoints(person, image_size) for person in keypoints])
    points = np.stack([np.nan_to_num(np.asarray(person.points, dtype=np.float64)) for person in keypoints])
    in_crop = crop_to_normalized(apply_affines(geometry.crop_from_image, points))
    return np.concatenate([np.where(seen[..., None], in_crop, 0.0), seen[..., None]], axis=2).astype(np.float32)

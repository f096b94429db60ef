"""MediaPipe's 33 pose landmarks on the free body: one linear map from a posed mesh's vertices to the landmarks.

The built-in detector's landmark model (`vqhps_ros.detect`) puts 33 points on a person (`POSE_LANDMARK_NAMES`). A
model that reads those keypoints is trained on free-body meshes, so the body needs the same points. Two
definitions, both (33, V) regressors applied like a joint regressor to posed vertices:

- the prior (`prior_pose_landmarks`), from what the body names: its landmark vertices (nose, eyes, ears, finger
  tips, heels, big toes) and its SMPL joints (shoulders, elbows, wrists, hips, knees, ankles; the SMPL joint
  regressor applied to posed vertices, as joint regressors are). MediaPipe's eye corners and mouth corners have no
  vertex of their own: they are affine combinations of the eye and nose vertices (weights summing to one);
- the fitted one (`free_body_pose_landmarks`, shipped in `assets/free_body_pose_landmarks.npz`, made by
  `tools/fit_pose_landmarks.py`): per landmark, non-negative weights over the vertices around the prior landmark,
  summing to one, that put it where the landmark model puts it on renders of the free body
  (`train.landmark_calibration`). MediaPipe's hips, for instance, sit higher and wider than SMPL's hip joints.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..atomic_files import atomic_write
from ..errors import CheckpointError
from ..humans import POSE_LANDMARK_NAMES
from .free_body import FreeBodyData, load_free_body_data
from .joints import SMPL_24_JOINT_NAMES, JointRegressor

FITTED_LANDMARKS_PATH = Path(__file__).resolve().parent / "assets" / "free_body_pose_landmarks.npz"

# Landmarks that are an SMPL joint (person's left and right, as MediaPipe and SMPL both name them).
_JOINT_LANDMARKS = {
    "left_shoulder": "left_shoulder", "right_shoulder": "right_shoulder", "left_elbow": "left_elbow",
    "right_elbow": "right_elbow", "left_wrist": "left_wrist", "right_wrist": "right_wrist", "left_hip": "left_hip",
    "right_hip": "right_hip", "left_knee": "left_knee", "right_knee": "right_knee", "left_ankle": "left_ankle",
    "right_ankle": "right_ankle",
}  # fmt: skip
# Landmarks that are a named vertex of the body (`FreeBodyData.vertex_ids`).
_VERTEX_LANDMARKS = {
    "nose": "nose", "left_eye": "leye", "right_eye": "reye", "left_ear": "lear", "right_ear": "rear",
    "left_pinky": "lpinky", "right_pinky": "rpinky", "left_index": "lindex", "right_index": "rindex",
    "left_thumb": "lthumb", "right_thumb": "rthumb", "left_heel": "LHeel", "right_heel": "RHeel",
    "left_foot_index": "LBigToe", "right_foot_index": "RBigToe",
}  # fmt: skip
# The rest, as weights of (nose, left eye, right eye) vertices. Eye corners: a fifth of the way between the eyes,
# inwards or outwards; the mouth: below the nose by 0.8 of the eyes-to-nose drop, its corners a quarter of the eye
# distance to each side.
_FACE_COMBINATIONS = {
    "left_eye_inner": (0.0, 0.8, 0.2), "left_eye_outer": (0.0, 1.2, -0.2),
    "right_eye_inner": (0.0, 0.2, 0.8), "right_eye_outer": (0.0, -0.2, 1.2),
    "mouth_left": (1.8, -0.15, -0.65), "mouth_right": (1.8, -0.65, -0.15),
}  # fmt: skip


def prior_pose_landmarks(data: FreeBodyData | None = None) -> JointRegressor:
    """The (33, V) prior regressor (see the module docstring), rows named `POSE_LANDMARK_NAMES`."""
    data = data or load_free_body_data()
    matrix = np.zeros((len(POSE_LANDMARK_NAMES), data.num_vertices), dtype=np.float64)
    for row, name in enumerate(POSE_LANDMARK_NAMES):
        if name in _JOINT_LANDMARKS:
            matrix[row] = data.J_regressor[SMPL_24_JOINT_NAMES.index(_JOINT_LANDMARKS[name])]
        elif name in _VERTEX_LANDMARKS:
            matrix[row, data.vertex_ids[_VERTEX_LANDMARKS[name]]] = 1.0
        else:
            for vertex, weight in zip(("nose", "leye", "reye"), _FACE_COMBINATIONS[name], strict=True):
                matrix[row, data.vertex_ids[vertex]] += weight
    return JointRegressor(matrix.astype(np.float32), POSE_LANDMARK_NAMES)


def free_body_pose_landmarks(path: str | Path | None = None, num_vertices: int | None = None) -> JointRegressor:
    """The fitted (33, V) regressor (default: the shipped one); CheckpointError when the file is missing or is not
    one, or (with num_vertices) does not fit meshes of that many vertices."""
    path = Path(path) if path is not None else FITTED_LANDMARKS_PATH
    if not path.is_file():
        raise CheckpointError(f"pose landmark file {path} does not exist (tools/fit_pose_landmarks.py makes it)")
    try:
        with np.load(path) as content:
            weights, names = content["weights"], tuple(str(name) for name in content["names"])
    except (OSError, ValueError, KeyError) as error:
        raise CheckpointError(f"{path} is not a pose landmark file (weights, names): {error}") from error
    if names != POSE_LANDMARK_NAMES or weights.ndim != 2 or weights.shape[0] != len(names):
        raise CheckpointError(f"{path}: expected weights (33, V) for {POSE_LANDMARK_NAMES[:2]}..., found "
                              f"{weights.shape} for {names[:2]}...")
    if num_vertices is not None and weights.shape[1] != num_vertices:
        raise CheckpointError(f"{path}: the landmarks fit meshes of {weights.shape[1]} vertices, not {num_vertices}")
    return JointRegressor(weights.astype(np.float32), names)


def save_pose_landmarks(path: str | Path, regressor: JointRegressor, info: dict) -> None:
    """Write a fitted regressor with its provenance (`info`, stored as JSON), whole or not at all."""
    atomic_write(path, lambda stream: np.savez_compressed(
        stream, weights=regressor.matrix.astype(np.float32), names=np.array(regressor.joint_names),
        info=np.array(json.dumps(info, sort_keys=True))))


def landmark_info(path: str | Path | None = None) -> dict:
    """The provenance stored with a fitted regressor (seeds, counts, errors)."""
    with np.load(Path(path) if path is not None else FITTED_LANDMARKS_PATH) as content:
        return json.loads(str(content["info"]))

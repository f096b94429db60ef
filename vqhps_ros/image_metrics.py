"""How well meshes sit on people in images without 3D truth: silhouette overlap with an independent person mask,
and how close the mesh's own pose landmarks project to the body keypoints found in the image.

- `mesh_silhouette`: the pixels the humans' meshes cover (rendered together with `synth.render_meshes`).
- `mask_iou`: intersection over union of two boolean masks (1.0 for two empty masks: they agree).
- `landmark_hits`: per human, the mesh's 33 pose landmarks (`body.pose_landmarks`, a (33, V) regressor of the
  mesh's vertices) projected with the intrinsics, against the human's keypoints where they are seen
  (`hps.keypoint_input.seen_keypoints`); a keypoint is hit within `threshold` times the longer side of the human's
  box (PCK at 0.1 of the box size by default). Summed over people, hits / counted is the PCK.
"""

from __future__ import annotations

import numpy as np

from .errors import InputError
from .hps.camera import project_points
from .hps.keypoint_input import check_keypoint_set, seen_keypoints
from .humans import Human

PCK_THRESHOLD = 0.1  # of the box's longer side


def mesh_silhouette(humans: list[Human], faces: np.ndarray, intrinsics, image_size: tuple[int, int]) -> np.ndarray:
    """(H, W) bool: the pixels covered by any of the humans' meshes (all False without humans)."""
    if not humans:
        return np.zeros(image_size, dtype=bool)
    import torch

    from .synth import render_meshes

    faces_tensor = torch.from_numpy(np.asarray(faces, dtype=np.int64))
    meshes = [(torch.from_numpy(human.vertices.astype(np.float64)), faces_tensor) for human in humans]
    rendering = render_meshes(meshes, intrinsics, image_size, cull_backfaces=False)
    return rendering.masks.any(dim=0).cpu().numpy()


def mask_iou(first: np.ndarray, second: np.ndarray) -> float:
    """Intersection over union of two (H, W) boolean masks of the same size."""
    first, second = np.asarray(first, dtype=bool), np.asarray(second, dtype=bool)
    if first.shape != second.shape:
        raise InputError(f"masks of different sizes: {first.shape} and {second.shape}")
    union = np.logical_or(first, second).sum()
    return 1.0 if union == 0 else float(np.logical_and(first, second).sum() / union)


def landmark_hits(human: Human, landmark_regressor: np.ndarray, intrinsics, image_size: tuple[int, int],
                  threshold: float = PCK_THRESHOLD) -> tuple[int, int]:
    """(keypoints hit, keypoints counted) of one human (see the module docstring); (0, 0) without keypoints."""
    if human.keypoints is None:
        return 0, 0
    check_keypoint_set(human.keypoints)
    regressor = np.asarray(landmark_regressor, dtype=np.float64)
    if regressor.shape != (len(human.keypoints.points), len(human.vertices)):
        raise InputError(f"the landmark regressor must be ({len(human.keypoints.points)}, {len(human.vertices)}) "
                         f"for this mesh, found {regressor.shape}")
    seen = seen_keypoints(human.keypoints, image_size)
    projected = project_points((regressor @ human.vertices.astype(np.float64))[None], intrinsics)[0]
    distance = np.linalg.norm(projected[seen] - np.asarray(human.keypoints.points, dtype=np.float64)[seen], axis=1)
    hit = distance <= threshold * float(np.max(human.box[2:]))  # NaN (behind the camera) is a miss
    return int(hit.sum()), int(seen.sum())

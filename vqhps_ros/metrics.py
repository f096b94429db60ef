"""Evaluation metrics of human mesh recovery: MPJPE, PA-MPJPE, PVE and acceleration error.

Inputs are numpy arrays (or anything `np.asarray` accepts) in metres; outputs are float64 millimetres, one
value per sample (per frame for the acceleration error). Average them over a data set yourself: the
official code's batch means of per-sample means give the same number since every sample has as many joints.

Official VQ-HPS conventions (`vq_hps/utils/eval.py`, used by `vq_hps/train/train_mesh_regressor/train.py`
which multiplies by 1000 to report millimetres; `evaluate_meshes` reproduces them end to end):

* Both meshes are centred on their vertex centroid, not on the pelvis: the ground truth is built with
  `normalize=True` (`vq_hps/utils/smpl_utils.py`: vertices minus their mean) and `v2v` / `mpjpe` subtract the
  prediction's vertex mean. Joints are then regressed from the centred meshes.
* Joints: `J_regressor_h36m.npy` (17 H36M joints) reordered by `H36M_TO_J17`, a permutation of all 17, so the
  errors average over all 17 joints (not SPIN's 14-joint LSP subset).
* MPJPE / PVE ("v2v"): mean Euclidean distance over joints / vertices after that centring.
* PA-MPJPE: per-sample similarity Procrustes (rotation with reflection correction, isotropic scale,
  translation) of the predicted joints onto the ground truth, then the mean distance. PA-PVE likewise on
  vertices (`pa_v2v`).
* The official code has no acceleration error (single images); `accel_error` follows the VIBE / TCMR
  convention used for video benchmarks.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from vqhps_ros.body.joints import H36M_TO_J17, JointRegressor
from vqhps_ros.errors import InputError

MM_PER_METRE = 1000.0

Alignment = Literal["none", "root", "centroid"]


def mpjpe(pred_joints, gt_joints, align: Alignment = "root", root_index: int = 0) -> np.ndarray:
    """Mean per-joint position error: (B, J, 3) metres -> (B,) millimetres.

    align: "root" subtracts each set's joint `root_index` (the pelvis, index 0 of both H36M-17 and SMPL-24,
    the usual convention of SPIN-style tables); "centroid" subtracts each set's joint mean; "none" compares
    the joints as given (use it for joints regressed from centroid-centred meshes, the official VQ-HPS
    convention, or call `evaluate_meshes`).
    """
    pred, gt = _point_set_pair(pred_joints, gt_joints, "joints")
    pred, gt = _aligned(pred, align, root_index), _aligned(gt, align, root_index)
    return _mean_distance_mm(pred, gt)


def pa_mpjpe(pred_joints, gt_joints) -> np.ndarray:
    """MPJPE after per-sample Procrustes alignment of the prediction: (B, J, 3) metres -> (B,) mm.

    Also PA-PVE when given (B, V, 3) vertices.
    """
    pred, gt = _point_set_pair(pred_joints, gt_joints, "joints")
    return _mean_distance_mm(procrustes_align(pred, gt), gt)


def pve(pred_vertices, gt_vertices, align: Alignment = "centroid") -> np.ndarray:
    """Per-vertex error (official "v2v"): (B, V, 3) metres -> (B,) mm, both meshes centred on their centroid.

    align: "centroid" (official) or "none" (meshes already expressed in a common frame).
    """
    if align not in ("centroid", "none"):
        raise InputError(f"expected PVE alignment 'centroid' or 'none', found {align!r}")
    pred, gt = _point_set_pair(pred_vertices, gt_vertices, "vertices")
    return _mean_distance_mm(_aligned(pred, align, 0), _aligned(gt, align, 0))


def procrustes_align(source, target) -> np.ndarray:
    """Similarity transform of each source set onto its target: (B, P, 3), (B, P, 3) -> aligned source.

    Minimises sum |c R x_i + t - y_i|^2 over rotations R (det +1: a reflection is never used, even when
    it would fit better), scales c >= 0 and translations t (Umeyama's closed form via the SVD of the
    cross-covariance). A degenerate source (all points equal) maps onto the target centroid.
    """
    source, target = _point_set_pair(source, target, "points")
    target_mean = target.mean(axis=1, keepdims=True)
    centred_source = source - source.mean(axis=1, keepdims=True)
    rotation, explained = _best_rotation(centred_source, target - target_mean)
    variance = np.sum(centred_source**2, axis=(1, 2))
    scale = np.divide(explained, variance, out=np.zeros_like(variance), where=variance > 0)
    rotated = np.einsum("bij,bpj->bpi", rotation, centred_source)
    return scale[:, None, None] * rotated + target_mean


def best_rotation(source, target) -> np.ndarray:
    """(B, P, 3), (B, P, 3) -> (B, 3, 3): the rotation (det +1) that best turns each centred source set onto its
    centred target, the one `procrustes_align` uses."""
    source, target = _point_set_pair(source, target, "points")
    return _best_rotation(source - source.mean(axis=1, keepdims=True),
                          target - target.mean(axis=1, keepdims=True))[0]


def _best_rotation(centred_source: np.ndarray, centred_target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotations (B, 3, 3) V diag(1, 1, d) U^T from the SVD of the cross-covariance, and the sums (B,) of the
    singular values with that sign correction (the least-squares scale's numerator)."""
    covariance = np.einsum("bpi,bpj->bij", centred_source, centred_target)  # sum of x y^T
    u, singular, vt = np.linalg.svd(covariance)
    flip = np.sign(np.linalg.det(np.einsum("bij,bjk->bik", u, vt)))
    flip = np.where(flip == 0, 1.0, flip)  # rank-deficient sets: any sign is optimal
    correction = np.ones_like(singular)
    correction[:, -1] = flip
    rotation = np.einsum("bji,bj,bkj->bik", vt, correction, u)
    return rotation, np.sum(singular * correction, axis=1)


def accel_error(pred_joints, gt_joints, valid=None) -> np.ndarray:
    """Acceleration error (VIBE / TCMR): (..., T, J, 3) metres -> (..., T - 2) millimetres per frame.

    The acceleration of frame t + 1 is x[t] - 2 x[t + 1] + x[t + 2] (metres per frame^2, no frame-rate
    scaling); the error of that window is the mean over joints of |a_pred - a_gt|. VIBE and TCMR root-align
    each frame (pelvis) before this; pass aligned joints to match them. `valid` (..., T) bool marks usable
    frames: a window touching an invalid frame gives NaN (average with `np.nanmean`).
    """
    pred, gt = _sequence_pair(pred_joints, gt_joints)
    difference = _second_difference(pred) - _second_difference(gt)
    errors = np.linalg.norm(difference, axis=-1).mean(axis=-1) * MM_PER_METRE
    if valid is None:
        return errors
    valid = np.asarray(valid, dtype=bool)
    if valid.shape != pred.shape[:-2]:
        raise InputError(f"expected a validity mask of shape {pred.shape[:-2]}, found {valid.shape}")
    window_valid = valid[..., :-2] & valid[..., 1:-1] & valid[..., 2:]
    return np.where(window_valid, errors, np.nan)


def evaluate_meshes(pred_vertices, gt_vertices, regressor: JointRegressor | np.ndarray,
                    joint_indices=H36M_TO_J17) -> dict[str, np.ndarray]:
    """The official VQ-HPS evaluation of (B, V, 3) meshes in metres -> per-sample errors in mm.

    regressor: the H36M regressor (`J_regressor_h36m.npy`), as a `JointRegressor` or a (17, V) array;
    joint_indices: the rows compared, `H36M_TO_J17` (all 17) officially.
    Returns {"mpjpe", "pa_mpjpe", "pve", "pa_pve"}, each (B,).
    """
    pred, gt = _point_set_pair(pred_vertices, gt_vertices, "vertices")
    if not isinstance(regressor, JointRegressor):
        regressor = JointRegressor(regressor)
    regressor = regressor.select(joint_indices)
    centred_pred = pred - pred.mean(axis=1, keepdims=True)
    centred_gt = gt - gt.mean(axis=1, keepdims=True)
    pred_joints, gt_joints = regressor(centred_pred), regressor(centred_gt)
    return {
        "mpjpe": mpjpe(pred_joints, gt_joints, align="none"),
        "pa_mpjpe": pa_mpjpe(pred_joints, gt_joints),
        "pve": pve(centred_pred, centred_gt, align="none"),
        "pa_pve": pa_mpjpe(centred_pred, centred_gt),
    }


def _point_set_pair(pred, gt, name: str) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    if pred.ndim != 3 or pred.shape[-1] != 3 or pred.shape != gt.shape:
        raise InputError(f"expected predicted and ground-truth {name} of the same shape (B, P, 3), "
                         f"found {pred.shape} and {gt.shape}")
    if pred.shape[1] == 0:
        raise InputError(f"expected at least one point per sample, found shape {pred.shape}")
    return pred, gt


def _sequence_pair(pred, gt) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    if pred.ndim < 3 or pred.shape[-1] != 3 or pred.shape != gt.shape:
        raise InputError(f"expected predicted and ground-truth joint sequences of the same shape (..., T, J, 3), "
                         f"found {pred.shape} and {gt.shape}")
    if pred.shape[-3] < 3:
        raise InputError(f"expected at least 3 frames for an acceleration, found {pred.shape[-3]}")
    return pred, gt


def _second_difference(sequence: np.ndarray) -> np.ndarray:
    """(..., T, J, 3) -> (..., T - 2, J, 3): x[t] - 2 x[t + 1] + x[t + 2]."""
    return sequence[..., :-2, :, :] - 2.0 * sequence[..., 1:-1, :, :] + sequence[..., 2:, :, :]


def _aligned(points: np.ndarray, align: str, root_index: int) -> np.ndarray:
    if align == "none":
        return points
    if align == "centroid":
        return points - points.mean(axis=1, keepdims=True)
    if align == "root":
        if not -points.shape[1] <= root_index < points.shape[1]:
            raise InputError(f"expected a root index below {points.shape[1]} joints, found {root_index}")
        return points - points[:, [root_index]]
    raise InputError(f"expected alignment 'none', 'root' or 'centroid', found {align!r}")


def _mean_distance_mm(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    return np.linalg.norm(pred - gt, axis=-1).mean(axis=1) * MM_PER_METRE

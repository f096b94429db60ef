"""Rotation representations: 6D, matrices and axis-angle, in torch for the networks and in numpy for geometry
outside them (numpy's: closed forms, as scipy's `Rotation` costs tens of microseconds a call, which a per-person
fitting loop would pay many times over)."""

import numpy as np
import torch
import torch.nn.functional as F


def rotation_6d_to_matrix(d6: torch.Tensor) -> torch.Tensor:
    """(..., 6) -> (..., 3, 3) by Gram-Schmidt (Zhou et al., CVPR 2019), as pytorch3d's function.

    b1 = normalize(a1), b2 = normalize(a2 - (b1.a2) b1), b3 = b1 x b2, stacked as the ROWS of the matrix.
    """
    a1, a2 = d6[..., :3], d6[..., 3:]
    b1 = F.normalize(a1, dim=-1)
    b2 = F.normalize(a2 - (b1 * a2).sum(dim=-1, keepdim=True) * b1, dim=-1)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack((b1, b2, b3), dim=-2)


def matrix_to_rotation_6d(matrix: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) -> (..., 6): the first two rows, the inverse of `rotation_6d_to_matrix` on rotations."""
    return matrix[..., :2, :].reshape(*matrix.shape[:-2], 6)


def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """(..., 3) axis * angle (radians) -> (..., 3, 3) by Rodrigues' formula."""
    angle = axis_angle.norm(dim=-1, keepdim=True).unsqueeze(-1)  # (..., 1, 1)
    axis = F.normalize(axis_angle, dim=-1)
    x, y, z = axis.unbind(-1)
    zero = torch.zeros_like(x)
    skew = torch.stack((zero, -z, y, z, zero, -x, -y, x, zero), dim=-1).reshape(*axis.shape[:-1], 3, 3)
    identity = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device).expand_as(skew)
    return identity + angle.sin() * skew + (1 - angle.cos()) * (skew @ skew)


def cross_matrices(vectors: np.ndarray) -> np.ndarray:
    """(..., 3) -> (..., 3, 3) float64 the matrices [v]x with [v]x u = v x u."""
    vectors = np.asarray(vectors, dtype=np.float64)
    x, y, z = vectors[..., 0], vectors[..., 1], vectors[..., 2]
    matrices = np.zeros((*vectors.shape[:-1], 3, 3))
    matrices[..., 0, 1], matrices[..., 0, 2], matrices[..., 1, 2] = -z, y, -x
    matrices[..., 1, 0], matrices[..., 2, 0], matrices[..., 2, 1] = z, -y, x
    return matrices


def axis_angle_to_matrix_np(axis_angle: np.ndarray) -> np.ndarray:
    """(..., 3) axis * angle in radians -> (..., 3, 3) rotation matrices (float64), by Rodrigues' formula."""
    axis_angle = np.asarray(axis_angle, dtype=np.float64)
    angle = np.linalg.norm(axis_angle, axis=-1)[..., None, None]
    skew = cross_matrices(axis_angle / np.maximum(angle[..., 0], 1e-300))  # of the unit axis (any, for no turn)
    return np.eye(3) + np.sin(angle) * skew + (1 - np.cos(angle)) * (skew @ skew)


def matrix_to_axis_angle_np(matrix: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotations by less than 180 degrees -> (..., 3) axis * angle in radians (float64)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    angle = np.arccos(np.clip((np.trace(matrix, axis1=-2, axis2=-1) - 1) / 2, -1.0, 1.0))[..., None]
    skew = np.stack([matrix[..., 2, 1] - matrix[..., 1, 2], matrix[..., 0, 2] - matrix[..., 2, 0],
                     matrix[..., 1, 0] - matrix[..., 0, 1]], axis=-1)
    sine = np.sin(angle)
    return np.where(sine < 1e-9, skew / 2, skew * angle / (2 * np.maximum(sine, 1e-9)))

"""Rotation representations."""

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

"""An auxiliary training signal: where each 2D keypoint lies on the pose backbone's feature grid.

The token head reads the `backbone_pose` feature map through attention, so the features must say where the limbs
are. Trained from scratch, a small backbone learns that slowly from the token cross-entropy alone; a per-cell
keypoint classification on the same (B, C, n, n) features is a dense, easy target that teaches it directly. The
head is a 1x1 convolution used in training only: it is not part of the model's network, and model files keep it
only as training state (for resuming), which `vqhps-ros strip` drops.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError

SIGMA_CELLS = 0.5  # spread of the target over the grid, in cells


class KeypointHeatmapHead(nn.Module):
    """(B, C, n, n) features -> (B, J, n * n) logits over the cells (row-major, as the transformer's tokens)."""

    def __init__(self, channels: int, joints: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, joints, kernel_size=1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.conv(features).flatten(2)


def keypoint_heatmap_loss(logits: torch.Tensor, keypoints: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of `logits` (B, J, n * n) against a Gaussian of each keypoint over the cell centres.

    keypoints: (B, J, 3) normalised crop x, y in [-1, 1] (the crop's outer edges) and a confidence; joints with
    confidence 0 (unseen, or outside the crop) are left out, whatever their coordinates. Returns the
    confidence-weighted mean over the joints (0 when no joint is seen).
    """
    side = round(logits.shape[-1] ** 0.5)
    if side * side != logits.shape[-1]:
        raise InputError(f"expected logits over a square grid of cells, found {logits.shape[-1]} cells")
    centres = -1.0 + (2.0 * torch.arange(side, device=logits.device, dtype=torch.float32) + 1.0) / side
    cell_y, cell_x = (grid.reshape(-1) for grid in torch.meshgrid(centres, centres, indexing="ij"))
    confidence = keypoints[..., 2].float()
    points = torch.nan_to_num(keypoints[..., :2].float())
    squared = (points[..., :1] - cell_x) ** 2 + (points[..., 1:] - cell_y) ** 2  # (B, J, n * n)
    sigma = SIGMA_CELLS * 2.0 / side
    target = torch.softmax(-squared / (2.0 * sigma**2), dim=-1)
    per_joint = -(target * F.log_softmax(logits.float(), dim=-1)).sum(dim=-1)
    per_joint = torch.where(confidence > 0, per_joint, torch.zeros_like(per_joint))
    return (per_joint * confidence).sum() / confidence.sum().clamp_min(1.0)

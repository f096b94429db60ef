"""The auxiliary keypoint heatmap loss: its target, the cell order, unseen joints."""

import math

import pytest
import torch

from vqhps_ros.errors import InputError
from vqhps_ros.train.keypoint_heatmaps import KeypointHeatmapHead, keypoint_heatmap_loss

SIDE = 7


def keypoints(*points):
    """(1, J, 3) seen keypoints at normalised crop coordinates."""
    return torch.tensor([[[x, y, 1.0] for x, y in points]])


def peaked(cell, cells=SIDE * SIDE, height=20.0):
    logits = torch.zeros(1, 1, cells)
    logits[0, 0, cell] = height
    return logits


def test_the_right_cell_costs_least_and_cells_are_row_major():
    top_right = keypoints((0.9, -0.9))  # row 0, last column
    losses = [keypoint_heatmap_loss(peaked(cell), top_right).item() for cell in range(SIDE * SIDE)]
    assert min(range(SIDE * SIDE), key=losses.__getitem__) == SIDE - 1
    centre = keypoints((0.0, 0.0))
    assert keypoint_heatmap_loss(peaked(SIDE * SIDE // 2), centre) < keypoint_heatmap_loss(peaked(0), centre)


def target_of(point):
    """The loss's target distribution, read from its gradient at uniform logits (softmax - target)."""
    logits = torch.zeros(1, 1, SIDE * SIDE, requires_grad=True)
    keypoint_heatmap_loss(logits, keypoints(point)).backward()
    return (1.0 / (SIDE * SIDE) - logits.grad[0, 0]).reshape(SIDE, SIDE)


def test_the_target_is_a_gaussian_of_half_a_cell_around_the_keypoint():
    x, y = 0.2, -0.3
    target = target_of((x, y))
    assert target.sum().item() == pytest.approx(1.0, abs=1e-6)
    assert divmod(target.argmax().item(), SIDE) == (2, 4)  # y -0.3 -> row 2, x 0.2 -> column 4
    centres = [-1.0 + (2 * index + 1) / SIDE for index in range(SIDE)]
    sigma = 0.5 * 2.0 / SIDE

    def density(row, column):
        return math.exp(-((x - centres[column]) ** 2 + (y - centres[row]) ** 2) / (2 * sigma**2))

    for row, column in ((2, 3), (1, 4), (3, 5)):
        expected = density(row, column) / density(2, 4)
        assert (target[row, column] / target[2, 4]).item() == pytest.approx(expected, rel=1e-4)


def test_unseen_joints_count_for_nothing_whatever_their_coordinates():
    seen = keypoints((0.1, 0.1))
    logits = torch.randn(1, 2, SIDE * SIDE, generator=torch.Generator().manual_seed(0))
    with_unseen = torch.cat([seen, torch.tensor([[[math.nan, math.inf, 0.0]]])], dim=1)
    assert keypoint_heatmap_loss(logits, with_unseen).item() == pytest.approx(
        keypoint_heatmap_loss(logits[:, :1], seen).item())
    nobody = torch.zeros(1, 2, 3)
    assert keypoint_heatmap_loss(logits, nobody).item() == 0.0


def test_head_shapes_and_a_non_square_grid():
    head = KeypointHeatmapHead(channels=8, joints=17)
    assert head(torch.zeros(2, 8, SIDE, SIDE)).shape == (2, 17, SIDE * SIDE)
    with pytest.raises(InputError, match="square grid of cells, found 12 cells"):
        keypoint_heatmap_loss(torch.zeros(1, 1, 12), keypoints((0.0, 0.0)))

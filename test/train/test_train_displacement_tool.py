"""tools/train_displacement_model.py: a short run continued from the shipped network (`--init`), with scene pairs
of the bundled regressor's meshes joining the perturbed ones, writes a network file that records where it started,
what it read, and its check on both kinds of pairs."""


import numpy as np
import pytest
import torch

from vqhps_ros.models import bundled_displacement_net_path
from vqhps_ros.refine import load_displacement_net


@pytest.fixture(scope="module")
def tool(load_tool):
    return load_tool("train_displacement_model")


def test_training_continues_from_the_shipped_network_with_scene_pairs(tool, tmp_path):
    out, shipped = tmp_path / "continued.pt", bundled_displacement_net_path()
    assert tool.main(["--out", str(out), "--init", str(shipped), "--pairs", "8", "--scene-pairs", "3",
                      "--scene-seed", "17", "--check-pairs", "3", "--steps", "2", "--batch", "4", "--workers", "1",
                      "--threads", "1"]) == 0
    data = torch.load(out, weights_only=False)
    assert data["training"]["init"] == str(shipped)
    assert (data["training"]["scene_pairs"], data["training"]["scene_seed"]) == (3, 17)
    assert data["check"]["scene"]["pairs"] == 3 and data["check"]["perturbed"]["pairs"] == 3
    start, continued = load_displacement_net(shipped), load_displacement_net(out)
    changed = [not torch.allclose(a, b) for a, b in zip(start.parameters(), continued.parameters(), strict=True)]
    assert any(changed)


def test_scene_pairs_come_from_the_regressors_meshes_of_the_people_in_view(tool):
    pairs = tool.scene_pairs(4, seed=23, workers=1)
    assert pairs.inputs.shape[0] == 4 and pairs.flow.shape[1:] == (2, 32, 32)
    assert np.all(pairs.covered.reshape(4, -1).sum(axis=1) > 10)
    # the regressor is off by some pixels, not by nothing and not by the crop
    moved = np.linalg.norm(pairs.flow, axis=1)[pairs.valid]
    assert 0.2 < moved.mean() < 8.0

"""tools/train_keypoint_model.py: a short run continued from the shipped model (`--init`), with rendered people
joining the samples, writes a complete model file that records where it started and what it read; a file of
another kind is refused."""


import pytest
import torch

from vqhps_ros.errors import CheckpointError
from vqhps_ros.hps import KeypointMeshRegressor, load_model
from vqhps_ros.models import IMAGE_MODEL, KEYPOINT_MODEL


@pytest.fixture(scope="module")
def tool(load_tool):
    return load_tool("train_keypoint_model")


def test_training_continues_from_a_keypoint_model_file(tool, tmp_path):
    out = tmp_path / "continued.pt"
    assert tool.main(["--out", str(out), "--init", str(KEYPOINT_MODEL), "--samples", "64", "--steps", "2",
                      "--batch", "16", "--threads", "1", "--rendered-frames", "3", "--rendered-seed", "7"]) == 0
    start, continued = load_model(KEYPOINT_MODEL), load_model(out)
    assert isinstance(continued.regressor, KeypointMeshRegressor)
    training = torch.load(out, weights_only=False)["training"]
    assert training["init"] == str(KEYPOINT_MODEL)
    assert (training["rendered_frames"], training["rendered_seed"]) == (3, 7)
    changed = [not torch.allclose(a.float(), b.float()) for a, b in zip(start.regressor.parameters(),
                                                                       continued.regressor.parameters(), strict=True)]
    assert any(changed)  # two steps moved the weights, from the file's (same shapes)


def test_a_model_file_that_does_not_read_keypoints_is_refused(tool):
    with pytest.raises(CheckpointError, match="expected a keypoint model file"):
        tool.initial_model(IMAGE_MODEL)

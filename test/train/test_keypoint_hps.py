"""The keypoint-reading VQ-HPS: its regressor's inputs and outputs, a training run that learns, and its measure on
renders beside the image model."""

import numpy as np
import pytest
import torch

from vqhps_ros.errors import InputError
from vqhps_ros.hps.keypoint_regressor import KeypointMeshRegressor, KeypointRegressorConfig
from vqhps_ros.hps.model import VQHPS
from vqhps_ros.hps.transformer import TransformerDims
from vqhps_ros.models import load_image_model
from vqhps_ros.train.keypoint_data import KeypointSampler
from vqhps_ros.train.keypoint_hps import KeypointTraining, evaluate_on_renders, keypoint_dataset, train_keypoint_hps

SMALL = KeypointRegressorConfig(TransformerDims(model_dim=32, nhead=4, feedforward_dim=64, dropout=0.0), hidden=64)


@pytest.fixture(scope="module")
def demo():
    return load_image_model().eval()


def keypoint_model(demo, config=SMALL) -> VQHPS:
    return VQHPS(KeypointMeshRegressor(config), demo.mesh_vqvae, demo.pose_init, demo.joint_regressor,
                 demo.joint_names, demo.faces)


def test_keypoints_in_meshes_out_and_unseen_keypoints_carry_no_position(demo):
    model = keypoint_model(demo).eval()
    keypoints = torch.rand(3, 33, 3) * 2 - 1
    keypoints[..., 2] = 1.0
    keypoints[1, 5:, 2] = 0.0  # the second person: most keypoints unseen
    output = model(keypoints)
    assert output.verts.shape == (3, 1229, 3) and output.joints.shape == (3, 17, 3) and output.indices.shape == (3, 54)
    moved = keypoints.clone()
    moved[1, 5:, :2] = 5.0  # unseen keypoints' positions do not matter
    np.testing.assert_array_equal(model(moved).indices[1], output.indices[1])
    with pytest.raises(InputError, match=r"keypoints of shape \(B, 33, 3\)"):
        model(torch.zeros(2, 17, 3))
    with pytest.raises(InputError, match="floating-point keypoints"):
        model(torch.zeros(2, 33, 3, dtype=torch.int64))
    assert KeypointRegressorConfig.from_dict(SMALL.to_dict()) == SMALL


def test_training_lowers_every_loss(demo):
    torch.manual_seed(0)
    model = keypoint_model(demo)
    data = keypoint_dataset(KeypointSampler(), model, 256, seed=11)
    assert data["keypoints"].shape == (256, 33, 3) and data["tokens"].shape == (256, 54)
    history = train_keypoint_hps(model, data, KeypointTraining(steps=60, batch_size=32, learning_rate=3e-3,
                                                               log_every=5))
    first, last = history[0], history[-1]
    for loss in ("tokens", "rotation", "camera"):
        assert last[loss] < first[loss], loss
    assert not model.regressor.training


def test_the_learning_rate_warms_up_then_decays_and_a_time_budget_ends_training(demo):
    settings = KeypointTraining(steps=1000, learning_rate=1e-3, warmup=0.1)
    rates = [settings.learning_rate_at(settings.progress(step, 0.0)) for step in (0, 50, 100, 550, 1000)]
    np.testing.assert_allclose(rates, [0.0, 5e-4, 1e-3, 5e-4, 0.0], atol=1e-12)
    timed = KeypointTraining(steps=1000, minutes=1.0)
    assert timed.progress(10, 30.0) == 0.5 and timed.progress(900, 30.0) == 0.9  # whichever is further
    model = keypoint_model(demo)
    data = keypoint_dataset(KeypointSampler(), model, 64, seed=12)
    history = train_keypoint_hps(model, data, KeypointTraining(steps=10**6, batch_size=8, minutes=0.02))
    assert history[-1]["step"] < 10**6 and history[-1]["seconds"] >= 1.2


@pytest.mark.slow
def test_the_measure_on_renders_compares_both_models_on_the_same_people(demo):
    report = evaluate_on_renders(keypoint_model(demo).eval(), seed=3001, num_frames=6, image_model=demo)
    assert report["people"] >= 5
    for name in ("keypoint model", "image model"):
        assert set(report[name]) == {"mpjpe", "pa_mpjpe", "pve", "pa_pve"}
        assert 0 < report[name]["pa_mpjpe"] <= report[name]["mpjpe"] < 2000

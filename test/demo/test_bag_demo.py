"""The bag demo end to end on the sample bag, with a small untrained model of the free body's topology."""

import json

import numpy as np
import pytest
import torch

from vqhps_ros.bag_demo import box_iou, run_bag_demo
from vqhps_ros.body import free_body_h36m_regressor, load_free_body_data
from vqhps_ros.cli import SAMPLE_BAG, main
from vqhps_ros.hps import VQHPS, MeshRegressor, RegressorConfig, TransformerDims, save_model
from vqhps_ros.mesh_vq import MeshVQVAE, build_hierarchy, hierarchy_config
from vqhps_ros.models import DEMO_MODEL


@pytest.fixture(scope="module")
def free_body_model_file(tmp_path_factory):
    torch.manual_seed(0)
    body = load_free_body_data()
    connections = build_hierarchy(body.v_template, body.faces, (1229, 300, 100, 20))
    mesh_vqvae = MeshVQVAE(hierarchy_config(3, num_embeddings=32), connections).eval()
    dims = TransformerDims(model_dim=32, nhead=2, feedforward_dim=64, dict_size=32, block_size=20)
    regressor = MeshRegressor(RegressorConfig(backbone="resnet18_quarter", transformer=dims))
    with torch.no_grad():  # a camera in front of the person, as a trained model predicts
        regressor.cam_predictor.weight.zero_()
        regressor.cam_predictor.bias.copy_(torch.tensor([0.9, 0.0, 0.0]))
    h36m = free_body_h36m_regressor(body)
    model = VQHPS(regressor, mesh_vqvae, np.zeros(51), h36m.matrix, h36m.joint_names, faces=body.faces)
    path = tmp_path_factory.mktemp("model") / "model.pt"
    save_model(model.eval(), path)
    return path


def test_every_frame_is_estimated_scored_and_overlaid(free_body_model_file, tmp_path, request):
    bag = request.config.rootpath / "data" / "sample_bag"
    summary = run_bag_demo(free_body_model_file, bag, tmp_path, overlay_every=15, max_frames=40)
    assert summary["frames"] == 40
    with np.load(bag / "ground_truth.npz") as truth:
        first_stamps = np.unique(truth["stamp_ns"])[:40]
        detections = int(truth["detected"][np.isin(truth["stamp_ns"], first_stamps)].sum())
    assert summary["people"] + summary["skipped_boxes"] == detections
    assert summary["matched_to_ground_truth"] == summary["people"]  # each box is a ground-truth box
    for key in ("mpjpe_mm", "pa_mpjpe_mm", "pelvis_error_mm"):
        assert summary[key] is not None and 0 < summary[key] < 1e5
    assert summary["pa_mpjpe_mm"] <= summary["mpjpe_mm"]
    assert sorted(path.name for path in tmp_path.glob("*.jpg")) == ["frame_0000.jpg", "frame_0015.jpg",
                                                                    "frame_0030.jpg"]
    assert json.loads((tmp_path / "summary.json").read_text()) == summary


def test_demo_command_runs_the_bundled_model_which_beats_an_untrained_one(free_body_model_file, tmp_path):
    assert main(["demo", "--max-frames", "30", "--output", str(tmp_path / "bundled")]) == 0
    bundled = json.loads((tmp_path / "bundled" / "summary.json").read_text())
    assert bundled["model"] == str(DEMO_MODEL)
    assert bundled["people"] == bundled["matched_to_ground_truth"] > 0
    untrained = run_bag_demo(free_body_model_file, SAMPLE_BAG, tmp_path / "untrained", max_frames=30)
    print({key: (bundled[key], untrained[key]) for key in ("mpjpe_mm", "pa_mpjpe_mm", "pelvis_error_mm")})
    assert bundled["pa_mpjpe_mm"] < 0.8 * untrained["pa_mpjpe_mm"]


def test_box_iou():
    assert box_iou(np.array([0, 0, 10, 10.0]), np.array([0, 0, 10, 10.0])) == 1.0
    assert box_iou(np.array([0, 0, 10, 10.0]), np.array([5, 0, 10, 10.0])) == pytest.approx(50 / 150)
    assert box_iou(np.array([0, 0, 10, 10.0]), np.array([20, 20, 5, 5.0])) == 0.0

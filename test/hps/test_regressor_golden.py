"""Parity of the whole VQ-HPS network with the official MeshRegressor (HRNet-W48 and ResNet-50)."""

import numpy as np
import pytest
import torch

from vqhps_ros.hps import VQHPS, MeshRegressor, RegressorConfig
from vqhps_ros.hps.checkpoint import load_regressor_state
from vqhps_ros.mesh_vq import MeshVQConfig, MeshVQVAE, load_connections, load_mesh_vqvae_state

pytestmark = pytest.mark.golden

FEATURE_TOLERANCE = 1e-4
CASES = {"mesh_regressor_hrnet": "hrnet_w48", "mesh_regressor_resnet": "resnet50"}


@pytest.fixture(scope="module")
def mesh_vqvae(reference):
    model = MeshVQVAE(MeshVQConfig(), load_connections(reference.connections, MeshVQConfig().connection_layers))
    load_mesh_vqvae_state(model, reference.state_dict("mesh_vqvae_54"))
    return model.eval()


@pytest.fixture(scope="module", params=sorted(CASES))
def golden_run(request, reference, mesh_vqvae):
    """The filled model run once on the case's images, with the intermediate features captured by hooks."""
    name = request.param
    case = reference.case(name)
    regressor = MeshRegressor(RegressorConfig(backbone=CASES[name]))
    load_regressor_state(regressor, reference.state_dict(name), name)
    model = VQHPS(regressor, mesh_vqvae, pose_init=np.zeros(51)).eval()
    captured = {}
    hooks = {
        "backbone_pose": regressor.backbone_pose,
        "backbone_rot": regressor.backbone_rot,
        "conv_1x1_out": regressor.conv_1x1,
        "fc2_out": regressor.fc2,
        "enc_features": regressor.transformer.encoder,
        "dec_features": regressor.transformer.decoder,
    }
    for key, module in hooks.items():
        module.register_forward_hook(lambda _m, _i, output, key=key: captured.setdefault(key, output.detach()))
    images = torch.from_numpy(case["images"])
    with torch.no_grad():
        # pose_init differs per sample in the case, so the rotation branch is run with the case's values.
        rot6d, cam = regressor.predict_rotation_and_camera(images, torch.from_numpy(case["pose_init"]))
        model.pose_init.copy_(torch.zeros(51))
        output = model(images)
    return {"name": name, "case": case, "model": model, "output": output, "features": captured,
            "rot6d": rot6d, "cam": cam, "state_keys": list(regressor.state_dict())}


def test_state_dict_names_shapes_and_order_match_the_manifest(golden_run, reference):
    manifest = reference.manifest(golden_run["name"])["state_dict"]
    assert golden_run["state_keys"] == [key for key, *_ in manifest]


def test_intermediate_features(golden_run):
    case, features = golden_run["case"], golden_run["features"]
    for key in ("backbone_pose", "backbone_rot", "conv_1x1_out", "fc2_out", "enc_features"):
        if key not in case:  # the ResNet case stores only the pooled rotation features
            continue
        np.testing.assert_allclose(features[key], case[key], atol=FEATURE_TOLERANCE, rtol=0, err_msg=key)
    pooled = features["backbone_rot"].mean(dim=(2, 3))
    np.testing.assert_allclose(pooled, case["backbone_rot_pooled"], atol=FEATURE_TOLERANCE, rtol=0)
    # The decoder runs per image as well, and is independent of the batch: its output matches for both samples.
    np.testing.assert_allclose(features["dec_features"], case["dec_features"], atol=FEATURE_TOLERANCE, rtol=0)
    encoding = golden_run["model"].regressor.position_encoding  # (49, 1, 512)
    np.testing.assert_allclose(encoding[:, 0].t().reshape(512, 7, 7), case["pos_enc"][1], atol=1e-6, rtol=0)


def test_rotation_and_camera(golden_run):
    case = golden_run["case"]
    np.testing.assert_allclose(golden_run["rot6d"], case["rot6d"], atol=FEATURE_TOLERANCE, rtol=0)
    np.testing.assert_allclose(golden_run["cam"], case["cam"], atol=FEATURE_TOLERANCE, rtol=0)


def test_each_crop_alone_matches_the_official_single_image_logits(golden_run):
    case, output = golden_run["case"], golden_run["output"]
    np.testing.assert_allclose(output.logits, case["logits_single"], atol=FEATURE_TOLERANCE, rtol=0)
    # Sample 0 does not see the others in the official batch either (quirk R1).
    np.testing.assert_allclose(output.logits[0], case["logits"][0], atol=FEATURE_TOLERANCE, rtol=0)
    assert torch.equal(output.indices[0], torch.from_numpy(case["indices"][0]))
    assert torch.equal(output.indices, output.logits.argmax(-1))


def test_meshes_of_sample_zero_and_decoding_of_every_sample(golden_run, mesh_vqvae):
    case, output = golden_run["case"], golden_run["output"]
    np.testing.assert_allclose(output.verts_canonical[0], case["mesh_canonical"][0], atol=1e-4, rtol=0)
    with torch.no_grad():
        decoded = mesh_vqvae.decode(output.indices)
    np.testing.assert_allclose(output.verts_canonical, decoded, atol=1e-5, rtol=0)
    rotmat = torch.from_numpy(case["rotmat"])
    expected_verts = output.verts_canonical @ rotmat.transpose(1, 2)  # case rotations (pose_init of the case)
    np.testing.assert_allclose(expected_verts[0], case["mesh"][0], atol=1e-4, rtol=0)


def test_official_batching_reproduces_the_batched_outputs(golden_run):
    case, model = golden_run["case"], golden_run["model"]
    regressor = model.regressor
    model.set_official_batching(True)
    try:
        with torch.no_grad():
            logits = regressor.predict_logits(torch.from_numpy(case["images"]))
    finally:
        model.set_official_batching(False)
    np.testing.assert_allclose(logits, case["logits"], atol=FEATURE_TOLERANCE, rtol=0)
    assert torch.equal(logits.argmax(-1), torch.from_numpy(case["indices"]))


def test_full_outputs_with_the_case_pose_init(golden_run):
    """Rotation matrix, canonical and rotated meshes for the whole batch under official batching."""
    case, model = golden_run["case"], golden_run["model"]
    images = torch.from_numpy(case["images"])
    outputs = []
    model.set_official_batching(True)
    try:
        with torch.no_grad():
            for index in range(images.shape[0]):
                model.pose_init.copy_(torch.from_numpy(case["pose_init"][index]))
                outputs.append(_select(model(images), index))
    finally:
        model.set_official_batching(False)
        model.pose_init.zero_()
    for index, output in enumerate(outputs):
        np.testing.assert_allclose(output["rotmat"], case["rotmat"][index], atol=1e-4, rtol=0)
        np.testing.assert_allclose(output["cam"], case["cam"][index], atol=1e-4, rtol=0)
        assert torch.equal(output["indices"], torch.from_numpy(case["indices"][index]))
        np.testing.assert_allclose(output["verts_canonical"], case["mesh_canonical"][index], atol=1e-4, rtol=0)
        np.testing.assert_allclose(output["verts"], case["mesh"][index], atol=1e-4, rtol=0)


def _select(output, index):
    return {field: getattr(output, field)[index] for field in ("rotmat", "cam", "indices", "verts_canonical", "verts")}

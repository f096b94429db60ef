"""Image backbones: official key layout and numerical parity, output shapes, cost, factory errors."""

import numpy as np
import pytest
import torch

from vqhps_ros.hps.backbones import (
    BACKBONE_NAMES,
    HRNET_WIDTHS,
    backbone_channels,
    build_backbone,
    build_backbone_pair,
    compute_cost,
)
from vqhps_ros.hps.hrnet import HRNet
from vqhps_ros.hps.resnet import RESNET_SPECS, TORCHVISION_CHILDREN, ResNetTrunk, torchvision_to_trunk_keys

GOLDEN_BACKBONES = {"mesh_regressor_hrnet": "hrnet_w48", "mesh_regressor_resnet": "resnet50"}
GOLDEN_ATOL = 1e-4


@pytest.fixture(scope="module")
def pairs():
    """Backbone pairs built once per module (HRNet-W48 takes seconds to build), in eval mode."""
    cache = {}

    def get(name):
        if name not in cache:
            pair = build_backbone_pair(name)
            pair.pose.eval()
            pair.rot.eval()
            cache[name] = pair
        return cache[name]

    return get


def _branch_state(state_dict, branch):
    prefix = f"backbone_{branch}."
    return {key.removeprefix(prefix): value for key, value in state_dict.items() if key.startswith(prefix)}


@pytest.mark.golden
@pytest.mark.parametrize("manifest", sorted(GOLDEN_BACKBONES))
def test_backbones_match_official(reference, pairs, manifest):
    pair = pairs(GOLDEN_BACKBONES[manifest])
    weights = reference.state_dict(manifest)
    case = reference.case(manifest)
    images = torch.from_numpy(case["images"])
    pooled_expected = case["backbone_rot_pooled"]
    # The ResNet case stores only the pooled vector, which is the official (B, C, 1, 1) output flattened.
    expected = {
        "pose": case["backbone_pose"],
        "rot": case.get("backbone_rot", pooled_expected[:, :, None, None]),
    }
    for branch, module in (("pose", pair.pose), ("rot", pair.rot)):
        state = _branch_state(weights, branch)
        assert list(module.state_dict()) == list(state), f"{branch}: state-dict key order differs from the official"
        module.load_state_dict(state, strict=True)
        with torch.no_grad():
            output = module(images).numpy()
        assert output.shape == expected[branch].shape
        np.testing.assert_allclose(output, expected[branch], rtol=0, atol=GOLDEN_ATOL, err_msg=branch)
        if branch == "rot":
            np.testing.assert_allclose(output.mean(axis=(2, 3)), pooled_expected, rtol=0, atol=GOLDEN_ATOL)


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("name", BACKBONE_NAMES)
def test_output_shapes(pairs, name, batch):
    pose, rot, channels = pairs(name)
    assert channels == backbone_channels(name) == pose.out_channels == rot.out_channels
    images = torch.randn(batch, 3, 224, 224)
    with torch.no_grad():
        features, rot_features = pose(images), rot(images)
    assert features.shape == (batch, channels, 7, 7)
    rot_side = 7 if name in HRNET_WIDTHS else 1
    assert rot_features.shape == (batch, channels, rot_side, rot_side)


def test_official_channel_counts():
    assert backbone_channels("hrnet_w48") == 720
    assert backbone_channels("resnet50") == 2048
    assert backbone_channels("resnet18") == 512


def test_resnet_cost_matches_torchvision():
    # torchvision's tables: ResNet-50 25,557,032 / ResNet-18 11,689,512 parameters with the 1000-way fc,
    # 4.09 / 1.81 GFLOPs (multiply-adds).
    resnet50 = compute_cost(build_backbone("resnet50"))
    resnet18 = compute_cost(build_backbone("resnet18"))
    assert resnet50.parameters == 25_557_032 - (2048 * 1000 + 1000)
    assert resnet18.parameters == 11_689_512 - (512 * 1000 + 1000)
    assert resnet50.gflops == pytest.approx(4.09, abs=0.01)
    assert resnet18.gflops == pytest.approx(1.81, abs=0.01)


def test_light_backbones_are_much_smaller(pairs):
    def parameters(name):
        pair = pairs(name)
        return sum(p.numel() for module in (pair.pose, pair.rot) for p in module.parameters())

    resnet50 = parameters("resnet50")
    assert parameters("resnet18") < 0.5 * resnet50
    assert parameters("resnet18_half") < 0.15 * resnet50
    assert parameters("resnet18_quarter") < 0.05 * resnet50


def test_cost_keeps_training_flag():
    module = build_backbone("resnet18_quarter")
    assert module.training
    compute_cost(module)
    assert module.training


def test_unknown_names_raise():
    with pytest.raises(ValueError, match="resnet51") as error:
        build_backbone_pair("resnet51")
    for name in BACKBONE_NAMES:
        assert name in str(error.value)
    with pytest.raises(ValueError, match="valid branches"):
        build_backbone("resnet18", branch="shape")
    with pytest.raises(ValueError, match="valid backbones"):
        backbone_channels("vgg16")


def test_torchvision_checkpoint_renaming():
    trunk = ResNetTrunk(RESNET_SPECS["resnet18"], pooled=True)
    torchvision_state = {
        f"{TORCHVISION_CHILDREN[int(index)]}.{rest}": value
        for key, value in trunk.state_dict().items()
        for index, _, rest in [key.partition(".")]
    }
    torchvision_state["fc.weight"] = torch.zeros(1000, 512)
    torchvision_state["fc.bias"] = torch.zeros(1000)
    renamed = torchvision_to_trunk_keys(torchvision_state)
    assert list(renamed) == list(trunk.state_dict())
    ResNetTrunk(RESNET_SPECS["resnet18"], pooled=False).load_state_dict(renamed, strict=True)
    with pytest.raises(ValueError, match="classifier.weight"):
        torchvision_to_trunk_keys({"classifier.weight": torch.zeros(1)})


@pytest.mark.parametrize("make", [lambda: HRNet(width=8), lambda: build_backbone("resnet18_quarter")],
                         ids=["hrnet_w8", "resnet18_quarter"])
def test_backbones_train_with_inplace_activations(make):
    module = make()
    images = torch.randn(2, 3, 64, 64, requires_grad=True)
    module(images).square().mean().backward()
    assert images.grad is not None and torch.isfinite(images.grad).all()
    assert all(p.grad is not None for n, p in module.named_parameters() if not n.startswith("final_layer."))

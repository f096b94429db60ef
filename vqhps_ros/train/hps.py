"""Training of the VQ-HPS regressor (`vqhps-ros train-hps`), following the official recipe.

Per batch, the frozen Mesh-VQ-VAE tokenises the ground-truth canonical meshes (after augmentation, so a flipped
mesh gets its own tokens), and the loss is

    token_weight * CE(logits, tokens)
    + rotation_weight * MSE(predicted rotation matrix, ground-truth global orientation matrix)
    + reprojection_weight * mean_j(conf_j * |weak_perspective(J_h36m[H36M_TO_J17] @ verts, cam)_j - keypoint_j|_1 / 2)
    + vertex_weight * mean |canonical mesh - ground-truth canonical mesh|_1 (metres)
    + heatmap_weight * keypoint_heatmap_loss(pose backbone features, keypoints)

with the keypoints in normalised crop coordinates. The last two terms are not upstream's (both weights are 0 by
default, which is the official recipe):

* vertex_weight > 0: training decodes a *soft* mesh, the Mesh-VQ-VAE decoder applied to the probability-weighted
  codebook rows softmax(logits) @ codebook, and both the vertex and the reprojection terms use it, so the logits
  get a dense geometric gradient besides the cross-entropy (`soft_mesh_output`);
* heatmap_weight > 0: an auxiliary head classifies where each 2D keypoint lies on the pose backbone's feature
  grid (`keypoint_heatmaps`), a dense target for a backbone trained from scratch.

Validation and inference always decode the argmax tokens. AdamW (lr 1e-4, weight decay 1e-3) and a StepLR (every
100 epochs, gamma 0.1) as upstream. The model file is written at the end of every epoch (`save_model`, official
layout plus optimizer / scheduler / epoch / step, and the auxiliary head's state) and training resumes from it at
the next epoch. The model's joint regressor is the H36M-17 regressor in its file's row order, named by
`H36M_17_JOINT_NAMES`.

Validation (every `validate_every` epochs and after the last one): token accuracy (%) and the official
MPJPE / PA-MPJPE / PVE / PA-PVE in millimetres (`evaluate_meshes`, meshes centred on their centroid, ground truth
= R @ canonical mesh).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from ..body.joints import H36M_17_JOINT_NAMES, H36M_TO_J17, load_regressor_matrix
from ..checkpoints import extract_state_dict, read_checkpoint, same_state_dict
from ..errors import CheckpointError, InputError
from ..hps import (
    ARGMAX,
    BACKBONE_NAMES,
    EXPECTED,
    VQHPS,
    HPSOutput,
    MeshRegressor,
    RegressorConfig,
    RegressorOutput,
    TransformerDims,
    load_model,
    pose_init_from_mesh,
    save_model,
    weak_perspective_project,
)
from ..hps.backbones import frozen_prefix
from ..hps.checkpoint import PACKAGE_KEY, load_regressor_state
from ..mesh_vq import MeshVQVAE, load_mesh_vqvae
from ..metrics import evaluate_meshes
from .hps_data import (
    HPSDataset,
    load_hps_annotations,
    mirror_permutation,
)
from .keypoint_heatmaps import KeypointHeatmapHead, keypoint_heatmap_loss
from .settings import EVALUATION_BATCH_SIZE, HPSTrainConfig

LOG = logging.getLogger(__name__)
H36M_JOINTS = len(H36M_17_JOINT_NAMES)
AUXILIARY_HEADS_KEY = "auxiliary_heads"  # training state of the heads that are not part of the model's network
KEYPOINT_HEAD_KEY = "keypoint_heatmaps"


@dataclass
class HPSHistory:
    """Per-step training losses and token accuracy (%), and per-validation metrics (mm, %)."""

    steps: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    token_loss: list[float] = field(default_factory=list)
    rotation_loss: list[float] = field(default_factory=list)
    reprojection_loss: list[float] = field(default_factory=list)
    vertex_loss: list[float] = field(default_factory=list)
    heatmap_loss: list[float] = field(default_factory=list)
    token_accuracy: list[float] = field(default_factory=list)
    epochs: list[int] = field(default_factory=list)  # completed epochs (1-based) of this run
    validation: list[dict] = field(default_factory=list)


class HPSLosses(NamedTuple):
    total: torch.Tensor  # () weighted sum
    tokens: torch.Tensor  # () cross-entropy
    rotation: torch.Tensor  # () MSE of the rotation matrices
    reprojection: torch.Tensor  # () confidence-weighted L1 in normalised crop coordinates
    vertices: torch.Tensor  # () mean L1 of the canonical mesh, metres
    heatmaps: torch.Tensor  # () keypoint heatmap cross-entropy (0 without the auxiliary head)
    token_accuracy: torch.Tensor  # () percent of tokens predicted right


# ------------------------------------------------------------------------------------------------- model


def build_hps_model(mesh_vqvae: MeshVQVAE, backbone: str, h36m_regressor, tpose,
                    transformer: TransformerDims | None = None, faces: np.ndarray | None = None) -> VQHPS:
    """A randomly initialised VQHPS around a (frozen) Mesh-VQ-VAE.

    h36m_regressor: (17, V) `J_regressor_h36m.npy` rows (stored in the model as its joint regressor, named
    `H36M_17_JOINT_NAMES`); tpose: (V, 3) mesh whose H36M joints are pose_init. transformer: the official
    dimensions by default; its token count and codebook size always follow the Mesh-VQ-VAE.
    """
    if backbone not in BACKBONE_NAMES:
        raise InputError(f"unknown backbone {backbone!r}; valid backbones are: {', '.join(BACKBONE_NAMES)}")
    vertices = mesh_vqvae.num_vertices
    h36m_regressor = np.asarray(h36m_regressor, dtype=np.float32)
    tpose = np.asarray(tpose, dtype=np.float64)
    if h36m_regressor.shape != (H36M_JOINTS, vertices):
        raise InputError(f"expected a ({H36M_JOINTS}, {vertices}) H36M joint regressor for this Mesh-VQ-VAE, "
                         f"found shape {h36m_regressor.shape}")
    if tpose.shape != (vertices, 3) or not np.all(np.isfinite(tpose)):
        raise InputError(f"expected a finite ({vertices}, 3) T-pose mesh, found shape {tpose.shape}")
    sizes = {"block_size": mesh_vqvae.num_tokens, "dict_size": mesh_vqvae.num_embeddings}
    if transformer is None:
        transformer = replace(TransformerDims(), **sizes)
    elif (transformer.block_size, transformer.dict_size) != tuple(sizes.values()):
        raise InputError(f"the transformer must predict {sizes['block_size']} tokens of {sizes['dict_size']} "
                         f"codes for this Mesh-VQ-VAE, found {transformer.block_size} of {transformer.dict_size}")
    regressor = MeshRegressor(RegressorConfig(backbone=backbone, transformer=transformer))
    pose_init = torch.from_numpy(pose_init_from_mesh(tpose, h36m_regressor)).float()
    model = VQHPS(regressor, mesh_vqvae.eval(), pose_init, torch.from_numpy(h36m_regressor), H36M_17_JOINT_NAMES,
                  faces)
    model.mesh_vqvae.requires_grad_(False)
    return model


def freeze_backbone_blocks(model: VQHPS, blocks: int) -> None:
    """Turn off the gradients of the first `blocks` feature blocks of both backbones (`frozen_backbone_blocks`);
    `_training_mode` then keeps their BatchNorm statistics too. Nothing to do for 0."""
    if blocks == 0:
        return
    regressor = model.regressor
    for backbone in (regressor.backbone_pose, regressor.backbone_rot):
        frozen_prefix(regressor.config.backbone, backbone, blocks).requires_grad_(False)


def _training_mode(model: VQHPS, keypoint_head: KeypointHeatmapHead | None = None) -> None:
    """Regressor (and auxiliary head) in training mode; the Mesh-VQ-VAE stays in eval mode (frozen, as upstream),
    and so does every BatchNorm whose weights are frozen: a block kept fixed keeps its statistics as well."""
    model.train()
    model.mesh_vqvae.eval()
    for layer in model.regressor.modules():
        if isinstance(layer, nn.BatchNorm2d) and not layer.weight.requires_grad:
            layer.eval()
    if keypoint_head is not None:
        keypoint_head.train()


# ------------------------------------------------------------------------------------------------- losses


def reprojection_loss(joints: torch.Tensor, cam: torch.Tensor, keypoints: torch.Tensor) -> torch.Tensor:
    """Official `reprojection_loss_conf`: joints (B, 17, 3) in H36M order, cam (B, 3), keypoints (B, 17, 3)
    normalised crop x, y + confidence in `H36M_TO_J17` order -> () mean of conf * mean |dx|, |dy|."""
    projected = weak_perspective_project(joints[:, list(H36M_TO_J17)], cam)
    per_joint = (projected - keypoints[..., :2]).abs().mean(dim=-1) * keypoints[..., 2]
    return per_joint.mean()


def hps_losses(output: HPSOutput, tokens: torch.Tensor, rotation: torch.Tensor, keypoints: torch.Tensor,
               canonical_vertices: torch.Tensor, config: HPSTrainConfig,
               heatmap_logits: torch.Tensor | None = None) -> HPSLosses:
    """All loss terms of a batch: tokens (B, T) ground-truth indices, rotation (B, 3, 3), keypoints (B, 17, 3),
    canonical_vertices (B, V, 3) the ground-truth canonical mesh, heatmap_logits (B, 17, n * n) of the auxiliary
    head when there is one."""
    token_loss = F.cross_entropy(output.logits.flatten(0, 1).float(), tokens.flatten())
    rotation_loss = F.mse_loss(output.rotmat, rotation)
    projection_loss = reprojection_loss(output.joints, output.cam, keypoints)
    vertex_loss = (output.verts_canonical - canonical_vertices).abs().mean()
    total = (config.token_weight * token_loss + config.rotation_weight * rotation_loss
             + config.reprojection_weight * projection_loss)
    if config.vertex_weight > 0:
        total = total + config.vertex_weight * vertex_loss
    heatmap_loss = torch.zeros_like(token_loss)
    if heatmap_logits is not None:
        heatmap_loss = keypoint_heatmap_loss(heatmap_logits, keypoints)
        total = total + config.heatmap_weight * heatmap_loss
    accuracy = 100.0 * (output.indices == tokens).float().mean()
    return HPSLosses(total, token_loss, rotation_loss, projection_loss, vertex_loss, heatmap_loss, accuracy)


def soft_mesh_output(model: VQHPS, crops: torch.Tensor) -> HPSOutput:
    """`model(crops)` with the mesh decoded from softmax(logits) @ codebook, differentiable in the logits (the
    Mesh-VQ-VAE's weights stay frozen). Indices and confidences are still those of the argmax tokens."""
    return model.decode_regression(*_regress(model, crops, with_features=False)[0], token_decoding=EXPECTED)


def _regress(model: VQHPS, crops: torch.Tensor, with_features: bool):
    """The regressor's (logits, rot6d, cam), and the pose backbone's features when asked (else None)."""
    pose_init = model.pose_init.to(crops.dtype).expand(crops.shape[0], -1)
    if not with_features:
        return model.regressor(crops, pose_init), None
    features = model.regressor.backbone_pose(crops)
    rot6d, cam = model.regressor.predict_rotation_and_camera(crops, pose_init)
    return RegressorOutput(model.regressor.logits_from_features(features), rot6d, cam), features


def _batch_losses(model: VQHPS, batch: dict, config: HPSTrainConfig, device: torch.device,
                  token_decoding: str | None = None, keypoint_head: KeypointHeatmapHead | None = None):
    """The output and losses of one batch, its mesh decoded as `token_decoding` says (None: the model's decoding)."""
    canonical = batch["canonical_vertices"].to(device)
    with torch.no_grad():
        tokens = model.mesh_vqvae.encode(canonical)
    regression, features = _regress(model, batch["image"].to(device), with_features=keypoint_head is not None)
    output = model.decode_regression(*regression, token_decoding=token_decoding)
    heatmap_logits = None if keypoint_head is None else keypoint_head(features)
    losses = hps_losses(output, tokens, batch["rotation"].to(device), batch["keypoints"].to(device), canonical,
                        config, heatmap_logits)
    return output, losses


# ------------------------------------------------------------------------------------------------ training


def train_hps(model: VQHPS, train_data: HPSDataset, validation_data: HPSDataset | None, output: str | Path,
              config: HPSTrainConfig = HPSTrainConfig(), resume: str | Path | None = None,  # noqa: B008 (frozen)
              on_validation: Callable[[int, dict], None] | None = None) -> HPSHistory:
    """Train `model.regressor` in place for `config.epochs` epochs (counting those of `resume`).

    Writes `output` at the end of every epoch; `resume` (a file written here) restores the regressor, the
    optimizer, the scheduler and the epoch, and training continues at the next epoch. Every epoch seeds
    torch's global generator (dropout) and the data order from (seed, epoch), so a resumed run repeats an
    uninterrupted one. Returns the history of this run; the model is left in eval mode on `config`'s device.
    """
    _check_model(model, train_data, validation_data)
    if len(train_data) < config.batch_size:
        raise InputError(f"the training set has {len(train_data)} samples, fewer than one batch of "
                         f"{config.batch_size}")
    device = config.torch_device()
    model.to(device)
    model.mesh_vqvae.requires_grad_(False)
    keypoint_head = _keypoint_head(model, config, device)
    freeze_backbone_blocks(model, config.frozen_backbone_blocks)
    trained = [parameter for parameter in model.regressor.parameters() if parameter.requires_grad]
    trained += keypoint_head.parameters() if keypoint_head else ()
    optimizer = torch.optim.AdamW(trained, lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.lr_step_epochs, gamma=config.lr_gamma)
    start_epoch, step = _resume(model, optimizer, scheduler, resume, keypoint_head) if resume else (0, 0)
    if start_epoch >= config.epochs:
        LOG.info("nothing to train: %s already holds %d of the %d epochs", resume, start_epoch, config.epochs)
    history = HPSHistory()
    for epoch in range(start_epoch, config.epochs):
        epoch_loss = _train_epoch(model, optimizer, train_data, config, epoch, step, history, device, keypoint_head)
        step = history.steps[-1]
        scheduler.step()
        history.epochs.append(epoch + 1)
        extra = {}
        if validation_data is not None and ((epoch + 1) % config.validate_every == 0 or epoch + 1 == config.epochs):
            metrics = {"epoch": epoch + 1, **validate_hps(model, validation_data, config, device, keypoint_head)}
            history.validation.append(metrics)
            _log_validation(metrics)
            extra["validation"] = metrics
            if on_validation:
                on_validation(epoch + 1, metrics)
        if keypoint_head is not None:
            extra[AUXILIARY_HEADS_KEY] = {KEYPOINT_HEAD_KEY: keypoint_head.state_dict()}
        save_model(model, output, loss=epoch_loss, epoch=epoch + 1, step=step, optimizer=optimizer.state_dict(),
                   scheduler=scheduler.state_dict(), train_config=asdict(config), **extra)
    model.eval()
    return history


def _keypoint_head(model: VQHPS, config: HPSTrainConfig, device: torch.device) -> KeypointHeatmapHead | None:
    """The auxiliary head when its loss is on, seeded from the config (created after the model: its own seed)."""
    if config.heatmap_weight == 0:
        return None
    torch.manual_seed(config.seed)
    return KeypointHeatmapHead(model.regressor.conv_1x1.in_channels, H36M_JOINTS).to(device)


def _train_epoch(model: VQHPS, optimizer: torch.optim.Optimizer, data: HPSDataset, config: HPSTrainConfig,
                 epoch: int, step: int, history: HPSHistory, device: torch.device,
                 keypoint_head: KeypointHeatmapHead | None) -> float:
    """One pass over `data`; appends every step to `history` and returns the epoch's mean loss."""
    torch.manual_seed(_epoch_seed(config.seed, epoch))
    data.set_epoch(epoch)
    loader = _loader(data, config, device, shuffle=True, seed=_epoch_seed(config.seed, epoch))
    _training_mode(model, keypoint_head)
    losses_sum, accuracy_sum, batches = 0.0, 0.0, 0
    progress = tqdm(loader, desc=f"train-hps epoch {epoch + 1}/{config.epochs}")
    for batch in progress:
        decoding = EXPECTED if config.vertex_weight > 0 else ARGMAX  # the soft mesh carries the vertex loss
        _, losses = _batch_losses(model, batch, config, device, decoding, keypoint_head)
        optimizer.zero_grad(set_to_none=True)
        losses.total.backward()
        optimizer.step()
        step += 1
        values = [value.item() for value in losses]
        if not math.isfinite(values[0]):
            raise FloatingPointError(f"training diverged at step {step} (epoch {epoch + 1}): loss {values[0]}")
        _record_step(history, step, values)
        losses_sum, accuracy_sum, batches = losses_sum + values[0], accuracy_sum + values[6], batches + 1
        progress.set_postfix(loss=f"{losses_sum / batches:.4f}", token_acc=f"{accuracy_sum / batches:.1f}%")
    LOG.info("epoch %d: training loss %.4f, token accuracy %.1f %%", epoch + 1, losses_sum / batches,
             accuracy_sum / batches)
    return losses_sum / batches


def _record_step(history: HPSHistory, step: int, values: list[float]) -> None:
    history.steps.append(step)
    history.loss.append(values[0])
    history.token_loss.append(values[1])
    history.rotation_loss.append(values[2])
    history.reprojection_loss.append(values[3])
    history.vertex_loss.append(values[4])
    history.heatmap_loss.append(values[5])
    history.token_accuracy.append(values[6])


def _epoch_seed(seed: int, epoch: int) -> int:
    return seed * 1_000_003 + epoch


def _loader(data: HPSDataset, config: HPSTrainConfig, device: torch.device, shuffle: bool,
            seed: int = 0) -> torch.utils.data.DataLoader:
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return torch.utils.data.DataLoader(
        data, batch_size=config.batch_size, shuffle=shuffle, drop_last=shuffle, generator=generator,
        num_workers=config.num_workers, worker_init_fn=_init_worker if config.num_workers else None,
        pin_memory=device.type == "cuda",
    )


def _init_worker(worker_id: int) -> None:
    """One thread per loader worker: the workers already run in parallel, and OpenCV threads may hang a fork."""
    cv2.setNumThreads(1)
    torch.set_num_threads(1)


# ---------------------------------------------------------------------------------------------- validation


@torch.no_grad()
def validate_hps(model: VQHPS, data: HPSDataset, config: HPSTrainConfig = HPSTrainConfig(),  # noqa: B008 (frozen)
                 device: torch.device | None = None, keypoint_head: KeypointHeatmapHead | None = None) -> dict:
    """Mean loss terms, token accuracy (%) and MPJPE / PA-MPJPE / PVE / PA-PVE (mm) over `data` (the heatmap term
    only with the auxiliary head that was trained). The meshes are decoded as the model decodes
    (`model.token_decoding`: argmax, the official evaluation, unless set); the token accuracy is the argmax tokens'
    either way."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    if keypoint_head is not None:
        keypoint_head.eval()
    sums: dict[str, float] = {}
    errors: dict[str, list[np.ndarray]] = {}
    regressor = model.joint_regressor.detach().cpu().numpy()
    for batch in _loader(data, config, device, shuffle=False):
        output, losses = _batch_losses(model, batch, config, device, keypoint_head=keypoint_head)
        count = len(batch["index"])
        for name, value in zip(("loss", "token_loss", "rotation_loss", "reprojection_loss", "vertex_loss",
                                "heatmap_loss", "token_accuracy_pct"),
                               losses, strict=True):
            sums[name] = sums.get(name, 0.0) + value.item() * count
        truth = torch.matmul(batch["canonical_vertices"].double(), batch["rotation"].double().transpose(1, 2))
        for name, values in evaluate_meshes(output.verts.cpu().double().numpy(), truth.numpy(), regressor,
                                            H36M_TO_J17).items():
            errors.setdefault(name, []).append(values)
    if was_training:
        _training_mode(model, keypoint_head)
    samples = len(data)
    metrics = {name: total / samples for name, total in sums.items()}
    metrics.update({f"{name}_mm": float(np.concatenate(values).mean()) for name, values in errors.items()})
    metrics["samples"] = samples
    return metrics


def _log_validation(metrics: dict) -> None:
    LOG.info("epoch %d: validation token accuracy %.1f %%, MPJPE %.1f mm, PA-MPJPE %.1f mm, PVE %.1f mm",
             metrics["epoch"], metrics["token_accuracy_pct"], metrics["mpjpe_mm"], metrics["pa_mpjpe_mm"],
             metrics["pve_mm"])


# ------------------------------------------------------------------------------------------ checks, resume


def _check_model(model: VQHPS, train_data: HPSDataset, validation_data: HPSDataset | None) -> None:
    if model.joint_regressor is None or tuple(model.joint_regressor.shape) != (H36M_JOINTS, model.num_vertices):
        raise InputError(f"the model needs the ({H36M_JOINTS}, {model.num_vertices}) H36M joint regressor for the "
                         "reprojection loss (see build_hps_model)")
    for name, data in (("training", train_data), ("validation", validation_data)):
        if data is None:
            continue
        if data.annotations.num_vertices != model.num_vertices:
            raise InputError(f"the {name} meshes have {data.annotations.num_vertices} vertices; the model's "
                             f"Mesh-VQ-VAE expects {model.num_vertices}")
        if len(data) == 0:
            raise InputError(f"the {name} set is empty")


def _resume(model: VQHPS, optimizer: torch.optim.Optimizer, scheduler, path: str | Path,
            keypoint_head: KeypointHeatmapHead | None) -> tuple[int, int]:
    """Restore a file written by `train_hps`; returns (completed epochs, completed steps)."""
    data = read_checkpoint(path)
    missing = [key for key in ("optimizer", "scheduler", "epoch", PACKAGE_KEY) if key not in data]
    if missing:
        raise CheckpointError(f"{path} cannot be resumed: it lacks {', '.join(missing)} (not written by train-hps)")
    load_regressor_state(model.regressor, extract_state_dict(data, str(path)), str(path))
    _check_same_mesh_vqvae(model.mesh_vqvae, data[PACKAGE_KEY].get("mesh_vqvae", {}), path)
    stored_head = data.get(AUXILIARY_HEADS_KEY, {}).get(KEYPOINT_HEAD_KEY)
    if (stored_head is None) != (keypoint_head is None):
        weight = data.get("train_config", {}).get("heatmap_weight", 0.0)
        raise CheckpointError(f"{path} was trained with heatmap_weight {weight}: resume with it (the keypoint "
                              "heatmap head is on exactly when the weight is above 0)")
    if keypoint_head is not None:
        keypoint_head.load_state_dict(stored_head)
    optimizer.load_state_dict(data["optimizer"])
    scheduler.load_state_dict(data["scheduler"])
    epoch, step = int(data["epoch"]), int(data.get("step", 0))
    LOG.info("resumed %s after epoch %d (step %d)", path, epoch, step)
    return epoch, step


def _check_same_mesh_vqvae(mesh_vqvae: MeshVQVAE, stored: dict, path: str | Path) -> None:
    """The tokens are the regressor's targets: resuming with another Mesh-VQ-VAE would change the task."""
    if not same_state_dict(mesh_vqvae.state_dict(), stored.get("model", {})):
        raise CheckpointError(f"{path} was trained with a different Mesh-VQ-VAE than the one given; resume with "
                              "the Mesh-VQ-VAE it was trained with")


# ------------------------------------------------------------------------------------------------------ CLI


def load_tpose(path: str | Path, num_vertices: int) -> np.ndarray:
    """(V, 3) float64 T-pose mesh from a .npy file, checked against the Mesh-VQ-VAE's vertex count."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"expected a T-pose mesh file (.npy), found nothing at {path}")
    try:
        tpose = np.load(path, allow_pickle=False)
    except ValueError as error:
        raise InputError(f"{path}: expected a numeric (V, 3) .npy array, found an unreadable file") from error
    if tpose.shape != (num_vertices, 3) or tpose.dtype.kind not in "fiu" or not np.all(np.isfinite(tpose)):
        raise InputError(f"{path}: expected a finite ({num_vertices}, 3) T-pose mesh for this Mesh-VQ-VAE, "
                         f"found shape {tpose.shape} {tpose.dtype}")
    return tpose.astype(np.float64)


def evaluate_model_file(model_path: str | Path, dataset: str | Path, batch_size: int = EVALUATION_BATCH_SIZE,
                        token_decoding: str = ARGMAX) -> dict:
    """`vqhps-ros evaluate`: a model file on a dataset folder (no augmentation) -> `validate_hps` metrics, the meshes
    decoded as `token_decoding` says (InputError for an unknown one)."""
    model = load_model(model_path)
    model.set_token_decoding(token_decoding)
    data = HPSDataset(load_hps_annotations(dataset, model.num_vertices), box_rescale=HPSTrainConfig.box_rescale)
    return validate_hps(model, data, HPSTrainConfig(batch_size=batch_size, num_workers=0, device="cpu"))


def load_template_faces(path: str | Path) -> np.ndarray:
    """The (F, 3) `faces` of a template .npz (as `build-connections` reads it), stored in the model file."""
    with np.load(path, allow_pickle=False) as template:
        if "faces" not in template.files:
            raise InputError(f"{path}: expected an array 'faces' (F, 3), found {template.files}")
        return template["faces"]


def run_train_hps(args, config: HPSTrainConfig) -> HPSHistory:
    """`vqhps-ros train-hps`: read the files named by `args` (see `cli.py`), train, return the history."""
    mesh_vqvae = load_mesh_vqvae(args.mesh_vqvae, args.connections)
    vertices = mesh_vqvae.num_vertices
    tpose = load_tpose(args.tpose, vertices)
    # Options left out (None) keep TransformerDims' defaults, the official dimensions.
    dims = {name: getattr(args, name, None) for name in ("model_dim", "nhead", "feedforward_dim")}
    transformer = replace(TransformerDims(), **{name: value for name, value in dims.items() if value is not None},
                          block_size=mesh_vqvae.num_tokens, dict_size=mesh_vqvae.num_embeddings)
    faces = load_template_faces(args.template) if args.template else None
    model = build_hps_model(mesh_vqvae, args.backbone, load_regressor_matrix(args.h36m_regressor), tpose,
                            transformer, faces)
    if getattr(args, "pretrained_backbone", False) and not args.resume:  # a resumed run has its own weights
        model.regressor.load_pretrained_backbones()
    mirror = mirror_permutation(tpose, config.mirror_tolerance) if config.flip_probability > 0 else None
    train_data = HPSDataset(load_hps_annotations(args.dataset, vertices), config.augmentation(), mirror,
                            config.box_rescale, config.seed)
    validation_data = None
    if args.validation:
        validation_data = HPSDataset(load_hps_annotations(args.validation, vertices), box_rescale=config.box_rescale)
    LOG.info("training VQ-HPS (%s backbone) on %d samples, validating on %d", args.backbone, len(train_data),
             len(validation_data) if validation_data else 0)
    return train_hps(model, train_data, validation_data, args.output, config, resume=args.resume)


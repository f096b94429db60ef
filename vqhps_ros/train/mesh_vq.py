"""Training of the Mesh-VQ-VAE on canonical meshes (official recipe: Adam lr 5e-5, batch 16, V2V + commitment).

Meshes come from an .npz (array `vertices`, (M, N, 3) metres) or a folder of .npy/.npz files holding (N, 3) or
(M, N, 3) arrays. Every mesh is re-centred on its vertex centroid (the canonical frame the model expects).
Checkpoints are in the official layout plus the optimiser state and step, so training resumes where it stopped.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..checkpoints import read_checkpoint
from ..errors import InputError
from ..mesh_vq import MeshVQVAE, load_mesh_vqvae_state, perplexity, save_mesh_vqvae
from ..metrics import procrustes_align
from .settings import MESH_VQ_EVALUATION_BATCH_SIZE, MeshVQTrainConfig

LOG = logging.getLogger(__name__)
MESH_ARRAY_KEY = "vertices"
DEAD_CODE_CHECK_EVERY = 10  # steps; each check encodes the batch once more


@dataclass
class MeshVQHistory:
    """Per-step training loss and per-validation metrics (mm)."""

    steps: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    validation: list[dict] = field(default_factory=list)


def load_meshes(path: str | Path) -> np.ndarray:
    """(M, N, 3) float32 centred meshes from an .npz/.npy file or a folder of them."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".npy", ".npz"))
        if not files:
            raise InputError(f"no .npy or .npz mesh files in {path}")
        arrays = [_read_mesh_file(file) for file in files]
        counts = {array.shape[1] for array in arrays}
        if len(counts) != 1:
            raise InputError(f"meshes in {path} have different vertex counts: {sorted(counts)}")
        meshes = np.concatenate(arrays)
    elif path.is_file():
        meshes = _read_mesh_file(path)
    else:
        raise InputError(f"mesh data {path} does not exist")
    if not np.all(np.isfinite(meshes)):
        raise InputError(f"mesh data {path} contains NaN or inf")
    return (meshes - meshes.mean(axis=1, keepdims=True)).astype(np.float32)


def _read_mesh_file(path: Path) -> np.ndarray:
    if path.suffix == ".npy":
        return _as_mesh_batch(np.load(path, allow_pickle=False), path)
    with np.load(path, allow_pickle=False) as archive:
        if MESH_ARRAY_KEY not in archive.files:
            raise InputError(f"{path}: expected an array named '{MESH_ARRAY_KEY}', found {archive.files}")
        return _as_mesh_batch(archive[MESH_ARRAY_KEY], path)


def _as_mesh_batch(array: np.ndarray, path: Path) -> np.ndarray:
    array = np.asarray(array, dtype=np.float32)
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3 or array.shape[2] != 3:
        raise InputError(f"{path}: expected meshes of shape (N, 3) or (M, N, 3), found {array.shape}")
    return array


def vertex_errors(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B,) mean per-vertex Euclidean distances after re-centring both meshes (the V2V of the official code)."""
    predicted = predicted - predicted.mean(dim=1, keepdim=True)
    target = target - target.mean(dim=1, keepdim=True)
    return torch.linalg.norm(predicted - target, dim=-1).mean(dim=1)


def vertex_error(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The batch mean of `vertex_errors`: the training loss."""
    return vertex_errors(predicted, target).mean()


@torch.no_grad()
def validate(model: MeshVQVAE, meshes: np.ndarray, batch_size: int = MESH_VQ_EVALUATION_BATCH_SIZE) -> dict:
    """V2V and PA-V2V in millimetres, and the codebook perplexity, over `meshes`."""
    was_training = model.training
    model.eval()
    v2v, pa_v2v, indices = [], [], []
    for start in range(0, len(meshes), batch_size):
        target = torch.from_numpy(meshes[start:start + batch_size])
        reconstruction, tokens, _ = model(target)
        v2v.append(vertex_errors(reconstruction, target))
        aligned = procrustes_align(reconstruction.numpy(), target.numpy())
        pa_v2v.append(torch.from_numpy(np.linalg.norm(aligned - target.numpy(), axis=-1).mean(axis=1)))
        indices.append(tokens)
    model.train(was_training)
    return {
        "v2v_mm": 1000 * torch.cat(v2v).mean().item(),
        "pa_v2v_mm": 1000 * torch.cat(pa_v2v).mean().item(),
        "perplexity": perplexity(torch.cat(indices), model.num_embeddings).item(),
    }


def train_mesh_vq(model: MeshVQVAE, train_meshes: np.ndarray, validation_meshes: np.ndarray, output: str | Path,
                  config: MeshVQTrainConfig = MeshVQTrainConfig(), resume: str | Path | None = None,  # noqa: B008 (frozen)
                  on_validation: Callable[[int, dict], None] | None = None) -> MeshVQHistory:
    """Train in place, write `output` (latest) every `save_every` steps and at the end; returns the history."""
    _check_meshes(model, train_meshes, "training")
    _check_meshes(model, validation_meshes, "validation")
    trainable = [p for p in model.parameters() if p.requires_grad]  # the codebook learns by EMA only
    optimizer = torch.optim.Adam(trainable, lr=config.lr)
    start_step = _resume(model, optimizer, resume) if resume else 0
    generator = np.random.default_rng(config.seed + start_step)
    history = MeshVQHistory()
    validation_meshes = validation_meshes[: config.validation_meshes]
    if config.data_init_codebook and start_step == 0:
        with torch.no_grad():
            sample = train_meshes[generator.integers(0, len(train_meshes), min(len(train_meshes), 256))]
            model.vq_vae.initialise_from(model.encode_latent(torch.from_numpy(sample)))
    model.train()
    progress = tqdm(range(start_step, config.steps), initial=start_step, total=config.steps, desc="train-mesh-vq")
    for step in progress:
        batch = torch.from_numpy(train_meshes[generator.integers(0, len(train_meshes), config.batch_size)])
        reconstruction, _, vq_loss = model(batch)
        loss = vertex_error(reconstruction, batch) + vq_loss
        if config.dead_code_threshold > 0 and (step + 1) % DEAD_CODE_CHECK_EVERY == 0:
            with torch.no_grad():
                model.vq_vae.restart_dead_codes(model.encode_latent(batch), config.dead_code_threshold)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"training diverged at step {step + 1}: loss {loss.item()}")
        history.steps.append(step + 1)
        history.loss.append(loss.item())
        progress.set_postfix(v2v_mm=f"{1000 * (loss.item() - vq_loss.item()):.1f}")
        done = step + 1 == config.steps
        if (step + 1) % config.validate_every == 0 or done:
            metrics = {"step": step + 1, **validate(model, validation_meshes, config.batch_size)}
            history.validation.append(metrics)
            LOG.info("step %d: validation V2V %.1f mm, PA-V2V %.1f mm, perplexity %.1f", step + 1,
                     metrics["v2v_mm"], metrics["pa_v2v_mm"], metrics["perplexity"])
            if on_validation:
                on_validation(step + 1, metrics)
        if (step + 1) % config.save_every == 0 or done:
            save_mesh_vqvae(model, output, loss=loss.item(), step=step + 1, optimizer=optimizer.state_dict())
    model.eval()
    return history


def _check_meshes(model: MeshVQVAE, meshes: np.ndarray, name: str) -> None:
    if meshes.ndim != 3 or meshes.shape[1:] != (model.num_vertices, 3) or len(meshes) == 0:
        raise InputError(
            f"{name} meshes must be (M >= 1, {model.num_vertices}, 3) for this model, found {meshes.shape}"
        )


def _resume(model: MeshVQVAE, optimizer: torch.optim.Optimizer, path: str | Path) -> int:
    data = read_checkpoint(path)
    load_mesh_vqvae_state(model, data["model"], str(path))
    if "optimizer" in data:
        optimizer.load_state_dict(data["optimizer"])
    step = int(data.get("step", 0))
    LOG.info("resumed %s at step %d", path, step)
    return step

"""Mesh-VQ-VAE checkpoints in the official layout: `torch.save({"model": state_dict, "loss": ..., ...})`.

Files written here add a `"vqhps_ros"` entry with the architecture and the connection matrices, so that
`load_mesh_vqvae(path)` needs nothing else; official files need the connection folder beside them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from ..checkpoints import atomic_torch_save, check_state_dict, extract_state_dict, read_checkpoint
from ..errors import CheckpointError
from .config import MeshVQConfig
from .connections import chain_connections, load_connections
from .model import MeshVQVAE

PACKAGE_KEY = "vqhps_ros"
FORMAT_VERSION = 1


def load_mesh_vqvae_state(model: MeshVQVAE, state: Mapping[str, torch.Tensor], source: str = "state dict") -> None:
    """Load official or package weights into `model`, checking names, shapes and the shared autoencoder."""
    state = {key.removeprefix("module."): value for key, value in state.items()}
    _check_vertex_count(model, state, source)
    check_state_dict(model.state_dict(), state, source)
    for key, value in state.items():
        if key.startswith("encoder.model."):
            twin = state["decoder.model." + key.removeprefix("encoder.model.")]
            if not torch.equal(value, twin):
                raise CheckpointError(
                    f"{source}: {key} and its decoder copy differ; the official Mesh-VQ-VAE shares one "
                    "autoencoder between encoder and decoder, so both copies must be identical"
                )
    model.load_state_dict(state, strict=True)


def _check_vertex_count(model: MeshVQVAE, state: Mapping[str, torch.Tensor], source: str) -> None:
    first = state.get("encoder.model.w_weights0")
    if first is not None and first.shape[0] != model.num_vertices:
        raise CheckpointError(
            f"{source} was trained on meshes of {first.shape[0]} vertices, but the connection matrices describe "
            f"{model.num_vertices} vertices"
        )


def load_mesh_vqvae(path: str | Path, connections_dir: str | Path | None = None,
                    config: MeshVQConfig | None = None) -> MeshVQVAE:
    """Build a MeshVQVAE from a checkpoint file, in eval mode on the CPU.

    Official checkpoints need `connections_dir` (the MeshConvolution files); package checkpoints carry theirs.
    `config` defaults to the one stored in the file, else the official "medium" configuration.
    """
    return mesh_vqvae_from_payload(read_checkpoint(path), str(path), connections_dir, config)


def mesh_vqvae_from_payload(data: dict, source: str, connections_dir: str | Path | None = None,
                            config: MeshVQConfig | None = None) -> MeshVQVAE:
    """Build a MeshVQVAE from a loaded checkpoint dict (a file's content, or an entry nested in another file)."""
    stored = data.get(PACKAGE_KEY, {})
    if config is None:
        config = MeshVQConfig.from_dict(stored["config"]) if "config" in stored else MeshVQConfig()
    if connections_dir is not None:
        connections = load_connections(connections_dir, config.connection_layers)
    elif "connections" in stored:
        tables = stored["connections"]
        connections = chain_connections([(name, np.asarray(tables[name])) for name in config.connection_layers])
    else:
        raise CheckpointError(
            f"{source} stores no connection matrices (an official checkpoint?): pass the folder of the "
            "MeshConvolution _pool*/_unpool* files"
        )
    model = MeshVQVAE(config, connections)
    load_mesh_vqvae_state(model, extract_state_dict(data, source), source)
    return model.eval()


def mesh_vqvae_payload(model: MeshVQVAE, **extra) -> dict:
    """The official layout plus this package's config and connections; `extra` (loss, epoch, ...) at top level."""
    data = {"model": model.state_dict(), "loss": extra.pop("loss", float("nan")), **extra}
    data[PACKAGE_KEY] = {
        "format": FORMAT_VERSION,
        "config": model.config.to_dict(),
        "connections": {c.name: torch.from_numpy(c.to_array()) for c in model.connections},
    }
    return data


def save_mesh_vqvae(model: MeshVQVAE, path: str | Path, **extra) -> None:
    """Write `mesh_vqvae_payload(model, **extra)` atomically."""
    atomic_torch_save(mesh_vqvae_payload(model, **extra), path)

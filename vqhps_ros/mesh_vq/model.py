"""Mesh-VQ-VAE (Fiche et al.): a canonical mesh <-> T discrete tokens of a learnt codebook.

Meshes are canonical as in the official data pipeline: no global orientation, no translation, centred on the
vertex centroid. The official model shares ONE autoencoder between `encoder.model` and `decoder.model`, so its
state dict lists every autoencoder tensor twice; this module keeps that structure so checkpoints load unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn

from ..errors import InputError
from .autoencoder import FullyConvAutoencoder
from .config import MeshVQConfig
from .connections import Connection
from .quantizer import VectorQuantizerEMA


class MeshVQOutput(NamedTuple):
    verts: torch.Tensor  # (B, N, 3) reconstruction
    indices: torch.Tensor  # (B, T) int64
    vq_loss: torch.Tensor  # () commitment loss


class _Half(nn.Module):
    """`encoder` / `decoder`: a slice of the shared autoencoder's layers (official module names)."""

    def __init__(self, model: FullyConvAutoencoder, start: int, stop: int):
        super().__init__()
        self.model = model
        self.start, self.stop = start, stop

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.run_layers(x, self.start, self.stop)


class MeshVQVAE(nn.Module):
    """encode: (B, N, 3) -> (B, T) int64; decode: (B, T) -> (B, N, 3); forward: both, with the VQ loss."""

    def __init__(self, config: MeshVQConfig, connections: Sequence[Connection]):
        super().__init__()
        self.config = config
        autoencoder = FullyConvAutoencoder(config, connections)
        half = config.encoder_layers
        self.encoder = _Half(autoencoder, 0, half)
        self.vq_vae = VectorQuantizerEMA(
            config.num_embeddings, config.embedding_dim, config.commitment_cost, config.decay, config.epsilon
        )
        self.decoder = _Half(autoencoder, half, config.num_layers)
        self.connections = tuple(connections)

    @property
    def num_vertices(self) -> int:
        return self.encoder.model.num_points

    @property
    def num_tokens(self) -> int:
        return self.encoder.model.specs[self.config.encoder_layers - 1].out_points

    @property
    def num_embeddings(self) -> int:
        return self.config.num_embeddings

    def encode_latent(self, verts: torch.Tensor) -> torch.Tensor:
        """(B, N, 3) -> continuous latent z_e (B, T, D), before quantisation."""
        return self.encoder(self._check_verts(verts))

    def encode(self, verts: torch.Tensor) -> torch.Tensor:
        """(B, N, 3) canonical meshes -> (B, T) int64 codebook indices."""
        return self.vq_vae.nearest_indices(self.encode_latent(verts))

    def decode(self, indices: torch.Tensor) -> torch.Tensor:
        """(B, T) integer indices in [0, K) -> (B, N, 3) canonical meshes."""
        return self.decode_latent(self.vq_vae.lookup(self._check_indices(indices)))

    def decode_latent(self, latent: torch.Tensor) -> torch.Tensor:
        """(B, T, D) latent (codebook rows) -> (B, N, 3)."""
        return self.decoder(latent.to(self.vq_vae.codebook.dtype))

    def forward(self, verts: torch.Tensor) -> MeshVQOutput:
        quantized = self.vq_vae(self.encode_latent(verts))
        return MeshVQOutput(self.decoder(quantized.straight_through), quantized.indices, quantized.commitment_loss)

    def _check_verts(self, verts: torch.Tensor) -> torch.Tensor:
        if not isinstance(verts, torch.Tensor):
            raise InputError(f"expected a torch.Tensor of vertices, got {type(verts).__name__}")
        if verts.ndim != 3 or verts.shape[1] != self.num_vertices or verts.shape[2] != 3:
            raise InputError(
                f"expected vertices of shape (batch, {self.num_vertices}, 3) for these connection matrices, "
                f"got {tuple(verts.shape)}"
            )
        if not verts.is_floating_point():
            raise InputError(f"expected floating-point vertices, got {verts.dtype}")
        if _exporting():
            return verts
        if not bool(torch.isfinite(verts).all()):
            raise InputError("vertices contain NaN or inf")
        return verts.to(self.vq_vae.codebook.dtype)

    def _check_indices(self, indices: torch.Tensor) -> torch.Tensor:
        if not isinstance(indices, torch.Tensor) or indices.is_floating_point() or indices.dtype == torch.bool:
            found = indices.dtype if isinstance(indices, torch.Tensor) else type(indices).__name__
            raise InputError(f"expected an integer tensor of codebook indices, got {found}")
        if indices.ndim != 2 or indices.shape[1] != self.num_tokens:
            raise InputError(f"expected indices of shape (batch, {self.num_tokens}), got {tuple(indices.shape)}")
        if _exporting():
            return indices.long()
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= self.num_embeddings):
            raise InputError(
                f"codebook indices must be in [0, {self.num_embeddings}), "
                f"found [{int(indices.min())}, {int(indices.max())}]"
            )
        return indices.long()


def _exporting() -> bool:
    """Data-dependent checks are skipped while tracing: they would be frozen into the graph."""
    return torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()

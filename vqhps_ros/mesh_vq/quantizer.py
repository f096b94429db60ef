"""Vector quantizer with an exponential-moving-average codebook (van den Oord et al.; official Mesh-VQ-VAE)."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn


class Quantized(NamedTuple):
    straight_through: torch.Tensor  # (B, T, D): z_e + (z_q - z_e).detach(), what the decoder reads
    indices: torch.Tensor  # (B, T) int64
    commitment_loss: torch.Tensor  # ()


class VectorQuantizerEMA(nn.Module):
    """Codebook `_embedding.weight` (K, D), EMA statistics `_ema_w` (K, D) and `_ema_cluster_size` (K,).

    The names match the official state dict. The codebook is learnt by the EMA update only (in training mode),
    never by the optimiser, so its parameters do not require gradients.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, commitment_cost: float = 0.25,
                 decay: float = 0.99, epsilon: float = 1e-5):
        super().__init__()
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.commitment_cost = commitment_cost
        self.decay = decay
        self.epsilon = epsilon
        self._embedding = nn.Embedding(num_embeddings, embedding_dim)
        nn.init.normal_(self._embedding.weight)
        self._embedding.weight.requires_grad_(False)
        self.register_buffer("_ema_cluster_size", torch.zeros(num_embeddings))
        self._ema_w = nn.Parameter(self._embedding.weight.detach().clone(), requires_grad=False)

    @property
    def codebook(self) -> torch.Tensor:
        return self._embedding.weight

    def nearest_indices(self, latent: torch.Tensor) -> torch.Tensor:
        """(B, T, D) -> (B, T) int64: argmin of |z|^2 + |e|^2 - 2 z.e (first index on ties, as upstream)."""
        flat = latent.reshape(-1, self.embedding_dim)
        codebook = self.codebook.to(flat.dtype)
        distances = (
            flat.pow(2).sum(dim=1, keepdim=True)
            + codebook.pow(2).sum(dim=1)
            - 2.0 * torch.matmul(flat, codebook.t())
        )
        return torch.argmin(distances, dim=1).reshape(latent.shape[0], -1)

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """(B, T) int64 -> (B, T, D) codebook rows."""
        return F.embedding(indices, self.codebook)

    def forward(self, latent: torch.Tensor) -> Quantized:
        indices = self.nearest_indices(latent)
        if self.training:
            self._update_codebook(latent.detach(), indices)
        quantized = self.lookup(indices).to(latent.dtype)
        commitment = self.commitment_cost * F.mse_loss(quantized.detach(), latent)
        straight_through = latent + (quantized - latent).detach()
        return Quantized(straight_through, indices, commitment)

    @torch.no_grad()
    def _update_codebook(self, latent: torch.Tensor, indices: torch.Tensor) -> None:
        flat = latent.reshape(-1, self.embedding_dim).float()
        one_hot = F.one_hot(indices.reshape(-1), self.num_embeddings).float()
        cluster_size = self._ema_cluster_size * self.decay + (1 - self.decay) * one_hot.sum(dim=0)
        # Laplace smoothing keeps unused codes from dividing by zero.
        total = cluster_size.sum()
        cluster_size = (cluster_size + self.epsilon) / (total + self.num_embeddings * self.epsilon) * total
        self._ema_cluster_size.copy_(cluster_size)
        self._ema_w.mul_(self.decay).add_(one_hot.t() @ flat, alpha=1 - self.decay)
        self._embedding.weight.copy_(self._ema_w / cluster_size.unsqueeze(1))


    @torch.no_grad()
    def initialise_from(self, latents: torch.Tensor, generator: torch.Generator | None = None) -> None:
        """Set every code to a latent drawn from `latents` (..., D), so that no code starts far from the data.

        Not part of the official recipe: with random codes, short trainings collapse onto a few codes.
        """
        flat = latents.reshape(-1, self.embedding_dim).float()
        chosen = flat[torch.randint(len(flat), (self.num_embeddings,), generator=generator, device=flat.device)]
        self._embedding.weight.copy_(chosen)
        self._ema_w.copy_(chosen)
        self._ema_cluster_size.fill_(1.0)

    @torch.no_grad()
    def restart_dead_codes(self, latents: torch.Tensor, threshold: float,
                           generator: torch.Generator | None = None) -> int:
        """Move the codes whose EMA usage fell below `threshold` onto latents of the batch; returns how many."""
        dead = torch.nonzero(self._ema_cluster_size < threshold).squeeze(1)
        if len(dead) == 0:
            return 0
        flat = latents.reshape(-1, self.embedding_dim).float()
        chosen = flat[torch.randint(len(flat), (len(dead),), generator=generator, device=flat.device)]
        self._embedding.weight[dead] = chosen
        self._ema_w[dead] = chosen
        self._ema_cluster_size[dead] = 1.0
        return len(dead)


def perplexity(indices: torch.Tensor, num_embeddings: int) -> torch.Tensor:
    """exp(entropy) of the code histogram over all tokens: how many codes are effectively in use."""
    probabilities = torch.bincount(indices.reshape(-1), minlength=num_embeddings).float() / indices.numel()
    return torch.exp(-torch.sum(probabilities * torch.log(probabilities + 1e-10)))

"""The VQ-HPS transformer: image features -> 54 mesh-token logits.

A pre-norm encoder over the 7x7 image tokens, a pre-norm decoder whose queries are learnt mesh-token embeddings,
and a GPT-style "cross-conditional" head that turns decoder features into codebook logits. Module names follow
the official code (FastMETRO / T2M-GPT lineage) so that official state dicts load unchanged.

Tensors are sequence-first inside the encoder and decoder: (tokens, batch, channels).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError


@dataclass(frozen=True)
class TransformerDims:
    """Official `configs/transformer.txt` values by default."""

    model_dim: int = 512
    nhead: int = 8
    feedforward_dim: int = 1024
    num_enc_layers: int = 1
    num_dec_layers: int = 1
    dict_size: int = 512
    block_size: int = 54
    dropout: float = 0.2


class EncoderLayer(nn.Module):
    """x += SelfAttn(q = k = LN1(x) + pos, v = LN1(x)); x += FFN(LN2(x))."""

    def __init__(self, dims: TransformerDims):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dims.model_dim, dims.nhead, dropout=dims.dropout)
        self.linear1 = nn.Linear(dims.model_dim, dims.feedforward_dim)
        self.dropout = nn.Dropout(dims.dropout)
        self.linear2 = nn.Linear(dims.feedforward_dim, dims.model_dim)
        self.norm1 = nn.LayerNorm(dims.model_dim)
        self.norm2 = nn.LayerNorm(dims.model_dim)
        self.dropout1 = nn.Dropout(dims.dropout)
        self.dropout2 = nn.Dropout(dims.dropout)

    def forward(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        normed = self.norm1(x)
        attended = self.self_attn(normed + pos, normed + pos, normed, need_weights=False)[0]
        x = x + self.dropout1(attended)
        hidden = self.linear2(self.dropout(F.relu(self.linear1(self.norm2(x)))))
        return x + self.dropout2(hidden)


class DecoderLayer(nn.Module):
    """Self-attention among mesh tokens, cross-attention to the image memory, feed-forward; all pre-norm.

    The official query positional embedding is all zeros, so it is left out.
    """

    def __init__(self, dims: TransformerDims):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dims.model_dim, dims.nhead, dropout=dims.dropout)
        self.multihead_attn = nn.MultiheadAttention(dims.model_dim, dims.nhead, dropout=dims.dropout)
        self.linear1 = nn.Linear(dims.model_dim, dims.feedforward_dim)
        self.dropout = nn.Dropout(dims.dropout)
        self.linear2 = nn.Linear(dims.feedforward_dim, dims.model_dim)
        self.norm1 = nn.LayerNorm(dims.model_dim)
        self.norm2 = nn.LayerNorm(dims.model_dim)
        self.norm3 = nn.LayerNorm(dims.model_dim)
        self.dropout1 = nn.Dropout(dims.dropout)
        self.dropout2 = nn.Dropout(dims.dropout)
        self.dropout3 = nn.Dropout(dims.dropout)

    def forward(self, tokens: torch.Tensor, memory: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        normed = self.norm1(tokens)
        tokens = tokens + self.dropout1(self.self_attn(normed, normed, normed, need_weights=False)[0])
        attended = self.multihead_attn(self.norm2(tokens), memory + pos, memory, need_weights=False)[0]
        tokens = tokens + self.dropout2(attended)
        hidden = self.linear2(self.dropout(F.relu(self.linear1(self.norm3(tokens)))))
        return tokens + self.dropout3(hidden)


class Encoder(nn.Module):
    def __init__(self, dims: TransformerDims):
        super().__init__()
        # `norm` is registered before `layers`, as upstream, so the state-dict order matches.
        self.norm = nn.LayerNorm(dims.model_dim)
        self.layers = nn.ModuleList(EncoderLayer(dims) for _ in range(dims.num_enc_layers))

    def forward(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, pos)
        return self.norm(x)


class Decoder(nn.Module):
    def __init__(self, dims: TransformerDims):
        super().__init__()
        self.norm = nn.LayerNorm(dims.model_dim)
        self.layers = nn.ModuleList(DecoderLayer(dims) for _ in range(dims.num_dec_layers))

    def forward(self, tokens: torch.Tensor, memory: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            tokens = layer(tokens, memory, pos)
        return self.norm(tokens)


class CausalSelfAttention(nn.Module):
    """Masked multi-head attention along dim 1 of (N, T, C), with separate key/query/value projections."""

    def __init__(self, dims: TransformerDims):
        super().__init__()
        dim, size = dims.model_dim, dims.block_size
        self.key = nn.Linear(dim, dim)
        self.query = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.attn_drop = nn.Dropout(dims.dropout)
        self.resid_drop = nn.Dropout(dims.dropout)
        self.proj = nn.Linear(dim, dim)
        self.register_buffer("mask", torch.tril(torch.ones(size, size)).view(1, 1, size, size))
        self.nhead = dims.nhead

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, steps, channels = x.shape
        head_dim = channels // self.nhead

        def split_heads(projected: torch.Tensor) -> torch.Tensor:
            return projected.view(n, steps, self.nhead, head_dim).transpose(1, 2)  # (N, heads, T, hd)

        query, key, value = split_heads(self.query(x)), split_heads(self.key(x)), split_heads(self.value(x))
        scores = (query @ key.transpose(-2, -1)) * (1.0 / math.sqrt(head_dim))
        scores = scores.masked_fill(self.mask[:, :, :steps, :steps] == 0, float("-inf"))
        weights = self.attn_drop(F.softmax(scores, dim=-1))
        attended = (weights @ value).transpose(1, 2).reshape(n, steps, channels)
        return self.resid_drop(self.proj(attended))


class Block(nn.Module):
    def __init__(self, dims: TransformerDims):
        super().__init__()
        self.ln1 = nn.LayerNorm(dims.model_dim)
        self.ln2 = nn.LayerNorm(dims.model_dim)
        self.attn = CausalSelfAttention(dims)
        self.mlp = nn.Sequential(
            nn.Linear(dims.model_dim, dims.feedforward_dim),
            nn.GELU(),
            nn.Linear(dims.feedforward_dim, dims.model_dim),
            nn.Dropout(dims.dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class CrossConditionalHead(nn.Module):
    """Decoder features (T, B, C) -> logits (T, B, dict_size).

    Upstream feeds the sequence-first decoder output straight into GPT blocks that read dim 1 as the sequence, so
    the causal attention runs over the IMAGE batch: image b attends to images 0..b (quirk R1 of the reference).
    On a robot every person must be estimated on their own, so by default each (token, image) pair attends to
    itself only, which is exactly what upstream computes for an image that is alone in its batch.
    `official_batching=True` reproduces upstream's batched numbers (at most `block_size` images per batch).
    """

    def __init__(self, dims: TransformerDims, official_batching: bool = False):
        super().__init__()
        self.blocks = nn.Sequential(*(Block(dims) for _ in range(dims.num_dec_layers)))
        self.ln_f = nn.LayerNorm(dims.model_dim)
        self.head = nn.Linear(dims.model_dim, dims.dict_size, bias=False)
        self.block_size = dims.block_size
        self.official_batching = official_batching

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        tokens, batch, channels = features.shape
        if self.official_batching:
            if batch > self.block_size:
                raise InputError(
                    f"official batching attends over the image batch, which may hold at most {self.block_size} "
                    f"images; got {batch}"
                )
            x = self.blocks(features)
        else:
            x = self.blocks(features.reshape(tokens * batch, 1, channels)).reshape(tokens, batch, channels)
        return self.head(self.ln_f(x))


class Transformer(nn.Module):
    """(image tokens (S, B, C), mesh queries (T, B, C), pos (S, B, C)) -> (memory, logits (T, B, dict_size))."""

    def __init__(self, dims: TransformerDims, official_batching: bool = False):
        super().__init__()
        self.encoder = Encoder(dims)
        self.decoder = Decoder(dims)
        self.dec_head = CrossConditionalHead(dims, official_batching)

    def forward(self, image_tokens: torch.Tensor, mesh_queries: torch.Tensor, pos: torch.Tensor):
        memory = self.encoder(image_tokens, pos)
        features = self.decoder(mesh_queries, memory, pos)
        return memory, self.dec_head(features)


def sine_position_encoding(height: int, width: int, channels: int, temperature: float = 10000.0) -> torch.Tensor:
    """DETR's normalised 2D sine encoding -> (channels, height, width).

    Rows and columns are numbered from 1 and scaled to (0, 2*pi]; channel 2k is sin(e / T^(2k/half)), 2k+1 the
    cosine of the same; the first half of the channels encodes the row, the second half the column.
    """
    half = channels // 2
    rows = torch.arange(1, height + 1, dtype=torch.float32) / (height + 1e-6) * (2 * math.pi)
    cols = torch.arange(1, width + 1, dtype=torch.float32) / (width + 1e-6) * (2 * math.pi)
    frequencies = temperature ** (2 * (torch.arange(half, dtype=torch.float32) // 2) / half)

    def encode(positions: torch.Tensor) -> torch.Tensor:
        angles = positions[:, None] / frequencies  # (n, half)
        return torch.stack((angles[:, 0::2].sin(), angles[:, 1::2].cos()), dim=2).flatten(1)

    row_code = encode(rows)[:, None, :].expand(height, width, half)
    col_code = encode(cols)[None, :, :].expand(height, width, half)
    return torch.cat((row_code, col_code), dim=2).permute(2, 0, 1).contiguous()

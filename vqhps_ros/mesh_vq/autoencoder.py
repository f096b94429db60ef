"""Fully convolutional mesh autoencoder with spatially varying kernels (Zhou et al., NeurIPS 2020).

Parameters are registered flat on one module with the global layer number in their names (`weights3`,
`w_weights3`, `bias3`, `p_neighbors3`, `weight_res3`), exactly as the official MeshConvolution / Mesh-VQ-VAE
code names them, so official state dicts load unchanged.

Every layer is written with gathers and batched matrix products of static shapes (no einsum over the batch, no
preallocated batch buffers), so the same code runs at any batch size and exports to ONNX / TensorRT.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import MeshVQConfig
from .connections import Connection


@dataclass(frozen=True)
class LayerSpec:
    index: int
    in_channels: int
    out_channels: int
    in_points: int
    out_points: int
    max_neighbors: int
    weight_num: int
    residual_rate: float
    is_final: bool

    @property
    def has_conv(self) -> bool:
        return self.residual_rate < 1.0

    @property
    def has_residual(self) -> bool:
        return self.residual_rate > 0.0

    @property
    def resamples(self) -> bool:
        """A residual branch that changes the point count (pooling or unpooling) has learnt weights."""
        return self.has_residual and self.in_points != self.out_points

    @property
    def projects_channels(self) -> bool:
        return self.has_residual and self.in_channels != self.out_channels


def layer_specs(config: MeshVQConfig, connections: Sequence[Connection]) -> list[LayerSpec]:
    specs = []
    in_channels = 3
    for index, connection in enumerate(connections):
        specs.append(
            LayerSpec(
                index=index,
                in_channels=in_channels,
                out_channels=config.channels[index],
                in_points=connection.in_points,
                out_points=connection.out_points,
                max_neighbors=connection.max_neighbors,
                weight_num=config.weight_nums[index],
                residual_rate=float(config.residual_rates[index]),
                is_final=index == config.num_layers - 1,
            )
        )
        in_channels = config.channels[index]
    return specs


class FullyConvAutoencoder(nn.Module):
    """All layers of the autoencoder; `run_layers(x, start, stop)` runs a slice of them.

    x: (B, P_in, C_in) -> (B, P_out, C_out).
    """

    def __init__(self, config: MeshVQConfig, connections: Sequence[Connection]):
        super().__init__()
        if len(connections) != config.num_layers:
            raise ValueError(f"expected {config.num_layers} connection matrices, got {len(connections)}")
        self.specs = layer_specs(config, connections)
        for spec, connection in zip(self.specs, connections, strict=True):
            self._register_layer(spec, connection)

    @property
    def num_points(self) -> int:
        return self.specs[0].in_points

    def _register_layer(self, spec: LayerSpec, connection: Connection) -> None:
        index = spec.index
        # The graph comes from the connection files, not the state dict (as in the official model).
        self.register_buffer(f"neighbor_ids{index}", torch.from_numpy(connection.neighbor_ids), persistent=False)
        self.register_buffer(f"neighbor_mask{index}", torch.from_numpy(connection.mask), persistent=False)
        average_neighbors = max(1, round(float(connection.counts.mean())))
        if spec.has_conv:
            basis = torch.randn(spec.weight_num, spec.out_channels * spec.in_channels)
            coefficients = torch.randn(spec.out_points, spec.max_neighbors, spec.weight_num)
            self.register_parameter(f"weights{index}", nn.Parameter(basis))
            self.register_parameter(f"bias{index}", nn.Parameter(torch.zeros(spec.out_channels)))
            self.register_parameter(
                f"w_weights{index}", nn.Parameter(coefficients / (average_neighbors * spec.weight_num))
            )
        if spec.resamples:
            pooling = torch.randn(spec.out_points, spec.max_neighbors) / average_neighbors
            self.register_parameter(f"p_neighbors{index}", nn.Parameter(pooling))
        if spec.projects_channels:
            projection = torch.randn(spec.out_channels, spec.in_channels) / spec.out_channels
            self.register_parameter(f"weight_res{index}", nn.Parameter(projection))

    def run_layers(self, x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        # Layers work points-major, (P, B, C): a gather along the points then yields the (P, M, B*C) layout of
        # the batched products directly, so the large gathered tensors are never transposed (batch-major
        # gathers needed a copy of size P*M*B*C per layer, which made decoding scale badly with the batch).
        points_major = x.transpose(0, 1)
        for spec in self.specs[start:stop]:
            points_major = self._layer(points_major, spec)
        return points_major.transpose(0, 1)

    def _layer(self, x: torch.Tensor, spec: LayerSpec) -> torch.Tensor:
        """x: (P_in, B, C_in) -> (P_out, B, C_out)."""
        index = spec.index
        ids = getattr(self, f"neighbor_ids{index}")
        mask = getattr(self, f"neighbor_mask{index}").to(x.dtype)
        # The padding id points at this appended zero row.
        padded = torch.cat([x, x.new_zeros(1, x.shape[1], x.shape[2])], dim=0)
        output = None
        if spec.has_conv:
            conv = self._convolve(padded, ids, mask, spec)
            output = conv if spec.residual_rate == 0.0 else conv * math.sqrt(1.0 - spec.residual_rate)
        if spec.has_residual:
            residual = self._resample(padded, ids, mask, spec)
            residual = residual if spec.residual_rate == 1.0 else residual * math.sqrt(spec.residual_rate)
            output = residual if output is None else output + residual
        return output

    def _convolve(self, padded, ids, mask, spec: LayerSpec) -> torch.Tensor:
        """Per-vertex kernel K[p, m] = sum_w coeff[p, m, w] * basis[w]; y[p] = sum_m K[p, m] x[ids[p, m]] + b.

        Computed as (coefficients x neighbours) then (x basis), which never materialises the (P, M, O, I) kernel.
        """
        index = spec.index
        basis = getattr(self, f"weights{index}")  # (W, O*I), row-major (O, I)
        coefficients = getattr(self, f"w_weights{index}") * mask.unsqueeze(-1)  # (P, M, W)
        neighbours = _gather_neighbours(padded, ids)  # (P, M, B*I)
        mixed = torch.bmm(coefficients.transpose(1, 2), neighbours)  # (P, W, B*I)
        points, weight_num, in_channels = spec.out_points, spec.weight_num, spec.in_channels
        # W < M in every layer, so this transpose moves less data than one of the gathered neighbours would.
        mixed = mixed.reshape(points, weight_num, -1, in_channels).transpose(1, 2)
        mixed = mixed.reshape(points, -1, weight_num * in_channels)  # (P, B, W*I)
        kernel = basis.reshape(weight_num, spec.out_channels, in_channels).transpose(1, 2)
        kernel = kernel.reshape(weight_num * in_channels, spec.out_channels)
        y = torch.matmul(mixed, kernel) + getattr(self, f"bias{index}")  # (P, B, O)
        return y if spec.is_final else F.elu(y)

    def _resample(self, padded, ids, mask, spec: LayerSpec) -> torch.Tensor:
        index = spec.index
        if spec.projects_channels:
            padded = torch.matmul(padded, getattr(self, f"weight_res{index}").t())
        if not spec.resamples:
            return padded[: spec.in_points]
        weights = torch.abs(getattr(self, f"p_neighbors{index}")) * mask  # (P, M)
        weights = weights / (weights.sum(dim=1, keepdim=True) + 1e-8)
        neighbours = _gather_neighbours(padded, ids)  # (P, M, B*C)
        pooled = torch.bmm(weights.unsqueeze(1), neighbours).squeeze(1)  # (P, B*C)
        return pooled.reshape(spec.out_points, -1, padded.shape[2])


def _gather_neighbours(padded: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """(P_in + 1, B, C) gathered at ids (P, M) -> (P, M, B*C), the layout the batched products want."""
    points, neighbours = ids.shape
    return padded.index_select(0, ids.reshape(-1)).reshape(points, neighbours, -1)

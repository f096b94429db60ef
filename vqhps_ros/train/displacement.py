"""Training and measuring the displacement network (`refine.DisplacementNet`) on synthetic pairs
(`train.displacement_data`).

Loss, over the field cells the rendering covers:

    mean over valid cells of the Charbonnier distance (pixels) between predicted and true displacement
    + confidence_weight * BCE(confidence logit, soft target)

The soft confidence target is exp(-(error / confidence_px)^2 / 2) of the cell's current error where the cell is
valid, 0 where it is not (the point it shows is hidden in the image): the confidence says how far the displacement
can be trusted, which is what the refinement weighs its targets by. Every batch is mirrored left-right with
probability one half (the input, the field, and the sign of the horizontal displacement and normal).
"""

from __future__ import annotations

import multiprocessing
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..refine.displacement import NORMALS_X_CHANNEL, DisplacementNet
from .budgeted import train_in_budget
from .displacement_data import TEXTURES, DisplacementPairs, DisplacementSampler, DisplacementSampling
from .settings import BudgetSchedule


@dataclass(frozen=True)
class DisplacementTraining(BudgetSchedule):
    """Optimiser settings; the learning-rate schedule over `steps` or `minutes` is `settings.BudgetSchedule`'s."""

    steps: int = 20_000
    batch_size: int = 64
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    confidence_weight: float = 0.5
    confidence_px: float = 1.5
    minutes: float | None = None
    warmup: float = 0.03
    seed: int = 0
    log_every: int = 250


def displacement_pairs(count: int, seed: int, settings: DisplacementSampling | None = None, workers: int = 1,
                       chunk: int = 500) -> DisplacementPairs:
    """`count` pairs of seed `seed` (see `pairs_in_chunks`)."""
    return pairs_in_chunks(_draw_chunk, count, seed, workers, chunk, settings)


def pairs_in_chunks(draw_chunk, count: int, seed: int, workers: int, chunk: int, *extra) -> DisplacementPairs:
    """`count` pairs drawn in chunks of at most `chunk` by `draw_chunk((seed, k, size, *extra))`, which draws chunk
    k from the seed sequence (seed, k): the pairs do not depend on the number of `workers` (processes; then
    `draw_chunk` must be a module-level function, which is what a process pool can send)."""
    jobs = [(seed, index, min(chunk, count - start), *extra) for index, start in enumerate(range(0, count, chunk))]
    if workers <= 1:
        return DisplacementPairs.concatenate([draw_chunk(job) for job in jobs])
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        return DisplacementPairs.concatenate(pool.map(draw_chunk, jobs))


def _draw_chunk(job) -> DisplacementPairs:
    seed, index, count, settings = job
    torch.set_num_threads(1)
    return DisplacementSampler(settings).sample(np.random.default_rng([seed, index]), count)


def train_displacement(net: DisplacementNet, pairs: DisplacementPairs,
                       settings: DisplacementTraining = DisplacementTraining()) -> list[dict]:  # noqa: B008 (frozen)
    """Train `net` in place; returns the logged losses."""
    generator = torch.Generator().manual_seed(settings.seed)
    data = _tensors(pairs)
    optimizer = torch.optim.AdamW(net.parameters(), lr=0.0, weight_decay=settings.weight_decay)

    def step_losses():
        batch = torch.randint(len(pairs), (settings.batch_size,), generator=generator)
        inputs, flow, valid, covered = _mirrored(*(tensor[batch] for tensor in data), generator)
        predicted, logits = net(inputs.float())
        flow_loss, confidence_loss, error = field_losses(predicted, logits, flow, valid, covered,
                                                         settings.confidence_px)
        loss = flow_loss + settings.confidence_weight * confidence_loss
        return loss, {"flow": flow_loss, "confidence": confidence_loss, "endpoint_px": error}

    net.train()
    history = train_in_budget(optimizer, settings, step_losses, "displacement network")
    net.eval()
    return history


def field_losses(predicted, logits, flow, valid, covered, confidence_px: float):
    """(flow loss, confidence loss, mean endpoint error in pixels over valid cells); see the module docstring."""
    valid, covered = valid.float(), covered.float()
    endpoint = (predicted - flow).norm(dim=1)  # (N, h, w)
    charbonnier = torch.sqrt(((predicted - flow) ** 2).sum(dim=1) + 0.01)
    cells = valid.sum().clamp(min=1.0)
    flow_loss = (charbonnier * valid).sum() / cells
    target = valid * torch.exp(-0.5 * (endpoint.detach() / confidence_px) ** 2)
    confidence = F.binary_cross_entropy_with_logits(logits[:, 0], target, reduction="none")
    confidence_loss = (confidence * covered).sum() / covered.sum().clamp(min=1.0)
    return flow_loss, confidence_loss, (endpoint * valid).sum() / cells


def evaluate_displacement(net: DisplacementNet, pairs: DisplacementPairs, batch_size: int = 256) -> dict:
    """Mean endpoint error (crop pixels) over valid cells, of the network and of no displacement (the rendering
    taken as it is), overall and per texture; the share of valid cells among covered ones; and how the
    confidence separates: the mean confidence on valid cells and on covered cells that are not valid."""
    net.eval()
    flows, confidences = [], []
    with torch.no_grad():
        for start in range(0, len(pairs), batch_size):
            predicted, logits = net(torch.from_numpy(pairs.inputs[start:start + batch_size]).float())
            flows.append(predicted.numpy())
            confidences.append(torch.sigmoid(logits[:, 0]).numpy())
    predicted, confidence = np.concatenate(flows), np.concatenate(confidences)
    error = np.linalg.norm(predicted - pairs.flow, axis=1)
    still = np.linalg.norm(pairs.flow, axis=1)
    hidden = pairs.covered & ~pairs.valid
    report = {"pairs": len(pairs), "endpoint_px": float(error[pairs.valid].mean()),
              "no_displacement_px": float(still[pairs.valid].mean()),
              "valid_share": float(pairs.valid.sum() / max(pairs.covered.sum(), 1)),
              "confidence_valid": float(confidence[pairs.valid].mean()),
              "confidence_hidden": float(confidence[hidden].mean()) if hidden.any() else float("nan")}
    for index, name in enumerate(TEXTURES):
        chosen = pairs.valid & (pairs.texture == index)[:, None, None]
        if chosen.any():
            report[f"endpoint_px_{name}_texture"] = float(error[chosen].mean())
    return report


def _tensors(pairs: DisplacementPairs) -> tuple[torch.Tensor, ...]:
    return (torch.from_numpy(pairs.inputs), torch.from_numpy(pairs.flow), torch.from_numpy(pairs.valid),
            torch.from_numpy(pairs.covered))


def _mirrored(inputs, flow, valid, covered, generator):
    """Mirror a random half of the batch left-right (see the module docstring)."""
    chosen = torch.rand(len(inputs), generator=generator) < 0.5
    if not bool(chosen.any()):
        return inputs, flow, valid, covered
    inputs, flow, valid, covered = inputs.clone(), flow.clone(), valid.clone(), covered.clone()
    inputs[chosen] = inputs[chosen].flip(-1)
    inputs[chosen, NORMALS_X_CHANNEL] = -inputs[chosen, NORMALS_X_CHANNEL]
    flow[chosen] = flow[chosen].flip(-1)
    flow[chosen, 0] = -flow[chosen, 0]
    valid[chosen], covered[chosen] = valid[chosen].flip(-1), covered[chosen].flip(-1)
    return inputs, flow, valid, covered

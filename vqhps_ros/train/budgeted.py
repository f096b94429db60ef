"""One training loop for the runs that train on sampled batches under a `settings.BudgetSchedule` (the keypoint
VQ-HPS, the displacement network): set the scheduled learning rate, take a batch's loss, step, log."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import torch

LOG = logging.getLogger(__name__)


def train_in_budget(optimizer: torch.optim.Optimizer, schedule, step_losses: Callable[[], tuple],
                    label: str) -> list[dict]:
    """Steps until `schedule` (a `BudgetSchedule` with `log_every`) ends. `step_losses()` draws a batch and returns
    (loss to minimise, {name: scalar tensor} to log). Returns the logged entries (step, the named values, seconds)."""
    history, started, step, progress = [], time.perf_counter(), 0, 0.0
    while progress < 1.0:
        step += 1
        for group in optimizer.param_groups:
            group["lr"] = schedule.learning_rate_at(progress)
        loss, logged = step_losses()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        progress = schedule.progress(step, time.perf_counter() - started)
        if step % schedule.log_every == 0 or progress >= 1.0:
            entry = {"step": step, **{name: value.item() for name, value in logged.items()},
                     "seconds": round(time.perf_counter() - started, 1)}
            history.append(entry)
            LOG.info("%s %s", label, entry)
    return history

"""Reading and writing torch checkpoints: weights-only loading, key/shape checks, atomic saves."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from .atomic_files import atomic_write
from .errors import CheckpointError


def read_checkpoint(path: str | Path) -> dict:
    """torch.load with weights only, turning every failure into a CheckpointError that names the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated or foreign files
        raise CheckpointError(f"cannot read checkpoint {path} (truncated or not a torch file?): {exc}") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"checkpoint {path}: expected a dict with a 'model' entry, found {type(data).__name__}")
    return data


def extract_state_dict(data: dict, source: str) -> dict[str, torch.Tensor]:
    """The `model` entry (or a bare state dict), with any DataParallel `module.` prefix removed."""
    state = data.get("model", data)
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{source}: expected a state dict of tensors under 'model'")
    return {key.removeprefix("module."): value for key, value in state.items()}


def check_state_dict(expected: Mapping[str, torch.Tensor], found: Mapping[str, torch.Tensor], source: str,
                     ignored_prefixes: tuple[str, ...] = ()) -> None:
    """Raise a CheckpointError listing missing keys, unexpected keys and shape mismatches."""
    found = {k: v for k, v in found.items() if not any(p in k for p in ignored_prefixes)}
    missing = [key for key in expected if key not in found]
    unexpected = [key for key in found if key not in expected]
    mismatched = [
        f"{key}: expected {tuple(expected[key].shape)}, found {tuple(found[key].shape)}"
        for key in expected
        if key in found and tuple(expected[key].shape) != tuple(found[key].shape)
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys: {_preview(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys: {_preview(unexpected)}")
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatches: {_preview(mismatched)}")
    if problems:
        raise CheckpointError(f"{source} does not match the model: " + "; ".join(problems))


def _preview(items: list[str], limit: int = 6) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... (+{len(items) - limit} more)" if len(items) > limit else "")


def atomic_torch_save(data: dict, path: str | Path) -> None:
    """torch.save through `atomic_write`: no half-written checkpoint under the final name."""
    atomic_write(path, lambda stream: torch.save(data, stream))

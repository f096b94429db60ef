"""Reading and writing torch checkpoints: weights-only loading, key/shape checks, atomic saves, file digests."""

from __future__ import annotations

import hashlib
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


def same_state_dict(first: Mapping[str, torch.Tensor], second: Mapping[str, torch.Tensor]) -> bool:
    """The same keys, holding equal tensors (on the CPU, so a model on another device compares with its file)."""
    return set(first) == set(second) and all(
        torch.equal(value.detach().cpu(), second[key].detach().cpu()) for key, value in first.items()
    )


def _preview(items: list[str], limit: int = 6) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... (+{len(items) - limit} more)" if len(items) > limit else "")


def atomic_torch_save(data: dict, path: str | Path) -> None:
    """torch.save through `atomic_write`: no half-written checkpoint under the final name."""
    atomic_write(path, lambda stream: torch.save(data, stream))


TRAINING_ONLY_KEYS = ("optimizer", "scheduler", "auxiliary_heads")
STORAGE_DTYPES = {"float32": torch.float32, "float16": torch.float16}


def inference_checkpoint(data: dict, storage: str = "float32") -> dict:
    """A copy of a checkpoint for shipping: no optimizer or scheduler state, and the floating-point tensors of
    every `model` state dict (nested ones included, e.g. the Mesh-VQ-VAE inside a VQ-HPS file) stored as
    `storage`. Loading casts them back to the model's float32 parameters, so a float16 file halves the size
    at the cost of rounding each weight to 11 significant bits."""
    if storage not in STORAGE_DTYPES:
        raise CheckpointError(f"storage must be one of {', '.join(STORAGE_DTYPES)}, found {storage!r}")
    return _stored_as(data, STORAGE_DTYPES[storage], path="")


def _stored_as(data: dict, dtype: torch.dtype, path: str) -> dict:
    copy = {}
    for key, value in data.items():
        if key in TRAINING_ONLY_KEYS:
            continue
        where = f"{path}{key}"
        if key == "model" and isinstance(value, Mapping) and all(isinstance(v, torch.Tensor) for v in value.values()):
            copy[key] = {name: _cast_weight(tensor, dtype, f"{where}.{name}") for name, tensor in value.items()}
        elif isinstance(value, dict):
            copy[key] = _stored_as(value, dtype, f"{where}.")
        else:
            copy[key] = value
    return copy


def _cast_weight(tensor: torch.Tensor, dtype: torch.dtype, name: str) -> torch.Tensor:
    if not tensor.is_floating_point():
        return tensor
    cast = tensor.detach().to(dtype).clone()
    if not torch.equal(torch.isfinite(cast), torch.isfinite(tensor)):
        raise CheckpointError(f"{name} does not fit in {dtype} (largest magnitude {tensor.abs().max().item():.4g})")
    return cast


def file_sha256(path: str | Path) -> str:
    """The hex sha256 of a file, read in 16 MB blocks (model files run to hundreds of MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 24), b""):
            digest.update(block)
    return digest.hexdigest()

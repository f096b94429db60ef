"""Person crops for INT8 calibration and for measuring what a precision costs: read from a dataset folder.

A dataset folder is the VQ-HPS training format (`vqhps_ros.train.hps_data`: annotations.npz + images), which is also
what `vqhps_ros.synth.write_dataset` renders. Crops are cut exactly as inference cuts them (box rescaled by 1.2,
224x224, ImageNet normalisation) without augmentation; the canonical ground-truth meshes come along.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError


@dataclass(frozen=True)
class PersonSamples:
    """crops (N, 3, 224, 224) float32 normalised; canonical_vertices (N, V, 3) float32 metres, centred (or None)."""

    crops: np.ndarray
    canonical_vertices: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.crops)

    def subset(self, indices) -> PersonSamples:
        vertices = None if self.canonical_vertices is None else self.canonical_vertices[indices]
        return PersonSamples(self.crops[indices], vertices)


def load_dataset_samples(folder: str | Path, limit: int | None = None, seed: int = 0) -> PersonSamples:
    """Up to `limit` persons of a dataset folder (a random subset drawn with `seed` when there are more)."""
    from ..train.hps_data import HPSDataset, load_hps_annotations

    annotations = load_hps_annotations(folder)
    dataset = HPSDataset(annotations)
    indices = np.arange(len(dataset))
    if limit is not None:
        if limit < 1:
            raise InputError(f"limit must be at least 1, got {limit}")
        if limit < len(indices):
            indices = np.sort(np.random.default_rng(seed).choice(indices, size=limit, replace=False))
    samples = [dataset[int(index)] for index in indices]
    crops = np.stack([sample["image"].numpy() for sample in samples]).astype(np.float32)
    vertices = np.stack([sample["canonical_vertices"].numpy() for sample in samples]).astype(np.float32)
    return PersonSamples(crops, vertices)

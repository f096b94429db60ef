"""The golden reference directory of the official implementation: manifests, cases and its weight generator.

The directory (shipped beside the project, not in it) holds cases computed by the official VQ-HPS and Mesh-VQ-VAE
code with deterministic synthetic weights from its `fill.py`; the tests and the demo compare this package with it.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import torch

from .errors import InputError


class ReferenceData:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        if not (self.root / "fill.py").exists():
            raise InputError(f"no reference directory at {self.root} (expected fill.py, manifests and connections/)")
        salt_file = self.root / "fill.json"
        self.salt = json.loads(salt_file.read_text())["salt"] if salt_file.exists() else ""
        spec = importlib.util.spec_from_file_location("vqhps_reference_fill", self.root / "fill.py")
        self._filler = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(self._filler)

    @property
    def connections(self) -> Path:
        return self.root / "connections"

    def manifest(self, name: str) -> dict:
        return json.loads((self.root / f"{name}.manifest.json").read_text())

    def case(self, name: str) -> dict[str, np.ndarray]:
        with np.load(self.root / f"{name}.case.npz") as data:
            return {key: data[key] for key in data.files}

    def state_dict(self, name: str) -> dict[str, torch.Tensor]:
        """The generated weights of a manifest, as torch tensors in the official key order."""
        entries = self.manifest(name)["state_dict"]
        filled = self._filler.fill_state_dict(entries, salt=self.salt)
        return {key: torch.from_numpy(filled[key]) for key, *_ in entries}

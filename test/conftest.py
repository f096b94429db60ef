"""Shared fixtures: the official reference directory and the skip rules of the markers."""

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REFERENCE_DIR = REPO_ROOT.parent / "shared" / "reference" / "vqhps_official"


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _module_available(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def pytest_collection_modifyitems(config, items):
    cuda = torch.cuda.is_available()
    skips = {
        "gpu": (not cuda, "needs a CUDA device"),
        "tensorrt": (not (cuda and _module_available("tensorrt")), "needs TensorRT and a CUDA device"),
        "ros": (not _module_available("rclpy"), "needs rclpy (a ROS 2 install)"),
    }
    for item in items:
        for marker, (skip, reason) in skips.items():
            if skip and marker in item.keywords:
                item.add_marker(pytest.mark.skip(reason=reason))


class Reference:
    """The golden reference directory: manifests, cases and the deterministic weight generator."""

    def __init__(self, root: Path):
        self.root = root
        salt_file = root / "fill.json"
        self.salt = json.loads(salt_file.read_text())["salt"] if salt_file.exists() else ""
        spec = importlib.util.spec_from_file_location("vqhps_reference_fill", root / "fill.py")
        self._fill = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(self._fill)

    @property
    def connections(self) -> Path:
        return self.root / "connections"

    def manifest(self, name: str) -> dict:
        return json.loads((self.root / f"{name}.manifest.json").read_text())

    def case(self, name: str) -> dict:
        with np.load(self.root / f"{name}.case.npz") as data:
            return {key: data[key] for key in data.files}

    def state_dict(self, name: str) -> dict:
        """The filled weights of a manifest, as torch tensors in the official key order."""
        entries = self.manifest(name)["state_dict"]
        filled = self._fill.fill_state_dict(entries, salt=self.salt)
        return {key: torch.from_numpy(filled[key]) for key, *_ in entries}


@pytest.fixture(scope="session")
def reference() -> Reference:
    root = Path(os.environ.get("VQHPS_REFERENCE_DIR", DEFAULT_REFERENCE_DIR))
    if not (root / "fill.py").exists():
        message = f"golden reference directory not found at {root} (set VQHPS_REFERENCE_DIR)"
        if _in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return Reference(root)

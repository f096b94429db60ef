"""Shared fixtures: the official reference directory and the skip rules of the markers."""

import importlib.util
import os
from pathlib import Path

import pytest
import torch

from vqhps_ros.mesh_vq import MeshVQConfig, MeshVQVAE, load_connections, load_mesh_vqvae_state
from vqhps_ros.reference import ReferenceData

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
            if skip and item.get_closest_marker(marker) is not None:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def shared_bags() -> Path:
    """Bags recorded by a real ROS 2 (../shared/bags, see its README)."""
    root = Path(os.environ.get("VQHPS_SHARED_BAGS", REPO_ROOT.parent / "shared" / "bags"))
    if not root.is_dir():
        message = f"recorded bags not found at {root} (set VQHPS_SHARED_BAGS)"
        if _in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return root


@pytest.fixture(scope="session")
def reference() -> ReferenceData:
    root = Path(os.environ.get("VQHPS_REFERENCE_DIR", DEFAULT_REFERENCE_DIR))
    if not (root / "fill.py").exists():
        message = f"golden reference directory not found at {root} (set VQHPS_REFERENCE_DIR)"
        if _in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return ReferenceData(root)


@pytest.fixture(scope="session")
def official_connections(reference):
    return load_connections(reference.connections, MeshVQConfig().connection_layers)


@pytest.fixture(scope="session")
def golden_mesh_vqvae(reference, official_connections):
    """The official architecture filled with the reference weights (eval mode)."""
    model = MeshVQVAE(MeshVQConfig(), official_connections).eval()
    load_mesh_vqvae_state(model, reference.state_dict("mesh_vqvae_54"))
    return model


@pytest.fixture(scope="session")
def vqvae_case(reference):
    return {key: torch.from_numpy(value) for key, value in reference.case("mesh_vqvae_54").items()}

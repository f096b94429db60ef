"""The bundled demo models of the free body: a Mesh-VQ-VAE and a compact VQ-HPS trained on synthetic people.

`MODEL_CARD.md` beside this file says how they were trained and how well they do; `metrics.json` holds the card's
held-out figures (written by `tools/bundle_demo_models.py` from the shipped files themselves).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import CheckpointError
from ..hps import VQHPS, load_model
from ..mesh_vq import MeshVQVAE, load_mesh_vqvae

MODELS_DIR = Path(__file__).resolve().parent
DEMO_MODEL = MODELS_DIR / "free_body_vqhps.pt"
DEMO_MESH_VQVAE = MODELS_DIR / "free_body_mesh_vqvae.pt"
METRICS_FILE = MODELS_DIR / "metrics.json"


def demo_model_path() -> Path:
    """The bundled VQ-HPS file (checked to exist): what `vqhps-ros demo` runs without --model."""
    return _bundled(DEMO_MODEL)


def load_demo_model() -> VQHPS:
    """The bundled VQ-HPS (ResNet-18-quarter backbone, free-body meshes of 1229 vertices), in eval mode."""
    return load_model(demo_model_path())


def load_demo_mesh_vqvae() -> MeshVQVAE:
    """The bundled Mesh-VQ-VAE of the free body (54 tokens of a 512-code codebook), in eval mode."""
    return load_mesh_vqvae(_bundled(DEMO_MESH_VQVAE))


def demo_metrics() -> dict:
    """The model card's figures on held-out synthetic people: {"mesh_vqvae": {...}, "vqhps": {...}}."""
    return json.loads(_bundled(METRICS_FILE).read_text())


def _bundled(path: Path) -> Path:
    if not path.is_file():
        raise CheckpointError(f"the bundled file {path} is missing: the package was installed without its "
                              "package data (install from the repository, or reinstall with pip)")
    return path

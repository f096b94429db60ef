"""The bundled models of the free body: a Mesh-VQ-VAE and two VQ-HPS regressors that decode with it.

- `keypoints` (the default): reads the 33 body keypoints of the built-in detector's landmark model, trained on
  sampled free-body people with that model's measured noise, and on rendered ones with its own keypoints
  (`tools/train_keypoint_model.py`);
- `image`: reads 224 x 224 person crops with MobileNetV2 backbones that start from ImageNet weights, fine-tuned on
  synthetic renders (`tools/bundle_demo_models.py`; `NOTICE.md` for those weights).

`MODEL_CARD.md` beside this file says how they were trained and how well they do; `metrics.json` holds the image
model's held-out figures (written by `tools/bundle_demo_models.py` from the shipped files themselves).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import CheckpointError
from ..hps import VQHPS, load_model
from ..mesh_vq import MeshVQVAE, load_mesh_vqvae

MODELS_DIR = Path(__file__).resolve().parent
IMAGE_MODEL = MODELS_DIR / "free_body_vqhps.pt"
KEYPOINT_MODEL = MODELS_DIR / "free_body_keypoint_vqhps.pt"
DEMO_MESH_VQVAE = MODELS_DIR / "free_body_mesh_vqvae.pt"
DISPLACEMENT_NET = MODELS_DIR / "displacement_net.pt"  # the alignment refinement's (`refine.displacement`)
METRICS_FILE = MODELS_DIR / "metrics.json"
BUNDLED_MODELS = {"keypoints": KEYPOINT_MODEL, "image": IMAGE_MODEL}  # by name, the default first
DEFAULT_MODEL = "keypoints"


def bundled_model_path(name: str = DEFAULT_MODEL) -> Path:
    """The bundled VQ-HPS file of that name (checked to exist): the default is what runs without a model path."""
    if name not in BUNDLED_MODELS:
        raise CheckpointError(f"no bundled model named {name!r}; the bundled models are {sorted(BUNDLED_MODELS)}")
    return _bundled(BUNDLED_MODELS[name])


def default_model_path() -> Path:
    return bundled_model_path(DEFAULT_MODEL)


def load_image_model() -> VQHPS:
    """The bundled image VQ-HPS (MobileNetV2 backbones from ImageNet, 1229-vertex free-body meshes), in eval mode."""
    return load_model(bundled_model_path("image"))


def load_demo_mesh_vqvae() -> MeshVQVAE:
    """The bundled Mesh-VQ-VAE of the free body (54 tokens of a 512-code codebook), in eval mode."""
    return load_mesh_vqvae(_bundled(DEMO_MESH_VQVAE))


def bundled_displacement_net_path() -> Path:
    """The bundled displacement network of the alignment refinement (checked to exist)."""
    return _bundled(DISPLACEMENT_NET)


def demo_metrics() -> dict:
    """The model card's figures of the image model on held-out synthetic people: {"mesh_vqvae": {...},
    "vqhps": {...}}."""
    return json.loads(_bundled(METRICS_FILE).read_text())


def _bundled(path: Path) -> Path:
    if not path.is_file():
        raise CheckpointError(f"the bundled file {path} is missing: the package was installed without its "
                              "package data (install from the repository, or reinstall with pip)")
    return path

#!/usr/bin/env python3
"""Bundle trained free-body models as the package's demo models, and measure what is shipped.

    python tools/bundle_demo_models.py --mesh-vqvae mesh_vqvae.pt --model vqhps.pt --test val [--storage float16]

Writes into `vqhps_ros/models/`:

* `free_body_mesh_vqvae.pt` and `free_body_vqhps.pt`: inference-only copies (`vqhps-ros strip`), weights stored as
  `--storage` (float16 by default: half the size; loading casts back to float32);
* `metrics.json`: the shipped files evaluated on the held-out `--test` dataset (a `vqhps-ros synth` folder): the
  Mesh-VQ-VAE's reconstruction of its canonical meshes (`vqhps-ros evaluate-mesh-vq`) and the regressor's token
  accuracy, MPJPE, PA-MPJPE, PVE and PA-PVE (`vqhps-ros evaluate`), with the dataset and file sizes.

The VQ-HPS file must embed the very Mesh-VQ-VAE given (its tokens are the regressor's targets).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vqhps_ros.atomic_files import write_bytes_atomically
from vqhps_ros.checkpoints import atomic_torch_save, inference_checkpoint, read_checkpoint, same_state_dict
from vqhps_ros.errors import CheckpointError
from vqhps_ros.hps.checkpoint import PACKAGE_KEY
from vqhps_ros.mesh_vq import load_mesh_vqvae
from vqhps_ros.models import DEMO_MESH_VQVAE, IMAGE_MODEL, METRICS_FILE
from vqhps_ros.train.hps import evaluate_model_file
from vqhps_ros.train.mesh_vq import load_meshes, validate

MESH_VQ_BATCH = 64


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mesh-vqvae", type=Path, required=True, help="a train-mesh-vq output")
    parser.add_argument("--model", type=Path, required=True, help="a train-hps output trained with that Mesh-VQ-VAE")
    parser.add_argument("--test", type=Path, required=True, help="held-out dataset folder (vqhps-ros synth)")
    parser.add_argument("--storage", choices=("float32", "float16"), default="float16")
    args = parser.parse_args(argv)
    mesh_vqvae_file, model_file = read_checkpoint(args.mesh_vqvae), read_checkpoint(args.model)
    _check_same_mesh_vqvae(mesh_vqvae_file, model_file, args.model)
    atomic_torch_save(inference_checkpoint(mesh_vqvae_file, args.storage), DEMO_MESH_VQVAE)
    atomic_torch_save(inference_checkpoint(model_file, args.storage), IMAGE_MODEL)
    metrics = measure_bundle(args.test, args.storage, model_file)
    write_bytes_atomically((json.dumps(metrics, indent=2) + "\n").encode(), METRICS_FILE)
    print(json.dumps(metrics, indent=2))
    return 0


def measure_bundle(test_folder: Path, storage: str, model_file: dict) -> dict:
    """The shipped files on the held-out set, with what describes them."""
    info = json.loads((test_folder / "dataset_info.json").read_text())
    mesh_vq = validate(load_mesh_vqvae(DEMO_MESH_VQVAE), load_meshes(test_folder / "annotations.npz"),
                       MESH_VQ_BATCH)
    regressor = evaluate_model_file(IMAGE_MODEL, test_folder)
    return {
        "test_set": {"seed": info["seed"], "frames": info["num_frames"], "people": info["num_records"]},
        "storage": storage,
        "mesh_vqvae": {"file": DEMO_MESH_VQVAE.name, "megabytes": _megabytes(DEMO_MESH_VQVAE), **_rounded(mesh_vq)},
        "vqhps": {"file": IMAGE_MODEL.name, "megabytes": _megabytes(IMAGE_MODEL),
                  "regressor": model_file[PACKAGE_KEY]["config"],
                  "epochs": model_file.get("epoch"), "steps": model_file.get("step"),
                  "train_config": model_file.get("train_config", {}), **_rounded(regressor)},
    }


def _check_same_mesh_vqvae(mesh_vqvae_file: dict, model_file: dict, model_path: Path) -> None:
    embedded = model_file.get(PACKAGE_KEY, {}).get("mesh_vqvae", {}).get("model", {})
    if not same_state_dict(embedded, mesh_vqvae_file["model"]):
        raise CheckpointError(f"{model_path} was trained with another Mesh-VQ-VAE than the one given")


def _rounded(metrics: dict) -> dict:
    """The error figures (the loss terms of an evaluation depend on training-only settings: left out)."""
    kept = {key: value for key, value in metrics.items() if "loss" not in key}
    return {key: round(value, 3) if isinstance(value, float) else value for key, value in kept.items()}


def _megabytes(path: Path) -> float:
    return round(path.stat().st_size / 1e6, 2)


if __name__ == "__main__":
    sys.exit(main())

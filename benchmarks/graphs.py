"""What the engine benchmarks share: the model file, its exported and quantised graphs, person-crop datasets.

Everything expensive is built once into a work folder and reused while its inputs are unchanged: graphs are named
after the model file's sha256, the INT8 graph also after its calibration crops and its weight range (7-bit on x86
CPUs without VNNI, see `vqhps_ros.runtime.quantize`), so a work folder shared by two kinds of CPU keeps one of each.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import torch

from vqhps_ros.hps import VQHPS, MeshRegressor, RegressorConfig, load_model, save_model
from vqhps_ros.hps.checkpoint import load_regressor_state
from vqhps_ros.mesh_vq import MeshVQConfig, MeshVQVAE, load_connections, load_mesh_vqvae_state
from vqhps_ros.reference import ReferenceData
from vqhps_ros.runtime import PersonSamples, export_vqhps, load_dataset_samples, quantize_vqhps
from vqhps_ros.runtime.commands import file_sha256
from vqhps_ros.runtime.quantize import choose_reduce_range

LOG = logging.getLogger("benchmarks")

REPO = Path(__file__).resolve().parents[1]
DEFAULT_REFERENCE_DIR = REPO.parent / "shared" / "reference" / "vqhps_official"
DEFAULT_WORK_DIR = Path.home() / ".cache" / "vqhps_ros" / "benchmarks"


def reference_model_file(work_dir: Path, reference_dir: Path = DEFAULT_REFERENCE_DIR) -> Path:
    """The official HRNet-W48 VQ-HPS filled with the reference directory's deterministic weights, as a model file.

    These weights come from the reference generator, not from training: the network computes what the official
    one computes, but its meshes are not human (about 8 m across) and its token logits are nearly flat.
    """
    path = work_dir / "reference_hrnet_w48.pt"
    if path.is_file():
        return path
    reference = ReferenceData(reference_dir)
    mesh_vqvae = MeshVQVAE(MeshVQConfig(), load_connections(reference.connections, MeshVQConfig().connection_layers))
    load_mesh_vqvae_state(mesh_vqvae, reference.state_dict("mesh_vqvae_54"))
    regressor = MeshRegressor(RegressorConfig(backbone="hrnet_w48"))
    load_regressor_state(regressor, reference.state_dict("mesh_regressor_hrnet"), "mesh_regressor_hrnet")
    model = VQHPS(regressor, mesh_vqvae, pose_init=np.zeros(51)).eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_model(model, path)
    return path


def load_benchmark_model(path: Path) -> VQHPS:
    return load_model(path).eval()


def fp32_graph(model_path: Path, work_dir: Path, max_persons: int = 8) -> Path:
    """The model's fp32 whole-model graph (exported once per model file)."""
    return exported_graph(model_path, work_dir, max_persons, "fp32")


def exported_graph(model_path: Path, work_dir: Path, max_persons: int, precision: str) -> Path:
    """The model's whole-model graph of an export precision (exported once per model file)."""
    digest = file_sha256(model_path)
    path = work_dir / f"{model_path.stem}-{digest[:12]}" / f"vqhps_{precision}_b{max_persons}.onnx"
    if not path.is_file():
        LOG.info("exporting %s to %s", model_path, path)
        source = {"file": model_path.name, "sha256": digest}
        export_vqhps(load_benchmark_model(model_path), path, max_persons=max_persons, precision=precision,
                     source=source)
    return path


def int8_graph(fp32_path: Path, calibration: PersonSamples) -> Path:
    """The INT8 graph of an fp32 graph, calibrated on `calibration`, with this CPU's weight range (quantised once per
    graph, crops and range)."""
    digest = hashlib.sha256(np.ascontiguousarray(calibration.crops).tobytes()).hexdigest()[:12]
    reduce_range, _ = choose_reduce_range()
    name = f"-cal{len(calibration)}-{digest}{'-w7' if reduce_range else ''}.onnx"
    path = fp32_path.with_name(fp32_path.stem.replace("fp32", "int8") + name)
    if not path.is_file():
        LOG.info("quantising %s on %d crops", fp32_path, len(calibration))
        quantize_vqhps(fp32_path, path, calibration.crops, reduce_range=reduce_range)
    return path


def synthetic_dataset(work_dir: Path, frames: int, seed: int) -> Path:
    """A dataset folder of `frames` rendered free-body frames (vqhps_ros.synth), made once per (frames, seed)."""
    folder = work_dir / f"synthetic-{frames}f-seed{seed}"
    if not (folder / "annotations.npz").is_file():
        from vqhps_ros.synth import write_dataset

        LOG.info("rendering %d synthetic frames into %s", frames, folder)
        write_dataset(folder, frames, seed=seed, progress=False)
    return folder


def person_samples(dataset: Path | None, work_dir: Path, count: int, seed: int) -> PersonSamples:
    """`count` persons of a dataset folder, or of a synthetic one rendered with `seed` when none is given."""
    if dataset is None:
        frames = max(4, count // 2 + 4)  # about two usable persons per frame
        dataset = synthetic_dataset(work_dir, frames, seed)
    samples = load_dataset_samples(dataset, limit=count, seed=seed)
    if len(samples) < count:
        LOG.warning("%s holds %d persons, fewer than the %d asked for", dataset, len(samples), count)
    return samples


def describe_samples(dataset: Path | None, samples: PersonSamples, seed: int) -> str:
    origin = str(dataset) if dataset is not None else f"synthetic free-body frames (vqhps_ros.synth, seed {seed})"
    return f"{len(samples)} person crops of {origin}"


def model_gflop(model: VQHPS) -> float:
    """Floating-point operations (billions, 2 per multiply-add) of one crop through the whole graph."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:  # autograd on: the counter's module tracker fails on parameter views made under no_grad
        model(torch.zeros(1, 3, 224, 224))
    return counter.get_total_flops() / 1e9


def dump(data) -> str:
    return json.dumps(data, indent=2, sort_keys=True)

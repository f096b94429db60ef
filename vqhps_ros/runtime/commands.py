"""What `vqhps-ros export` and `vqhps-ros build-engine` do, as functions the command line calls."""

from __future__ import annotations

import logging
from pathlib import Path

from ..checkpoints import file_sha256
from ..errors import CheckpointError, InputError
from ..hps import EXPECTED
from .calibration import load_dataset_samples
from .export import DEFAULT_MAX_BATCH, DEFAULT_OPSET, export_vqhps
from .quantize import quantize_vqhps
from .tensorrt_engine import DEFAULT_PRECISION, DEFAULT_WORKSPACE_BYTES, BuildReport, build_engine

LOG = logging.getLogger(__name__)

EXPORT_CHOICES = ("fp32", "fp16", "int8")
DEFAULT_CALIBRATION_COUNT = 64  # person crops an int8 export calibrates on


def export_command(model_path: str | Path, output: str | Path, precision: str = "fp32",
                   max_persons: int = DEFAULT_MAX_BATCH, opset: int = DEFAULT_OPSET,
                   calibration_dataset: str | Path | None = None,
                   calibration_count: int = DEFAULT_CALIBRATION_COUNT, token_decoding: str = EXPECTED) -> Path:
    """Export a model file (written by `save_model`) to ONNX; returns the path written.

    token_decoding: how the graph decodes its mesh (`hps.TOKEN_DECODINGS`; the configuration's default, expected).

    fp32 / fp16: the whole-model graph of that precision (fp16: for TensorRT 10.12+ strongly typed engines).
    int8: the fp32 graph is written beside the output (`<output stem>.fp32.onnx`), then quantised with
    `calibration_count` person crops of `calibration_dataset` (a dataset folder, see `calibration`).
    """
    from ..hps import load_model

    model_path, output = Path(model_path), Path(output)
    if precision not in EXPORT_CHOICES:
        raise InputError(f"precision must be one of {EXPORT_CHOICES}, got {precision!r}")
    if precision == "int8" and calibration_dataset is None:
        raise InputError("an int8 export needs --calibration-dataset: a folder of person crops like the robot's")
    if not model_path.is_file():
        raise CheckpointError(f"model file {model_path} does not exist")
    model = load_model(model_path)
    model.set_token_decoding(token_decoding)
    source = {"file": model_path.name, "sha256": file_sha256(model_path)}
    if precision != "int8":
        return export_vqhps(model, output, max_persons, opset, precision, source)
    fp32_path = export_vqhps(model, output.with_suffix(".fp32.onnx"), max_persons, opset, "fp32", source)
    calibration = load_dataset_samples(calibration_dataset, limit=calibration_count)
    LOG.info("calibrating on %d persons of %s", len(calibration), calibration_dataset)
    return quantize_vqhps(fp32_path, output, calibration.crops)


def build_engine_command(onnx_path: str | Path, cache_dir: str | Path | None = None, precision: str = DEFAULT_PRECISION,
                         max_persons: int | None = None, opt_persons: int | None = None, device: int = 0,
                         workspace_mb: int = DEFAULT_WORKSPACE_BYTES >> 20) -> BuildReport:
    """Build the TensorRT engine of an exported graph into the cache ahead of time (or find it there)."""
    report = build_engine(onnx_path, cache_dir, precision, max_persons, opt_persons, device, workspace_mb << 20)
    LOG.info("%s engine %s: %s", "built" if report.built else "found cached", report.engine_path, report.description)
    return report


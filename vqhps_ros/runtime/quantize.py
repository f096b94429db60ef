"""INT8 static quantisation of the whole-model graph for ONNX Runtime's CPU kernels, calibrated on person crops.

Recipe (`onnxruntime.quantization.quantize_static`):

* QDQ format: QuantizeLinear/DequantizeLinear pairs, which ONNX Runtime fuses into integer kernels (QLinearConv...);
* weights int8, symmetric, per output channel; activations uint8, asymmetric (U8S8);
* 7-bit weights (`reduce_range`) on x86 CPUs without VNNI: there ONNX Runtime's U8S8 kernels multiply with AVX2's
  VPMADDUBSW, which adds pairs of uint8 x int8 products into 16 bits and saturates (255 * 127 * 2 > 32767); with
  7-bit weights (|w| <= 64) a pair stays below 32767. VNNI accumulates in 32 bits and Arm has no such instruction,
  so there the full 8 bits are kept ("Quantize ONNX models", onnxruntime.ai, FAQ "When to use reduce-range"). The
  default follows the CPU that quantises (`cpu_features.has_vnni`); pass reduce_range= for a graph that will run
  on another kind of CPU. The choice and its reason are in the graph's metadata;
* MinMax calibration over person crops (`CropCalibrationReader`), after `quant_pre_process` (shape inference and
  ONNX Runtime's basic graph optimisations). MinMax adds ReduceMin/ReduceMax outputs to the graph and keeps only
  those per run, so its memory stays small; the histogram methods (entropy, percentile) keep every activation of
  every run (HRNet-W48 with 32 crops was killed for memory at 24 GB) and are not offered;
* scope: the nodes of the two image backbones only, which hold almost all of the arithmetic. The transformer and
  the token head stay float32 because their argmax decides the tokens (the head's logits are close together; a
  perturbation flips tokens) and they cost a few milliseconds; the mesh decoder stays float32 because it is gathers
  and small products (little to gain) and its output is the vertices.

The result keeps the fp32 graph's metadata, with precision "int8", a description of the recipe and a new content
hash. It is an ONNX Runtime graph: TensorRT's explicit quantisation wants symmetric int8 activations.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..errors import CheckpointError, InputError
from . import cpu_features
from .onnx_meta import (
    CONTENT_HASH_KEY,
    PACKAGE_VERSION_KEY,
    import_onnx,
    read_metadata,
    save_model_atomically,
    stamp_metadata,
)
from .onnx_runtime import import_onnxruntime
from .signatures import CROP_SIZE, CROPS, GRAPH_KEY, PRECISION_KEY, QUANTIZATION_KEY, VQHPS_GRAPH

LOG = logging.getLogger(__name__)

# Node-name prefixes of the quantised part: the exporter names nodes after the module path of `VQHPSGraph`.
BACKBONE_SCOPES = ("/model/regressor/backbone_pose/", "/model/regressor/backbone_rot/")


class CropCalibrationReader:
    """An onnxruntime CalibrationDataReader over person crops: `get_next()` yields {"crops": (b, 3, 224, 224)}.

    crops: (N, 3, 224, 224) ImageNet-normalised, N >= 1; batch_size: crops per calibration run (1 keeps the
    memory of the calibrator's intermediate outputs small).
    """

    def __init__(self, crops: np.ndarray, batch_size: int = 1, input_name: str = CROPS):
        crops = np.asarray(crops)
        if crops.ndim != 4 or crops.shape[1:] != (3, CROP_SIZE, CROP_SIZE) or len(crops) == 0:
            raise InputError(f"calibration needs crops of shape (N >= 1, 3, {CROP_SIZE}, {CROP_SIZE}), "
                             f"found {crops.shape}")
        if not np.issubdtype(crops.dtype, np.floating) or not np.isfinite(crops).all():
            raise InputError("calibration crops must be finite floating-point values")
        if batch_size < 1:
            raise InputError(f"batch_size must be at least 1, got {batch_size}")
        self.crops = np.ascontiguousarray(crops, dtype=np.float32)
        self.batch_size = batch_size
        self.input_name = input_name
        self._position = 0

    def __len__(self) -> int:
        """Calibration runs in one pass."""
        return -(-len(self.crops) // self.batch_size)

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._position >= len(self.crops):
            return None
        batch = self.crops[self._position:self._position + self.batch_size]
        self._position += self.batch_size
        return {self.input_name: batch}

    def rewind(self) -> None:
        self._position = 0


def quantize_vqhps(fp32_path: str | Path, output_path: str | Path, calibration_crops: np.ndarray,
                   scopes: Sequence[str] = BACKBONE_SCOPES, batch_size: int = 1,
                   reduce_range: bool | None = None) -> Path:
    """Write the INT8 (QDQ) graph of an fp32 whole-model graph, calibrated on `calibration_crops`; returns the path.

    calibration_crops: (N, 3, 224, 224) person crops like those the robot will see (a few dozen to a few hundred;
    held apart from any crops used to measure the accuracy). scopes: node-name prefixes to quantise. reduce_range:
    7-bit weights; None chooses from this CPU (`choose_reduce_range`).
    """
    onnx = import_onnx()
    import_onnxruntime()
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    fp32_path, output_path = Path(fp32_path), Path(output_path)
    metadata = _fp32_metadata(onnx, fp32_path)
    reduce_range, reason = choose_reduce_range(reduce_range)
    LOG.info("INT8 quantisation with %s: %s", weight_bits(reduce_range), reason)
    reader = CropCalibrationReader(calibration_crops, batch_size)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=output_path.parent, prefix=".quantize-") as work:
        prepared, quantized = Path(work) / "prepared.onnx", Path(work) / "quantized.onnx"
        # Symbolic shape inference cannot follow the exporter's shape arithmetic; ONNX shape inference can.
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        nodes = quantized_node_names(onnx.load(str(prepared)), scopes)
        LOG.info("quantising %d nodes on %d calibration crops", len(nodes), len(reader.crops))
        with _quiet_root_logger():
            quantize_static(
                str(prepared), str(quantized), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                reduce_range=reduce_range, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                nodes_to_quantize=nodes, calibrate_method=CalibrationMethod.MinMax,
            )  # fmt: skip
        model = onnx.load(str(quantized))
    recipe = {"format": "QDQ", "weights": f"int8 symmetric per channel, {weight_bits(reduce_range)}",
              "reduce_range": reduce_range, "reduce_range_reason": reason,
              "quantized_on_cpu": cpu_features.describe(), "activations": "uint8 asymmetric",
              "calibration": "minmax", "calibration_crops": int(len(reader.crops)), "scopes": list(scopes),
              "quantized_nodes": len(nodes), "fp32_content_sha256": metadata[CONTENT_HASH_KEY]}
    entries = {key: value for key, value in metadata.items()
               if key not in (GRAPH_KEY, PACKAGE_VERSION_KEY, CONTENT_HASH_KEY)}
    entries.update({PRECISION_KEY: "int8", QUANTIZATION_KEY: json.dumps(recipe, sort_keys=True)})
    stamp_metadata(model, VQHPS_GRAPH, entries)
    onnx.checker.check_model(model)
    return save_model_atomically(model, output_path)


def choose_reduce_range(requested: bool | None = None,
                        cpu: cpu_features.CpuFeatures | None = None) -> tuple[bool, str]:
    """(reduce_range, why): `requested` when given, else True exactly on x86 CPUs without VNNI (module doc)."""
    if requested is not None:
        return bool(requested), "requested"
    cpu = cpu or cpu_features.this_cpu()
    if not cpu.is_x86:
        return False, f"{cpu.describe()} is not an x86 CPU: no 16-bit saturation"
    if cpu.has_vnni():
        return False, f"{cpu.describe()} has VNNI: 32-bit accumulation, no saturation"
    return True, f"{cpu.describe()} has no VNNI: U8S8 kernels use VPMADDUBSW, whose 16-bit sums can saturate"


def weight_bits(reduce_range: bool) -> str:
    return "7-bit weights (reduce_range)" if reduce_range else "8-bit weights"


def quantization_recipe(metadata: dict[str, str]) -> dict:
    """The recipe an int8 graph's metadata records ({} when absent or unreadable). Graphs quantised before the
    reduce_range choice was recorded used 8-bit weights: their recipe reads reduce_range False."""
    try:
        recipe = json.loads(metadata.get(QUANTIZATION_KEY, "{}"))
    except ValueError:
        return {}
    return recipe if isinstance(recipe, dict) else {}


def quantized_node_names(model, scopes: Sequence[str]) -> list[str]:
    """Names of the main graph's nodes under any of `scopes`; InputError when there are none."""
    names = [node.name for node in model.graph.node if node.name.startswith(tuple(scopes))]
    if not names:
        raise InputError(f"no node of the graph is under {list(scopes)}: nothing would be quantised")
    return names


def _fp32_metadata(onnx, path: Path) -> dict[str, str]:
    if not path.is_file():
        raise CheckpointError(f"ONNX file {path} does not exist")
    model = onnx.load(str(path), load_external_data=False)
    metadata = read_metadata(model)
    if metadata.get(GRAPH_KEY) != VQHPS_GRAPH or metadata.get(PRECISION_KEY) != "fp32":
        raise CheckpointError(f"{path}: INT8 quantisation starts from the fp32 whole-model graph written by "
                              f"export_vqhps; this file is {metadata.get(GRAPH_KEY)} / {metadata.get(PRECISION_KEY)}")
    return metadata


@contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """The quantizer logs one INFO line per copied bias on the root logger: thousands for HRNet."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        root.setLevel(level)


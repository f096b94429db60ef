"""The whole VQ-HPS graph on ONNX Runtime: the CUDA execution provider when present, the CPU one otherwise.

The graph's precision is the file's (fp32 or fp16 export, int8 from `quantize.quantize_vqhps`), read from its
metadata. An int8 graph with 8-bit weights on an x86 CPU without VNNI gets a warning: its U8S8 products can
saturate there (see `quantize`). `onnxruntime` is imported on activation.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import CheckpointError, EngineError, EngineOutOfMemory
from . import cpu_features
from .base import Engine, EngineDescription, check_max_persons, check_precision, describe_details
from .export import DEFAULT_MAX_BATCH
from .onnx_runtime import check_session_signature, create_session
from .quantize import quantization_recipe, weight_bits
from .signatures import MAX_BATCH_KEY, PRECISION_KEY, GraphSignature, vqhps_signature_from_metadata

LOG = logging.getLogger(__name__)

# Words of the errors CUDA-backed providers raise when device memory runs out (their exceptions carry no type).
OUT_OF_MEMORY_MARKERS = ("out of memory", "cudaerrormemoryallocation", "cuda_error_out_of_memory",
                         "cudnn_status_alloc_failed", "failed to allocate memory")


def graph_precision_reason(precision: str, metadata: dict[str, str]) -> str:
    """Why this precision runs: ONNX Runtime runs the graph as the file holds it."""
    if precision == "int8":
        reduce_range = quantization_recipe(metadata).get("reduce_range", False)
        return f"int8: graph quantised at export, {weight_bits(reduce_range)}"
    if precision == "fp16":
        return "fp16: graph exported in fp16"
    return f"{precision}: the graph file's precision"


def warn_if_weights_may_saturate(path: Path, metadata: dict[str, str]) -> None:
    """An int8 graph quantised elsewhere with 8-bit weights may lose accuracy on an x86 CPU without VNNI."""
    cpu = cpu_features.this_cpu()
    if cpu.is_x86 and not cpu.has_vnni() and not quantization_recipe(metadata).get("reduce_range", False):
        LOG.warning("%s has 8-bit weights, but this CPU (%s) has no VNNI: ONNX Runtime's uint8 x int8 products may "
                    "saturate in 16 bits and cost accuracy; quantise the graph on this CPU (or with "
                    "reduce_range=True) for 7-bit weights", path.name, cpu.describe())


def is_out_of_memory(error: BaseException) -> bool:
    """Whether an error (or the one it was raised from) reports exhausted device memory."""
    while error is not None:
        if any(marker in str(error).lower() for marker in OUT_OF_MEMORY_MARKERS):
            return True
        error = error.__cause__
    return False


class OnnxRuntimeEngine(Engine):
    """path: a graph written by `export_vqhps` (or `quantize_vqhps`). precision: None accepts the file's; a value
    must match it. threads: intra-op threads of the CPU provider (None: onnxruntime's default). providers: override
    (e.g. with "TensorrtExecutionProvider" first); default CUDA then CPU. max_persons: largest call (default: the
    file's metadata)."""

    backend = "onnxruntime"
    supported_precisions = ("fp32", "fp16", "int8")

    def __init__(self, path: str | Path, precision: str | None = None, threads: int | None = None,
                 providers: Sequence[str] | None = None, max_persons: int | None = None):
        super().__init__()
        self.path = Path(path)
        self.requested_precision = precision
        self.threads = threads
        self.providers = None if providers is None else list(providers)
        self.requested_max_persons = check_max_persons(max_persons)
        self.session = None
        self._output_names: list[str] = []
        self._input_name = ""

    def _activate(self) -> tuple[GraphSignature, EngineDescription]:
        if self.requested_precision is not None:
            check_precision(self, self.requested_precision)
        try:
            session = create_session(self.path, self.threads, self.providers)
        except CheckpointError as error:
            if is_out_of_memory(error):
                raise EngineOutOfMemory(f"ONNX Runtime ran out of device memory loading {self.path}") from error
            raise
        metadata = dict(session.get_modelmeta().custom_metadata_map)
        signature = vqhps_signature_from_metadata(metadata, str(self.path))
        check_session_signature(session, signature, str(self.path))
        precision = metadata.get(PRECISION_KEY, "fp32")
        if self.requested_precision not in (None, precision):
            raise EngineError(f"{self.path} holds a {precision} graph, {self.requested_precision} was requested")
        self.session = session
        self._output_names = signature.output_names
        (self._input_name,) = signature.input_names
        return signature, self._describe(session, precision, metadata)

    def _describe(self, session, precision: str, metadata: dict[str, str]) -> EngineDescription:
        providers = session.get_providers()
        on_cpu = providers[0] == "CPUExecutionProvider"
        device = "cpu" if on_cpu else f"cuda ({providers[0]})"
        max_persons = self.requested_max_persons or int(metadata.get(MAX_BATCH_KEY, DEFAULT_MAX_BATCH))
        threads = "default" if self.threads is None else self.threads
        if on_cpu and precision == "int8":
            warn_if_weights_may_saturate(self.path, metadata)
        detail = describe_details(graph_precision_reason(precision, metadata),
                                  f"{self.path.name}, providers {providers}, {threads} threads",
                                  cpu_features.describe() if on_cpu else "")
        return EngineDescription(self.backend, device, precision, max_persons, detail)

    def _deactivate(self) -> None:
        self.session = None  # onnxruntime frees the session (and its device memory) with the last reference

    def _infer_batch(self, inputs: np.ndarray) -> dict[str, np.ndarray]:
        try:
            values = self.session.run(self._output_names, {self._input_name: inputs})
        except Exception as error:  # onnxruntime raises its own pybind types
            if is_out_of_memory(error):
                raise EngineOutOfMemory(f"ONNX Runtime ran out of device memory at batch {len(inputs)}") from error
            raise EngineError(f"ONNX Runtime failed at batch {len(inputs)}: {error}") from error
        return dict(zip(self._output_names, values, strict=True))

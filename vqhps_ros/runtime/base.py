"""The interface every inference engine of the whole VQ-HPS graph implements, and the checks they share.

An engine follows Polygraphy's runner pattern: it is built cheaply, `activate()` loads or builds what it needs
(a session, an engine, device buffers), `infer(crops)` runs it, `deactivate()` frees it; `with engine:` does both.
Every backend returns an `EngineOutput`, a NamedTuple of numpy arrays named after the graph outputs
(`signatures.vqhps_signature`), with the same dtypes everywhere.

Inputs: crops (N, 3, 224, 224) floating point, ImageNet-normalised, or for a keypoint-reading graph keypoints
(N, 33, 3) (`signatures.vqhps_signature`). They are checked (shape, dtype, finite values:
InputError naming the problem), converted to contiguous float32, and split into calls of at most `max_persons`
(the TensorRT optimisation profile's top), whose outputs are concatenated: no person is ever dropped. `infer` holds
a lock, so any thread may call it.

The backends (`torch_engine`, `onnxruntime_engine`, `tensorrt_engine`) import this module only; `factory` chooses
among them.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ..errors import EngineError, InputError
from .signatures import GraphSignature

PRECISIONS = ("fp32", "fp16", "bf16", "int8")  # every engine's supported_precisions is a subset


class EngineOutput(NamedTuple):
    """Per person, in input order (see `signatures.vqhps_signature`)."""

    indices: np.ndarray  # (N, T) int32 codebook indices
    token_confidence: np.ndarray  # (N, T) float32 softmax probability of each chosen index
    rotmat: np.ndarray  # (N, 3, 3) float32
    cam: np.ndarray  # (N, 3) float32 weak-perspective [s, tx, ty]
    verts_canonical: np.ndarray  # (N, V, 3) float32
    verts: np.ndarray  # (N, V, 3) float32, verts_canonical @ rotmat^T
    joints: np.ndarray | None = None  # (N, J, 3) float32, when the model has a joint regressor


@dataclass(frozen=True)
class EngineDescription:
    """What runs: backend, device ("cpu", "cuda:0 NVIDIA Orin (8.7)"), precision and the largest call."""

    backend: str
    device: str
    precision: str
    max_persons: int
    detail: str = ""  # why this precision, then providers, TensorRT version and API, threads, CPU instructions...

    def __str__(self) -> str:
        text = f"{self.backend} on {self.device}, {self.precision}, up to {self.max_persons} persons per call"
        return f"{text} ({self.detail})" if self.detail else text


class Engine(ABC):
    """Base of the backends: input checks, splitting, locking, the activate/deactivate life cycle.

    Subclasses implement `_activate() -> (signature, description)`, `_deactivate()` and `_infer_batch(crops)`,
    which receives (n, 3, 224, 224) contiguous float32 with 1 <= n <= max_persons and returns a dict of output name
    -> array of the signature's shape and dtype.
    """

    backend: str = ""
    supported_precisions: tuple[str, ...] = ()

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._signature: GraphSignature | None = None
        self._description: EngineDescription | None = None

    # ----------------------------------------------------------------------------------------------- life cycle

    @property
    def is_active(self) -> bool:
        return self._signature is not None

    def activate(self) -> Engine:
        """Load or build everything inference needs; a second call does nothing. Returns the engine."""
        with self._lock:
            if not self.is_active:
                signature, description = self._activate()
                self._signature, self._description = signature, description
        return self

    def deactivate(self) -> None:
        """Free sessions, engines and device memory; the engine can be activated again."""
        with self._lock:
            if self.is_active:
                try:
                    self._deactivate()
                finally:
                    self._signature = self._description = None

    def __enter__(self) -> Engine:
        return self.activate()

    def __exit__(self, *exc_info) -> None:
        self.deactivate()

    # ------------------------------------------------------------------------------------------------- metadata

    @property
    def signature(self) -> GraphSignature:
        return self._active_state()[0]

    @property
    def description(self) -> EngineDescription:
        return self._active_state()[1]

    @property
    def input_metadata(self):
        """The graph inputs (`TensorSpec`: name, dtype, shape with "batch" for the dynamic axis)."""
        return self.signature.inputs

    @property
    def output_metadata(self):
        return self.signature.outputs

    @property
    def max_persons(self) -> int:
        return self.description.max_persons

    # ------------------------------------------------------------------------------------------------ inference

    def infer(self, inputs: np.ndarray) -> EngineOutput:
        """crops (N, 3, 224, 224) ImageNet-normalised, or keypoints (N, 33, 3) for a graph that reads them (see
        `input_metadata`) -> EngineOutput with N rows (N may exceed max_persons)."""
        return EngineOutput(**self.infer_arrays(inputs))

    def infer_arrays(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """The graph's outputs by name for a batch of its single input, N rows (N may exceed max_persons, the
        calls are split): `infer` of any graph, not only VQ-HPS's."""
        with self._lock:
            signature, description = self._active_state()
            batch = checked_input(batch, signature)
            if len(batch) == 0:
                return empty_outputs(signature)
            step = description.max_persons
            parts = [self._checked_batch(batch[start:start + step], signature) for start in range(0, len(batch), step)]
        return concatenate_outputs(parts)

    def _checked_batch(self, crops: np.ndarray, signature: GraphSignature) -> dict[str, np.ndarray]:
        outputs = self._infer_batch(crops)
        for spec in signature.outputs:
            array = outputs.get(spec.name)
            expected = tuple(len(crops) if isinstance(size, str) else size for size in spec.shape)
            if array is None or array.shape != expected or array.dtype != np.dtype(spec.dtype):
                found = None if array is None else (array.shape, str(array.dtype))
                raise EngineError(f"{self.backend} returned {spec.name} as {found}, expected {expected} {spec.dtype}")
        return outputs

    def _active_state(self) -> tuple[GraphSignature, EngineDescription]:
        if self._signature is None or self._description is None:
            raise EngineError(f"the {self.backend or 'inference'} engine is not active: call activate() first "
                              "(or use it in a `with` block)")
        return self._signature, self._description

    @abstractmethod
    def _activate(self) -> tuple[GraphSignature, EngineDescription]: ...

    @abstractmethod
    def _deactivate(self) -> None: ...

    @abstractmethod
    def _infer_batch(self, crops: np.ndarray) -> dict[str, np.ndarray]: ...


def checked_input(batch, signature: GraphSignature) -> np.ndarray:
    """The graph's single input as a contiguous array of its dtype, or InputError for a wrong type, dtype, shape or
    non-finite values."""
    (spec,) = signature.inputs
    batch = spec.prepare(batch)
    finite = np.isfinite(batch).all(axis=tuple(range(1, batch.ndim)))
    if not finite.all():
        raise InputError(f"{spec.name}: persons {np.flatnonzero(~finite).tolist()} hold NaN or infinite values")
    return batch


def empty_outputs(signature: GraphSignature) -> dict[str, np.ndarray]:
    return {spec.name: np.zeros([0 if isinstance(size, str) else size for size in spec.shape], dtype=spec.dtype)
            for spec in signature.outputs}


def concatenate_outputs(parts: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    if len(parts) == 1:
        return parts[0]
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}


def check_max_persons(max_persons: int | None) -> int | None:
    if max_persons is not None and (not isinstance(max_persons, int) or max_persons < 1):
        raise InputError(f"max_persons must be a positive integer (or None for the default), got {max_persons!r}")
    return max_persons


def check_precision(engine: Engine, precision: str) -> None:
    if precision not in engine.supported_precisions:
        raise EngineError(f"the {engine.backend} engine runs {engine.supported_precisions}, not {precision!r}")


def describe_details(*parts: str) -> str:
    """The `EngineDescription.detail` of its non-empty parts, the precision and its reason first by convention:
    "fp32: default on CPU; 2 threads; AMD EPYC (AVX2, AVX-512, VNNI, BF16)"."""
    return "; ".join(part for part in parts if part)

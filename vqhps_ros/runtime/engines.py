"""Inference engines of the whole VQ-HPS graph: one interface, three backends, one output type.

An engine follows Polygraphy's runner pattern: it is built cheaply, `activate()` loads or builds what it needs
(a session, an engine, device buffers), `infer(crops)` runs it, `deactivate()` frees it; `with engine:` does both.
Every backend returns an `EngineOutput`, a NamedTuple of numpy arrays named after the graph outputs
(`signatures.vqhps_signature`), with the same dtypes everywhere.

Inputs: crops (N, 3, 224, 224) floating point, ImageNet-normalised. They are checked (shape, dtype, finite values:
InputError naming the problem), converted to contiguous float32, and split into calls of at most `max_persons`
(the TensorRT optimisation profile's top), whose outputs are concatenated: no person is ever dropped. `infer` holds
a lock, so any thread may call it.

`create_engine` is the factory: `backend="auto"` tries TensorRT (CUDA and tensorrt importable), then ONNX Runtime,
then PyTorch, and falls back to the next one when a backend fails to start or runs out of device memory; one log
line says which backend, device and precision run.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..errors import CheckpointError, EngineError, EngineOutOfMemory, InputError
from .signatures import GraphSignature

LOG = logging.getLogger(__name__)

BACKENDS = ("tensorrt", "onnxruntime", "pytorch")
PRECISIONS = ("fp32", "fp16", "bf16", "int8")


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
    detail: str = ""  # providers, TensorRT version and API, threads...

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

    def infer(self, crops: np.ndarray) -> EngineOutput:
        """crops (N, 3, 224, 224) ImageNet-normalised -> EngineOutput with N rows (N may exceed max_persons)."""
        with self._lock:
            signature, description = self._active_state()
            crops = checked_crops(crops, signature)
            if len(crops) == 0:
                return empty_output(signature)
            step = description.max_persons
            parts = [self._checked_batch(crops[start:start + step], signature) for start in range(0, len(crops), step)]
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


def checked_crops(crops, signature: GraphSignature) -> np.ndarray:
    """Contiguous float32 crops, or InputError for a wrong type, dtype, shape or non-finite values."""
    (spec,) = signature.inputs
    crops = spec.prepare(crops)
    finite = np.isfinite(crops).all(axis=(1, 2, 3))
    if not finite.all():
        raise InputError(f"{spec.name}: persons {np.flatnonzero(~finite).tolist()} hold NaN or infinite values")
    return crops


def empty_output(signature: GraphSignature) -> EngineOutput:
    arrays = {spec.name: np.zeros([0 if isinstance(size, str) else size for size in spec.shape], dtype=spec.dtype)
              for spec in signature.outputs}
    return EngineOutput(**arrays)


def concatenate_outputs(parts: Sequence[dict[str, np.ndarray]]) -> EngineOutput:
    if len(parts) == 1:
        return EngineOutput(**parts[0])
    return EngineOutput(**{name: np.concatenate([part[name] for part in parts]) for name in parts[0]})


def check_max_persons(max_persons: int | None) -> int | None:
    if max_persons is not None and (not isinstance(max_persons, int) or max_persons < 1):
        raise InputError(f"max_persons must be a positive integer (or None for the default), got {max_persons!r}")
    return max_persons


def check_precision(engine: Engine, precision: str) -> None:
    if precision not in engine.supported_precisions:
        raise EngineError(f"the {engine.backend} engine runs {engine.supported_precisions}, not {precision!r}")


# ---------------------------------------------------------------------------------------------------- fallback


EngineLoader = Callable[[], Engine]  # builds an inactive engine (cheap); activate() does the work


class FallbackEngine(Engine):
    """The first of several candidate engines that activates; on device out-of-memory it moves to the next one.

    candidates: (name, loader) in order of preference. A candidate whose loader or activation fails (missing
    package, no device, bad file, out of memory) is skipped with a warning; an out-of-memory error during `infer`
    deactivates the running engine and repeats the call on the next candidate.
    """

    def __init__(self, candidates: Sequence[tuple[str, EngineLoader]]):
        super().__init__()
        if not candidates:
            raise EngineError("no inference backend can run here (nothing to try)")
        self._candidates = list(candidates)
        self._position = 0
        self._current: Engine | None = None
        self.failures: list[str] = []

    @property
    def current(self) -> Engine | None:
        return self._current

    @property
    def backend(self) -> str:  # the running engine's name, for messages
        return self._current.backend if self._current is not None else "auto"

    def _activate(self) -> tuple[GraphSignature, EngineDescription]:
        while self._position < len(self._candidates):
            name, loader = self._candidates[self._position]
            try:
                engine = loader().activate()
            except (EngineError, CheckpointError, ImportError, OSError) as error:
                self._skip(name, error)
                continue
            self._current = engine
            return engine.signature, engine.description
        raise EngineError("no inference backend could start: " + "; ".join(self.failures))

    def _skip(self, name: str, error: Exception) -> None:
        message = f"{name}: {error}"
        self.failures.append(message)
        LOG.warning("inference backend %s unavailable, trying the next one", message)
        self._position += 1

    def _deactivate(self) -> None:
        if self._current is not None:
            self._current.deactivate()
            self._current = None

    def _infer_batch(self, crops: np.ndarray) -> dict[str, np.ndarray]:
        while True:
            engine = self._current
            if engine is None:
                raise EngineError("no inference backend is running")
            try:
                output = engine.infer(crops)  # splits by its own max_persons, which may differ from the last one's
            except EngineOutOfMemory as error:
                engine.deactivate()
                self._current = None
                self._skip(engine.backend, error)
                signature, description = self._activate()
                self._signature, self._description = signature, description
                LOG.warning("inference engine after the fallback: %s", description)
                continue
            return {name: array for name, array in output._asdict().items() if array is not None}


# ----------------------------------------------------------------------------------------------------- factory


def create_engine(backend: str = "auto", precision: str | None = None, *, onnx_path: str | Path | None = None,
                  model=None, cache_dir: str | Path | None = None, max_persons: int | None = None,
                  threads: int | None = None, device: str | None = None, cuda_graphs: bool = False,
                  providers: Sequence[str] | None = None) -> Engine:
    """An ACTIVE engine of `backend` ("auto", "tensorrt", "onnxruntime", "pytorch"); logs what runs.

    onnx_path: the exported graph (TensorRT: fp32 or fp16 graph; ONNX Runtime: any, its precision is the file's).
    model: a VQHPS module for the PyTorch backend. cache_dir: TensorRT engine cache (default: beside the ONNX file).
    precision: None for each backend's default (TensorRT fp16, ONNX Runtime the file's, PyTorch fp32); with "auto",
    backends that cannot run the requested precision are skipped. threads: CPU threads (ONNX Runtime, PyTorch).
    device: PyTorch device ("cpu", "cuda", "cuda:1"; default CUDA when present). max_persons: the largest call
    (default: the graph's metadata for TensorRT and ONNX Runtime, 16 for PyTorch).
    """
    if backend not in ("auto", *BACKENDS):
        raise InputError(f"backend must be 'auto' or one of {BACKENDS}, got {backend!r}")
    if precision is not None and precision not in PRECISIONS:
        raise InputError(f"precision must be one of {PRECISIONS} (None: the backend's default), got {precision!r}")
    options = dict(onnx_path=onnx_path, model=model, cache_dir=cache_dir, max_persons=max_persons, threads=threads,
                   device=device, cuda_graphs=cuda_graphs, providers=providers)
    if backend == "auto":
        engine: Engine = FallbackEngine(auto_candidates(precision, **options))
    else:
        engine = backend_loader(backend, precision, **options)()
    engine.activate()
    LOG.info("inference engine: %s", engine.description)
    return engine


def auto_candidates(precision: str | None, **options) -> list[tuple[str, EngineLoader]]:
    """The backends `auto` tries, in order: TensorRT where CUDA and tensorrt + pycuda import and a graph is given,
    ONNX Runtime where it imports and a graph is given, PyTorch where a model is given. Skipped ones are logged."""
    candidates = []
    for name in BACKENDS:
        reason = _unavailable_reason(name, precision, options)
        if reason:
            LOG.info("auto engine: not trying %s (%s)", name, reason)
        else:
            candidates.append((name, backend_loader(name, precision, **options)))
    return candidates


def engine_class(backend: str) -> type[Engine]:
    """The Engine subclass of a backend (its module imports no optional package until activation)."""
    if backend == "tensorrt":
        from .tensorrt_engine import TensorRTEngine

        return TensorRTEngine
    if backend == "onnxruntime":
        from .onnxruntime_engine import OnnxRuntimeEngine

        return OnnxRuntimeEngine
    if backend == "pytorch":
        from .torch_engine import TorchEngine

        return TorchEngine
    raise InputError(f"unknown backend {backend!r}; known: {BACKENDS}")


def _unavailable_reason(name: str, precision: str | None, options: dict) -> str:
    if precision is not None and precision not in engine_class(name).supported_precisions:
        return f"it does not run {precision}"
    if name == "tensorrt":
        if options["onnx_path"] is None:
            return "no ONNX graph given"
        missing = [module for module in ("tensorrt", "pycuda") if importlib.util.find_spec(module) is None]
        if missing:
            return f"{' and '.join(missing)} not installed"
        return "" if cuda_device_count() > 0 else "no CUDA device"
    if name == "onnxruntime":
        if options["onnx_path"] is None:
            return "no ONNX graph given"
        return "" if importlib.util.find_spec("onnxruntime") is not None else "onnxruntime not installed"
    return "" if options["model"] is not None else "no PyTorch model given"


def cuda_device_count() -> int:
    """CUDA devices pycuda sees (0 when the driver is missing or fails)."""
    try:
        import pycuda.driver as cuda

        cuda.init()
        return cuda.Device.count()
    except Exception:  # ImportError, or pycuda's own driver errors where there is no GPU or driver
        return 0


def backend_loader(backend: str, precision: str | None, *, onnx_path=None, model=None, cache_dir=None,
                   max_persons=None, threads=None, device=None, cuda_graphs=False, providers=None) -> EngineLoader:
    """A callable that builds an inactive engine of `backend` from the factory's options."""
    engine_type = engine_class(backend)
    if backend == "pytorch":
        if model is None:
            raise InputError("the pytorch backend needs model= (a VQHPS module, e.g. vqhps_ros.hps.load_model(path))")
        return lambda: engine_type(model, device=device, precision=precision or "fp32", threads=threads,
                                   max_persons=max_persons, cuda_graphs=cuda_graphs)
    if onnx_path is None:
        raise InputError(f"the {backend} backend needs onnx_path= (a graph written by export_vqhps)")
    if backend == "onnxruntime":
        return lambda: engine_type(onnx_path, precision=precision, threads=threads, providers=providers,
                                   max_persons=max_persons)
    return lambda: engine_type(onnx_path, cache_dir=cache_dir, precision=precision or "fp16", max_persons=max_persons)

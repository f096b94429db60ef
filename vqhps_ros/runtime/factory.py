"""Which engine runs: `create_engine` builds one backend, or with `backend="auto"` a `FallbackEngine` over several.

`auto` tries TensorRT (CUDA and tensorrt importable), then ONNX Runtime, then PyTorch, and falls back to the next one
when a backend fails to start or runs out of device memory; one log line says which backend, device and precision
run. With `precision=None` each backend runs its own default (TensorRT fp16, ONNX Runtime the graph file's,
PyTorch fp32), so `auto` never picks bf16 by itself: bf16 only pays on CPUs with bf16 instructions (see
`cpu_features`), and the PyTorch engine refuses it elsewhere.

The backends' modules are imported when a backend is chosen (`engine_class`); each imports its optional package
(tensorrt, pycuda, onnxruntime) only on activation.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..errors import CheckpointError, EngineError, EngineOutOfMemory, InputError
from .base import PRECISIONS, Engine, EngineDescription
from .signatures import GraphSignature

LOG = logging.getLogger(__name__)

BACKENDS = ("tensorrt", "onnxruntime", "pytorch")  # also the order `auto` tries them in


EngineLoader = Callable[[], Engine]  # builds an inactive engine (cheap); activate() does the work


# ---------------------------------------------------------------------------------------------------- fallback


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
    model: a VQHPS module for the PyTorch backend. cache_dir: TensorRT engine cache (default: `default_cache_dir()`).
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
        return "no ONNX graph given" if options["onnx_path"] is None else tensorrt_unavailable_reason()
    if name == "onnxruntime":
        if options["onnx_path"] is None:
            return "no ONNX graph given"
        return "" if importlib.util.find_spec("onnxruntime") is not None else "onnxruntime not installed"
    return "" if options["model"] is not None else "no PyTorch model given"


def tensorrt_unavailable_reason() -> str:
    """Why TensorRT cannot run here ("" when tensorrt and pycuda import and a CUDA device is present)."""
    missing = [module for module in ("tensorrt", "pycuda") if importlib.util.find_spec(module) is None]
    if missing:
        return f"{' and '.join(missing)} not installed"
    return "" if cuda_device_count() > 0 else "no CUDA device"


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
    """A callable that builds an inactive engine of `backend` from the factory's options. precision None leaves
    the choice to the engine, whose description then says it ran its default."""
    engine_type = engine_class(backend)
    if backend == "pytorch":
        if model is None:
            raise InputError("the pytorch backend needs model= (a VQHPS module, e.g. vqhps_ros.hps.load_model(path))")
        return lambda: engine_type(model, device=device, precision=precision, threads=threads,
                                   max_persons=max_persons, cuda_graphs=cuda_graphs)
    if onnx_path is None:
        raise InputError(f"the {backend} backend needs onnx_path= (a graph written by export_vqhps)")
    if backend == "onnxruntime":
        return lambda: engine_type(onnx_path, precision=precision, threads=threads, providers=providers,
                                   max_persons=max_persons)
    return lambda: engine_type(onnx_path, cache_dir=cache_dir, precision=precision, max_persons=max_persons)

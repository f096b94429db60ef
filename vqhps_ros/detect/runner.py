"""Run a detection graph on TensorRT, ONNX Runtime or PyTorch, with the engines' backend choice and life cycle.

The detection graphs go through the package's one export path (`detect.export`, into the graph cache) and its
engines: TensorRT runs them with `runtime.TensorRTEngine` (the VQ-HPS engine, given the graph's signature; one
engine cache), ONNX Runtime through the same session helper (`runtime.onnx_runtime.create_session`: CUDA provider
when present, else CPU), PyTorch as the modules themselves. Same `backend` names as the engines ("auto",
"tensorrt", "onnxruntime", "pytorch") and the same `activate()` / `infer()` / `deactivate()` and `with` block; the
outputs are a dict by name, as the graphs' signatures (`detect.signatures`) list them.

`auto` tries TensorRT where tensorrt and pycuda import and a CUDA device is present, then ONNX Runtime where
`onnxruntime` imports and a graph file is given or can be exported (needs `onnx`), then PyTorch; a backend that
fails to start is logged and the next one tried. The choice is kept in `description`.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from pathlib import Path

import numpy as np
import torch

from ..errors import CheckpointError, EngineError, InputError
from ..runtime.base import empty_outputs
from ..runtime.onnx_meta import GRAPH_KEY
from ..runtime.onnx_runtime import check_session_signature, create_session
from .export import cached_graph_path, load_graph_module
from .signatures import graph_signature

LOG = logging.getLogger(__name__)

BACKENDS = ("tensorrt", "onnxruntime", "pytorch")  # the order `auto` tries them in


class DetectionRunner:
    """One detection graph ("pose_detector" or "pose_landmarker") on one backend.

    backend: "auto", "tensorrt", "onnxruntime" or "pytorch". onnx_path: an exported graph (default: the cached
    export, written on first use in `cache_dir`). threads: CPU threads (ONNX Runtime intra-op threads; for PyTorch,
    torch.set_num_threads, a process-wide setting). device: PyTorch device (default CUDA when present).
    providers: ONNX Runtime providers (default CUDA, then CPU). max_batch: the largest batch TensorRT's profile
    takes (larger batches are split). engine_cache_dir: TensorRT's engine cache (default the engines' default,
    shared with the mesh network's). TensorRT runs its default precision (fp16).
    """

    def __init__(self, graph: str, backend: str = "auto", *, onnx_path: str | Path | None = None,
                 cache_dir: str | Path | None = None, threads: int | None = None, device: str | None = None,
                 providers=None, max_batch: int = 8, engine_cache_dir: str | Path | None = None):
        if backend not in ("auto", *BACKENDS):
            raise InputError(f"detection backend must be 'auto' or one of {BACKENDS}, got {backend!r}")
        if threads is not None and threads < 1:
            raise InputError(f"threads must be at least 1 (or None for the backend's default), got {threads}")
        self.graph = graph
        self.signature = graph_signature(graph)
        self.requested_backend = backend
        self.onnx_path = None if onnx_path is None else Path(onnx_path)
        self.cache_dir = cache_dir
        self.threads = threads
        self.device = device
        self.providers = providers
        self.max_batch = max_batch
        self.engine_cache_dir = engine_cache_dir
        self.backend = ""  # the running backend's name, once active
        self.description = ""
        self._run = None
        self._engine = None  # the TensorRT engine, which holds device memory until deactivated
        self._lock = threading.Lock()

    @property
    def is_active(self) -> bool:
        return self._run is not None

    def activate(self) -> DetectionRunner:
        """Load the graph on the chosen backend; a second call does nothing."""
        with self._lock:
            if self._run is None:
                self._start()
                LOG.info("%s runs on %s", self.graph, self.description)
        return self

    def deactivate(self) -> None:
        with self._lock:
            engine, self._engine, self._run = self._engine, None, None
            self.backend = self.description = ""
            if engine is not None:
                engine.deactivate()

    def __enter__(self) -> DetectionRunner:
        return self.activate()

    def __exit__(self, *exc_info) -> None:
        self.deactivate()

    def infer(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """A (B, 3, S, S) float batch -> output name -> (B, ...) float32 array (see `signatures`)."""
        (spec,) = self.signature.inputs
        batch = spec.prepare(batch)
        if not np.isfinite(batch).all():
            raise InputError(f"{spec.name}: the batch holds NaN or infinite values")
        with self._lock:
            if self._run is None:
                raise EngineError(f"the {self.graph} runner is not active: call activate() first")
            if len(batch) == 0:
                return empty_outputs(self.signature)
            return dict(zip(self.signature.output_names, self._run(batch), strict=True))

    # ------------------------------------------------------------------------------------------------ backends

    def _start(self) -> None:
        candidates = BACKENDS if self.requested_backend == "auto" else (self.requested_backend,)
        reasons = []
        for backend in candidates:
            reason = self._unavailable(backend)
            if not reason:
                try:
                    getattr(self, f"_start_{backend}")()
                    return
                except Exception as error:  # export, onnx, TensorRT, onnxruntime and torch raise their own types
                    reason = f"{backend} failed to start: {error}"
            reasons.append(reason)
            log = LOG.info if backend == "tensorrt" and "not installed" in reason else LOG.warning
            log("%s: not running on %s (%s)", self.graph, backend, reason)
        raise EngineError(f"{self.graph}: {'; '.join(reasons)}")

    def _unavailable(self, backend: str) -> str:
        """Why `backend` cannot run here ("" when it can)."""
        if backend == "pytorch":
            return ""
        if backend == "tensorrt":
            from ..runtime.factory import tensorrt_unavailable_reason

            if reason := tensorrt_unavailable_reason():
                return reason
        elif importlib.util.find_spec("onnxruntime") is None:
            return "onnxruntime not installed"
        if self.onnx_path is None and importlib.util.find_spec("onnx") is None:
            return "no exported graph given and `onnx` (needed to export one) not installed"
        return ""

    def _start_tensorrt(self) -> None:
        from ..runtime.tensorrt_engine import TensorRTEngine

        path = self.onnx_path or cached_graph_path(self.graph, self.cache_dir)
        engine = TensorRTEngine(path, cache_dir=self.engine_cache_dir, max_persons=self.max_batch,
                                signature_of=self._signature_from_metadata).activate()
        names = self.signature.output_names

        def run(batch: np.ndarray) -> list[np.ndarray]:
            outputs = engine.infer_arrays(batch)
            return [outputs[name] for name in names]

        self._engine, self._run = engine, run
        self.backend = "tensorrt"
        self.description = f"tensorrt {engine.description.device} {engine.description.precision} ({path.name})"

    def _signature_from_metadata(self, metadata: dict[str, str], source: str):
        found = metadata.get(GRAPH_KEY)
        if found != self.graph:
            raise CheckpointError(f"{source}: expected a {self.graph} graph ({GRAPH_KEY}), found {found}")
        return self.signature

    def _start_onnxruntime(self) -> None:
        path = self.onnx_path or cached_graph_path(self.graph, self.cache_dir)
        try:
            session = self._session(path)
        except CheckpointError:
            if self.onnx_path is not None:
                raise
            LOG.warning("%s: cached graph %s is unusable, exporting it again", self.graph, path)
            session = self._session(cached_graph_path(self.graph, self.cache_dir, rebuild=True))
        names = self.signature.output_names
        input_name = self.signature.input_names[0]
        self._run = lambda batch: session.run(names, {input_name: batch})
        self.backend = "onnxruntime"
        threads = self.threads or "default"
        self.description = f"onnxruntime {session.get_providers()[0]} ({path.name}, {threads} threads)"

    def _session(self, path: Path):
        # the detector and the landmark model run in turn, then the mesh network: no spinning between them
        session = create_session(path, self.threads, self.providers, spinning=False)
        found = session.get_modelmeta().custom_metadata_map.get(GRAPH_KEY)
        if found != self.graph:
            raise CheckpointError(f"{path}: expected a {self.graph} graph ({GRAPH_KEY}), found {found}")
        check_session_signature(session, self.signature, str(path))
        return session

    def _start_pytorch(self) -> None:
        device = torch.device(self.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        module = load_graph_module(self.graph).to(device)

        def run(batch: np.ndarray) -> list[np.ndarray]:
            with torch.inference_mode():
                outputs = module(torch.from_numpy(batch).to(device))
            return [output.float().cpu().numpy() for output in outputs]

        self._run = run
        self.backend = "pytorch"
        self.description = f"pytorch on {device} ({torch.get_num_threads()} threads)"

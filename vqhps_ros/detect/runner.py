"""Run a detection graph on ONNX Runtime or PyTorch, with the engines' backend choice and life cycle.

The VQ-HPS engines (`runtime.base.Engine`) are built around that graph's crops and outputs (`EngineOutput`, the
crop checks, the TensorRT profile of persons); the detection graphs have other inputs and outputs, so they get this
small runner instead of a generalised Engine: same `backend` names ("auto", "onnxruntime", "pytorch"), same
Polygraphy-style `activate()` / `infer()` / `deactivate()` and `with` block, the same ONNX Runtime session helper
(`runtime.onnx_runtime.create_session`: CUDA provider when present, else CPU), and the exported graph of the same
export path (`detect.export`). TensorRT is not wired here yet (see docs/detect.md).

`auto` runs ONNX Runtime when `onnxruntime` imports and a graph file is given or can be exported (needs `onnx`),
else PyTorch; the choice and the reason are logged and kept in `description`.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from pathlib import Path

import numpy as np
import torch

from ..errors import CheckpointError, EngineError, InputError
from ..runtime.onnx_meta import GRAPH_KEY
from ..runtime.onnx_runtime import check_session_signature, create_session
from .export import cached_graph_path, load_graph_module
from .signatures import graph_signature

LOG = logging.getLogger(__name__)

BACKENDS = ("onnxruntime", "pytorch")  # the order `auto` tries them in


class DetectionRunner:
    """One detection graph ("pose_detector" or "pose_landmarker") on one backend.

    backend: "auto", "onnxruntime" or "pytorch". onnx_path: an exported graph (default: the cached export,
    written on first use in `cache_dir`). threads: CPU threads (ONNX Runtime intra-op threads; for PyTorch,
    torch.set_num_threads, a process-wide setting). device: PyTorch device (default CUDA when present).
    providers: ONNX Runtime providers (default CUDA, then CPU).
    """

    def __init__(self, graph: str, backend: str = "auto", *, onnx_path: str | Path | None = None,
                 cache_dir: str | Path | None = None, threads: int | None = None, device: str | None = None,
                 providers=None):
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
        self.backend = ""  # the running backend's name, once active
        self.description = ""
        self._run = None
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
            self._run = None
            self.backend = self.description = ""

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
                return {out.name: np.zeros([0, *out.shape[1:]], dtype=out.dtype) for out in self.signature.outputs}
            return dict(zip(self.signature.output_names, self._run(batch), strict=True))

    # ------------------------------------------------------------------------------------------------ backends

    def _start(self) -> None:
        if self.requested_backend in ("auto", "onnxruntime"):
            reason = self._onnxruntime_unavailable()
            if not reason:
                try:
                    self._start_onnxruntime()
                    return
                except Exception as error:  # export, onnx checker and onnxruntime raise their own types
                    reason = f"ONNX Runtime failed to start: {error}"
            if self.requested_backend == "onnxruntime":
                raise EngineError(f"{self.graph}: {reason}")
            LOG.warning("%s: running on PyTorch (%s)", self.graph, reason)
        self._start_pytorch()

    def _onnxruntime_unavailable(self) -> str:
        if importlib.util.find_spec("onnxruntime") is None:
            return "onnxruntime not installed"
        if self.onnx_path is None and importlib.util.find_spec("onnx") is None:
            return "no exported graph given and `onnx` (needed to export one) not installed"
        return ""

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

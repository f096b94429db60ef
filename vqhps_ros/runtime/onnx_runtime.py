"""ONNX Runtime engines for the exported graphs. `onnxruntime` is imported when a session is created."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import CheckpointError, InputError
from .onnx_meta import GRAPH_KEY
from .signatures import (
    MESH_DECODER_GRAPH,
    MESH_VQ_CONFIG_KEY,
    NUM_TOKENS_KEY,
    NUM_VERTICES_KEY,
    GraphSignature,
    mesh_decoder_signature,
)

# CUDA when present, else CPU. The TensorRT execution provider is left out on purpose: TensorRT engines are built
# and cached by the TensorRT backend, while the provider would rebuild its own at every session start.
PREFERRED_PROVIDERS = ("CUDAExecutionProvider", "CPUExecutionProvider")

_ORT_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(int64)": "int64",
              "tensor(int32)": "int32"}


def import_onnxruntime():
    """The `onnxruntime` module, or an ImportError that says how to install it."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise ImportError("the ONNX Runtime backend needs `onnxruntime` (or `onnxruntime-gpu`): "
                          "pip install 'vqhps_ros[onnx]'") from exc
    return onnxruntime


SPINNING_OPTION = "session.intra_op.allow_spinning"  # onnxruntime's session config key


def select_providers(available: Sequence[str] | None = None) -> list[str]:
    """PREFERRED_PROVIDERS that this onnxruntime build offers, best first."""
    if available is None:
        available = import_onnxruntime().get_available_providers()
    return [provider for provider in PREFERRED_PROVIDERS if provider in available]


def create_session(path: str | Path, threads: int | None = None, providers: Sequence[str] | None = None,
                   spinning: bool = True):
    """An InferenceSession of the file at `path`; CheckpointError when it is missing or not a loadable graph.

    threads: intra-op threads of the CPU provider (None: onnxruntime's default, one per physical core).
    spinning: whether idle intra-op threads spin (onnxruntime's default) or sleep. Spinning makes one session's
    runs faster, but a session whose runs alternate with another's should sleep: its spinning threads take the
    cores the other one needs (the built-in detector's two networks on a 3-person frame, 2 cores: 75 ms spinning,
    45-50 ms sleeping).
    """
    onnxruntime = import_onnxruntime()
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"ONNX file {path} does not exist")
    if threads is not None and threads < 1:
        raise InputError(f"threads must be at least 1 (or None for onnxruntime's default), got {threads}")
    options = onnxruntime.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    options.add_session_config_entry(SPINNING_OPTION, "1" if spinning else "0")
    try:
        return onnxruntime.InferenceSession(str(path), options, providers=list(providers or select_providers()))
    except Exception as exc:  # onnxruntime raises its own pybind types for unreadable or invalid graphs
        raise CheckpointError(f"cannot load ONNX graph {path} (truncated or not an ONNX file?): {exc}") from exc


def check_session_signature(session, signature: GraphSignature, source: str) -> None:
    """CheckpointError unless the session's inputs and outputs have the signature's names, types and ranks."""
    for role, found, specs in (("inputs", session.get_inputs(), signature.inputs),
                               ("outputs", session.get_outputs(), signature.outputs)):
        described = [(arg.name, _ORT_TYPES.get(arg.type, arg.type), len(arg.shape)) for arg in found]
        expected = [(spec.name, spec.dtype, len(spec.shape)) for spec in specs]
        if described != expected:
            raise CheckpointError(f"{source}: graph {role} (name, dtype, rank) are {described}, expected {expected}")


class OnnxMeshDecoder:
    """An exported mesh decoder on ONNX Runtime: indices (B, T) integers -> vertices (B, N, 3) float32.

    Sizes come from the file's metadata; inputs are checked like MeshVQVAE.decode checks them (ONNX Gather would
    silently wrap negative indices).
    """

    def __init__(self, path: str | Path, threads: int | None = None, providers: Sequence[str] | None = None):
        self.path = Path(path)
        self.session = create_session(self.path, threads, providers)
        metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        graph = metadata.get(GRAPH_KEY)
        if graph != MESH_DECODER_GRAPH:
            raise CheckpointError(f"{self.path}: expected a mesh decoder exported by vqhps_ros "
                                  f"({GRAPH_KEY} = {MESH_DECODER_GRAPH}), found {GRAPH_KEY} = {graph}")
        self.num_tokens = int(metadata[NUM_TOKENS_KEY])
        self.num_vertices = int(metadata[NUM_VERTICES_KEY])
        self.num_embeddings = int(json.loads(metadata[MESH_VQ_CONFIG_KEY])["num_embeddings"])
        self.signature = mesh_decoder_signature(self.num_tokens, self.num_vertices)
        check_session_signature(self.session, self.signature, str(self.path))

    @property
    def providers(self) -> list[str]:
        return self.session.get_providers()

    def __call__(self, indices: np.ndarray) -> np.ndarray:
        """(B, T) integer codebook indices in [0, K) -> (B, N, 3) float32 canonical meshes."""
        (indices_spec,), (vertices_spec,) = self.signature.inputs, self.signature.outputs
        indices = indices_spec.prepare(indices)
        if indices.shape[0] == 0:
            return np.zeros((0, self.num_vertices, 3), dtype=np.float32)
        low, high = int(indices.min()), int(indices.max())
        if low < 0 or high >= self.num_embeddings:
            raise InputError(f"codebook indices must be in [0, {self.num_embeddings}), found [{low}, {high}]")
        (vertices,) = self.session.run([vertices_spec.name], {indices_spec.name: indices})
        return vertices

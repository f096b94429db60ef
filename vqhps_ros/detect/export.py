"""ONNX export of the pose detector and the pose landmark model, through the package's one export path.

`runtime.export.export_onnx` traces, checks the operators against TensorRT 8.6's parser (`TENSORRT_OPS`), conforms
the graph to its signature (`signatures`), stamps metadata and a content hash, and writes atomically. The graphs
carry their source: the .tflite file's name, size and sha256, and the input range the network expects.

`cached_graph_path` keeps one exported file per graph, package version and source file in a cache folder, written
on first use (ONNX Runtime needs a file; nothing is downloaded).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from .. import __version__
from ..runtime.export import DEFAULT_OPSET, EXAMPLE_BATCH, export_onnx
from ..runtime.signatures import MAX_BATCH_KEY
from .networks import (
    DETECTOR_INPUT_SIZE,
    LANDMARK_INPUT_SIZE,
    POSE_DETECTOR_FILE,
    POSE_LANDMARK_FILE,
    NetworkFile,
    load_pose_detector,
    load_pose_landmarker,
)
from .signatures import (
    INPUT_RANGE_KEY,
    POSE_DETECTOR_GRAPH,
    POSE_LANDMARK_GRAPH,
    TFLITE_SOURCE_KEY,
    graph_signature,
)

DEFAULT_MAX_FRAMES = 4  # frames per detector call a TensorRT profile would cover
DEFAULT_MAX_PERSONS = 16  # crops per landmark call

_GRAPHS = {
    POSE_DETECTOR_GRAPH: (POSE_DETECTOR_FILE, load_pose_detector, DETECTOR_INPUT_SIZE, (-1.0, 1.0), DEFAULT_MAX_FRAMES),
    POSE_LANDMARK_GRAPH: (POSE_LANDMARK_FILE, load_pose_landmarker, LANDMARK_INPUT_SIZE, (0.0, 1.0),
                          DEFAULT_MAX_PERSONS),
}


def source_file(graph: str) -> NetworkFile:
    return _graph_entry(graph)[0]


def load_graph_module(graph: str) -> torch.nn.Module:
    """The PyTorch module a graph is exported from (and the PyTorch backend runs)."""
    return _graph_entry(graph)[1]()


def export_detection_graph(graph: str, path: str | Path, opset: int = DEFAULT_OPSET,
                           max_batch: int | None = None) -> Path:
    """Export `graph` ("pose_detector" or "pose_landmarker") to `path`; returns the path."""
    network, load, size, input_range, default_batch = _graph_entry(graph)
    generator = torch.Generator().manual_seed(0)
    low, high = input_range
    example = torch.rand(EXAMPLE_BATCH, 3, size, size, generator=generator) * (high - low) + low
    metadata = {
        TFLITE_SOURCE_KEY: json.dumps({"file": network.filename, "size": network.size, "sha256": network.sha256}),
        INPUT_RANGE_KEY: json.dumps([low, high]),
        MAX_BATCH_KEY: str(max_batch or default_batch),
    }
    return export_onnx(load(), (example,), graph_signature(graph), path, graph, metadata, opset)


def default_graph_cache_dir() -> Path:
    """$XDG_CACHE_HOME/vqhps_ros/detect, or ~/.cache/vqhps_ros/detect."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "vqhps_ros" / "detect"


def cached_graph_path(graph: str, cache_dir: str | Path | None = None, rebuild: bool = False) -> Path:
    """The exported file of `graph` in the cache (default `default_graph_cache_dir()`), exported when missing or
    when `rebuild` is set. Its name holds the package version and the source file's hash, so a new package or
    file never reads a stale graph."""
    network = source_file(graph)
    folder = Path(cache_dir) if cache_dir is not None else default_graph_cache_dir()
    path = folder / f"{graph}-{network.sha256[:16]}-{__version__}.onnx"
    if rebuild or not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        export_detection_graph(graph, path)
    return path


def _graph_entry(graph: str):
    if graph not in _GRAPHS:
        raise ValueError(f"unknown detection graph {graph!r}; known: {sorted(_GRAPHS)}")
    return _GRAPHS[graph]

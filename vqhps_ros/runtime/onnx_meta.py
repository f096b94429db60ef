"""Metadata, content hash and atomic writing of exported ONNX files, shared by every graph this package exports.

Metadata lives in the file's `metadata_props` (string -> string; JSON where a value is structured), so an engine or a
TensorRT cache can read what a file holds without the model that produced it.

Content hash (`vqhps_ros.content_sha256`): the hex sha256 of the ModelProto serialised with
`SerializeToString(deterministic=True)` after emptying `metadata_props`. It therefore covers the graph, the weights,
the opset imports, the IR version and the producer, and nothing else: metadata may be added or edited without
changing it, and any change of what the graph computes changes it. Engine caches key on it.

`onnx` is imported inside the functions, so importing this module needs no ONNX installation.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from .. import __version__
from ..atomic_files import write_bytes_atomically
from ..errors import CheckpointError
from .signatures import GRAPH_KEY

if TYPE_CHECKING:
    import onnx

PACKAGE_VERSION_KEY = "vqhps_ros.version"
CONTENT_HASH_KEY = "vqhps_ros.content_sha256"


def import_onnx():
    """The `onnx` module, or an ImportError that says how to install it."""
    try:
        import onnx
    except ImportError as exc:
        raise ImportError("ONNX export needs the `onnx` package: pip install 'vqhps_ros[onnx]'") from exc
    return onnx


def content_hash(model: onnx.ModelProto) -> str:
    """sha256 (hex) of the model without its metadata; see the module docstring for exactly what it covers."""
    onnx = import_onnx()
    bare = onnx.ModelProto()
    bare.CopyFrom(model)
    del bare.metadata_props[:]
    return hashlib.sha256(bare.SerializeToString(deterministic=True)).hexdigest()


def stamp_metadata(model: onnx.ModelProto, graph: str, entries: Mapping[str, str]) -> None:
    """Replace the model's metadata with `entries`, the graph kind, the package version and the content hash."""
    values = {**entries, GRAPH_KEY: graph, PACKAGE_VERSION_KEY: __version__}
    non_strings = sorted(key for key, value in values.items() if not isinstance(value, str))
    if non_strings:
        raise TypeError(f"ONNX metadata values must be strings; not strings: {non_strings}")
    del model.metadata_props[:]
    values[CONTENT_HASH_KEY] = content_hash(model)
    for key in sorted(values):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, values[key]


def read_metadata(model: onnx.ModelProto) -> dict[str, str]:
    return {entry.key: entry.value for entry in model.metadata_props}


def verify_content_hash(model: onnx.ModelProto, source: str = "ONNX model") -> str:
    """The stored content hash, after checking it against a fresh one (CheckpointError if absent or different)."""
    stored = read_metadata(model).get(CONTENT_HASH_KEY)
    if stored is None:
        raise CheckpointError(f"{source} has no {CONTENT_HASH_KEY} metadata: not exported by vqhps_ros?")
    actual = content_hash(model)
    if actual != stored:
        raise CheckpointError(f"{source}: content hash {actual} differs from the stored {stored}; "
                              "the graph or its weights were changed after export")
    return stored


def save_model_atomically(model: onnx.ModelProto, path: str | Path) -> Path:
    """Write a model of under 2 GiB (protobuf's limit; no external data) to `path` atomically."""
    return write_bytes_atomically(model.SerializeToString(), path)

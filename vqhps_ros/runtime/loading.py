"""From the `model` section of the configuration to a running engine and the topology of its meshes.

`model.path` names either a model file written by this package (`.pt`, e.g. the bundled default) or an exported
graph (`.onnx`). A model file runs on every backend: for TensorRT and ONNX Runtime it is exported once to ONNX in
the cache folder, keyed by the file's sha256, and the graph is reused from then on. A graph runs on TensorRT and ONNX
Runtime only (the PyTorch backend needs the model file), and its metadata carries everything to publish (faces,
joint names, token counts), so a robot needs no checkpoint.

`model.token_decoding` (`hps.TOKEN_DECODINGS`) is part of what a model file's graph computes: it is set on the model
and names its exported graph. An exported graph decodes as it was exported (its metadata says how); a configuration
that asks otherwise is reported, not obeyed.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path

from ..errors import CheckpointError, InputError
from ..hps import ARGMAX
from ..humans import MeshTopology
from .signatures import TOKEN_DECODING_KEY
from .topology import mesh_topology_from_metadata, read_graph_metadata

LOG = logging.getLogger(__name__)

GRAPHS_SUBDIR = "graphs"


@dataclass
class LoadedModel:
    engine: object  # an active runtime Engine
    topology: MeshTopology
    source: Path  # the model file or graph that runs
    model: object | None = None  # the VQHPS read from a model file (None for a graph), for the stages that need it


BUNDLED_PREFIX = "bundled:"


def load_engine(model_config) -> LoadedModel:
    """An active engine for `model_config` (the configuration's `model` section) and its mesh topology."""
    from . import create_engine, default_cache_dir

    source = resolve_model_path(model_config.path)
    cache_dir = Path(model_config.engine_cache_dir).expanduser() if model_config.engine_cache_dir else None
    options = dict(precision=model_config.precision or None, cache_dir=cache_dir,
                   max_persons=model_config.max_persons, threads=model_config.threads or None,
                   device=model_config.device or None)
    if source.suffix == ".onnx":
        if model_config.backend == "pytorch":
            raise InputError(f"model.path {source} is an ONNX graph, which the pytorch backend cannot run; give a "
                             "model file (.pt) or choose backend auto, onnxruntime or tensorrt")
        engine = create_engine(model_config.backend, onnx_path=source, **options)
        metadata = read_graph_metadata(source)
        report_graph_decoding(metadata, model_config.token_decoding, source)
        return LoadedModel(engine, mesh_topology_from_metadata(metadata, str(source)), source)
    from ..hps import load_model
    from .export import model_topology

    model = load_model(source)
    model.set_token_decoding(model_config.token_decoding)
    onnx_path = None
    if model_config.backend in ("auto", "onnxruntime", "tensorrt") and _onnx_available():
        onnx_path = exported_graph(model, source, cache_dir or default_cache_dir())
    engine = create_engine(model_config.backend, onnx_path=onnx_path, model=model, **options)
    return LoadedModel(engine, model_topology(model), source, model)


def resolve_model_path(path: str) -> Path:
    """The configured model file or graph: "" is the bundled default model, "bundled:NAME" a bundled model by name
    (`models.BUNDLED_MODELS`)."""
    if not path or path.startswith(BUNDLED_PREFIX):
        from ..models import bundled_model_path, default_model_path

        return bundled_model_path(path.removeprefix(BUNDLED_PREFIX)) if path else default_model_path()
    resolved = Path(path).expanduser()
    if not resolved.is_file():
        raise CheckpointError(f"model.path {resolved} does not exist (expected a model file .pt or a graph .onnx)")
    if resolved.suffix not in (".pt", ".pth", ".onnx"):
        raise CheckpointError(f"model.path {resolved}: expected a model file (.pt) or an exported graph (.onnx), "
                              f"found a {resolved.suffix or 'suffix-less'} file")
    return resolved


def report_graph_decoding(metadata: dict[str, str], configured: str, graph: Path) -> None:
    """A warning when an exported graph decodes its mesh otherwise than the configuration asks."""
    decoding = metadata.get(TOKEN_DECODING_KEY, ARGMAX)
    if decoding != configured:
        LOG.warning("model.token_decoding %s does not apply to %s, which decodes %s; export the model file with "
                    "--token-decoding %s, or give the model file", configured, graph, decoding, configured)


def exported_graph(model, model_path: Path, cache_dir: Path) -> Path:
    """The fp32 ONNX graph of `model` (with its token decoding), exported on first use into
    `cache_dir/graphs/<file stem>-<sha256 of the file>-<decoding>.onnx`."""
    from .commands import file_sha256
    from .export import export_vqhps

    digest = file_sha256(model_path)
    graph = cache_dir / GRAPHS_SUBDIR / f"{model_path.stem}-{digest[:16]}-{model.token_decoding}.onnx"
    if graph.is_file():
        return graph
    LOG.info("exporting %s to %s (once; later runs reuse it)", model_path, graph)
    graph.parent.mkdir(parents=True, exist_ok=True)
    export_vqhps(model, graph, source={"file": model_path.name, "sha256": digest})
    return graph


def _onnx_available() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxruntime"))


"""ONNX export of the package's networks, for ONNX Runtime and TensorRT.

Exporter: the TorchScript-based `torch.onnx.export(..., dynamo=False)` with `dynamic_axes`, chosen explicitly.
Since torch 2.9 the default is the dynamo-based exporter, which needs `onnxscript`, not a dependency of this
package (checked with torch 2.13 and onnxscript 0.7: same numbers, a graph with fewer shape nodes, a slower
export). The TorchScript path marks itself deprecated; its notices are silenced here because the choice is
deliberate. Its graphs compute the batch-dependent reshapes with Shape/Gather/Concat nodes, which TensorRT resolves
as shape tensors; static axes that its shape annotations leave symbolic are written from the graph's signature.

Every export is traced at batch EXAMPLE_BATCH, checked against its signature, restricted to TENSORRT_OPS, stamped
with metadata and a content hash (`onnx_meta`), validated with the ONNX checker, and written atomically.
"""

from __future__ import annotations

import io
import json
import warnings
from collections.abc import Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from ..errors import InputError
from ..mesh_vq import MeshVQVAE
from .onnx_meta import import_onnx, save_model_atomically, stamp_metadata
from .signatures import (
    BATCH,
    MAX_BATCH_KEY,
    MESH_DECODER_GRAPH,
    MESH_VQ_CONFIG_KEY,
    NUM_TOKENS_KEY,
    NUM_VERTICES_KEY,
    GraphSignature,
    TensorSpec,
    mesh_decoder_signature,
)

if TYPE_CHECKING:
    import onnx

DEFAULT_OPSET = 17  # the newest opset TensorRT 8.6 parses (onnx-tensorrt support matrix)
DEFAULT_MAX_BATCH = 16  # people per frame a TensorRT optimisation profile covers; ONNX Runtime takes any batch
# Traced at 2, not 1: tracers special-case size-1 axes (broadcasting, squeeze), which could freeze the batch.
EXAMPLE_BATCH = 2

# The operators exported graphs may contain. Each is in TensorRT 8.6's ONNX parser support matrix
# (onnx-tensorrt docs/operators.md) and none is control flow (Loop, If, Scan) or data-dependent in shape
# (NonZero, Unique); Einsum is left out on purpose (TensorRT supports only a subset of its equations).
# A new graph that needs another operator extends this set after checking it against that matrix.
TENSORRT_OPS = frozenset({
    "Abs", "Add", "ArgMin", "Cast", "Concat", "Constant", "ConstantOfShape", "Div", "Elu", "Gather", "MatMul",
    "Mul", "Pow", "ReduceSum", "Reshape", "Shape", "Squeeze", "Sub", "Transpose", "Unsqueeze",
})  # fmt: skip


class _MeshDecoderGraph(nn.Module):
    """The exported function: the model's own `decode` (codebook gather + decoder half of the autoencoder)."""

    def __init__(self, model: MeshVQVAE):
        super().__init__()
        self.model = model

    def forward(self, indices: torch.Tensor) -> torch.Tensor:
        return self.model.decode(indices)


def export_mesh_decoder(model: MeshVQVAE, path: str | Path, opset: int = DEFAULT_OPSET,
                        max_batch: int = DEFAULT_MAX_BATCH) -> Path:
    """Export `model.decode` as indices (batch, T) int64 -> vertices (batch, N, 3) float32; returns the path.

    The model must be float32 (TensorRT builds its float16 engine from the float32 graph). `max_batch` is stored
    in the metadata for engine builders; the ONNX graph itself runs at any batch size.
    """
    if model.vq_vae.codebook.dtype != torch.float32:
        raise InputError(f"export needs a float32 model, found {model.vq_vae.codebook.dtype}; call model.float()")
    if max_batch < 1:
        raise InputError(f"max_batch must be at least 1, got {max_batch}")
    signature = mesh_decoder_signature(model.num_tokens, model.num_vertices)
    example = torch.zeros(EXAMPLE_BATCH, model.num_tokens, dtype=torch.int64, device=model.vq_vae.codebook.device)
    return export_onnx(_MeshDecoderGraph(model), (example,), signature, path, MESH_DECODER_GRAPH,
                       mesh_decoder_metadata(model, max_batch), opset)


def mesh_decoder_metadata(model: MeshVQVAE, max_batch: int) -> dict[str, str]:
    return {
        MESH_VQ_CONFIG_KEY: json.dumps(model.config.to_dict(), sort_keys=True),
        NUM_VERTICES_KEY: str(model.num_vertices),
        NUM_TOKENS_KEY: str(model.num_tokens),
        MAX_BATCH_KEY: str(max_batch),
    }


def export_onnx(module: nn.Module, example_inputs: tuple[torch.Tensor, ...], signature: GraphSignature,
                path: str | Path, graph: str, metadata: Mapping[str, str], opset: int = DEFAULT_OPSET,
                allowed_ops: frozenset[str] = TENSORRT_OPS) -> Path:
    """Trace `module` on `example_inputs` and write a checked, stamped ONNX file at `path` atomically.

    Nothing is written unless every check passes; a previous file at `path` stays as it was on failure.
    """
    onnx = import_onnx()
    model = onnx.load_from_string(trace_to_onnx_bytes(module, example_inputs, signature, opset))
    conform_to_signature(model, signature)
    check_operators(model, allowed_ops)
    stamp_metadata(model, graph, metadata)
    onnx.checker.check_model(model, full_check=True)
    return save_model_atomically(model, path)


def trace_to_onnx_bytes(module: nn.Module, example_inputs: tuple[torch.Tensor, ...], signature: GraphSignature,
                        opset: int) -> bytes:
    """The serialised ONNX model of the TorchScript exporter, held in memory (graphs under 2 GiB)."""
    buffer = io.BytesIO()
    with torch.no_grad(), _expected_export_warnings(), _traced_in_eval_mode(module):
        torch.onnx.export(
            module, example_inputs, buffer, dynamo=False, opset_version=opset,
            input_names=signature.input_names, output_names=signature.output_names,
            dynamic_axes=signature.dynamic_axes, do_constant_folding=True,
        )  # fmt: skip
    return buffer.getvalue()


@contextmanager
def _traced_in_eval_mode(module: nn.Module):
    """Trace in eval mode, then give every submodule back its own training flag.

    The exporter restores only the top module's flag, recursively: a wrapper built in training mode would switch
    an eval-mode model to training, where the EMA quantizer updates its codebook on the next forward.
    """
    flags = [(submodule, submodule.training) for submodule in module.modules()]
    module.eval()
    try:
        yield
    finally:
        for submodule, training in flags:
            submodule.training = training


@contextmanager
def _expected_export_warnings():
    with warnings.catch_warnings():
        # The TorchScript exporter is chosen on purpose (module docstring); its deprecation notices are known.
        warnings.filterwarnings("ignore", message=r"You are using the legacy TorchScript-based ONNX export")
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx\.")
        # The models' input checks compare a traced size with a Python int; they only read static axes.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning, module=r"vqhps_ros\.mesh_vq\.model$")
        yield


def conform_to_signature(model: onnx.ModelProto, signature: GraphSignature) -> None:
    """Check the graph's inputs and outputs against `signature` and write its axis sizes into them.

    Raises RuntimeError when names, element types or a static size disagree: the traced graph is not the one the
    engines expect.
    """
    graph = model.graph
    for role, values, specs in (("input", graph.input, signature.inputs), ("output", graph.output, signature.outputs)):
        names = [value.name for value in values]
        if names != [spec.name for spec in specs]:
            raise RuntimeError(f"exported graph {role}s are {names}, the signature expects {[s.name for s in specs]}")
        for value, spec in zip(values, specs, strict=True):
            _conform_value(value, spec)


def _conform_value(value: onnx.ValueInfoProto, spec: TensorSpec) -> None:
    onnx = import_onnx()
    tensor_type = value.type.tensor_type
    expected_type = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(spec.dtype))
    if tensor_type.elem_type != expected_type:
        found = onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type)
        raise RuntimeError(f"exported {value.name} has element type {found}, the signature expects {spec.dtype}")
    dims = tensor_type.shape.dim
    if len(dims) != len(spec.shape):
        raise RuntimeError(f"exported {value.name} has rank {len(dims)}, the signature expects {spec.shape_text}")
    for dim, size in zip(dims, spec.shape, strict=True):
        if size == BATCH:
            dim.dim_param = BATCH
        elif dim.HasField("dim_value") and dim.dim_value != size:
            raise RuntimeError(f"exported {value.name} has a static size {dim.dim_value} where the signature "
                               f"expects {spec.shape_text}")
        else:
            dim.dim_value = size


def check_operators(model: onnx.ModelProto, allowed_ops: frozenset[str]) -> None:
    """RuntimeError naming the operators of the graph (subgraphs included) that are not in `allowed_ops`."""
    unexpected = sorted(operator_types(model) - allowed_ops)
    if unexpected:
        raise RuntimeError(f"exported graph uses operators outside the TensorRT allow-list: {unexpected}")


def operator_types(model: onnx.ModelProto) -> set[str]:
    """Operator types of every node, including those inside subgraph attributes."""
    found = set()
    pending = [model.graph]
    while pending:
        graph = pending.pop()
        for node in graph.node:
            found.add(node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}")
            for attribute in node.attribute:
                pending.extend([attribute.g] if attribute.HasField("g") else [])
                pending.extend(attribute.graphs)
    return found

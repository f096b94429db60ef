"""ONNX export of the package's networks, for ONNX Runtime and TensorRT.

Exporter: the TorchScript-based `torch.onnx.export(..., dynamo=False)` with `dynamic_axes`, chosen explicitly.
Since torch 2.9 the default is the dynamo-based exporter, which needs `onnxscript`, not a dependency of this
package (checked with torch 2.13 and onnxscript 0.7: same numbers, a graph with fewer shape nodes, a slower
export). The TorchScript path marks itself deprecated; its notices are silenced here because the choice is
deliberate. Its graphs compute the batch-dependent reshapes with Shape/Gather/Concat nodes, which TensorRT resolves
as shape tensors; static axes that its shape annotations leave symbolic are written from the graph's signature.

Every export is traced at batch EXAMPLE_BATCH, rid of its Identity nodes, checked against its signature, restricted
to TENSORRT_OPS, stamped with metadata and a content hash (`onnx_meta`), validated with the ONNX checker, and written
atomically.
"""

from __future__ import annotations

import copy
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
from ..hps import VQHPS
from ..humans import MeshTopology
from ..mesh_vq import MeshVQVAE
from .onnx_meta import import_onnx, save_model_atomically, stamp_metadata
from .signatures import (
    BATCH,
    DISPLACEMENT_GRAPH,
    INPUT_KEY,
    MAX_BATCH_KEY,
    MESH_DECODER_GRAPH,
    MESH_VQ_CONFIG_KEY,
    NUM_JOINTS_KEY,
    NUM_TOKENS_KEY,
    NUM_VERTICES_KEY,
    POSE_INIT_KEY,
    PRECISION_KEY,
    REGRESSOR_CONFIG_KEY,
    SOURCE_KEY,
    TOKEN_DECODING_KEY,
    VQHPS_GRAPH,
    VQHPS_INPUT_SHAPES,
    GraphSignature,
    TensorSpec,
    displacement_signature,
    mesh_decoder_signature,
    vqhps_signature,
)
from .topology import mesh_topology_from_metadata, topology_metadata

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
# Pad (constant mode) and Sigmoid were added for mediapipe's pose networks (`detect`), both "Y" in the matrix of
# the release/8.6-GA branch.
TENSORRT_OPS = frozenset({
    "Abs", "Add", "ArgMax", "ArgMin", "Cast", "Clip", "Concat", "Constant", "ConstantOfShape", "Conv", "Div",
    "Elu", "Equal", "Erf", "Expand", "Flatten", "Gather", "GatherElements", "Gemm", "GlobalAveragePool",
    "LayerNormalization", "MatMul", "MaxPool", "Mod", "Mul", "Pad", "Pow", "ReduceL2", "ReduceMean", "ReduceSum",
    "Relu", "Reshape", "Resize", "Shape", "Sigmoid", "Slice", "Softmax", "Sqrt", "Squeeze", "Sub", "Transpose",
    "Unsqueeze", "Where",
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


def export_displacement_net(net, path: str | Path, opset: int = DEFAULT_OPSET) -> Path:
    """Export the alignment refinement's displacement network (`refine.DisplacementNet`), batch of crops -> flow
    and confidence logits (`signatures.displacement_signature`); returns the path."""
    from ..refine.displacement import CROP_SIZE, FIELD_STRIDE, INPUT_CHANNELS

    signature = displacement_signature(INPUT_CHANNELS, CROP_SIZE, FIELD_STRIDE)
    example = torch.zeros(EXAMPLE_BATCH, INPUT_CHANNELS, CROP_SIZE, CROP_SIZE)
    return export_onnx(net, (example,), signature, path, DISPLACEMENT_GRAPH, {MAX_BATCH_KEY: str(DEFAULT_MAX_BATCH)},
                       opset)


def mesh_decoder_metadata(model: MeshVQVAE, max_batch: int) -> dict[str, str]:
    return {
        MESH_VQ_CONFIG_KEY: json.dumps(model.config.to_dict(), sort_keys=True),
        NUM_VERTICES_KEY: str(model.num_vertices),
        NUM_TOKENS_KEY: str(model.num_tokens),
        MAX_BATCH_KEY: str(max_batch),
    }


# Precisions of the exported whole-model graph. "fp16" holds float16 weights and activations between a float32 input
# and float32 outputs: what a strongly typed TensorRT network (the only kind TensorRT 11 builds) needs to run in
# half precision. INT8 graphs are derived from the fp32 graph by `quantize.quantize_vqhps`.
EXPORT_PRECISIONS = ("fp32", "fp16")


class VQHPSGraph(nn.Module):
    """The exported function of the whole network: crops (or keypoints, for a keypoint-reading regressor) -> the
    outputs of `vqhps_signature`, in its order.

    It runs the model's own forward (the PyTorch engine runs this module too, so both share one code path) and only
    selects and casts outputs: indices to int32, floats to float32; the input is cast to the model's dtype.
    """

    def __init__(self, model: VQHPS):
        super().__init__()
        self.model = model

    def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        output = self.model(inputs.to(self.model.pose_init.dtype))
        selected = [output.token_confidence, output.rotmat, output.cam, output.verts_canonical, output.verts]
        if output.joints is not None:
            selected.append(output.joints)
        return (output.indices.to(torch.int32), *(tensor.float() for tensor in selected))


def export_vqhps(model: VQHPS, path: str | Path, max_persons: int = DEFAULT_MAX_BATCH, opset: int = DEFAULT_OPSET,
                 precision: str = "fp32", source: Mapping[str, str] | None = None) -> Path:
    """Export the whole network, crops (batch, 3, 224, 224) or keypoints (batch, 33, 3), as the model's regressor
    reads, -> `vqhps_signature` outputs; returns the path.

    pose_init is baked into the graph as a constant. `max_persons` is the top of the batch range TensorRT engines
    are built for (stored in the metadata; ONNX Runtime takes any batch). `precision` is one of EXPORT_PRECISIONS;
    the fp16 graph is traced from a half-precision copy, the caller's model is never changed. `source` (e.g. the
    model file's name and sha256) is recorded in the metadata. The model must be float32 and use the per-crop
    token head: official batching couples the persons of a batch and is refused.
    """
    check_exportable(model)
    if precision not in EXPORT_PRECISIONS:
        raise InputError(f"export precision must be one of {EXPORT_PRECISIONS}, got {precision!r} "
                         "(INT8 graphs are made from the fp32 graph by quantize_vqhps)")
    if max_persons < 1:
        raise InputError(f"max_persons must be at least 1, got {max_persons}")
    traced = copy.deepcopy(model).half() if precision == "fp16" else model
    device = model.pose_init.device
    generator = torch.Generator().manual_seed(0)
    example = torch.randn(EXAMPLE_BATCH, *VQHPS_INPUT_SHAPES[model_input(model)], generator=generator).to(device)
    metadata = vqhps_metadata(model, max_persons, precision, source)
    return export_onnx(VQHPSGraph(traced), (example,), vqhps_graph_signature(model), path, VQHPS_GRAPH, metadata,
                       opset)


def check_exportable(model: VQHPS) -> None:
    """InputError unless `model` is a float32 VQHPS with the per-crop token head."""
    if not isinstance(model, VQHPS):
        raise InputError(f"expected a VQHPS model, got {type(model).__name__}")
    if model.regressor.transformer.dec_head.official_batching:
        raise InputError("official batching makes each person's tokens depend on the others in the batch and "
                         "cannot be exported; call model.set_official_batching(False)")
    dtypes = {parameter.dtype for parameter in model.parameters()}
    if dtypes != {torch.float32}:
        raise InputError(f"export needs a float32 model, found {sorted(str(dtype) for dtype in dtypes)}; "
                         "call model.float()")


def model_input(model: VQHPS) -> str:
    """What the model's regressor reads: signatures.CROPS or signatures.KEYPOINTS."""
    return model.regressor.input_name


def vqhps_graph_signature(model: VQHPS) -> GraphSignature:
    joints = None if model.joint_regressor is None else int(model.joint_regressor.shape[0])
    return vqhps_signature(model.mesh_vqvae.num_tokens, model.num_vertices, joints, model_input(model))


def vqhps_metadata(model: VQHPS, max_persons: int, precision: str,
                   source: Mapping[str, str] | None = None) -> dict[str, str]:
    """What an engine needs to know about a whole-model graph without the model: sizes, configuration, pose_init."""
    joints = 0 if model.joint_regressor is None else int(model.joint_regressor.shape[0])
    entries = mesh_decoder_metadata(model.mesh_vqvae, max_persons)
    entries.update(model_topology_metadata(model))
    entries.update({
        REGRESSOR_CONFIG_KEY: json.dumps(model.regressor.config.to_dict(), sort_keys=True),
        POSE_INIT_KEY: json.dumps([float(value) for value in model.pose_init.detach().cpu().tolist()]),
        NUM_JOINTS_KEY: str(joints),
        PRECISION_KEY: precision,
        INPUT_KEY: model_input(model),
        TOKEN_DECODING_KEY: model.token_decoding,
    })  # fmt: skip
    if source:
        entries[SOURCE_KEY] = json.dumps(dict(source), sort_keys=True)
    return entries


def model_topology_metadata(model: VQHPS) -> dict[str, str]:
    """The mesh topology entries of a model (faces, joint set and names, token and codebook sizes)."""
    return topology_metadata(model.num_vertices, model.faces, model.joint_names, model.mesh_vqvae.num_tokens,
                             model.mesh_vqvae.num_embeddings)


def model_topology(model: VQHPS) -> MeshTopology:
    """The MeshTopology of a PyTorch model, through the same metadata an exported graph carries."""
    return mesh_topology_from_metadata(model_topology_metadata(model), "the model")


def export_onnx(module: nn.Module, example_inputs: tuple[torch.Tensor, ...], signature: GraphSignature,
                path: str | Path, graph: str, metadata: Mapping[str, str], opset: int = DEFAULT_OPSET,
                allowed_ops: frozenset[str] = TENSORRT_OPS) -> Path:
    """Trace `module` on `example_inputs` and write a checked, stamped ONNX file at `path` atomically.

    Nothing is written unless every check passes; a previous file at `path` stays as it was on failure.
    """
    onnx = import_onnx()
    model = onnx.load_from_string(trace_to_onnx_bytes(module, example_inputs, signature, opset))
    remove_identity_nodes(model)
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
        # The models' input checks compare a traced size with a Python int, and the attention scale is a Python
        # float of the head width: they only read static axes (crop size, channels, feature map).
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning,
                                module=(r"vqhps_ros\.(mesh_vq\.model|hps\.model|hps\.regressor|hps\.keypoint_regressor"
                                        r"|hps\.transformer)$"))
        # nn.MultiheadAttention checks that the embedding splits into heads and that key and value agree in shape:
        # static widths, and one tensor passed twice.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning, module=r"torch\.nn\.functional$")
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


def remove_identity_nodes(model: onnx.ModelProto) -> int:
    """Drop the Identity nodes of the main graph, wiring their consumers to their input; returns how many.

    The TorchScript exporter writes one Identity per reused initializer (hundreds in HRNet); they compute nothing
    but every runtime has to walk them. An Identity that produces a graph output is kept (its name is the API).
    """
    graph = model.graph
    if any(attribute.HasField("g") or attribute.graphs for node in graph.node for attribute in node.attribute):
        return 0  # a subgraph may read a name implicitly; such graphs are left as they are
    outputs = {value.name for value in graph.output}
    replaced = {node.output[0]: node.input[0] for node in graph.node
                if node.op_type == "Identity" and node.domain in ("", "ai.onnx") and node.output[0] not in outputs}
    if not replaced:
        return 0

    def source(name: str) -> str:
        while name in replaced:  # chains of Identity nodes
            name = replaced[name]
        return name

    kept = [node for node in graph.node if not (node.op_type == "Identity" and node.output[0] in replaced)]
    for node in kept:
        for index, name in enumerate(node.input):
            node.input[index] = source(name)
    del graph.node[:]
    graph.node.extend(kept)
    value_info = [value for value in graph.value_info if value.name not in replaced]
    del graph.value_info[:]
    graph.value_info.extend(value_info)
    return len(replaced)


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

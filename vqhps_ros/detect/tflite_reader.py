"""Read a TensorFlow Lite flatbuffer into plain Python: tensors, operations in execution order, constant arrays.

Only what mediapipe's pose networks and selfie segmentation network use is read (one subgraph; float32
activations; float16 weights that the file stores dense or sparse and turns into float32 with DENSIFY and DEQUANTIZE
operations). Those two operations act on constants only, so they are evaluated here, once, and left out of the
operation list: `TFLiteGraph.constants` holds every constant as float32 (int32 for shapes and paddings).

Custom operations (MediaPipe's own kernels, outside TensorFlow Lite's schema) are named by their custom code
("Convolution2DTransposeBias"); the options of those in `_CUSTOM_OPTION_READERS` are decoded, other custom
operations keep no options and are refused by whoever builds them.

The flatbuffer is parsed with the `tflite` package (the generated bindings of TensorFlow Lite's schema), imported
when a file is read.
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import CheckpointError

# TensorFlow Lite tensor types (schema enum TensorType) that these graphs hold.
_NUMPY_TYPES = {0: np.float32, 1: np.float16, 2: np.int32, 4: np.int64}
_SPARSE_CSR = 1  # schema enum DimensionType: DENSE = 0, SPARSE_CSR = 1
_FOLDED_OPERATIONS = ("DENSIFY", "DEQUANTIZE")
_CUSTOM = 32  # schema enum BuiltinOperator: the operation is named by its operator code's custom_code

# Builtin options each operation kind keeps: tflite option class and (attribute, getter) pairs.
_OPTION_FIELDS = {
    "CONV_2D": ("Conv2DOptions", ("padding", "Padding"), ("stride_w", "StrideW"), ("stride_h", "StrideH"),
                ("activation", "FusedActivationFunction"), ("dilation_w", "DilationWFactor"),
                ("dilation_h", "DilationHFactor")),
    "DEPTHWISE_CONV_2D": ("DepthwiseConv2DOptions", ("padding", "Padding"), ("stride_w", "StrideW"),
                          ("stride_h", "StrideH"), ("depth_multiplier", "DepthMultiplier"),
                          ("activation", "FusedActivationFunction"), ("dilation_w", "DilationWFactor"),
                          ("dilation_h", "DilationHFactor")),
    "MAX_POOL_2D": ("Pool2DOptions", ("padding", "Padding"), ("stride_w", "StrideW"), ("stride_h", "StrideH"),
                    ("filter_w", "FilterWidth"), ("filter_h", "FilterHeight"),
                    ("activation", "FusedActivationFunction")),
    "AVERAGE_POOL_2D": ("Pool2DOptions", ("padding", "Padding"), ("stride_w", "StrideW"), ("stride_h", "StrideH"),
                        ("filter_w", "FilterWidth"), ("filter_h", "FilterHeight"),
                        ("activation", "FusedActivationFunction")),
    "ADD": ("AddOptions", ("activation", "FusedActivationFunction")),
    "MUL": ("MulOptions", ("activation", "FusedActivationFunction")),
    "CONCATENATION": ("ConcatenationOptions", ("axis", "Axis"), ("activation", "FusedActivationFunction")),
    "RESIZE_BILINEAR": ("ResizeBilinearOptions", ("align_corners", "AlignCorners"),
                        ("half_pixel_centers", "HalfPixelCenters")),
    "DEPTH_TO_SPACE": ("DepthToSpaceOptions", ("block_size", "BlockSize")),
}


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    dtype: str  # numpy dtype name


@dataclass(frozen=True)
class Operation:
    kind: str  # the schema's BuiltinOperator name ("CONV_2D", "ADD", ...) or a custom operation's custom_code
    inputs: tuple[int, ...]  # tensor indices; -1 for an omitted optional input
    outputs: tuple[int, ...]
    options: dict = field(default_factory=dict)  # see _OPTION_FIELDS and _CUSTOM_OPTION_READERS; enums stay integers


@dataclass
class TFLiteGraph:
    tensors: list[TensorInfo]
    operations: list[Operation]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    constants: dict[int, np.ndarray]

    def output_names(self) -> list[str]:
        return [self.tensors[index].name for index in self.outputs]


def import_tflite():
    """The `tflite` flatbuffer bindings, or an ImportError that says how to install them."""
    try:
        import tflite
    except ImportError as exc:
        raise ImportError("reading .tflite files needs the `tflite` package (TensorFlow Lite schema bindings): "
                          "pip install tflite") from exc
    return tflite


def read_tflite(path: str | Path) -> TFLiteGraph:
    """The graph of the .tflite file at `path`; CheckpointError when it is missing or not a graph this reads."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"TensorFlow Lite file {path} does not exist")
    try:
        return parse_tflite(path.read_bytes())
    except CheckpointError as error:
        raise CheckpointError(f"{path}: {error}") from error


def parse_tflite(data: bytes) -> TFLiteGraph:
    tflite = import_tflite()
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise CheckpointError("not a TensorFlow Lite flatbuffer (file identifier TFL3 missing)")
    model = tflite.Model.GetRootAsModel(data, 0)
    if model.SubgraphsLength() != 1:
        raise CheckpointError(f"expected one subgraph, found {model.SubgraphsLength()}")
    subgraph = model.Subgraphs(0)
    tensors = [_tensor_info(subgraph.Tensors(index)) for index in range(subgraph.TensorsLength())]
    constants = _stored_constants(model, subgraph)
    operations = [_operation(tflite, model, subgraph.Operators(index)) for index in range(subgraph.OperatorsLength())]
    graph = TFLiteGraph(tensors, [], tuple(subgraph.InputsAsNumpy().tolist()),
                        tuple(subgraph.OutputsAsNumpy().tolist()), constants)
    graph.operations = [operation for operation in operations if not _fold_constant_operation(graph, operation)]
    return graph


def _tensor_info(tensor) -> TensorInfo:
    if tensor.Type() not in _NUMPY_TYPES:
        raise CheckpointError(f"tensor {tensor.Name().decode()} has TensorFlow Lite type {tensor.Type()}, "
                              f"which this reader does not handle (quantised graph?)")
    shape = tuple(int(size) for size in tensor.ShapeAsNumpy()) if tensor.ShapeLength() else ()
    return TensorInfo(tensor.Name().decode(), shape, np.dtype(_NUMPY_TYPES[tensor.Type()]).name)


def _stored_constants(model, subgraph) -> dict[int, np.ndarray]:
    """Every tensor whose buffer holds data, dense (sparse ones are densified)."""
    constants = {}
    for index in range(subgraph.TensorsLength()):
        tensor = subgraph.Tensors(index)
        buffer = model.Buffers(tensor.Buffer())
        if buffer is None or buffer.DataLength() == 0:
            continue
        values = np.frombuffer(buffer.DataAsNumpy().tobytes(), dtype=_NUMPY_TYPES[tensor.Type()])
        shape = tuple(int(size) for size in tensor.ShapeAsNumpy()) if tensor.ShapeLength() else ()
        sparsity = tensor.Sparsity()
        constants[index] = values.reshape(shape) if sparsity is None else densify(values, shape, sparsity)
    return constants


def densify(values: np.ndarray, shape: tuple[int, ...], sparsity) -> np.ndarray:
    """The dense array of a sparse constant stored in TensorFlow Lite's format (per-dimension DENSE or CSR
    metadata, traversed in `traversal_order`). Block-sparse layouts (a block map) are not used by these graphs."""
    order = sparsity.TraversalOrderAsNumpy().tolist()
    if sparsity.BlockMapLength() or order != list(range(len(shape))):
        raise CheckpointError(f"block-sparse or reordered sparse tensors are not supported (order {order})")
    levels = [_dimension_level(sparsity.DimMetadata(dim), shape[dim]) for dim in range(len(shape))]
    dense = np.zeros(int(np.prod(shape)), dtype=values.dtype)
    positions = np.zeros(1, dtype=np.int64)  # flat index of the dense prefix, per stored path so far
    stored = np.zeros(1, dtype=np.int64)  # index among the stored entries of this level, per path
    for size, level in zip(shape, levels, strict=True):
        if level is None:
            positions = (positions[:, None] * size + np.arange(size)).reshape(-1)
            stored = (stored[:, None] * size + np.arange(size)).reshape(-1)
        else:
            segments, indices = level
            counts = segments[stored + 1] - segments[stored]
            stored = np.concatenate([np.arange(segments[s], segments[s + 1]) for s in stored]).astype(np.int64)
            positions = np.repeat(positions, counts) * size + indices[stored]
    if len(positions) != len(values):
        raise CheckpointError(f"sparse tensor holds {len(values)} values, its metadata addresses {len(positions)}")
    dense[positions] = values
    return dense.reshape(shape)


def _dimension_level(metadata, size: int):
    """None for a dense dimension, else (segments, indices) as int64 arrays."""
    if metadata.Format() != _SPARSE_CSR:
        if metadata.DenseSize() != size:
            raise CheckpointError(f"dense sparse-metadata size {metadata.DenseSize()} differs from the shape's {size}")
        return None
    segments = _sparse_vector(metadata.ArraySegments(), metadata.ArraySegmentsType())
    indices = _sparse_vector(metadata.ArrayIndices(), metadata.ArrayIndicesType())
    return segments, indices


def _sparse_vector(table, union_type: int) -> np.ndarray:
    """The values of a SparseIndexVector union member (Int32Vector = 1, Uint16Vector = 2, Uint8Vector = 3)."""
    tflite = import_tflite()
    vector_types = {1: tflite.Int32Vector, 2: tflite.Uint16Vector, 3: tflite.Uint8Vector}
    if union_type not in vector_types or table is None:
        raise CheckpointError(f"unknown sparse index vector type {union_type}")
    vector = vector_types[union_type]()
    vector.Init(table.Bytes, table.Pos)
    return vector.ValuesAsNumpy().astype(np.int64)


def _operation(tflite, model, operator) -> Operation:
    code = model.OperatorCodes(operator.OpcodeIndex())
    builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
    inputs = tuple(operator.InputsAsNumpy().tolist()) if operator.InputsLength() else ()
    outputs = tuple(operator.OutputsAsNumpy().tolist())
    if builtin == _CUSTOM:
        kind = code.CustomCode().decode() if code.CustomCode() else "CUSTOM"
        stored = operator.CustomOptionsAsNumpy().tobytes() if operator.CustomOptionsLength() else b""
        return Operation(kind, inputs, outputs, custom_options(kind, stored))
    kind = builtin_operator_names().get(builtin, str(builtin))
    return Operation(kind, inputs, outputs, _options(tflite, kind, operator))


@functools.cache
def builtin_operator_names() -> dict[int, str]:
    """Schema enum BuiltinOperator: value -> name ("CONV_2D", ...)."""
    operators = import_tflite().BuiltinOperator
    return {value: name for name, value in vars(operators).items() if not name.startswith("_")}


def _options(tflite, kind: str, operator) -> dict:
    if kind not in _OPTION_FIELDS:
        return {}
    class_name, *fields = _OPTION_FIELDS[kind]
    table = operator.BuiltinOptions()
    options = getattr(tflite, class_name)()
    options.Init(table.Bytes, table.Pos)
    return {name: getattr(options, getter)() for name, getter in fields}


def custom_options(kind: str, stored: bytes) -> dict:
    """The decoded options of custom operation `kind` from its stored custom_options bytes; {} for an operation this
    reader does not know (building it fails, naming it); CheckpointError when a known operation's bytes do not
    hold its options."""
    reader = _CUSTOM_OPTION_READERS.get(kind)
    return {} if reader is None else reader(stored)


# TfLitePadding, the C API's enum that custom kernels read: 0 is "unknown", unlike the schema's SAME = 0, VALID = 1.
_C_API_PADDING_TO_SCHEMA = {1: 0, 2: 1}


def _transpose_conv_bias_options(stored: bytes) -> dict:
    """MediaPipe's Convolution2DTransposeBias kernel casts its custom_options to TfLiteTransposeConvParams and reads
    the struct's first three fields: int32 padding (TfLitePadding), stride_width, stride_height, in the file's
    byte order (little-endian; later TensorFlow Lite versions append fields this kernel does not read). The stored
    bytes are that raw struct, not the FlexBuffer the schema's custom_options_format names."""
    if len(stored) < 12:
        raise CheckpointError(f"custom operation Convolution2DTransposeBias: expected at least 12 bytes of options "
                              f"(padding, stride_width, stride_height as int32), found {len(stored)}")
    padding, stride_w, stride_h = struct.unpack_from("<3i", stored)
    if padding not in _C_API_PADDING_TO_SCHEMA or stride_w < 1 or stride_h < 1:
        raise CheckpointError(f"custom operation Convolution2DTransposeBias: unreadable options (padding "
                              f"{padding}, expected 1 SAME or 2 VALID; strides {stride_w}, {stride_h}, expected >= 1)")
    return {"padding": _C_API_PADDING_TO_SCHEMA[padding], "stride_w": stride_w, "stride_h": stride_h}


_CUSTOM_OPTION_READERS = {"Convolution2DTransposeBias": _transpose_conv_bias_options}


def _fold_constant_operation(graph: TFLiteGraph, operation: Operation) -> bool:
    """Evaluate DENSIFY / DEQUANTIZE of a constant into `graph.constants`; True when folded."""
    if operation.kind not in _FOLDED_OPERATIONS:
        return False
    (source,), (target,) = operation.inputs, operation.outputs
    if source not in graph.constants:
        raise CheckpointError(f"{operation.kind} of a computed tensor ({graph.tensors[source].name}) is not supported")
    graph.constants[target] = graph.constants[source].astype(np.float32 if operation.kind == "DEQUANTIZE" else
                                                              graph.constants[source].dtype)
    return True

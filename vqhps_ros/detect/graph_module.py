"""A TensorFlow Lite graph (`tflite_reader.TFLiteGraph`) as a PyTorch module, with the weights of the file.

Each operation becomes one small module (a convolution, an addition, a resize...) and `forward` runs them in the
file's order, so the network is the file's network, operation for operation. Activations are NCHW, PyTorch's
layout: 4-D tensors are NHWC in the file, and each operation that depends on the layout (a reshape that flattens
image axes, a concatenation) reads the file's axis order. Constant zero paddings that feed only convolutions are
folded into those convolutions (the same numbers, fewer operations).

Only the operations of mediapipe's pose networks and selfie segmentation network are built (`OPERATION_BUILDERS`,
MediaPipe's custom Convolution2DTransposeBias included); any other is an error that names it. Every module here
exports to ONNX operators that TensorRT 8.6 parses (Conv, ConvTranspose, Add, Mul, Div, Clip, Relu, Pad, MaxPool,
AveragePool, Resize, Sigmoid, Reshape, Transpose, Concat, Slice).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError
from .tflite_reader import Operation, TFLiteGraph

SAME, VALID = 0, 1  # schema enum Padding
_ACTIVATIONS = {0: None, 1: "relu", 3: "relu6"}  # schema enum ActivationFunctionType (the ones these graphs use)
_NHWC_TO_NCHW_AXIS = {0: 0, 1: 2, 2: 3, 3: 1}
_CONVOLUTIONS = ("CONV_2D", "DEPTHWISE_CONV_2D")


def activation_module(code: int) -> nn.Module:
    if code not in _ACTIVATIONS:
        raise CheckpointError(f"fused activation {code} is not supported (NONE, RELU and RELU6 are)")
    name = _ACTIVATIONS[code]
    return nn.Identity() if name is None else nn.ReLU() if name == "relu" else nn.ReLU6()


def tf_same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """(before, after) padding of TensorFlow's SAME scheme: output size ceil(size / stride), the odd pixel after."""
    effective = (kernel - 1) * dilation + 1
    total = max((math.ceil(size / stride) - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


class _ZeroPadFunction(torch.autograd.Function):
    """F.pad with zeros, exported as one ONNX Pad whose pads are a constant (the exporter's own translation of
    F.pad computes them with a reversed Slice that constant folding leaves in the graph)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, pads: tuple[int, int, int, int]) -> torch.Tensor:
        return F.pad(x, pads)

    @staticmethod
    def symbolic(g, x, pads):
        left, right, top, bottom = pads
        onnx_pads = g.op("Constant", value_t=torch.tensor([0, 0, top, left, 0, 0, bottom, right], dtype=torch.int64))
        return g.op("Pad", x, onnx_pads, mode_s="constant")


def zero_pad(x: torch.Tensor, pads: tuple[int, int, int, int]) -> torch.Tensor:
    """x (N, C, H, W) with (left, right, top, bottom) zero columns and rows added."""
    return _ZeroPadFunction.apply(x, pads)


class Convolution(nn.Module):
    """CONV_2D / DEPTHWISE_CONV_2D with its fused activation; asymmetric SAME padding is an explicit zero pad."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray, depthwise: bool, stride: tuple[int, int],
                 dilation: tuple[int, int], padding: tuple[tuple[int, int], tuple[int, int]], activation: int):
        super().__init__()
        # File layouts: CONV_2D weights are (out, kh, kw, in), DEPTHWISE_CONV_2D weights (1, kh, kw, channels).
        weight = torch.from_numpy(np.ascontiguousarray(weight.transpose(3 if depthwise else 0, 0 if depthwise else 3,
                                                                        1, 2)))
        out_channels, in_per_group, kernel_h, kernel_w = weight.shape
        groups = out_channels if depthwise else 1
        (top, bottom), (left, right) = padding
        symmetric = top == bottom and left == right
        self.pad = None if symmetric else (left, right, top, bottom)
        self.conv = nn.Conv2d(in_per_group * groups, out_channels, (kernel_h, kernel_w), stride=stride,
                              padding=(top, left) if symmetric else 0, dilation=dilation, groups=groups)
        with torch.no_grad():
            self.conv.weight.copy_(weight)
            self.conv.bias.copy_(torch.from_numpy(bias))
        self.activation = activation_module(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad is not None:
            x = zero_pad(x, self.pad)
        return self.activation(self.conv(x))


class Add(nn.Module):
    def __init__(self, activation: int):
        super().__init__()
        self.activation = activation_module(activation)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.activation(a + b)


class ZeroPad(nn.Module):
    def __init__(self, paddings: np.ndarray):
        super().__init__()
        (batch, _), (top, bottom), (left, right), (channels, _) = paddings.tolist()
        if batch or channels or paddings[0, 1] or paddings[3, 1]:
            raise CheckpointError(f"only spatial padding is supported, found {paddings.tolist()}")
        self.pad = (left, right, top, bottom)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return zero_pad(x, self.pad)


class MaxPool(nn.Module):
    def __init__(self, options: dict, in_shape: tuple[int, ...]):
        super().__init__()
        strides = (options["stride_h"], options["stride_w"])
        if options["padding"] != VALID and any(size % stride for size, stride in
                                                zip(in_shape[1:3], strides, strict=True)):
            raise CheckpointError("SAME max pooling with a remainder is not supported")
        self.pool = nn.MaxPool2d((options["filter_h"], options["filter_w"]), (options["stride_h"], options["stride_w"]))
        self.activation = activation_module(options["activation"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.pool(x))


class AveragePool(nn.Module):
    """AVERAGE_POOL_2D with its fused activation. TensorFlow Lite averages over the window's pixels inside the
    input: SAME padding adds no zeros to the mean. PyTorch's avg_pool2d pads only symmetrically, and TensorFlow's
    SAME padding may put one more row or column after, so the input is zero-padded explicitly and the mean divided
    by the inside fraction of each window, a constant of the file's input size."""

    def __init__(self, options: dict, in_shape: tuple[int, ...]):
        super().__init__()
        _, height, width, _ = in_shape
        self.kernel = (options["filter_h"], options["filter_w"])
        self.stride = (options["stride_h"], options["stride_w"])
        if options["padding"] == SAME:
            top, bottom = tf_same_padding(height, self.kernel[0], self.stride[0])
            left, right = tf_same_padding(width, self.kernel[1], self.stride[1])
        else:
            top = bottom = left = right = 0
        self.pad = (left, right, top, bottom) if any((left, right, top, bottom)) else None
        inside_fraction = torch.ones(1, 1, height, width)
        if self.pad is not None:
            inside_fraction = F.avg_pool2d(F.pad(inside_fraction, self.pad), self.kernel, self.stride)
        self.register_buffer("inside_fraction", inside_fraction, persistent=False)
        self.activation = activation_module(options["activation"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad is None:
            return self.activation(F.avg_pool2d(x, self.kernel, self.stride))
        return self.activation(F.avg_pool2d(zero_pad(x, self.pad), self.kernel, self.stride) / self.inside_fraction)


def transpose_same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(before, after) rows or columns that MediaPipe's Convolution2DTransposeBias with SAME padding crops from the
    full transposed convolution, whose size is (size - 1) * stride + kernel: the kernel's overhang past the last
    stride step, the odd one after."""
    total = max(kernel - (size - 1) % stride - 1, 0)
    return total // 2, total - total // 2


class TransposedConvolution(nn.Module):
    """MediaPipe's custom Convolution2DTransposeBias: input pixel (y, x) adds weight[:, i, j, :] times its channels
    to output pixel (y * stride - crop_top + i, x * stride - crop_left + j), on top of the bias; outputs outside
    the cropped size are dropped. That is PyTorch's ConvTranspose2d (no kernel flip) cropped by (top, left) and cut
    to the output size, which leaves the odd SAME row and column off the end."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray, stride: tuple[int, int],
                 crop: tuple[tuple[int, int], tuple[int, int]]):
        super().__init__()
        # File layout (out, kh, kw, in), as the kernel reads it; ConvTranspose2d wants (in, out, kh, kw).
        weight = torch.from_numpy(np.ascontiguousarray(weight.transpose(3, 0, 1, 2)))
        in_channels, out_channels, kernel_h, kernel_w = weight.shape
        (top, bottom), (left, right) = crop
        self.cut = (bottom - top, right - left)  # rows and columns left over at the end after the symmetric crop
        self.conv = nn.ConvTranspose2d(in_channels, out_channels, (kernel_h, kernel_w), stride=stride,
                                       padding=(top, left))
        with torch.no_grad():
            self.conv.weight.copy_(weight)
            self.conv.bias.copy_(torch.from_numpy(bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        cut_h, cut_w = self.cut
        if cut_h or cut_w:
            y = y[:, :, :y.shape[2] - cut_h, :y.shape[3] - cut_w]
        return y


class ResizeBilinear(nn.Module):
    """TensorFlow's half-pixel-centre bilinear resize, which is PyTorch's align_corners=False resize."""

    def __init__(self, options: dict, size: np.ndarray):
        super().__init__()
        if options["align_corners"] or not options["half_pixel_centers"]:
            raise CheckpointError(f"only half-pixel-centre bilinear resizing is supported, found {options}")
        self.size = tuple(int(value) for value in size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=self.size, mode="bilinear", align_corners=False)


class DepthToSpace(nn.Module):
    """TensorFlow's DEPTH_TO_SPACE (ONNX's DCR mode): channel (dy * block + dx) * C + c goes to (y*block+dy,
    x*block+dx), channel c. Written as reshape and transpose with static sizes (the batch axis is -1), which
    every ONNX consumer runs without shape arithmetic."""

    def __init__(self, block: int, in_shape: tuple[int, ...]):
        super().__init__()
        _, height, width, channels = in_shape
        self.block, self.height, self.width, self.channels = block, height, width, channels // (block * block)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        block = self.block
        x = x.reshape(-1, block, block, self.channels, self.height, self.width)
        x = x.permute(0, 3, 4, 1, 5, 2)
        return x.reshape(-1, self.channels, self.height * block, self.width * block)


class ReshapeFromNHWC(nn.Module):
    """RESHAPE in the file's element order: a 4-D input is read as NHWC; the batch axis stays the batch axis."""

    def __init__(self, in_rank: int, out_shape: tuple[int, ...]):
        super().__init__()
        self.from_image = in_rank == 4
        self.out_shape = tuple(out_shape[1:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.from_image:
            x = x.permute(0, 2, 3, 1)
        return x.reshape(-1, *self.out_shape)


class Concatenate(nn.Module):
    def __init__(self, axis: int, rank: int):
        super().__init__()
        axis = axis % rank
        self.axis = _NHWC_TO_NCHW_AXIS[axis] if rank == 4 else axis

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return torch.cat(tensors, dim=self.axis)


class Multiply(nn.Module):
    """MUL of two computed tensors of one rank with its fused activation. Broadcasting holds in NCHW because both
    4-D operands are permuted alike (a file's (1, H, W, C) * (1, 1, 1, C) is (1, C, H, W) * (1, C, 1, 1) here)."""

    def __init__(self, activation: int):
        super().__init__()
        self.activation = activation_module(activation)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.activation(a * b)


class HardSwish(nn.Module):
    """x * relu6(x + 3) / 6, TensorFlow Lite's HARD_SWISH, written out so that it exports as Add, Clip, Mul and Div,
    the operators the other modules use, rather than F.hardswish's HardSwish (ONNX opset 14 and up)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.clamp(x + 3.0, 0.0, 6.0) / 6.0


class Sigmoid(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(x)


class TFLiteGraphModule(nn.Module):
    """The graph's operations as modules; forward(x NCHW float32) -> the graph's outputs, in the file's order,
    4-D ones NCHW. The batch axis is free (the file's batch of 1 is not baked in)."""

    def __init__(self, graph: TFLiteGraph):
        super().__init__()
        if len(graph.inputs) != 1:
            raise CheckpointError(f"expected a graph with one input, found {len(graph.inputs)}")
        self.input_index = graph.inputs[0]
        self.output_indices = list(graph.outputs)
        folded = foldable_paddings(graph)
        self.layers = nn.ModuleList()
        self.wiring: list[tuple[tuple[int, ...], int]] = []  # per layer: (input tensor indices, output index)
        for operation in graph.operations:
            if operation.outputs[0] in folded:
                continue
            module, inputs = build_operation(graph, operation, folded)
            self.layers.append(module)
            self.wiring.append((inputs, operation.outputs[0]))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        values = {self.input_index: x}
        for layer, (inputs, output) in zip(self.layers, self.wiring, strict=True):
            values[output] = layer(*(values[index] for index in inputs))
        return tuple(values[index] for index in self.output_indices)


def foldable_paddings(graph: TFLiteGraph) -> dict[int, tuple[int, tuple[tuple[int, int], tuple[int, int]]]]:
    """PAD outputs read only by VALID convolutions: output index -> (the PAD's input, ((top, bottom), (left,
    right)))."""
    readers: dict[int, list[Operation]] = {}
    for operation in graph.operations:
        for index in operation.inputs:
            readers.setdefault(index, []).append(operation)
    folded = {}
    for operation in graph.operations:
        if operation.kind != "PAD":
            continue
        paddings = graph.constants[operation.inputs[1]]
        consumers = readers.get(operation.outputs[0], [])
        spatial_only = not (paddings[0].any() or paddings[3].any())
        if spatial_only and consumers and all(reader.kind in _CONVOLUTIONS and reader.options["padding"] == VALID
                                              and reader.inputs[0] == operation.outputs[0] for reader in consumers):
            folded[operation.outputs[0]] = (operation.inputs[0], (tuple(paddings[1]), tuple(paddings[2])))
    return folded


def build_operation(graph: TFLiteGraph, operation: Operation, folded: dict) -> tuple[nn.Module, tuple[int, ...]]:
    """The module of one operation and the tensor indices it reads (constants are baked into the module)."""
    builder = OPERATION_BUILDERS.get(operation.kind)
    if builder is None:
        raise CheckpointError(f"TensorFlow Lite operation {operation.kind} is not supported "
                              f"(supported: {sorted(OPERATION_BUILDERS)})")
    return builder(graph, operation, folded)


def _convolution(graph: TFLiteGraph, operation: Operation, folded: dict):
    source, weight_index, bias_index = operation.inputs
    options = operation.options
    depthwise = operation.kind == "DEPTHWISE_CONV_2D"
    if depthwise and options["depth_multiplier"] != 1:
        raise CheckpointError("depthwise convolutions with a depth multiplier are not supported")
    weight = graph.constants[weight_index]
    stride, dilation = (options["stride_h"], options["stride_w"]), (options["dilation_h"], options["dilation_w"])
    if source in folded:
        source, padding = folded[source]
    elif options["padding"] == SAME:
        _, height, width, _ = graph.tensors[source].shape
        padding = (tf_same_padding(height, weight.shape[1], stride[0], dilation[0]),
                   tf_same_padding(width, weight.shape[2], stride[1], dilation[1]))
    else:
        padding = ((0, 0), (0, 0))
    bias = graph.constants[bias_index] if bias_index >= 0 else np.zeros(weight.shape[3 if depthwise else 0], np.float32)
    module = Convolution(weight, bias.astype(np.float32), depthwise, stride, dilation, padding, options["activation"])
    return module, (source,)


def _add(graph, operation, folded):
    if any(index in graph.constants for index in operation.inputs):
        raise CheckpointError("ADD of a constant is not supported")
    return Add(operation.options["activation"]), operation.inputs


def _pad(graph, operation, folded):
    return ZeroPad(graph.constants[operation.inputs[1]]), operation.inputs[:1]


def _max_pool(graph, operation, folded):
    return MaxPool(operation.options, graph.tensors[operation.inputs[0]].shape), operation.inputs


def _average_pool(graph, operation, folded):
    return AveragePool(operation.options, graph.tensors[operation.inputs[0]].shape), operation.inputs


def _multiply(graph, operation, folded):
    if any(index in graph.constants for index in operation.inputs):
        raise CheckpointError("MUL of a constant is not supported")
    ranks = {len(graph.tensors[index].shape) for index in operation.inputs}
    if len(ranks) != 1:
        raise CheckpointError(f"MUL of tensors of different ranks is not supported (shapes "
                              f"{[graph.tensors[index].shape for index in operation.inputs]})")
    return Multiply(operation.options["activation"]), operation.inputs


def _hard_swish(graph, operation, folded):
    return HardSwish(), operation.inputs


def _relu(graph, operation, folded):
    return nn.ReLU(), operation.inputs


def _transposed_convolution(graph, operation, folded):
    source, weight_index, bias_index = operation.inputs
    options = operation.options
    weight, bias = graph.constants[weight_index], graph.constants[bias_index]
    _, height, width, _ = graph.tensors[source].shape
    _, kernel_h, kernel_w, _ = weight.shape
    stride = (options["stride_h"], options["stride_w"])
    if options["padding"] == SAME:
        crop = (transpose_same_padding(height, kernel_h, stride[0]), transpose_same_padding(width, kernel_w, stride[1]))
    else:
        crop = ((0, 0), (0, 0))
    expected = ((height - 1) * stride[0] + kernel_h - sum(crop[0]), (width - 1) * stride[1] + kernel_w - sum(crop[1]))
    found = graph.tensors[operation.outputs[0]].shape[1:3]
    if tuple(found) != expected:
        raise CheckpointError(f"{operation.kind}: the file's output is {found} pixels, its options give {expected}")
    module = TransposedConvolution(weight, bias.astype(np.float32), stride, crop)
    return module, (source,)


def _resize(graph, operation, folded):
    return ResizeBilinear(operation.options, graph.constants[operation.inputs[1]]), operation.inputs[:1]


def _depth_to_space(graph, operation, folded):
    return DepthToSpace(operation.options["block_size"], graph.tensors[operation.inputs[0]].shape), operation.inputs


def _reshape(graph, operation, folded):
    in_rank = len(graph.tensors[operation.inputs[0]].shape)
    return ReshapeFromNHWC(in_rank, graph.tensors[operation.outputs[0]].shape), operation.inputs[:1]


def _concatenation(graph, operation, folded):
    if operation.options["activation"] != 0:
        raise CheckpointError("a fused activation after CONCATENATION is not supported")
    rank = len(graph.tensors[operation.outputs[0]].shape)
    return Concatenate(operation.options["axis"], rank), operation.inputs


def _logistic(graph, operation, folded):
    return Sigmoid(), operation.inputs


OPERATION_BUILDERS = {
    "CONV_2D": _convolution,
    "DEPTHWISE_CONV_2D": _convolution,
    "ADD": _add,
    "PAD": _pad,
    "MAX_POOL_2D": _max_pool,
    "AVERAGE_POOL_2D": _average_pool,
    "MUL": _multiply,
    "HARD_SWISH": _hard_swish,
    "RELU": _relu,
    "Convolution2DTransposeBias": _transposed_convolution,
    "RESIZE_BILINEAR": _resize,
    "DEPTH_TO_SPACE": _depth_to_space,
    "RESHAPE": _reshape,
    "CONCATENATION": _concatenation,
    "LOGISTIC": _logistic,
}


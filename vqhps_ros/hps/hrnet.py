"""HRNet (Sun et al., CVPR 2019) as VQ-HPS builds it: four parallel resolutions, merged at 1/32.

Architecture of the official in-repo ``hrnet_w48(downsample=True, use_conv=True)`` (width W = 48):

* stem: two 3x3 stride-2 conv-BN-ReLU (64 channels, 1/4 resolution), then ``layer1`` = 4 Bottlenecks (256 ch);
* stages 2, 3, 4 with 1, 4, 3 multi-resolution modules over 2, 3, 4 streams of widths W, 2W, 4W, 8W at
  1/4, 1/8, 1/16, 1/32; every module runs 4 BasicBlocks per stream, then each output stream sums all streams
  resampled to it (1x1 conv + BN + nearest upsampling from coarser streams, chains of 3x3 stride-2 convs from
  finer ones) followed by ReLU;
* transitions before each stage add the new coarsest stream (3x3 stride-2 conv from the previous coarsest);
* ``downsample_stage_1/2/3`` bring streams 1-3 to 1/32 with 3/2/1 stride-2 conv-BN-ReLU; the result is the
  concatenation with stream 4: 15W channels (720 for W = 48) at 1/32 (7x7 for a 224x224 crop).

Module names reproduce the official state-dict keys and their order, so the official VQ-HPS checkpoints
and the ``pose_hrnet_w48`` COCO weights load unchanged. ``final_layer`` (the 24-joint heatmap head of the
pose network) is kept only for that reason: it is not part of the forward pass.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .resnet import BasicBlock, Bottleneck, conv1x1, conv3x3, init_conv_bn, make_residual_stage

STEM_WIDTH = 64
LAYER1_BLOCKS = 4
BLOCKS_PER_BRANCH = 4
MODULES_PER_STAGE = (1, 4, 3)  # stages 2, 3, 4; stage k has k streams
HEATMAP_JOINTS = 24


def conv3x3_bn(in_channels: int, out_channels: int, stride: int, relu: bool) -> nn.Sequential:
    """``Sequential(3x3 conv, BN[, ReLU])``: the unit whose indices (0 conv, 1 BN) appear in the official keys."""
    layers = [conv3x3(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def strided_chain(channels: int, num_halvings: int) -> nn.Sequential:
    """``num_halvings`` stride-2 3x3 conv-BN-ReLU, flattened: (B, C, H, W) -> (B, C, H / 2^n, W / 2^n)."""
    layers: list[nn.Module] = []
    for _ in range(num_halvings):
        layers.extend(conv3x3_bn(channels, channels, stride=2, relu=True))
    return nn.Sequential(*layers)


def exchange_unit(widths: Sequence[int], source: int, target: int) -> nn.Module:
    """Resamples stream ``source`` to the resolution and width of stream ``target`` (inside a fuse layer).

    Coarser source: 1x1 conv + BN + nearest upsampling by 2^(source - target). Finer source: (target - source)
    stride-2 3x3 convs, all but the last keeping the source width and followed by ReLU, the last one mapping
    to the target width without ReLU. Same stream: identity (no state, as the official ``None``).
    """
    if source == target:
        return nn.Identity()
    if source > target:
        return nn.Sequential(
            conv1x1(widths[source], widths[target]),
            nn.BatchNorm2d(widths[target]),
            nn.Upsample(scale_factor=2 ** (source - target), mode="nearest"),
        )
    steps = [conv3x3_bn(widths[source], widths[source], stride=2, relu=True) for _ in range(target - source - 1)]
    steps.append(conv3x3_bn(widths[source], widths[target], stride=2, relu=False))
    return nn.Sequential(*steps)


class MultiResolutionModule(nn.Module):
    """One HRNet module: residual blocks on every stream, then an all-to-all exchange between streams.

    Input and output: a list of tensors, stream k of shape (B, widths[k], H / 2^k, W / 2^k).
    """

    def __init__(self, widths: Sequence[int], blocks_per_branch: int = BLOCKS_PER_BRANCH):
        super().__init__()
        self.branches = nn.ModuleList(
            make_residual_stage(BasicBlock, width, width, blocks_per_branch) for width in widths
        )
        self.fuse_layers = nn.ModuleList(
            nn.ModuleList(exchange_unit(widths, source, target) for source in range(len(widths)))
            for target in range(len(widths))
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, streams: list[torch.Tensor]) -> list[torch.Tensor]:
        streams = [branch(x) for branch, x in zip(self.branches, streams, strict=True)]
        fused = []
        for exchanges in self.fuse_layers:
            # Summed in source order, as the official code, so that float32 results match bit for bit.
            total = exchanges[0](streams[0])
            for exchange, x in zip(exchanges[1:], streams[1:], strict=True):
                total = total + exchange(x)
            fused.append(self.relu(total))
        return fused


def transition(in_widths: Sequence[int], out_widths: Sequence[int]) -> nn.ModuleList:
    """Maps the streams of one stage to the next: existing streams adapt their width if needed (3x3 conv),
    each new stream is derived from the previous coarsest one by stride-2 3x3 conv-BN-ReLU steps.
    """
    units: list[nn.Module] = []
    for index, width in enumerate(out_widths):
        if index < len(in_widths):
            same_width = in_widths[index] == width
            unit = nn.Identity() if same_width else conv3x3_bn(in_widths[index], width, stride=1, relu=True)
        else:
            num_steps = index + 1 - len(in_widths)
            coarsest = in_widths[-1]
            unit = nn.Sequential(*(
                conv3x3_bn(coarsest, width if step == num_steps - 1 else coarsest, stride=2, relu=True)
                for step in range(num_steps)
            ))
        units.append(unit)
    return nn.ModuleList(units)


def apply_transition(units: nn.ModuleList, streams: list[torch.Tensor]) -> list[torch.Tensor]:
    """Existing streams go through their own unit; new streams start from the coarsest existing one."""
    return [unit(streams[min(index, len(streams) - 1)]) for index, unit in enumerate(units)]


class HRNet(nn.Module):
    """HRNet-W``width`` image backbone of VQ-HPS (``downsample=True, use_conv=True``).

    Input (B, 3, H, W) with H and W multiples of 32; output (B, 15 * width, H / 32, W / 32): the four streams
    at 1/32 concatenated finest first (widths W, 2W, 4W, 8W). For HRNet-W48 and a 224x224 crop: (B, 720, 7, 7).
    """

    def __init__(self, width: int = 48):
        super().__init__()
        widths = [width * 2**k for k in range(4)]
        self.widths = tuple(widths)
        self.out_channels = sum(widths)

        self.conv1 = conv3x3(3, STEM_WIDTH, stride=2)
        self.bn1 = nn.BatchNorm2d(STEM_WIDTH)
        self.conv2 = conv3x3(STEM_WIDTH, STEM_WIDTH, stride=2)
        self.bn2 = nn.BatchNorm2d(STEM_WIDTH)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = make_residual_stage(Bottleneck, STEM_WIDTH, STEM_WIDTH, LAYER1_BLOCKS)
        layer1_width = STEM_WIDTH * Bottleneck.expansion

        # Registration order (transition, stage, transition, ...) is the official state-dict order.
        self.transition1 = transition([layer1_width], widths[:2])
        self.stage2 = self._stage(widths[:2], MODULES_PER_STAGE[0])
        self.transition2 = transition(widths[:2], widths[:3])
        self.stage3 = self._stage(widths[:3], MODULES_PER_STAGE[1])
        self.transition3 = transition(widths[:3], widths)
        self.stage4 = self._stage(widths, MODULES_PER_STAGE[2])

        self.final_layer = nn.Conv2d(widths[0], HEATMAP_JOINTS, kernel_size=1)
        self.downsample_stage_1 = strided_chain(widths[0], 3)
        self.downsample_stage_2 = strided_chain(widths[1], 2)
        self.downsample_stage_3 = strided_chain(widths[2], 1)
        init_conv_bn(self)

    @staticmethod
    def _stage(widths: Sequence[int], num_modules: int) -> nn.Sequential:
        return nn.Sequential(*(MultiResolutionModule(widths) for _ in range(num_modules)))

    def streams(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The four stage-4 streams: stream k is (B, widths[k], H / 2^(k+2), W / 2^(k+2))."""
        x = self.relu(self.bn1(self.conv1(images)))
        x = self.relu(self.bn2(self.conv2(x)))
        streams = [self.layer1(x)]
        for units, stage in ((self.transition1, self.stage2), (self.transition2, self.stage3),
                             (self.transition3, self.stage4)):
            streams = stage(apply_transition(units, streams))
        return streams

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, 15 * width, H / 32, W / 32)."""
        finest, fine, coarse, coarsest = self.streams(images)
        return torch.cat([
            self.downsample_stage_1(finest),
            self.downsample_stage_2(fine),
            self.downsample_stage_3(coarse),
            coarsest,
        ], dim=1)

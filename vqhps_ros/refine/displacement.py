"""The displacement network: where each pixel of a person's rendering lies in the image.

Input, one person at a time, in the person's crop of CROP_SIZE x CROP_SIZE pixels (`network_input`): the image crop
and the rendering of the current mesh in the same crop (`renderings.render_in_crop`): its colour from the track's
texture (mid grey where there is none, which the network sees as zeros), its mask, normals and depth relative to
the person's median depth. Output at half the crop's resolution (FIELD_STRIDE): a displacement (2, in crop pixels)
per rendering pixel, from the pixel's centre to where the surface point it shows lies in the image, and a
confidence logit (how far the displacement can be trusted: occluded or unmatched pixels should have little).

The network is a small U-Net (0.42 M parameters at width 32; convolutions, batch norm, ReLU and nearest upsampling
only), so that it exports within TensorRT's operators (`runtime.export_displacement_net`) and stays cheap on an
embedded GPU. It is trained on synthetic pairs (`train.displacement`).

Pixel convention: as `hps.crops`: crop pixel i is centred on i; field cell j covers crop pixels 2j and 2j + 1, its
centre is crop coordinate 2j + 0.5 (`field_centres`).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import nn

from ..checkpoints import atomic_torch_save, check_state_dict, read_checkpoint
from ..errors import CheckpointError, InputError
from .renderings import PersonRendering

NET_FORMAT = "vqhps_ros.displacement_net"
CROP_SIZE = 64
FIELD_STRIDE = 2
INPUT_CHANNELS = 11  # image RGB, rendering RGB, mask, normals xyz, relative depth
NORMALS_X_CHANNEL = 7  # its sign flips when the input is mirrored left-right
FLOW_SCALE = 4.0  # the network's raw flow output is in units of 4 crop pixels (keeps its outputs near 1)
DEPTH_RANGE_M = 0.5  # relative depths are divided by this and clipped to [-1, 1]


def _block(inputs: int, outputs: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(inputs, outputs, 3, stride, 1, bias=False), nn.BatchNorm2d(outputs),
                         nn.ReLU(inplace=True))


class DisplacementNet(nn.Module):
    """(N, 11, S, S) -> flow (N, 2, S/2, S/2) in crop pixels and confidence logits (N, 1, S/2, S/2)."""

    def __init__(self, width: int = 32):
        super().__init__()
        w = width
        self.stem = nn.Sequential(_block(INPUT_CHANNELS, w // 2 + w // 4), _block(w // 2 + w // 4, w, 2))  # S/2
        self.down1 = nn.Sequential(_block(w, w * 3 // 2, 2), _block(w * 3 // 2, w * 3 // 2))  # S/4
        self.down2 = nn.Sequential(_block(w * 3 // 2, w * 2, 2), _block(w * 2, w * 2))  # S/8
        self.down3 = nn.Sequential(_block(w * 2, w * 3, 2), _block(w * 3, w * 3))  # S/16: wide displacements
        self.up2 = _block(w * 3 + w * 2, w * 2)
        self.up1 = _block(w * 2 + w * 3 // 2, w * 3 // 2)
        self.up0 = nn.Sequential(_block(w * 3 // 2 + w, w), _block(w, w))
        self.head = nn.Conv2d(w, 3, 3, 1, 1)
        self.width = width

    def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        half = self.stem(inputs)
        quarter = self.down1(half)
        eighth = self.down2(quarter)
        coarse = self.down3(eighth)
        x = self.up2(torch.cat([_upsampled(coarse), eighth], dim=1))
        x = self.up1(torch.cat([_upsampled(x), quarter], dim=1))
        x = self.up0(torch.cat([_upsampled(x), half], dim=1))
        out = self.head(x)
        return out[:, :2] * FLOW_SCALE, out[:, 2:]


def _upsampled(x: torch.Tensor) -> torch.Tensor:
    return nn.functional.interpolate(x, scale_factor=2.0, mode="nearest")


def image_crop(image: np.ndarray, crop_from_image: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """(size, size, 3) float32 RGB in [0, 1] of a uint8 RGB image, in the crop of the (2, 3) affine (a scale and a
    shift), outside the image black. Large squares are first cut at their own resolution and then averaged down
    (area interpolation), so the crop is not aliased: a plain affine warp skips pixels when it shrinks."""
    affine = np.asarray(crop_from_image, dtype=np.float64)
    zoom = affine[0, 0]
    if affine.shape != (2, 3) or not zoom > 0:
        raise InputError(f"expected a (2, 3) crop affine with a positive scale, found {affine.tolist()}")
    side = int(np.ceil(size / zoom))
    if side <= size:
        return cv2.warpAffine(image, affine, (size, size), flags=cv2.INTER_LINEAR).astype(np.float32) / 255.0
    # the square at the image's resolution: x_full = (x_crop + 0.5) / zoom - 0.5 maps crop edges onto its edges
    scale = side / size
    shift_only = affine / zoom
    shift_only[:, 2] += 0.5 * scale - 0.5
    full = cv2.warpAffine(image, shift_only, (side, side), flags=cv2.INTER_LINEAR)
    return cv2.resize(full, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


def network_input(image_crop_rgb: np.ndarray, rendering: PersonRendering) -> np.ndarray:
    """(11, S, S) float32 network input from an image crop (S, S, 3) float in [0, 1] and the rendering in it."""
    size = rendering.mask.shape[0]
    if image_crop_rgb.shape != (size, size, 3):
        raise InputError(f"expected an image crop of ({size}, {size}, 3) like the rendering, found "
                         f"{image_crop_rgb.shape}")
    mask = rendering.mask.astype(np.float32)
    depth = np.zeros_like(mask)
    if rendering.mask.any():
        relative = (rendering.depth - np.median(rendering.depth[rendering.mask])) / DEPTH_RANGE_M
        depth = np.where(rendering.mask, np.clip(relative, -1.0, 1.0), 0.0)
    channels = [image_crop_rgb - 0.5, rendering.colour - 0.5 * mask[..., None], mask[..., None], rendering.normals,
                depth[..., None]]
    return np.concatenate(channels, axis=2).transpose(2, 0, 1).astype(np.float32)


def field_centres(size: int = CROP_SIZE) -> np.ndarray:
    """(S/2,) crop coordinates of the field cells' centres along one axis."""
    return FIELD_STRIDE * np.arange(size // FIELD_STRIDE) + (FIELD_STRIDE - 1) / 2.0


def sample_field(field: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Bilinear values (P, C) of a field (C, S/2, S/2) at crop points (P, 2); points outside take the border."""
    channels, height, width = field.shape
    grid = (np.asarray(points, np.float64) - (FIELD_STRIDE - 1) / 2.0) / FIELD_STRIDE
    x = np.clip(grid[:, 0], 0, width - 1)
    y = np.clip(grid[:, 1], 0, height - 1)
    x0, y0 = np.minimum(np.floor(x).astype(int), width - 2), np.minimum(np.floor(y).astype(int), height - 2)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    values = field.transpose(1, 2, 0)
    return ((1 - fx) * (1 - fy) * values[y0, x0] + fx * (1 - fy) * values[y0, x0 + 1]
            + (1 - fx) * fy * values[y0 + 1, x0] + fx * fy * values[y0 + 1, x0 + 1])


def save_displacement_net(net: DisplacementNet, path, **extra) -> None:
    """A displacement network file: its width, weights and any `extra` entries (training settings, history)."""
    atomic_torch_save({"format": NET_FORMAT, "width": net.width, "crop_size": CROP_SIZE, "model": net.state_dict(),
                       **extra}, path)


def load_displacement_net(path) -> DisplacementNet:
    """The network of a file written by `save_displacement_net`, in eval mode; CheckpointError names what is
    wrong with another file."""
    data = read_checkpoint(path)
    if data.get("format") != NET_FORMAT or data.get("crop_size") != CROP_SIZE:
        raise CheckpointError(f"{path}: expected a displacement network file ({NET_FORMAT}, crop {CROP_SIZE}), "
                              f"found format {data.get('format')!r}, crop {data.get('crop_size')!r}")
    net = DisplacementNet(int(data["width"]))
    check_state_dict(net.state_dict(), data["model"], str(path))
    net.load_state_dict({name: tensor.float() for name, tensor in data["model"].items()})
    return net.eval()

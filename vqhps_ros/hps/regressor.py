"""The VQ-HPS MeshRegressor: a 224x224 person crop -> mesh-token logits, a 6D rotation and a weak-perspective camera.

Attribute names and registration order follow the official `MeshRegressor`, so official checkpoints load with
`strict=True` once the obsolete `rotcam_feat*` keys are dropped (as the official loader does).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import NamedTuple

import torch
from torch import nn

from ..errors import InputError
from .backbones import build_backbone_pair, load_pretrained_backbones
from .transformer import Transformer, TransformerDims, sine_position_encoding

CROP_SIZE = 224
POSE_INIT_DIM = 17 * 3  # the 17 H36M joints of the T-pose mesh, flattened


@dataclass(frozen=True)
class RegressorConfig:
    backbone: str = "hrnet_w48"
    transformer: TransformerDims = field(default_factory=TransformerDims)
    feature_size: int = 7  # backbone feature map side at 224x224 input; seq_len = 49 upstream
    official_batching: bool = False

    @property
    def num_tokens(self) -> int:
        return self.transformer.block_size

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> RegressorConfig:
        return config_from_dict(cls, data, "regressor configuration")

    def with_official_batching(self, enabled: bool) -> RegressorConfig:
        return replace(self, official_batching=enabled)


def config_from_dict(cls, data: dict, what: str):
    """A regressor configuration dataclass from its `to_dict()` (the transformer's dimensions as a nested dict);
    InputError naming unknown keys."""
    data = dict(data)
    known = set(cls.__dataclass_fields__)
    if unknown := set(data) - known:
        raise InputError(f"unknown {what} keys {sorted(unknown)}; known: {sorted(known)}")
    if isinstance(data.get("transformer"), dict):
        data["transformer"] = TransformerDims(**data["transformer"])
    return cls(**data)


class RegressorOutput(NamedTuple):
    logits: torch.Tensor  # (B, T, K) mesh-token logits
    rot6d: torch.Tensor  # (B, 6) global orientation, 6D representation
    cam: torch.Tensor  # (B, 3) weak-perspective camera [s, tx, ty] in the crop


class MeshRegressor(nn.Module):
    """images (B, 3, 224, 224) ImageNet-normalised RGB, pose_init (B, 51) -> RegressorOutput."""

    input_name = "crops"

    def __init__(self, config: RegressorConfig):
        super().__init__()
        self.config = config
        dims = config.transformer
        self.transformer = Transformer(dims, config.official_batching)
        self.mesh_token_embed = nn.Embedding(dims.block_size, dims.model_dim)
        self.backbone_pose, self.backbone_rot, channels = build_backbone_pair(config.backbone)
        self.conv_1x1 = nn.Conv2d(channels, dims.model_dim, kernel_size=1)
        self.fc1 = nn.Linear(channels + POSE_INIT_DIM, 1024)
        self.drop1 = nn.Dropout()
        self.fc2 = nn.Linear(1024, 1024)
        self.drop2 = nn.Dropout()
        self.rot_predictor = nn.Linear(1024, 6)
        self.cam_predictor = nn.Linear(1024, 3)
        side = config.feature_size
        encoding = sine_position_encoding(side, side, dims.model_dim).flatten(1).t().unsqueeze(1)  # (S, 1, C)
        self.register_buffer("position_encoding", encoding, persistent=False)

    def load_pretrained_backbones(self) -> MeshRegressor:
        """Start both backbones from ImageNet weights (``backbones.PRETRAINED_BACKBONES`` only), before training.

        Not part of the configuration on purpose: a trained model file holds its backbones, so loading one must
        not need the ImageNet weights. InputError for a backbone without them, CheckpointError when they are not
        installed (the message names the pip command). Returns self.
        """
        load_pretrained_backbones(self.config.backbone, self.backbone_pose, self.backbone_rot)
        return self

    def forward(self, images: torch.Tensor, pose_init: torch.Tensor) -> RegressorOutput:
        rot6d, cam = self.predict_rotation_and_camera(images, pose_init)
        return RegressorOutput(self.predict_logits(images), rot6d, cam)

    def predict_rotation_and_camera(self, images: torch.Tensor, pose_init: torch.Tensor):
        """Pooled `backbone_rot` features + pose_init -> fc1 -> fc2 (no activation, as upstream) -> rot6d, cam."""
        pooled = self.backbone_rot(images).mean(dim=(2, 3))
        hidden = self.drop2(self.fc2(self.drop1(self.fc1(torch.cat([pooled, pose_init], dim=1)))))
        return self.rot_predictor(hidden), self.cam_predictor(hidden)

    def predict_logits(self, images: torch.Tensor) -> torch.Tensor:
        """`backbone_pose` features -> 1x1 conv -> transformer -> (B, T, K) logits."""
        return self.logits_from_features(self.backbone_pose(images))

    def logits_from_features(self, pose_features: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) `backbone_pose` output -> (B, T, K) logits (training reuses the features elsewhere)."""
        features = self.conv_1x1(pose_features)  # (B, model_dim, h, w)
        batch = features.shape[0]
        image_tokens = features.flatten(2).permute(2, 0, 1)  # (h*w, B, C), token = row * w + col
        if image_tokens.shape[0] != self.position_encoding.shape[0]:
            raise InputError(
                f"the backbone gave a {features.shape[2]}x{features.shape[3]} feature map; the positional "
                f"encoding expects {self.config.feature_size}x{self.config.feature_size} (224x224 crops)"
            )
        queries = self.mesh_token_embed.weight.unsqueeze(1).expand(-1, batch, -1)
        position = self.position_encoding.expand(-1, batch, -1)
        _, logits = self.transformer(image_tokens, queries, position)
        return logits.transpose(0, 1)

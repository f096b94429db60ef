"""A VQ-HPS regressor that reads body keypoints instead of pixels.

Input: MediaPipe's 33 pose landmarks of one person (`humans.POSE_LANDMARK_NAMES`) in the person's crop, (B, 33, 3):
x, y in normalised crop coordinates (the crop the image regressor would see, edges at -1 and +1) and a visibility
(1 seen, 0 not; an unseen keypoint's x, y are ignored; values between, which the package never gives, weigh it);
`hps.keypoint_input` builds it from the keypoints found in an image. Output: the image regressor's
(`RegressorOutput`: mesh-token logits, 6D rotation, weak-perspective crop camera), so `VQHPS` decodes it, and
trains and places it, the same way.

Each keypoint becomes a token: a linear embedding of its position, times its visibility, plus a learnt embedding of
which landmark it is and of whether it is seen. The image regressor's transformer (`Transformer`) attends from the
54 mesh-token queries to these 33 tokens (the landmark embedding is the tokens' position encoding). Rotation and
camera come from an MLP over all keypoints and the T-pose joints (`pose_init`), as the image regressor's heads do
from pooled image features.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from ..errors import InputError
from ..humans import POSE_LANDMARK_NAMES
from .regressor import POSE_INIT_DIM, RegressorOutput, config_from_dict
from .transformer import Transformer, TransformerDims

NUM_KEYPOINTS = len(POSE_LANDMARK_NAMES)
KEYPOINT_VALUES = 3  # x, y, visibility


@dataclass(frozen=True)
class KeypointRegressorConfig:
    transformer: TransformerDims = field(default_factory=lambda: TransformerDims(model_dim=256, feedforward_dim=512,
                                                                                 num_enc_layers=2))
    hidden: int = 512  # width of the rotation and camera MLP

    @property
    def num_tokens(self) -> int:
        return self.transformer.block_size

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> KeypointRegressorConfig:
        return config_from_dict(cls, data, "keypoint regressor configuration")


class KeypointMeshRegressor(nn.Module):
    """keypoints (B, 33, 3), pose_init (B, 51) -> RegressorOutput (see the module docstring)."""

    input_name = "keypoints"

    def __init__(self, config: KeypointRegressorConfig = KeypointRegressorConfig()):  # noqa: B008 (frozen)
        super().__init__()
        self.config = config
        dims = config.transformer
        self.transformer = Transformer(dims)
        self.mesh_token_embed = nn.Embedding(dims.block_size, dims.model_dim)
        self.position_embed = nn.Linear(2, dims.model_dim)
        self.landmark_embed = nn.Embedding(NUM_KEYPOINTS, dims.model_dim)
        self.seen_embed = nn.Embedding(2, dims.model_dim)
        self.rotcam = nn.Sequential(
            nn.Linear(NUM_KEYPOINTS * KEYPOINT_VALUES + POSE_INIT_DIM, config.hidden), nn.ReLU(),
            nn.Linear(config.hidden, config.hidden), nn.ReLU())
        self.rot_predictor = nn.Linear(config.hidden, 6)
        self.cam_predictor = nn.Linear(config.hidden, 3)

    def check_inputs(self, keypoints: torch.Tensor) -> None:
        if not isinstance(keypoints, torch.Tensor) or not keypoints.is_floating_point():
            found = keypoints.dtype if isinstance(keypoints, torch.Tensor) else type(keypoints).__name__
            raise InputError(f"expected floating-point keypoints (B, {NUM_KEYPOINTS}, {KEYPOINT_VALUES}), got {found}")
        if keypoints.ndim != 3 or tuple(keypoints.shape[1:]) != (NUM_KEYPOINTS, KEYPOINT_VALUES):
            raise InputError(f"expected keypoints of shape (B, {NUM_KEYPOINTS}, {KEYPOINT_VALUES}), "
                             f"got {tuple(keypoints.shape)}")

    def forward(self, keypoints: torch.Tensor, pose_init: torch.Tensor) -> RegressorOutput:
        # The visibility weighs each keypoint (1 seen, 0 not; no comparison, so the exported graph stays within the
        # operators TensorRT 8.6 parses): an unseen keypoint's position is zeroed and it gets the "unseen" embedding.
        seen = keypoints[..., 2:].clamp(0.0, 1.0)  # (B, 33, 1)
        position = keypoints[..., :2] * seen
        unseen_vector, seen_vector = self.seen_embed.weight[0], self.seen_embed.weight[1]
        tokens = self.position_embed(position) * seen + unseen_vector + seen * (seen_vector - unseen_vector)
        batch = keypoints.shape[0]
        landmarks = self.landmark_embed.weight.unsqueeze(1).expand(-1, batch, -1)  # (33, B, C)
        queries = self.mesh_token_embed.weight.unsqueeze(1).expand(-1, batch, -1)
        _, logits = self.transformer(tokens.transpose(0, 1), queries, landmarks)
        hidden = self.rotcam(torch.cat([torch.cat([position, seen], dim=-1).flatten(1), pose_init], dim=1))
        return RegressorOutput(logits.transpose(0, 1), self.rot_predictor(hidden), self.cam_predictor(hidden))

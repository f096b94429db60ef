"""VQ-HPS inference: crops -> token logits -> tokens -> Mesh-VQ-VAE decode -> rotated mesh (and joints).

Two ways to decode the mesh from the token logits (`TOKEN_DECODINGS`):

* argmax: the Mesh-VQ-VAE decodes the most probable code of each token, as the official implementation does;
* expected: it decodes each token's expected codebook row under the predicted distribution, softmax(logits) @
  codebook. Where the network hesitates between codes, this mesh lies between theirs instead of jumping to one of
  them; for a confident network the two agree. The decoder never saw such latents in training, but on the bundled
  models it is the more accurate mesh (README, "Token decoding").

Either way the published tokens and their confidences are the argmax codes and their probabilities.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from ..errors import InputError
from ..mesh_vq import MeshVQVAE
from .keypoint_regressor import KeypointMeshRegressor
from .regressor import CROP_SIZE, POSE_INIT_DIM, MeshRegressor
from .rotation import rotation_6d_to_matrix

ARGMAX, EXPECTED = "argmax", "expected"
TOKEN_DECODINGS = (ARGMAX, EXPECTED)


class HPSOutput(NamedTuple):
    """Per crop; the mesh is in the crop's camera orientation, centred on its vertex centroid (metres)."""

    logits: torch.Tensor  # (B, T, K)
    indices: torch.Tensor  # (B, T) int64 codebook indices
    token_confidence: torch.Tensor  # (B, T) softmax probability of the chosen index
    rot6d: torch.Tensor  # (B, 6)
    rotmat: torch.Tensor  # (B, 3, 3)
    cam: torch.Tensor  # (B, 3) weak-perspective [s, tx, ty]
    verts_canonical: torch.Tensor  # (B, V, 3) decoded mesh, no global orientation
    verts: torch.Tensor  # (B, V, 3) rotmat @ verts_canonical
    joints: torch.Tensor | None  # (B, J, 3) joint_regressor @ verts, when a regressor is set


class VQHPS(nn.Module):
    """The whole network of one person crop: regressor + frozen Mesh-VQ-VAE decoder + optional joint regressor.
    The regressor reads the crop's pixels (`MeshRegressor`) or its body keypoints (`KeypointMeshRegressor`).

    pose_init: (51,) the 17 H36M joints of the T-pose mesh, the regressor's second input (a constant at inference).
    joint_regressor: (J, V) matrix applied to the rotated mesh. token_decoding: one of TOKEN_DECODINGS (module
    docstring); argmax, the official behaviour, unless set.
    """

    def __init__(self, regressor: MeshRegressor | KeypointMeshRegressor, mesh_vqvae: MeshVQVAE, pose_init: torch.Tensor,
                 joint_regressor: torch.Tensor | None = None, joint_names: tuple[str, ...] = (),
                 faces: np.ndarray | None = None):
        super().__init__()
        _check_compatible(regressor, mesh_vqvae)
        self.regressor = regressor
        self.mesh_vqvae = mesh_vqvae
        pose_init = torch.as_tensor(pose_init, dtype=torch.float32).reshape(-1)
        if pose_init.numel() != POSE_INIT_DIM:
            raise InputError(f"pose_init must hold {POSE_INIT_DIM} numbers (17 joints x 3), got {pose_init.numel()}")
        self.register_buffer("pose_init", pose_init, persistent=False)
        if joint_regressor is not None:
            joint_regressor = torch.as_tensor(joint_regressor, dtype=torch.float32)
            if joint_regressor.ndim != 2 or joint_regressor.shape[1] != mesh_vqvae.num_vertices:
                raise InputError(
                    f"the joint regressor must be (joints, {mesh_vqvae.num_vertices}) for this mesh, "
                    f"got {tuple(joint_regressor.shape)}"
                )
            if joint_names and len(joint_names) != joint_regressor.shape[0]:
                raise InputError(f"{len(joint_names)} joint names for {joint_regressor.shape[0]} regressor rows")
        self.register_buffer("joint_regressor", joint_regressor, persistent=False)
        self.joint_names = tuple(joint_names)
        self.faces = None if faces is None else _checked_faces(faces, mesh_vqvae.num_vertices)
        self.token_decoding = ARGMAX

    @property
    def num_vertices(self) -> int:
        return self.mesh_vqvae.num_vertices

    def set_official_batching(self, enabled: bool) -> None:
        """Upstream's batch-coupled token head (reproduces the paper's batched evaluation); off by default."""
        self.regressor.transformer.dec_head.official_batching = enabled

    def set_token_decoding(self, decoding: str) -> None:
        """How `forward` decodes the mesh: one of TOKEN_DECODINGS."""
        self.token_decoding = _checked_token_decoding(decoding)

    def forward(self, crops: torch.Tensor) -> HPSOutput:
        """crops: (B, 3, 224, 224) ImageNet-normalised RGB, or what the regressor reads instead (a
        `KeypointMeshRegressor`: (B, 33, 3) keypoints)."""
        check = getattr(self.regressor, "check_inputs", _check_crops)
        check(crops)
        pose_init = self.pose_init.to(crops.dtype).expand(crops.shape[0], -1)
        return self.decode_regression(*self.regressor(crops, pose_init))

    def decode_regression(self, logits: torch.Tensor, rot6d: torch.Tensor, cam: torch.Tensor,
                          token_decoding: str | None = None) -> HPSOutput:
        """The regressor's outputs -> argmax tokens, confidences, decoded and rotated mesh, joints. The mesh is
        decoded as `token_decoding` says (default: the model's). Argmax decoding carries no gradient; the expected
        one passes gradients to the logits (training through a soft mesh, `train.hps`)."""
        indices = logits.argmax(dim=-1)
        probabilities = torch.softmax(logits.float(), dim=-1)
        confidence = probabilities.gather(-1, indices.unsqueeze(-1)).squeeze(-1)
        if _checked_token_decoding(token_decoding or self.token_decoding) == EXPECTED:
            codebook = self.mesh_vqvae.vq_vae.codebook
            verts_canonical = self.mesh_vqvae.decode_latent(probabilities.to(codebook.dtype) @ codebook)
        else:
            with torch.no_grad():
                verts_canonical = self.mesh_vqvae.decode_latent(self.mesh_vqvae.vq_vae.lookup(indices))
        rotmat = rotation_6d_to_matrix(rot6d)
        verts = torch.matmul(verts_canonical.to(rotmat.dtype), rotmat.transpose(1, 2))
        joints = None if self.joint_regressor is None else torch.matmul(self.joint_regressor.to(verts.dtype), verts)
        return HPSOutput(logits, indices, confidence, rot6d, rotmat, cam, verts_canonical, verts, joints)


def _checked_token_decoding(decoding: str) -> str:
    if decoding not in TOKEN_DECODINGS:
        raise InputError(f"token decoding must be one of {TOKEN_DECODINGS}, got {decoding!r}")
    return decoding


def _checked_faces(faces, num_vertices: int) -> np.ndarray:
    """(F, 3) int64 triangles of the decoded mesh (for rendering and RViz; the network does not use them)."""
    faces = np.asarray(faces)
    if faces.ndim != 2 or faces.shape[1] != 3 or faces.dtype.kind not in "iu":
        raise InputError(f"faces must be (F, 3) integer vertex ids, got {faces.shape} {faces.dtype}")
    if faces.size and (faces.min() < 0 or faces.max() >= num_vertices):
        raise InputError(f"faces index vertices [{faces.min()}, {faces.max()}], the mesh has {num_vertices}")
    return faces.astype(np.int64)


def _check_compatible(regressor: nn.Module, mesh_vqvae: MeshVQVAE) -> None:
    dims = regressor.config.transformer
    if (dims.block_size, dims.dict_size) != (mesh_vqvae.num_tokens, mesh_vqvae.num_embeddings):
        raise InputError(
            f"the regressor predicts {dims.block_size} tokens over {dims.dict_size} codes, but the Mesh-VQ-VAE "
            f"decodes {mesh_vqvae.num_tokens} tokens of a {mesh_vqvae.num_embeddings}-code codebook"
        )


def _check_crops(crops: torch.Tensor) -> None:
    if not isinstance(crops, torch.Tensor) or not crops.is_floating_point():
        found = crops.dtype if isinstance(crops, torch.Tensor) else type(crops).__name__
        raise InputError(f"expected floating-point crops (B, 3, {CROP_SIZE}, {CROP_SIZE}), got {found}")
    if crops.ndim != 4 or tuple(crops.shape[1:]) != (3, CROP_SIZE, CROP_SIZE):
        raise InputError(f"expected crops of shape (B, 3, {CROP_SIZE}, {CROP_SIZE}), got {tuple(crops.shape)}")

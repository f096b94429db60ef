"""VQ-HPS model files.

A file written by this package is the official MeshRegressor layout (`{"model": state_dict, "loss": ...}`) plus a
`"vqhps_ros"` entry holding everything else inference needs: what the regressor reads (`input`: image crops or
body keypoints) and its configuration, pose_init, the
Mesh-VQ-VAE it decodes with (weights, configuration, connection matrices) and the optional joint regressor. So
`load_model(path)` needs nothing but the path. Official files are loaded with `load_official_model`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..checkpoints import atomic_torch_save, check_state_dict, extract_state_dict, read_checkpoint
from ..errors import CheckpointError
from ..mesh_vq import load_mesh_vqvae, mesh_vqvae_from_payload, mesh_vqvae_payload
from .keypoint_regressor import KeypointMeshRegressor, KeypointRegressorConfig
from .model import VQHPS
from .regressor import MeshRegressor, RegressorConfig

PACKAGE_KEY = "vqhps_ros"
FORMAT_VERSION = 1
REGRESSORS = (MeshRegressor.input_name, KeypointMeshRegressor.input_name)  # what a regressor can read
OBSOLETE_KEY_MARKER = "rotcam_feat"  # dropped by the official loader too

BACKBONE_SIGNATURES = {  # a key only that backbone's official state dict has
    "backbone_pose.downsample_stage_1.0.weight": "hrnet_w48",
    "backbone_pose.7.2.conv3.weight": "resnet50",
}


def load_regressor_state(regressor: MeshRegressor | KeypointMeshRegressor, state: dict, source: str) -> None:
    """Load official or package weights, dropping `module.` prefixes and obsolete `rotcam_feat*` keys."""
    state = {k.removeprefix("module."): v for k, v in state.items() if OBSOLETE_KEY_MARKER not in k}
    check_state_dict(regressor.state_dict(), state, source)
    regressor.load_state_dict(state, strict=True)


def detect_backbone(state: dict, source: str) -> str:
    keys = {k.removeprefix("module.") for k in state}
    for key, backbone in BACKBONE_SIGNATURES.items():
        if key in keys:
            return backbone
    raise CheckpointError(
        f"{source}: cannot tell the backbone from the keys (expected one of {sorted(BACKBONE_SIGNATURES)}); "
        "pass backbone= explicitly"
    )


def load_official_model(regressor_path: str | Path, mesh_vqvae_path: str | Path, connections_dir: str | Path,
                        pose_init, joint_regressor=None, joint_names: tuple[str, ...] = (),
                        backbone: str | None = None) -> VQHPS:
    """The authors' released weights: a MeshRegressor file, a Mesh-VQ-VAE file and the connection matrices.

    pose_init: (51,) or (17, 3), the H36M joints of the T-pose mesh the regressor was trained with (upstream
    computes it from `body_models/tpose.npy` and the H36M joint regressor; see `pose_init_from_mesh`).
    """
    data = read_checkpoint(regressor_path)
    state = extract_state_dict(data, str(regressor_path))
    config = RegressorConfig(backbone=backbone or detect_backbone(state, str(regressor_path)))
    regressor = MeshRegressor(config)
    load_regressor_state(regressor, state, str(regressor_path))
    mesh_vqvae = load_mesh_vqvae(mesh_vqvae_path, connections_dir)
    return VQHPS(regressor, mesh_vqvae, pose_init, joint_regressor, joint_names).eval()


def pose_init_from_mesh(tpose_verts: np.ndarray, h36m_regressor: np.ndarray) -> np.ndarray:
    """(V, 3) T-pose mesh, (17, V) H36M regressor -> (51,) pose_init, as upstream's training code builds it."""
    return (np.asarray(h36m_regressor, dtype=np.float64) @ np.asarray(tpose_verts, dtype=np.float64)).reshape(-1)


def save_model(model: VQHPS, path: str | Path, **extra) -> None:
    """Write a self-contained model file atomically; `extra` (loss, epoch, optimizer state...) at top level."""
    data = {"model": model.regressor.state_dict(), "loss": extra.pop("loss", float("nan")), **extra}
    package = {
        "format": FORMAT_VERSION,
        "input": model.regressor.input_name,
        "config": model.regressor.config.to_dict(),
        "pose_init": model.pose_init.detach().cpu().clone(),
        "mesh_vqvae": mesh_vqvae_payload(model.mesh_vqvae),
        "joint_names": list(model.joint_names),
    }
    if model.joint_regressor is not None:
        package["joint_regressor"] = model.joint_regressor.detach().cpu().clone()
    if model.faces is not None:
        package["faces"] = torch.from_numpy(model.faces)
    data[PACKAGE_KEY] = package
    atomic_torch_save(data, path)


def load_model(path: str | Path, official_batching: bool = False) -> VQHPS:
    """A model file written by `save_model`, in eval mode on the CPU."""
    data = read_checkpoint(path)
    package = data.get(PACKAGE_KEY)
    required = ("config", "pose_init", "mesh_vqvae")
    if not isinstance(package, dict) or any(key not in package for key in required):
        raise CheckpointError(
            f"{path} is not a vqhps_ros model file (expected a '{PACKAGE_KEY}' entry with {', '.join(required)}); "
            "official MeshRegressor files load with load_official_model()"
        )
    regressor = _regressor_from_package(package, str(path), official_batching)
    load_regressor_state(regressor, extract_state_dict(data, str(path)), str(path))
    mesh_vqvae = mesh_vqvae_from_payload(package["mesh_vqvae"], f"{path} (Mesh-VQ-VAE)")
    faces = package.get("faces")
    model = VQHPS(regressor, mesh_vqvae, package["pose_init"], package.get("joint_regressor"),
                  tuple(package.get("joint_names", ())), None if faces is None else faces.numpy())
    return model.eval()


def _regressor_from_package(package: dict, source: str, official_batching: bool
                            ) -> MeshRegressor | KeypointMeshRegressor:
    """A fresh regressor of the file's kind (files from before `input` existed read image crops)."""
    reads = package.get("input", MeshRegressor.input_name)
    if reads not in REGRESSORS:
        raise CheckpointError(f"{source}: its regressor reads {reads!r}; this version knows {sorted(REGRESSORS)}")
    if reads == KeypointMeshRegressor.input_name:
        if official_batching:  # upstream's batch coupling concerns the authors' image regressor only
            raise CheckpointError(f"{source}: official batching applies to image regressors, this one reads keypoints")
        return KeypointMeshRegressor(KeypointRegressorConfig.from_dict(package["config"]))
    return MeshRegressor(RegressorConfig.from_dict(package["config"]).with_official_batching(official_batching))

"""The small VQ-HPS model of the runtime tests (a module of its own so that tests can import it)."""

import numpy as np
import torch
from meshes import icosphere

from vqhps_ros.hps import VQHPS, MeshRegressor, RegressorConfig, TransformerDims
from vqhps_ros.mesh_vq import MeshVQVAE, build_hierarchy, hierarchy_config

SMALL_LEVELS = (162, 60, 20, 6)
SMALL_JOINTS = ("a", "b", "c", "d")


def build_small_model(with_joints: bool = True) -> VQHPS:
    """A light, randomly initialised (seeded) VQ-HPS: ResNet-18/4 backbones, 6 tokens of a 32-code codebook, the
    icosphere's faces (so that meshes can be drawn and published)."""
    torch.manual_seed(0)
    vertices, faces = icosphere(2)
    mesh_vqvae = MeshVQVAE(hierarchy_config(3, num_embeddings=32), build_hierarchy(vertices, faces, SMALL_LEVELS))
    dims = TransformerDims(model_dim=64, nhead=4, feedforward_dim=128, dict_size=32, block_size=6)
    regressor = MeshRegressor(RegressorConfig(backbone="resnet18_quarter", transformer=dims))
    joint_regressor = None
    if with_joints:
        joint_regressor = np.zeros((4, 162), dtype=np.float32)
        for joint in range(4):
            joint_regressor[joint, joint * 10:(joint + 1) * 10] = 0.1
    names = SMALL_JOINTS if with_joints else ()
    return VQHPS(regressor, mesh_vqvae, np.linspace(-0.5, 0.5, 51), joint_regressor, names, faces=faces).eval()

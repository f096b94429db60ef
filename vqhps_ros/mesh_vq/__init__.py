"""Mesh-VQ-VAE: the mesh tokenizer of VQ-HPS, compatible with the official checkpoints."""

from .checkpoint import (
    load_mesh_vqvae,
    load_mesh_vqvae_state,
    mesh_vqvae_from_payload,
    mesh_vqvae_payload,
    save_mesh_vqvae,
)
from .config import MeshVQConfig
from .connections import Connection, chain_connections, load_connections, parse_connection, save_connections
from .hierarchy import (
    MeshHierarchy,
    build_hierarchy,
    build_mesh_hierarchy,
    hierarchy_config,
    hierarchy_layer_names,
    save_hierarchy,
)
from .model import MeshVQOutput, MeshVQVAE
from .quantizer import VectorQuantizerEMA, perplexity

__all__ = [
    "Connection",
    "MeshVQConfig",
    "MeshVQOutput",
    "MeshVQVAE",
    "VectorQuantizerEMA",
    "chain_connections",
    "load_connections",
    "load_mesh_vqvae",
    "load_mesh_vqvae_state",
    "mesh_vqvae_from_payload",
    "mesh_vqvae_payload",
    "parse_connection",
    "perplexity",
    "save_connections",
    "save_mesh_vqvae",
    "MeshHierarchy",
    "build_hierarchy",
    "build_mesh_hierarchy",
    "hierarchy_config",
    "hierarchy_layer_names",
    "save_hierarchy",
]

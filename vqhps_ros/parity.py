"""Meshes through the Mesh-VQ-VAE tokenizer (mesh -> 54 tokens -> mesh), with numbers to check.

`round_trip_reference` runs the official architecture on the reference cases computed with the official
implementation (weights from the reference's deterministic generator) and reports how closely this package
reproduces them (`vqhps-ros parity`). `round_trip_checkpoint` tokenizes given meshes with a checkpoint and
reports the reconstruction error (`vqhps-ros tokenize`).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from .mesh_vq import MeshVQConfig, MeshVQVAE, load_connections, load_mesh_vqvae, load_mesh_vqvae_state
from .reference import ReferenceData


def reference_mesh_vqvae(reference: ReferenceData) -> MeshVQVAE:
    """The official architecture with the reference's deterministic weights."""
    model = MeshVQVAE(MeshVQConfig(), load_connections(reference.connections, MeshVQConfig().connection_layers))
    load_mesh_vqvae_state(model, reference.state_dict("mesh_vqvae_54"), "reference weights")
    return model.eval()


@torch.no_grad()
def round_trip_reference(reference_dir: Path) -> str:
    reference = ReferenceData(reference_dir)
    model = reference_mesh_vqvae(reference)
    official = reference.case("mesh_vqvae_54")
    verts = torch.from_numpy(official["verts"])
    started = time.perf_counter()
    tokens = model.encode(verts)
    encode_ms = 1000 * (time.perf_counter() - started)
    started = time.perf_counter()
    decoded = model.decode(tokens)
    decode_ms = 1000 * (time.perf_counter() - started)
    reconstruction = model(verts).verts
    given_tokens = model.decode(torch.from_numpy(official["indices_in"]))
    lines = [
        f"Mesh-VQ-VAE (official 'medium' architecture, {model.num_vertices} vertices -> {model.num_tokens} tokens "
        f"of a {model.num_embeddings}-entry codebook), weights from {reference.root / 'fill.py'}",
        f"meshes: {verts.shape[0]}; encode {encode_ms:.1f} ms, decode {decode_ms:.1f} ms (batch of {verts.shape[0]})",
        f"tokens of mesh 0: {tokens[0].tolist()}",
        "agreement with the official implementation:",
        f"  tokens identical: {bool(np.array_equal(tokens.numpy(), official['indices']))}",
        f"  reconstruction max |diff|: {np.abs(reconstruction.numpy() - official['verts_rec']).max():.2e}",
        f"  decode(given tokens) max |diff|: {np.abs(given_tokens.numpy() - official['verts_from_indices']).max():.2e}",
        f"  decode(encode(mesh)) vs forward: {np.abs(decoded.numpy() - reconstruction.numpy()).max():.2e}",
        "(these weights are synthetic, so the reconstruction is not the input mesh; real weights: vqhps-ros tokenize)",
    ]
    return "\n".join(lines)


@torch.no_grad()
def round_trip_checkpoint(checkpoint: Path, connections: Path | None, meshes: Path) -> str:
    from .train.mesh_vq import load_meshes, vertex_errors

    model = load_mesh_vqvae(checkpoint, connections)
    verts = torch.from_numpy(load_meshes(meshes))
    tokens = model.encode(verts)
    reconstruction = model.decode(tokens)
    error_mm = 1000 * vertex_errors(reconstruction, verts)
    return "\n".join([
        f"{len(verts)} meshes -> tokens (B, {tokens.shape[1]}) -> meshes",
        f"tokens of mesh 0: {tokens[0].tolist()}",
        f"mean vertex error (V2V, both meshes centred): {error_mm.mean():.1f} mm "
        f"(max over meshes {error_mm.max():.1f} mm)",
    ])

"""Parity with the official Mesh-VQ-VAE: same weights in, same numbers out."""

import copy

import numpy as np
import pytest
import torch

from vqhps_ros.mesh_vq import perplexity

pytestmark = pytest.mark.golden

VERTEX_TOLERANCE = 1e-4  # outputs of magnitude ~5
LATENT_TOLERANCE = 1e-5


def test_state_dict_matches_manifest_names_shapes_and_order(golden_mesh_vqvae, reference):
    manifest = reference.manifest("mesh_vqvae_54")["state_dict"]
    ours = [(key, list(value.shape)) for key, value in golden_mesh_vqvae.state_dict().items()]
    assert ours == [(key, shape) for key, shape, _ in manifest]
    buffers = {name for name, _ in golden_mesh_vqvae.named_buffers() if name in golden_mesh_vqvae.state_dict()}
    assert buffers == set(reference.manifest("mesh_vqvae_54")["buffers"])


@torch.no_grad()
def test_encoder_latent_and_indices(golden_mesh_vqvae, vqvae_case):
    latent = golden_mesh_vqvae.encode_latent(vqvae_case["verts"])
    np.testing.assert_allclose(latent, vqvae_case["z_e"], atol=LATENT_TOLERANCE, rtol=0)
    indices = golden_mesh_vqvae.encode(vqvae_case["verts"])
    assert indices.dtype == torch.int64
    assert torch.equal(indices, vqvae_case["indices"])
    quantized = golden_mesh_vqvae.vq_vae.lookup(indices)
    np.testing.assert_allclose(quantized, vqvae_case["z_q"], atol=LATENT_TOLERANCE, rtol=0)


@torch.no_grad()
def test_forward_reconstruction_loss_and_perplexity(golden_mesh_vqvae, vqvae_case):
    verts, indices, vq_loss = golden_mesh_vqvae(vqvae_case["verts"])
    np.testing.assert_allclose(verts, vqvae_case["verts_rec"], atol=VERTEX_TOLERANCE, rtol=0)
    assert torch.equal(indices, vqvae_case["indices"])
    assert vq_loss.item() == pytest.approx(vqvae_case["vq_loss"].item(), rel=1e-5)
    assert perplexity(indices, 512).item() == pytest.approx(vqvae_case["perplexity"].item(), rel=1e-5)


@torch.no_grad()
def test_decode_from_given_indices(golden_mesh_vqvae, vqvae_case):
    verts = golden_mesh_vqvae.decode(vqvae_case["indices_in"])
    np.testing.assert_allclose(verts, vqvae_case["verts_from_indices"], atol=VERTEX_TOLERANCE, rtol=0)


@torch.no_grad()
def test_each_sample_is_independent_of_the_batch(golden_mesh_vqvae, vqvae_case):
    """The official model needs its batch size fixed at construction (quirk V3); this one takes any batch."""
    single = golden_mesh_vqvae.decode(vqvae_case["indices_in"][1:])
    np.testing.assert_allclose(single[0], vqvae_case["verts_from_indices"][1], atol=VERTEX_TOLERANCE, rtol=0)
    tripled = golden_mesh_vqvae.decode(vqvae_case["indices_in"].repeat(3, 1)[:5])
    assert tripled.shape == (5, 6890, 3)
    np.testing.assert_allclose(tripled[4], vqvae_case["verts_from_indices"][0], atol=VERTEX_TOLERANCE, rtol=0)


@torch.no_grad()
def test_float16_decode_stays_close(golden_mesh_vqvae, vqvae_case):
    half = copy.deepcopy(golden_mesh_vqvae).to(torch.float16)  # a copy: the fixture is shared
    verts = half.decode(vqvae_case["indices_in"])
    assert verts.dtype == torch.float16
    error = (verts.float() - vqvae_case["verts_from_indices"]).abs().max().item()
    assert error < 0.05, f"float16 decode differs by {error} (outputs of magnitude ~5)"


@pytest.mark.gpu
@torch.no_grad()
def test_cuda_float32_and_float16_match_the_reference(golden_mesh_vqvae, vqvae_case):
    model = copy.deepcopy(golden_mesh_vqvae).to("cuda")
    indices = model.encode(vqvae_case["verts"].cuda())
    verts = model.decode(vqvae_case["indices_in"].cuda()).cpu()
    half_verts = model.half().decode(vqvae_case["indices_in"].cuda()).float().cpu()
    assert torch.equal(indices.cpu(), vqvae_case["indices"])
    np.testing.assert_allclose(verts, vqvae_case["verts_from_indices"], atol=VERTEX_TOLERANCE, rtol=0)
    assert (half_verts - vqvae_case["verts_from_indices"]).abs().max().item() < 0.05

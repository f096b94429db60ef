"""Token decoding: the expected codebook row under the token distribution, or the argmax code (the official way)."""

from dataclasses import fields

import pytest
import torch

from vqhps_ros.config import ModelConfig
from vqhps_ros.errors import InputError
from vqhps_ros.hps import ARGMAX, EXPECTED, TOKEN_DECODINGS
from vqhps_ros.models import load_image_model

ROT6D = torch.tensor([[1.0, 0.0, 0.0, 0.0, 0.6, 0.8]])
CAMERA = torch.tensor([[0.9, 0.0, 0.0]])


@pytest.fixture(scope="module")
def model():
    return load_image_model()


def codes(model, seed: int) -> torch.Tensor:
    tokens, size = model.mesh_vqvae.num_tokens, model.mesh_vqvae.num_embeddings
    return torch.randint(0, size, (1, tokens), generator=torch.Generator().manual_seed(seed))


def decoded(model, logits, decoding):
    with torch.no_grad():
        return model.decode_regression(logits, ROT6D, CAMERA, token_decoding=decoding)


def test_a_confident_network_decodes_the_same_mesh_either_way(model):
    logits = 40.0 * torch.nn.functional.one_hot(codes(model, 0), model.mesh_vqvae.num_embeddings).float()
    argmax, expected = decoded(model, logits, ARGMAX), decoded(model, logits, EXPECTED)
    torch.testing.assert_close(expected.verts, argmax.verts, rtol=0, atol=1e-5)
    torch.testing.assert_close(expected.joints, argmax.joints, rtol=0, atol=1e-5)


def test_a_hesitant_token_decodes_between_its_two_codes(model):
    size = model.mesh_vqvae.num_embeddings
    first = codes(model, 1)
    second = (first + 1 + codes(model, 2) % (size - 1)) % size  # another code at every token
    logits = 20.0 * (torch.nn.functional.one_hot(first, size) + torch.nn.functional.one_hot(second, size)).float()
    lead = 0.01  # a hair more for the first code, so that argmax picks it
    logits[0, torch.arange(len(first[0])), first[0]] += lead
    share = torch.sigmoid(torch.tensor(lead))  # the first code's probability: e^lead / (e^lead + 1)
    codebook = model.mesh_vqvae.vq_vae.codebook
    with torch.no_grad():
        between = model.mesh_vqvae.decode_latent(share * codebook[first] + (1 - share) * codebook[second])
        only_first = model.mesh_vqvae.decode_latent(codebook[first])
    argmax, expected = decoded(model, logits, ARGMAX), decoded(model, logits, EXPECTED)
    torch.testing.assert_close(expected.verts_canonical, between, rtol=0, atol=1e-4)
    torch.testing.assert_close(argmax.verts_canonical, only_first, rtol=0, atol=1e-6)
    assert (expected.verts_canonical - argmax.verts_canonical).abs().max() > 1e-3
    # the published tokens and confidences do not depend on the decoding
    assert torch.equal(expected.indices, first) and torch.equal(argmax.indices, first)
    torch.testing.assert_close(expected.token_confidence, argmax.token_confidence)
    torch.testing.assert_close(expected.token_confidence, torch.full_like(expected.token_confidence, 0.5),
                               rtol=0, atol=0.01)


def test_the_model_decodes_argmax_unless_set_and_refuses_unknown_decodings():
    fresh = load_image_model()
    assert fresh.token_decoding == ARGMAX
    crops = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        argmax = fresh(crops)
        fresh.set_token_decoding(EXPECTED)
        expected = fresh(crops)
        logits, _, _ = fresh.regressor(crops, fresh.pose_init.expand(len(crops), -1))
    torch.testing.assert_close(expected.verts_canonical, decoded(fresh, logits, EXPECTED).verts_canonical)
    torch.testing.assert_close(argmax.verts_canonical, decoded(fresh, logits, ARGMAX).verts_canonical)
    assert torch.equal(expected.indices, argmax.indices)
    with pytest.raises(InputError, match=r"token decoding must be one of \('argmax', 'expected'\), got 'mean'"):
        fresh.set_token_decoding("mean")


def test_the_configuration_offers_the_models_decodings():
    (setting,) = [field for field in fields(ModelConfig) if field.name == "token_decoding"]
    assert sorted(setting.metadata["choices"]) == sorted(TOKEN_DECODINGS)
    assert ModelConfig().token_decoding == EXPECTED

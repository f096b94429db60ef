"""Mesh-VQ-VAE training on a tiny synthetic set: the loss goes down, checkpoints reload and resume."""

import numpy as np
import pytest
import torch
from meshes import icosphere

from vqhps_ros.errors import InputError
from vqhps_ros.mesh_vq import MeshVQVAE, build_hierarchy, hierarchy_config, load_mesh_vqvae
from vqhps_ros.train.mesh_vq import MeshVQTrainConfig, load_meshes, train_mesh_vq, validate

LEVELS = (162, 60, 20, 6)


@pytest.fixture(scope="module")
def template():
    return icosphere(2)


@pytest.fixture(scope="module")
def connections(template):
    return build_hierarchy(*template, LEVELS)


def ellipsoids(template_vertices: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Sphere meshes stretched per axis and bent: a family of smooth shapes the tokenizer can learn."""
    rng = np.random.default_rng(seed)
    scales = rng.uniform(0.1, 0.4, size=(count, 1, 3))
    bend = rng.uniform(-0.3, 0.3, size=(count, 1, 1))
    meshes = template_vertices[None] * scales
    meshes[..., 0:1] += bend * meshes[..., 1:2] ** 2 * 4
    return (meshes - meshes.mean(axis=1, keepdims=True)).astype(np.float32)


def make_model(connections, seed=0):
    torch.manual_seed(seed)
    return MeshVQVAE(hierarchy_config(3, num_embeddings=64), connections)


def test_loss_goes_down_and_the_checkpoint_reloads(template, connections, tmp_path):
    train, validation = ellipsoids(template[0], 64, 0), ellipsoids(template[0], 8, 1)
    model = make_model(connections)
    before = validate(model, validation, batch_size=8)
    config = MeshVQTrainConfig(steps=200, batch_size=8, lr=3e-3, validate_every=100, save_every=100, seed=0)
    history = train_mesh_vq(model, train, validation, tmp_path / "vq.pt", config)
    first, last = np.mean(history.loss[:10]), np.mean(history.loss[-10:])
    assert last < 0.6 * first, f"training loss went from {first:.4f} to {last:.4f}"
    assert history.validation[-1]["v2v_mm"] < 0.6 * before["v2v_mm"]
    assert history.validation[-1]["pa_v2v_mm"] <= history.validation[-1]["v2v_mm"] + 1e-6

    reloaded = load_mesh_vqvae(tmp_path / "vq.pt")
    for key, value in model.state_dict().items():
        assert torch.equal(reloaded.state_dict()[key], value), key
    stored = torch.load(tmp_path / "vq.pt", weights_only=True)
    assert stored["step"] == 200 and "optimizer" in stored and "model" in stored


def test_resume_continues_from_the_saved_step(template, connections, tmp_path):
    train = ellipsoids(template[0], 32, 2)
    config = MeshVQTrainConfig(steps=10, batch_size=4, lr=1e-3, validate_every=10, save_every=5)
    train_mesh_vq(make_model(connections), train, train[:4], tmp_path / "a.pt", config)
    longer = MeshVQTrainConfig(steps=14, batch_size=4, lr=1e-3, validate_every=7, save_every=7)
    history = train_mesh_vq(make_model(connections, seed=1), train, train[:4], tmp_path / "b.pt", longer,
                            resume=tmp_path / "a.pt")
    assert history.steps == [11, 12, 13, 14]
    assert torch.load(tmp_path / "b.pt", weights_only=True)["step"] == 14


def test_codebook_learns_by_ema_only(connections):
    model = make_model(connections)
    assert not model.vq_vae.codebook.requires_grad
    before = model.vq_vae.codebook.clone()
    model.train()
    model(torch.from_numpy(ellipsoids(icosphere(2)[0], 4, 3)))
    assert not torch.equal(before, model.vq_vae.codebook), "the EMA update must move the used codes"


def test_mesh_files_are_loaded_centred_and_checked(tmp_path, template):
    meshes = ellipsoids(template[0], 3, 4) + 5.0
    np.savez(tmp_path / "set.npz", vertices=meshes)
    loaded = load_meshes(tmp_path / "set.npz")
    np.testing.assert_allclose(loaded.mean(axis=1), 0, atol=1e-5)
    folder = tmp_path / "folder"
    folder.mkdir()
    np.save(folder / "a.npy", meshes[0])
    np.savez(folder / "b.npz", vertices=meshes[1:])
    assert load_meshes(folder).shape == (3, 162, 3)
    np.savez(tmp_path / "bad.npz", verts=meshes)
    with pytest.raises(InputError, match="'vertices'"):
        load_meshes(tmp_path / "bad.npz")
    np.save(tmp_path / "flat.npy", np.zeros((5, 4)))
    with pytest.raises(InputError, match=r"\(N, 3\) or \(M, N, 3\)"):
        load_meshes(tmp_path / "flat.npy")


def test_meshes_of_the_wrong_size_are_rejected(connections, tmp_path):
    with pytest.raises(InputError, match=r"\(M >= 1, 162, 3\)"):
        train_mesh_vq(make_model(connections), np.zeros((4, 100, 3), np.float32), np.zeros((1, 162, 3), np.float32),
                      tmp_path / "x.pt", MeshVQTrainConfig(steps=1))


def test_codebook_starts_on_data_and_dead_codes_restart(connections):
    model = make_model(connections)
    latents = torch.randn(4, 6, 9) + 5.0  # far from the random initial codes
    model.vq_vae.initialise_from(latents, torch.Generator().manual_seed(0))
    rows = {tuple(row.tolist()) for row in latents.reshape(-1, 9)}
    assert all(tuple(code.tolist()) in rows for code in model.vq_vae.codebook)
    model.vq_vae._ema_cluster_size[:3] = 0.0
    moved = model.vq_vae.restart_dead_codes(latents + 1.0, threshold=0.5)
    assert moved == 3
    assert torch.all(model.vq_vae._ema_cluster_size[:3] == 1.0)
    assert all(tuple(code.tolist()) in {tuple(r.tolist()) for r in (latents + 1.0).reshape(-1, 9)}
               for code in model.vq_vae.codebook[:3])

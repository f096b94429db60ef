"""Checkpoints: the official layout, bit-identical reloads, and errors that name the problem."""

import numpy as np
import pytest
import torch

from vqhps_ros.errors import CheckpointError, ConnectionMatrixError, InputError
from vqhps_ros.mesh_vq import (
    MeshVQConfig,
    MeshVQVAE,
    load_connections,
    load_mesh_vqvae,
    save_mesh_vqvae,
)


def test_saved_checkpoint_has_the_official_layout_and_reloads_bit_identically(golden_mesh_vqvae, tmp_path,
                                                                              reference):
    path = tmp_path / "mesh_vqvae.pt"
    save_mesh_vqvae(golden_mesh_vqvae, path, loss=0.5)
    data = torch.load(path, weights_only=True)
    assert data["loss"] == 0.5
    manifest = reference.manifest("mesh_vqvae_54")["state_dict"]
    assert [(k, list(v.shape)) for k, v in data["model"].items()] == [(k, s) for k, s, _ in manifest]

    reloaded = load_mesh_vqvae(path)  # connections travel in the package's own files
    for key, value in golden_mesh_vqvae.state_dict().items():
        assert torch.equal(reloaded.state_dict()[key], value), key
    indices = torch.randint(0, 512, (3, 54), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(reloaded.decode(indices), golden_mesh_vqvae.decode(indices))


def test_official_file_with_module_prefix_loads_with_a_connection_folder(golden_mesh_vqvae, reference, tmp_path):
    path = tmp_path / "official.pt"
    state = {"module." + key: value for key, value in reference.state_dict("mesh_vqvae_54").items()}
    torch.save({"model": state, "loss": 1.0}, path)
    with pytest.raises(CheckpointError, match="connection"):
        load_mesh_vqvae(path)
    model = load_mesh_vqvae(path, connections_dir=reference.connections)
    assert torch.equal(model.vq_vae.codebook, golden_mesh_vqvae.vq_vae.codebook)


def test_missing_unexpected_and_misshaped_keys_are_listed(reference, tmp_path):
    state = reference.state_dict("mesh_vqvae_54")
    del state["vq_vae._ema_w"]
    state["extra.weight"] = torch.zeros(1)
    state["decoder.model.bias13"] = torch.zeros(4)
    state["encoder.model.bias13"] = torch.zeros(4)
    path = tmp_path / "wrong.pt"
    torch.save({"model": state}, path)
    with pytest.raises(CheckpointError) as error:
        load_mesh_vqvae(path, connections_dir=reference.connections)
    message = str(error.value)
    assert "missing keys: vq_vae._ema_w" in message
    assert "unexpected keys: extra.weight" in message
    assert "encoder.model.bias13: expected (3,), found (4,)" in message


def test_diverging_encoder_and_decoder_copies_are_rejected(reference, tmp_path):
    state = reference.state_dict("mesh_vqvae_54")
    state["decoder.model.bias0"] = state["decoder.model.bias0"] + 1
    path = tmp_path / "split.pt"
    torch.save({"model": state}, path)
    with pytest.raises(CheckpointError, match="shares one autoencoder"):
        load_mesh_vqvae(path, connections_dir=reference.connections)


def test_truncated_checkpoint_names_the_file(golden_mesh_vqvae, tmp_path):
    path = tmp_path / "cut.pt"
    save_mesh_vqvae(golden_mesh_vqvae, path)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="cut.pt"):
        load_mesh_vqvae(path)


def test_vertex_count_mismatch_between_checkpoint_and_connections(reference, tmp_path):
    state = reference.state_dict("mesh_vqvae_54")
    state["encoder.model.w_weights0"] = torch.zeros(100, 10, 9)
    path = tmp_path / "small.pt"
    torch.save({"model": state}, path)
    with pytest.raises(CheckpointError, match="meshes of 100 vertices.*6890 vertices"):
        load_mesh_vqvae(path, connections_dir=reference.connections)


def test_save_leaves_no_partial_file_when_writing_fails(golden_mesh_vqvae, tmp_path, monkeypatch):
    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        save_mesh_vqvae(golden_mesh_vqvae, tmp_path / "model.pt")
    assert list(tmp_path.iterdir()) == []


def test_bad_vertices_and_indices_raise_clear_errors(golden_mesh_vqvae):
    with pytest.raises(InputError, match=r"\(batch, 6890, 3\).*\(2, 100, 3\)"):
        golden_mesh_vqvae.encode(torch.zeros(2, 100, 3))
    nan_verts = torch.zeros(1, 6890, 3)
    nan_verts[0, 5, 1] = float("nan")
    with pytest.raises(InputError, match="NaN or inf"):
        golden_mesh_vqvae.encode(nan_verts)
    with pytest.raises(InputError, match=r"\[0, 512\).*\[512, 512\]"):
        golden_mesh_vqvae.decode(torch.full((1, 54), 512))
    with pytest.raises(InputError, match=r"\[0, 512\).*\[-1, 0\]"):
        golden_mesh_vqvae.decode(torch.cat([torch.zeros(1, 53), -torch.ones(1, 1)], 1).long())
    with pytest.raises(InputError, match="integer"):
        golden_mesh_vqvae.decode(torch.zeros(1, 54))
    with pytest.raises(InputError, match=r"\(batch, 54\)"):
        golden_mesh_vqvae.decode(torch.zeros(54, dtype=torch.long))


def test_malformed_connection_files_are_rejected(reference, tmp_path):
    layers = MeshVQConfig().connection_layers
    for layer in layers:
        (tmp_path / f"_{layer}.npy").write_bytes((reference.connections / f"_{layer}.npy").read_bytes())
    np.save(tmp_path / "_pool3.npy", np.zeros((400, 10), dtype=np.int32))
    with pytest.raises(ConnectionMatrixError, match=r"pool3.*\(points, 1 \+ 2 \* max_neighbors\).*\(400, 10\)"):
        load_connections(tmp_path, layers)
    table = np.load(reference.connections / "_pool3.npy")
    table[0, 1] = 5000  # an id beyond the 1925 points of the layer below
    np.save(tmp_path / "_pool3.npy", table)
    with pytest.raises(ConnectionMatrixError, match=r"pool3.*\[0, 1925\].*5000"):
        load_connections(tmp_path, layers)
    (tmp_path / "_pool3.npy").unlink()
    with pytest.raises(ConnectionMatrixError, match="_pool3.npy"):
        load_connections(tmp_path, layers)


def test_config_round_trip_and_validation():
    config = MeshVQConfig()
    assert MeshVQConfig.from_dict(config.to_dict()) == config
    assert config.embedding_dim == 9
    with pytest.raises(InputError, match="one entry per layer"):
        MeshVQConfig(channels=(32, 3))
    with pytest.raises(InputError, match="unknown"):
        MeshVQConfig.from_dict({"channel_list": [3]})


def test_model_runs_at_any_batch_size(official_connections):
    model = MeshVQVAE(MeshVQConfig(), official_connections).eval()
    with torch.no_grad():
        for batch in (1, 3):
            verts, indices, loss = model(torch.randn(batch, 6890, 3) * 0.3)
            assert verts.shape == (batch, 6890, 3) and indices.shape == (batch, 54) and loss.ndim == 0

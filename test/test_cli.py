"""The command line: the demo, connection building and Mesh-VQ-VAE training, run as a user would."""

import json

import numpy as np
from meshes import icosphere

from vqhps_ros.cli import main
from vqhps_ros.mesh_vq import hierarchy_layer_names, load_connections, load_mesh_vqvae


def test_parity_reproduces_the_official_tokens(reference, capsys):
    assert main(["parity", "--reference", str(reference.root)]) == 0
    output = capsys.readouterr().out
    assert "tokens identical: True" in output
    error = float(output.split("reconstruction max |diff|: ")[1].split()[0])
    assert error < 1e-4


def test_parity_without_reference_says_what_is_missing(tmp_path, capsys):
    assert main(["parity", "--reference", str(tmp_path)]) == 2
    assert "fill.py" in capsys.readouterr().err


def test_build_connections_then_train_mesh_vq(tmp_path, capsys):
    vertices, faces = icosphere(2)
    np.savez(tmp_path / "template.npz", vertices=vertices, faces=faces)
    assert main(["build-connections", "--template", str(tmp_path / "template.npz"), "--levels", "60", "20", "6",
                 "--output", str(tmp_path / "connections")]) == 0
    connections = load_connections(tmp_path / "connections", hierarchy_layer_names(3))
    assert [c.out_points for c in connections[:7]] == [162, 60, 60, 20, 20, 6, 6]

    rng = np.random.default_rng(0)
    meshes = vertices[None] * rng.uniform(0.2, 0.4, size=(20, 1, 3))
    np.savez(tmp_path / "meshes.npz", vertices=meshes.astype(np.float32))
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"num_embeddings": 16}))
    capsys.readouterr()
    assert main(["train-mesh-vq", "--meshes", str(tmp_path / "meshes.npz"), "--connections",
                 str(tmp_path / "connections"), "--output", str(tmp_path / "vq.pt"), "--config", str(config),
                 "--steps", "4", "--batch-size", "4", "--validate-every", "2"]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["step"] == 4 and metrics["v2v_mm"] > 0
    assert load_mesh_vqvae(tmp_path / "vq.pt").num_embeddings == 16


def test_free_body_files_feed_the_training_commands(tmp_path, capsys):
    assert main(["free-body", "--output", str(tmp_path)]) == 0
    with np.load(tmp_path / "template.npz") as template:
        vertices, faces = template["vertices"], template["faces"]
    tpose = np.load(tmp_path / "tpose.npy")
    regressor = np.load(tmp_path / "J_regressor_h36m.npy")
    assert vertices.shape == tpose.shape == (1229, 3) and faces.shape == (2454, 3)
    np.testing.assert_allclose(tpose.mean(axis=0), 0, atol=1e-9)
    np.testing.assert_allclose(regressor.sum(axis=1), 1, atol=1e-5)
    assert regressor.shape == (17, 1229)

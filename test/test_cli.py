"""The command line: the demo, connection building and Mesh-VQ-VAE training, run as a user would."""

import inspect
import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from meshes import icosphere

from vqhps_ros.cli import build_parser, main
from vqhps_ros.mesh_vq import hierarchy_layer_names, load_connections, load_mesh_vqvae
from vqhps_ros.runtime import commands
from vqhps_ros.train.hps import HPSTrainConfig


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


def test_building_the_parser_imports_no_heavy_module():
    # A fresh interpreter: this test process has imported torch long ago.
    code = ("import sys; from vqhps_ros.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch','cv2','onnx','onnxruntime','smplx','scipy') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def _parse(argv: list[str]):
    return build_parser().parse_args(argv)


def test_train_hps_options_default_to_the_training_settings():
    args = _parse(["train-hps", "--dataset", "d", "--mesh-vqvae", "m", "--h36m-regressor", "r", "--tpose", "t",
                   "--output", "o"])
    defaults = asdict(HPSTrainConfig())
    assert {name: getattr(args, name) for name in defaults} == defaults
    # Transformer dimensions left out: run_train_hps keeps TransformerDims' own (the official ones).
    assert (args.model_dim, args.nhead, args.feedforward_dim) == (None, None, None)


COMMAND_SIGNATURES = {name: inspect.signature(getattr(commands, name))
                      for name in ("export_command", "build_engine_command")}


def _recorded_call(monkeypatch, name: str, argv: list[str]) -> dict:
    """The arguments `vqhps-ros` hands to runtime.commands.<name>, with that function's defaults filled in."""
    signature = COMMAND_SIGNATURES[name]
    calls = []

    def record(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        calls.append(bound.arguments)
        return Path("x") if name == "export_command" else commands.BuildReport(Path("x"), True, "")

    monkeypatch.setattr(commands, name, record)
    assert main(argv) == 0
    return calls[0]


def test_evaluate_decodes_the_argmax_tokens_unless_told_otherwise():
    from vqhps_ros.hps import ARGMAX, EXPECTED

    assert _parse(["evaluate", "--model", "m.pt", "--dataset", "d"]).token_decoding == ARGMAX
    chosen = _parse(["evaluate", "--model", "m.pt", "--dataset", "d", "--token-decoding", EXPECTED])
    assert chosen.token_decoding == EXPECTED


def test_export_and_build_engine_defaults_are_the_library_ones(monkeypatch):
    export = _recorded_call(monkeypatch, "export_command", ["export", "--model", "m.pt", "--output", "m.onnx"])
    assert (export["precision"], export["max_persons"], export["opset"], export["calibration_count"],
            export["token_decoding"]) == ("fp32", 16, 17, 64, "expected")
    given = _recorded_call(monkeypatch, "export_command", ["export", "--model", "m.pt", "--output", "m.onnx",
                                                           "--max-persons", "3", "--opset", "18",
                                                           "--token-decoding", "argmax"])
    assert (given["max_persons"], given["opset"], given["token_decoding"]) == (3, 18, "argmax")

    # The parser names the decodings itself (it imports no torch): they must stay the model's.
    from vqhps_ros.hps import TOKEN_DECODINGS

    with pytest.raises(SystemExit):
        main(["export", "--model", "m.pt", "--output", "m.onnx", "--token-decoding", "nearest"])
    for decoding in TOKEN_DECODINGS:
        chosen = _recorded_call(monkeypatch, "export_command", ["export", "--model", "m.pt", "--output", "m.onnx",
                                                                "--token-decoding", decoding])
        assert chosen["token_decoding"] == decoding

    build = _recorded_call(monkeypatch, "build_engine_command", ["build-engine", "--onnx", "m.onnx"])
    assert (build["precision"], build["device"], build["workspace_mb"]) == ("fp16", 0, 1024)
    assert (build["max_persons"], build["opt_persons"], build["cache_dir"]) == (None, None, None)

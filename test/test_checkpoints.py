"""Inference-only model files: training state dropped, weights stored in float32 or float16, loads as before."""

import pytest
import torch
from small_model import build_small_model

from vqhps_ros.checkpoints import inference_checkpoint, read_checkpoint
from vqhps_ros.cli import main
from vqhps_ros.errors import CheckpointError
from vqhps_ros.hps import load_model, save_model

CROPS = torch.randn(3, 3, 224, 224, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def trained_file(tmp_path_factory):
    """A model file as train-hps writes it: weights plus optimizer and scheduler state."""
    model = build_small_model()
    optimizer = torch.optim.AdamW(model.regressor.parameters())
    model.regressor(CROPS[:1], model.pose_init[None]).logits.sum().backward()
    optimizer.step()
    path = tmp_path_factory.mktemp("strip") / "trained.pt"
    save_model(model, path, epoch=3, optimizer=optimizer.state_dict(), scheduler={"last_epoch": 3})
    return path


def outputs(path):
    with torch.no_grad():
        return load_model(path)(CROPS)


def test_float32_copy_drops_training_state_and_keeps_every_output(trained_file, tmp_path):
    stripped = inference_checkpoint(read_checkpoint(trained_file), "float32")
    assert "optimizer" not in stripped and "scheduler" not in stripped and stripped["epoch"] == 3
    torch.save(stripped, tmp_path / "fp32.pt")
    expected, found = outputs(trained_file), outputs(tmp_path / "fp32.pt")
    for name in ("logits", "indices", "rotmat", "cam", "verts", "joints"):
        assert torch.equal(getattr(found, name), getattr(expected, name)), name


def test_float16_storage_halves_the_weights_and_rounds_them_only(trained_file, tmp_path):
    original = read_checkpoint(trained_file)
    stripped = inference_checkpoint(original, "float16")
    regressor, mesh_vqvae = stripped["model"], stripped["vqhps_ros"]["mesh_vqvae"]
    assert {tensor.dtype for tensor in regressor.values() if tensor.is_floating_point()} == {torch.float16}
    assert {t.dtype for t in mesh_vqvae["model"].values() if t.is_floating_point()} == {torch.float16}
    assert mesh_vqvae["vqhps_ros"]["connections"].keys() == original["vqhps_ros"]["mesh_vqvae"]["vqhps_ros"][
        "connections"].keys()
    assert stripped["vqhps_ros"]["pose_init"].dtype == torch.float32  # only state dicts are converted
    torch.save(stripped, tmp_path / "fp16.pt")
    expected, found = outputs(trained_file), outputs(tmp_path / "fp16.pt")
    assert (found.indices == expected.indices).float().mean() > 0.9
    torch.testing.assert_close(found.logits, expected.logits, rtol=0, atol=0.05)
    torch.testing.assert_close(found.cam, expected.cam, rtol=0, atol=0.01)


def test_weights_beyond_float16_are_refused_by_name(trained_file):
    data = read_checkpoint(trained_file)
    key = next(iter(data["model"]))
    data["model"][key] = data["model"][key] + 1e6
    with pytest.raises(CheckpointError, match=f"{key} does not fit in torch.float16"):
        inference_checkpoint(data, "float16")
    with pytest.raises(CheckpointError, match="storage must be one of float32, float16, found 'int8'"):
        inference_checkpoint(data, "int8")


def test_strip_command_writes_a_loadable_file(trained_file, tmp_path, capsys):
    output = tmp_path / "shipped.pt"
    assert main(["strip", "--model", str(trained_file), "--output", str(output), "--storage", "float16"]) == 0
    assert "weights as float16" in capsys.readouterr().out
    assert output.stat().st_size < 0.6 * trained_file.stat().st_size
    assert load_model(output).num_vertices == 162

"""What `vqhps-ros export` and `vqhps-ros build-engine` run, and the dataset crops they calibrate on."""

import json

import cv2
import numpy as np
import pytest
from meshes import icosphere

from vqhps_ros.errors import CheckpointError, InputError
from vqhps_ros.hps import save_model
from vqhps_ros.runtime import OnnxRuntimeEngine, load_dataset_samples, read_metadata
from vqhps_ros.runtime.commands import build_engine_command, export_command, file_sha256

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def model_file(small_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "small_model.pt"
    save_model(small_model, path)
    return path


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Six noise images of 160x120 with one box each and canonical meshes of the 162-vertex template."""
    folder = tmp_path_factory.mktemp("dataset")
    rng = np.random.default_rng(3)
    vertices, _ = icosphere(2)
    paths = []
    for index in range(6):
        name = f"images/{index}.png"
        (folder / "images").mkdir(exist_ok=True)
        cv2.imwrite(str(folder / name), rng.integers(0, 255, (120, 160, 3), dtype=np.uint8))
        paths.append(name)
    meshes = vertices[None] * rng.uniform(0.2, 0.9, (6, 1, 3))
    np.savez(folder / "annotations.npz", image_paths=np.asarray(paths),
             boxes=np.tile([40.0, 20.0, 50.0, 80.0], (6, 1)) + rng.uniform(-5, 5, (6, 4)), vertices=meshes,
             global_orient=rng.uniform(-0.3, 0.3, (6, 3)), keypoints_2d=np.zeros((6, 17, 3)))
    return folder


def test_dataset_samples_are_normalised_crops_with_their_meshes(dataset):
    samples = load_dataset_samples(dataset)
    assert samples.crops.shape == (6, 3, 224, 224) and samples.crops.dtype == np.float32
    assert samples.canonical_vertices.shape == (6, 162, 3)
    np.testing.assert_allclose(samples.canonical_vertices.mean(axis=1), 0, atol=1e-6)  # centred on load
    assert -2.2 < samples.crops.min() < samples.crops.max() < 2.7  # ImageNet-normalised pixels
    subset = load_dataset_samples(dataset, limit=3, seed=1)
    again = load_dataset_samples(dataset, limit=3, seed=1)
    assert len(subset) == 3
    np.testing.assert_array_equal(subset.crops, again.crops)
    with pytest.raises(InputError, match="limit must be at least 1"):
        load_dataset_samples(dataset, limit=0)


def test_export_command_writes_the_graph_with_its_source(model_file, tmp_path, crops):
    path = export_command(model_file, tmp_path / "model.onnx", max_persons=2)
    metadata = read_metadata(onnx.load(path))
    assert json.loads(metadata["vqhps_ros.source"]) == {"file": "small_model.pt", "sha256": file_sha256(model_file)}
    assert (metadata["vqhps_ros.precision"], metadata["vqhps_ros.max_batch"]) == ("fp32", "2")
    assert metadata["vqhps_ros.token_decoding"] == "expected"
    with OnnxRuntimeEngine(path, threads=1) as engine:
        assert engine.infer(crops[:3]).verts.shape == (3, 162, 3)
    argmax = export_command(model_file, tmp_path / "argmax.onnx", max_persons=2, token_decoding="argmax")
    assert read_metadata(onnx.load(argmax))["vqhps_ros.token_decoding"] == "argmax"


def test_int8_export_calibrates_on_the_dataset(model_file, dataset, tmp_path):
    path = export_command(model_file, tmp_path / "model_int8.onnx", precision="int8", calibration_dataset=dataset,
                          calibration_count=4)
    assert (tmp_path / "model_int8.fp32.onnx").is_file()
    metadata = read_metadata(onnx.load(path))
    assert metadata["vqhps_ros.precision"] == "int8"
    assert json.loads(metadata["vqhps_ros.quantization"])["calibration_crops"] == 4


def test_export_command_refusals(model_file, tmp_path):
    with pytest.raises(InputError, match="needs --calibration-dataset"):
        export_command(model_file, tmp_path / "a.onnx", precision="int8")
    with pytest.raises(InputError, match="precision must be one of"):
        export_command(model_file, tmp_path / "a.onnx", precision="bf16")
    with pytest.raises(CheckpointError, match="does not exist"):
        export_command(tmp_path / "absent.pt", tmp_path / "a.onnx")
    assert not list(tmp_path.iterdir())


def test_build_engine_command_builds_then_finds_the_engine(fake_backend, small_graph, tmp_path):
    first = build_engine_command(small_graph, cache_dir=tmp_path, max_persons=2, workspace_mb=64)
    assert first.built and first.engine_path.is_file()
    again = build_engine_command(small_graph, cache_dir=tmp_path, max_persons=2, workspace_mb=64)
    assert not again.built and again.engine_path == first.engine_path

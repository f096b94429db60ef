"""ONNX export of the Mesh-VQ-VAE decoder: parity with PyTorch, graph contents, metadata, engine input checks."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from vqhps_ros import __version__, atomic_files
from vqhps_ros.errors import CheckpointError, InputError
from vqhps_ros.mesh_vq import MeshVQConfig, MeshVQVAE
from vqhps_ros.runtime import (
    CONTENT_HASH_KEY,
    TENSORRT_OPS,
    OnnxMeshDecoder,
    content_hash,
    export_mesh_decoder,
    operator_types,
    read_metadata,
    verify_content_hash,
)

# vqhps_ros.runtime imports onnx and onnxruntime lazily, so the skips can follow the imports.
pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

VERTEX_TOLERANCE = 1e-4  # absolute, outputs of magnitude ~5


@pytest.fixture(scope="module")
def indices_in(reference):
    """(2, 54) int64 codebook indices of the golden case."""
    return torch.from_numpy(reference.case("mesh_vqvae_54")["indices_in"])


@pytest.fixture(scope="module")
def decoder_path(golden_mesh_vqvae, tmp_path_factory):
    return export_mesh_decoder(golden_mesh_vqvae, tmp_path_factory.mktemp("onnx") / "mesh_decoder.onnx")


@pytest.fixture(scope="module")
def exported(decoder_path):
    return onnx.load(decoder_path)


@pytest.fixture(scope="module")
def decoder(decoder_path):
    return OnnxMeshDecoder(decoder_path, threads=2)


@pytest.mark.parametrize("batch", [1, 2, 5])
@torch.no_grad()
def test_onnx_runtime_matches_pytorch_at_any_batch(batch, golden_mesh_vqvae, decoder, indices_in):
    indices = indices_in.repeat(3, 1)[:batch]
    expected = golden_mesh_vqvae.decode(indices).numpy()
    vertices = decoder(indices.numpy())
    assert vertices.shape == (batch, 6890, 3) and vertices.dtype == np.float32
    np.testing.assert_allclose(vertices, expected, atol=VERTEX_TOLERANCE, rtol=0)


def test_graph_has_one_dynamic_batch_axis_and_static_sizes(exported):
    def dims(value):
        return [dim.dim_param or dim.dim_value for dim in value.type.tensor_type.shape.dim]

    (indices,), (vertices,) = exported.graph.input, exported.graph.output
    assert (indices.name, dims(indices)) == ("indices", ["batch", 54])
    assert indices.type.tensor_type.elem_type == onnx.TensorProto.INT64
    assert (vertices.name, dims(vertices)) == ("vertices", ["batch", 6890, 3])
    assert vertices.type.tensor_type.elem_type == onnx.TensorProto.FLOAT


def test_onnx_checker_accepts_the_file(decoder_path):
    onnx.checker.check_model(str(decoder_path), full_check=True)


def test_graph_uses_only_tensorrt_operators(exported):
    operators = operator_types(exported)
    assert "Einsum" not in operators
    assert operators <= TENSORRT_OPS, f"outside the allow-list: {sorted(operators - TENSORRT_OPS)}"
    assert {"Gather", "MatMul", "Elu"} <= operators  # the codebook gather and the mesh convolutions are there


def test_metadata_round_trips(exported, golden_mesh_vqvae):
    metadata = read_metadata(exported)
    assert MeshVQConfig.from_dict(json.loads(metadata["vqhps_ros.mesh_vq.config"])) == golden_mesh_vqvae.config
    assert metadata["vqhps_ros.mesh_vq.num_vertices"] == "6890"
    assert metadata["vqhps_ros.mesh_vq.num_tokens"] == "54"
    assert metadata["vqhps_ros.graph"] == "mesh_decoder"
    assert metadata["vqhps_ros.version"] == __version__
    assert int(metadata["vqhps_ros.max_batch"]) >= 1
    assert content_hash(exported) == metadata[CONTENT_HASH_KEY]
    assert verify_content_hash(exported) == metadata[CONTENT_HASH_KEY]


def test_content_hash_ignores_metadata_and_sees_weights(exported):
    edited = onnx.ModelProto()
    edited.CopyFrom(exported)
    edited.metadata_props.add(key="note", value="added after export")
    assert content_hash(edited) == content_hash(exported)
    weights = edited.graph.initializer[0]
    array = onnx.numpy_helper.to_array(weights).copy()
    array.flat[0] += 1
    weights.CopyFrom(onnx.numpy_helper.from_array(array, weights.name))
    assert content_hash(edited) != content_hash(exported)
    with pytest.raises(CheckpointError, match="content hash"):
        verify_content_hash(edited)


def test_engine_reads_its_sizes_from_the_metadata(decoder):
    assert (decoder.num_tokens, decoder.num_vertices, decoder.num_embeddings) == (54, 6890, 512)
    assert decoder.providers[-1] == "CPUExecutionProvider"


@torch.no_grad()
def test_engine_converts_other_integer_types(decoder, indices_in):
    expected = decoder(indices_in.numpy())
    np.testing.assert_array_equal(decoder(indices_in.numpy().astype(np.uint16)), expected)
    np.testing.assert_array_equal(decoder(indices_in.numpy().astype(np.int32)), expected)


def test_engine_returns_an_empty_batch_for_no_people(decoder):
    assert decoder(np.zeros((0, 54), dtype=np.int64)).shape == (0, 6890, 3)


@pytest.mark.parametrize(
    ("indices", "message"),
    [
        (np.zeros((1, 54), dtype=np.float32), r"expected int64 values, found float32"),
        (np.zeros((1, 54), dtype=bool), r"expected int64 values, found bool"),
        (np.zeros(54, dtype=np.int64), r"expected shape \(batch, 54\), found \(54,\)"),
        (np.zeros((1, 53), dtype=np.int64), r"expected shape \(batch, 54\), found \(1, 53\)"),
        (np.zeros((1, 54, 1), dtype=np.int64), r"expected shape \(batch, 54\), found \(1, 54, 1\)"),
        ([[0] * 54], r"expected a numpy array of shape \(batch, 54\), found list"),
        (np.full((1, 54), 512, dtype=np.int64), r"must be in \[0, 512\), found \[512, 512\]"),
        (np.full((1, 54), -1, dtype=np.int64), r"must be in \[0, 512\), found \[-1, -1\]"),
    ],
)
def test_engine_rejects_bad_indices(decoder, indices, message):
    with pytest.raises(InputError, match=message):
        decoder(indices)


def test_engine_rejects_missing_and_foreign_files(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        OnnxMeshDecoder(tmp_path / "absent.onnx")
    (tmp_path / "garbage.onnx").write_bytes(b"not a protobuf")
    with pytest.raises(CheckpointError, match="cannot load ONNX graph"):
        OnnxMeshDecoder(tmp_path / "garbage.onnx")
    identity = onnx.helper.make_model(
        onnx.helper.make_graph(
            [onnx.helper.make_node("Identity", ["x"], ["y"])], "identity",
            [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.INT64, ["batch", 54])],
            [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.INT64, ["batch", 54])],
        ),
        opset_imports=[onnx.helper.make_opsetid("", 17)], ir_version=8,
    )  # fmt: skip
    onnx.save(identity, tmp_path / "identity.onnx")
    with pytest.raises(CheckpointError, match="expected a mesh decoder exported by vqhps_ros"):
        OnnxMeshDecoder(tmp_path / "identity.onnx")


def test_export_creates_missing_folders_and_is_reproducible(golden_mesh_vqvae, exported, tmp_path):
    path = export_mesh_decoder(golden_mesh_vqvae, tmp_path / "new" / "deeper" / "decoder.onnx")
    assert path.is_file()
    assert read_metadata(onnx.load(path))[CONTENT_HASH_KEY] == read_metadata(exported)[CONTENT_HASH_KEY]
    assert [entry.name for entry in path.parent.iterdir()] == ["decoder.onnx"]  # no temporary file left


def test_failed_tracing_writes_nothing(golden_mesh_vqvae, tmp_path, monkeypatch):
    def broken_export(module, args, f, **kwargs):
        f.write(b"half a graph")
        raise RuntimeError("tracing failed")

    monkeypatch.setattr(torch.onnx, "export", broken_export)
    with pytest.raises(RuntimeError, match="tracing failed"):
        export_mesh_decoder(golden_mesh_vqvae, tmp_path / "decoder.onnx")
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_the_previous_file_and_leaves_no_temporary(golden_mesh_vqvae, tmp_path, monkeypatch):
    target = tmp_path / "decoder.onnx"
    target.write_bytes(b"previous engine input")

    def disk_full(descriptor):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic_files.os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        export_mesh_decoder(golden_mesh_vqvae, target)
    assert target.read_bytes() == b"previous engine input"
    assert list(tmp_path.iterdir()) == [target]


def test_export_leaves_every_training_flag_as_it_was(golden_mesh_vqvae, tmp_path):
    export_mesh_decoder(golden_mesh_vqvae, tmp_path / "eval.onnx")
    assert not any(module.training for module in golden_mesh_vqvae.modules())
    training = MeshVQVAE(golden_mesh_vqvae.config, golden_mesh_vqvae.connections).train()
    training.vq_vae.eval()
    export_mesh_decoder(training, tmp_path / "train.onnx")
    assert training.training and training.decoder.training and not training.vq_vae.training


def test_export_rejects_a_half_precision_model(golden_mesh_vqvae, tmp_path):
    half = MeshVQVAE(golden_mesh_vqvae.config, golden_mesh_vqvae.connections).half()
    with pytest.raises(InputError, match="float32 model"):
        export_mesh_decoder(half, tmp_path / "decoder.onnx")
    assert not (tmp_path / "decoder.onnx").exists()


def test_importing_the_runtime_needs_neither_onnx_nor_onnxruntime():
    code = "import sys, vqhps_ros.runtime; print(sorted({'onnx', 'onnxruntime'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"

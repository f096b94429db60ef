"""Mesh topology in exported graphs (a graph alone is enough to publish), and loading engines from the config."""

import json

import numpy as np
import pytest
from meshes import icosphere
from small_model import build_small_model

from vqhps_ros.body import H36M_17_JOINT_NAMES
from vqhps_ros.config import load_config
from vqhps_ros.errors import CheckpointError, InputError
from vqhps_ros.hps import save_model
from vqhps_ros.models import load_image_model
from vqhps_ros.runtime import export_vqhps
from vqhps_ros.runtime.export import model_topology
from vqhps_ros.runtime.loading import exported_graph, load_engine, resolve_model_path
from vqhps_ros.runtime.topology import (
    FACES_KEY,
    TOPOLOGY_ID_KEY,
    joint_set_name,
    mesh_topology_from_metadata,
    read_graph_metadata,
    topology_id,
)


@pytest.fixture(scope="module")
def model():
    return build_small_model()


@pytest.fixture(scope="module")
def graph(model, tmp_path_factory):
    return export_vqhps(model, tmp_path_factory.mktemp("graph") / "small.onnx", max_persons=4)


def test_exported_graph_carries_the_topology_of_its_model(model, graph):
    from_graph = mesh_topology_from_metadata(read_graph_metadata(graph), str(graph))
    from_model = model_topology(model)
    np.testing.assert_array_equal(from_graph.faces, model.faces)
    assert from_graph.num_vertices == 162 and from_graph.num_tokens == 6 and from_graph.codebook_size == 32
    assert from_graph.joint_names == ("a", "b", "c", "d") and from_graph.joint_set == "custom_4"
    assert from_graph.topology_id == from_model.topology_id == topology_id(162, model.faces)
    assert from_graph.bones == ()  # no skeleton is known for a custom joint set


def test_bundled_model_is_h36m_17_with_its_skeleton():
    topology = model_topology(load_image_model())
    assert topology.joint_set == "h36m_17" and topology.joint_names == H36M_17_JOINT_NAMES
    assert topology.num_vertices == 1229 and topology.faces.shape == (2454, 3)
    assert topology.num_tokens == 54 and topology.codebook_size == 512
    assert len(topology.bones) == 16 and all(0 <= a < 17 and 0 <= b < 17 for a, b in topology.bones)


def test_topology_id_changes_with_the_mesh():
    faces = icosphere(1)[1]
    assert topology_id(42, faces) == topology_id(42, faces.copy())
    assert topology_id(42, faces) != topology_id(42, faces[::-1])
    assert topology_id(42, faces) != topology_id(43, faces)
    assert joint_set_name(H36M_17_JOINT_NAMES) == "h36m_17" and joint_set_name(()) == ""


def test_incomplete_or_inconsistent_metadata_is_refused(graph):
    metadata = read_graph_metadata(graph)
    missing = {key: value for key, value in metadata.items() if key != TOPOLOGY_ID_KEY}
    with pytest.raises(CheckpointError, match=f"no {TOPOLOGY_ID_KEY} entry.*export it again"):
        mesh_topology_from_metadata(missing, "old.onnx")
    out_of_range = {**metadata, FACES_KEY: json.dumps([[0, 1, 500]])}
    with pytest.raises(CheckpointError, match="outside 0..161"):
        mesh_topology_from_metadata(out_of_range, "bad.onnx")


def test_unreadable_graph_files_are_named(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        read_graph_metadata(tmp_path / "none.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a protobuf at all \xff\xfe")
    with pytest.raises(CheckpointError, match="not a readable ONNX file"):
        read_graph_metadata(tmp_path / "junk.onnx")


def test_model_paths_are_checked(tmp_path):
    assert resolve_model_path("").name == "free_body_keypoint_vqhps.pt"  # the bundled default
    assert resolve_model_path("bundled:image").name == "free_body_vqhps.pt"
    with pytest.raises(CheckpointError, match="no bundled model named 'nothing'"):
        resolve_model_path("bundled:nothing")
    with pytest.raises(CheckpointError, match="does not exist"):
        resolve_model_path(str(tmp_path / "missing.pt"))
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(CheckpointError, match=r"expected a model file \(.pt\) or an exported graph"):
        resolve_model_path(str(tmp_path / "weights.bin"))


def test_a_graph_alone_runs_and_publishes(graph, model, tmp_path):
    config = load_config(overrides=[f"model.path={graph}", "model.backend=onnxruntime"])
    loaded = load_engine(config.model)
    try:
        assert loaded.engine.description.backend == "onnxruntime"
        np.testing.assert_array_equal(loaded.topology.faces, model.faces)
    finally:
        loaded.engine.deactivate()
    pytorch = load_config(overrides=[f"model.path={graph}", "model.backend=pytorch"])
    with pytest.raises(InputError, match="pytorch backend cannot run"):
        load_engine(pytorch.model)


def test_model_files_are_exported_once_into_the_cache(model, tmp_path):
    path = tmp_path / "small.pt"
    save_model(model, path, loss=0.0)
    first = exported_graph(model, path, tmp_path / "cache")
    modified = first.stat().st_mtime_ns
    assert exported_graph(model, path, tmp_path / "cache") == first and first.stat().st_mtime_ns == modified
    assert first.parent == tmp_path / "cache" / "graphs"
    config = load_config(overrides=[f"model.path={path}", f"model.engine_cache_dir={tmp_path / 'cache'}"])
    loaded = load_engine(config.model)
    try:
        assert loaded.engine.description.backend in ("onnxruntime", "tensorrt")  # auto runs the cached graph
        assert loaded.topology.topology_id == model_topology(model).topology_id
    finally:
        loaded.engine.deactivate()

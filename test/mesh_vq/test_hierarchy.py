"""Connection matrices generated for arbitrary template meshes (vqhps_ros.mesh_vq.hierarchy)."""

import numpy as np
import pytest
import torch
from meshes import icosphere

from vqhps_ros.errors import InputError
from vqhps_ros.mesh_vq import (
    MeshVQConfig,
    MeshVQVAE,
    build_hierarchy,
    build_mesh_hierarchy,
    chain_connections,
    hierarchy_config,
    hierarchy_layer_names,
    load_connections,
    save_hierarchy,
)
from vqhps_ros.mesh_vq.config import MEDIUM_LAYERS

SPHERE_LEVELS = (2562, 600, 150, 24)


def boosted_sphere(subdivisions: int, beta: float) -> tuple[np.ndarray, np.ndarray]:
    """An icosphere warped by a conformal map (relativistic aberration along z): triangles keep their shape but
    vertices crowd towards -z, edge lengths varying (1 + beta) / (1 - beta) times between the poles."""
    vertices, faces = icosphere(subdivisions)
    height = vertices[:, 2:]
    warped = np.concatenate([vertices[:, :2] * np.sqrt(1 - beta**2), height + beta], axis=1) / (1 + beta * height)
    return warped, faces


@pytest.fixture(scope="module")
def sphere():
    return icosphere(4)


@pytest.fixture(scope="module")
def hierarchy(sphere):
    return build_mesh_hierarchy(*sphere, SPHERE_LEVELS)


def real_pairs(connection):
    """(rows, ids) of the real (non-padding) neighbour slots."""
    rows, slots = np.nonzero(connection.neighbor_ids != connection.in_points)
    return rows, connection.neighbor_ids[rows, slots]


def layer_levels(levels: int) -> list[tuple[int, int]]:
    """(output level, input level) of each layer in config order."""
    encoder = [pair for level in range(levels) for pair in ((level, level), (level + 1, level))]
    decoder = [pair for level in reversed(range(levels)) for pair in ((level + 1, level + 1), (level, level + 1))]
    return encoder + [(levels, levels)] + decoder + [(0, 0)]


def assert_covering(connections):
    for connection in connections:
        rows, ids = real_pairs(connection)
        assert connection.counts.min() >= 1, f"{connection.name}: an output point reads nothing"
        assert np.array_equal(np.unique(rows), np.arange(connection.out_points)), connection.name
        assert np.array_equal(np.unique(ids), np.arange(connection.in_points)), f"{connection.name}: unread input"


def test_layers_follow_the_config_order(hierarchy):
    names = [connection.name for connection in hierarchy.connections]
    assert tuple(names) == hierarchy_layer_names(3) == MEDIUM_LAYERS
    assert hierarchy.level_points == SPHERE_LEVELS
    for connection, (out_level, in_level) in zip(hierarchy.connections, layer_levels(3), strict=True):
        assert (connection.out_points, connection.in_points) == (SPHERE_LEVELS[out_level], SPHERE_LEVELS[in_level])


def test_every_point_gives_and_receives_in_every_layer(hierarchy):
    assert_covering(hierarchy.connections)


def test_levels_are_nested_and_rows_start_with_their_own_point(hierarchy):
    levels = hierarchy.level_vertices
    layers = dict((connection.name, connection) for connection in hierarchy.connections)
    for level in range(1, len(levels)):
        assert np.isin(levels[level], levels[level - 1]).all()
        pool = layers[f"pool{2 * level - 1}"]
        assert np.array_equal(levels[level - 1][pool.neighbor_ids[:, 0]], levels[level])
    for level in range(len(levels)):
        conv = layers[f"pool{2 * level}"]
        assert np.array_equal(conv.neighbor_ids[:, 0], np.arange(conv.out_points))


def test_unpool_is_the_transpose_of_pool_and_decoder_convs_mirror_the_encoder(hierarchy):
    layers = dict((connection.name, connection) for connection in hierarchy.connections)
    for index in range(7):
        encoder, decoder = layers[f"pool{index}"], layers[f"unpool{index}"]
        if index % 2 == 0:
            assert np.array_equal(encoder.neighbor_ids, decoder.neighbor_ids)
            rows, ids = real_pairs(encoder)
            assert {(a, b) for a, b in zip(rows, ids, strict=True)} == {(b, a) for a, b in zip(rows, ids, strict=True)}
        else:
            pool_rows, pool_ids = real_pairs(encoder)
            unpool_rows, unpool_ids = real_pairs(decoder)
            assert set(zip(pool_rows, pool_ids, strict=True)) == set(zip(unpool_ids, unpool_rows, strict=True))


def test_neighbours_are_local_on_the_surface(hierarchy, sphere):
    vertices = sphere[0]
    levels = hierarchy.level_vertices
    for connection, (out_level, in_level) in zip(hierarchy.connections, layer_levels(3), strict=True):
        rows, ids = real_pairs(connection)
        gap = np.linalg.norm(vertices[levels[out_level][rows]] - vertices[levels[in_level][ids]], axis=1)
        # Mean spacing of the coarser level's points on the unit sphere (area 4 pi).
        spacing = np.sqrt(4 * np.pi / SPHERE_LEVELS[max(out_level, in_level)])
        assert gap.max() < 3.0 * spacing, connection.name
    # In the graph metric the pool radius stays a small multiple of the level's sampling (covering) radius.
    ratios = np.asarray(hierarchy.pool_radii) / np.asarray(hierarchy.covering_radii[1:])
    assert np.all((ratios >= 1.0) & (ratios < 4.0)), ratios


def test_row_sizes_follow_the_targets_and_stay_bounded(sphere):
    hierarchy = build_mesh_hierarchy(*sphere, SPHERE_LEVELS, conv_neighbors=9.0, pool_coverage=5.0)
    layers = dict((connection.name, connection) for connection in hierarchy.connections)
    assert layers["pool0"].counts.mean() == pytest.approx(7.0, abs=0.05)  # the icosphere's own 1-ring
    for level in (1, 2, 3):
        assert layers[f"pool{2 * level}"].counts.mean() == pytest.approx(9.0, abs=0.5)
        assert layers[f"unpool{2 * level - 1}"].counts.mean() == pytest.approx(5.0, abs=0.5)
    for connection in hierarchy.connections:
        assert connection.max_neighbors <= 3 * connection.counts.mean(), connection.name


def test_relative_metric_follows_the_template_resolution():
    vertices, faces = boosted_sphere(4, beta=0.8)
    relative = {c.name: c for c in build_hierarchy(vertices, faces, SPHERE_LEVELS, metric="relative")}
    length = {c.name: c for c in build_hierarchy(vertices, faces, SPHERE_LEVELS, metric="length")}
    assert_covering(relative.values())
    assert_covering(length.values())
    # Where vertices crowd, equal-length balls hold many more of them; resolution-relative balls do not.
    assert relative["pool1"].max_neighbors < 1.5 * relative["pool1"].counts.mean()
    assert length["pool1"].max_neighbors > 3 * relative["pool1"].max_neighbors


def test_chain_validation_and_file_round_trip(hierarchy, tmp_path):
    tables = [(connection.name, connection.to_array()) for connection in hierarchy.connections]
    chained = chain_connections(tables)
    save_hierarchy(tmp_path, hierarchy)
    loaded = load_connections(tmp_path, hierarchy_layer_names(3))
    for original, parsed, read in zip(hierarchy.connections, chained, loaded, strict=True):
        for other in (parsed, read):
            assert other.name == original.name and other.in_points == original.in_points
            assert np.array_equal(other.neighbor_ids, original.neighbor_ids)
            assert np.array_equal(other.counts, original.counts)
    with np.load(tmp_path / "hierarchy_levels.npz") as levels:
        for level, ids in enumerate(hierarchy.level_vertices):
            assert np.array_equal(levels[f"level{level}"], ids)
        assert str(levels["metric"]) == "relative"


def test_mesh_vqvae_runs_on_generated_connections(hierarchy):
    torch.manual_seed(0)
    model = MeshVQVAE(hierarchy_config(3, num_embeddings=32), hierarchy.connections).eval()
    verts = torch.randn(2, SPHERE_LEVELS[0], 3)
    with torch.no_grad():
        tokens = model.encode(verts)
        meshes = model.decode(tokens)
        output = model(verts)
    assert tokens.shape == (2, SPHERE_LEVELS[-1]) and tokens.dtype == torch.int64
    assert meshes.shape == (2, SPHERE_LEVELS[0], 3) and torch.isfinite(meshes).all()
    assert output.verts.shape == (2, SPHERE_LEVELS[0], 3)


def test_config_factory():
    assert hierarchy_config(3) == MeshVQConfig()
    config = hierarchy_config(2, latent_channels=16, base_channels=8, num_embeddings=64)
    assert config.connection_layers == hierarchy_layer_names(2)
    assert config.channels == (8, 8, 16, 16, 16, 16, 16, 8, 8, 3)
    assert config.weight_nums == (9, 0, 9, 0, 9, 9, 0, 9, 0, 9)
    assert config.embedding_dim == 16 and config.num_embeddings == 64
    with pytest.raises(InputError, match="levels must be a positive integer"):
        hierarchy_config(0)


def test_same_seed_same_hierarchy_other_seed_other_points(sphere):
    levels = (2562, 300, 40)
    first, again = build_mesh_hierarchy(*sphere, levels, seed=3), build_mesh_hierarchy(*sphere, levels, seed=3)
    other = build_mesh_hierarchy(*sphere, levels, seed=4)
    for a, b in zip(first.connections, again.connections, strict=True):
        assert np.array_equal(a.neighbor_ids, b.neighbor_ids)
    assert not np.array_equal(first.level_vertices[1], other.level_vertices[1])


def test_disconnected_template_with_degenerate_faces():
    body, body_faces = icosphere(3)
    eye, eye_faces = icosphere(1)
    # A small separate component, an unreferenced far vertex, and a coincident copy of vertex 0.
    vertices = np.concatenate([body, 0.2 * eye + [1.4, 0.0, 0.0], [[0.0, 0.0, 3.0]], body[:1]])
    twin = len(vertices) - 1
    degenerate = [[0, 0, 1], [twin, 0, 1], [2, 2, 2]]
    faces = np.concatenate([body_faces, eye_faces + len(body), degenerate])
    levels = (len(vertices), 200, 40, 6)
    for metric in ("relative", "length"):
        hierarchy = build_mesh_hierarchy(vertices, faces, levels, metric=metric)
        assert_covering(hierarchy.connections)
        chain_connections([(connection.name, connection.to_array()) for connection in hierarchy.connections])
    conv0 = hierarchy.connections[0]
    assert twin in conv0.neighbor_ids[0, : conv0.counts[0]]  # coincident vertices are neighbours, self first
    assert conv0.neighbor_ids[0, 0] == 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda v, f, n: (v, f + 10_000, n), r"faces must index vertices in \[0, 161\]"),
        (lambda v, f, n: (v, f - 1, n), r"found ids in \[-1"),
        (lambda v, f, n: (v, f.astype(float), n), "expected integer vertex ids"),
        (lambda v, f, n: (v, f[:, :2], n), r"expected faces of shape \(F, 3\)"),
        (lambda v, f, n: (v[:, :2], f, n), r"expected vertices of shape \(V, 3\)"),
        (lambda v, f, n: (np.where(v > 0.9, np.nan, v), f, n), "NaN or inf"),
        (lambda v, f, n: (v, f, (162, 40, 40)), "fewer points than the one before"),
        (lambda v, f, n: (v, f, (162, 200, 10)), "level 1 has 200 points after 162"),
        (lambda v, f, n: (v, f, (162, 40, 0)), "at least 1"),
        (lambda v, f, n: (v, f, (40, 10)), r"expected 162 \(its vertex count\), found 40"),
        (lambda v, f, n: (v, f, (162,)), "at least two levels"),
        (lambda v, f, n: (v, f, (162, 40.0)), "integer point counts"),
        (lambda v, f, n: (v * 0.0, f, n), "zero length"),
    ],
)
def test_invalid_inputs_are_rejected_with_clear_messages(change, message):
    vertices, faces = icosphere(2)
    vertices, faces, levels = change(vertices, faces, (162, 40, 8))
    with pytest.raises(InputError, match=message):
        build_hierarchy(vertices, faces, levels)


@pytest.mark.parametrize(
    ("keyword", "value", "message"),
    [("conv_neighbors", 0.5, "conv_neighbors must be a finite number >= 1"),
     ("pool_coverage", float("nan"), "pool_coverage must be a finite number >= 1"),
     ("metric", "geodesic", "metric must be one of"),
     ("seed", -1, "seed must be a non-negative integer")],
)
def test_invalid_settings_are_rejected(keyword, value, message):
    vertices, faces = icosphere(2)
    with pytest.raises(InputError, match=message):
        build_hierarchy(vertices, faces, (162, 40, 8), **{keyword: value})

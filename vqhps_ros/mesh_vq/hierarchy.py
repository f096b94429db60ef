"""Connection matrices of a MeshConvolution-style point hierarchy, generated for any template mesh.

What the official files are (measured on MeshConvolution's dfaust2 set, 6890 -> 1925 -> 400 -> 54 points):
- the level-0 convolution reads each SMPL vertex and its 1-ring (7 points on average);
- the points of a level are a subset of the finer level's points (a maximal independent set of its graph);
- a pool row is the coarse point (first) and its 2-ring in the finer level's graph, sorted by hops;
- a coarse convolution row holds the coarse points at most 3 finer-level hops away (10.6, 14.0, 10.3 on average),
  so the relation is symmetric; the decoder's convolutions read the same sets as the encoder's;
- unpool rows are exactly the transpose of pool rows: each fine point lies in 5.4 to 6.9 pool rows on average.

This generator keeps that structure and lets the caller choose the number of points of every level:
1. Distances are shortest paths along the template's edges. With the default metric "relative" an edge weighs its
   length over the mean edge length at its two ends, so one step costs about 1 wherever the template is dense or
   coarse: sampling then follows the template's resolution (more points on a detailed face or hands), as the
   official hop counts do. The metric "length" uses plain edge lengths (sampling uniform in surface area), which
   crowds the rows of finely meshed regions. The local scale is per vertex, not per direction: long thin
   triangles still make balls reach more vertices across them than along them.
2. One farthest-point ordering of the vertices, from a seeded start vertex; level l is its first N_l vertices, so
   every level is a subset of the finer ones and an h_l-net: every vertex lies within the covering radius h_l of a
   level point, and level points are at least h_l apart.
3. Level 0 convolves over the template's own edges (its 1-ring), as the official files do. A coarser level
   convolves over its points within one radius, chosen so that rows hold `conv_neighbors` points on average (a
   radius rather than the k nearest keeps the relation symmetric, like the official one).
4. A pool row reads the finer level's points within max(h_l, the radius that puts every fine point in
   `pool_coverage` rows on average); h_l covers every vertex, so every fine point is pooled. Unpool = transpose.
Rows are sorted by distance, so a row's first neighbour is its own point (pool and convolution rows alike).

Disconnected templates (separate eyes, teeth, unreferenced vertices): the components are joined by "bridge" edges
between their closest vertices (Euclidean), weighed like mesh edges, until the graph is connected. Distances then
cross the gaps, so a small component next to the body shares the body's coarse points instead of taking a token
of its own, every vertex is pooled at every level, and nothing needs one point per component. A component far
from everything else is far in the metric too and gets level points of its own. Level-0 convolutions use real
edges only (an unreferenced vertex reads itself there).
Degenerate faces are harmless: repeated corner ids add no edge, and zero-length edges weigh a tiny positive
amount, so coincident vertices are neighbours but never tie with a point's distance to itself.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import connected_components, dijkstra
from scipy.spatial import cKDTree

from ..errors import InputError
from .config import MeshVQConfig
from .connections import Connection, save_connections

EDGE_METRICS = ("relative", "length")
LEVELS_FILE = "hierarchy_levels.npz"

# Zero-length edges weigh this fraction of the metric's unit, so distinct vertices never share a distance of 0.
_MIN_EDGE_WEIGHT = 1e-6
# Components this small find their nearest outside vertex with one k-nearest query instead of their own KD-tree.
_SMALL_COMPONENT = 32
# Dijkstra from several sources returns a dense (sources, V) array: this bounds its number of values.
_DIJKSTRA_CHUNK_VALUES = 4_000_000
# The first distance limit, in covering radii: enough for the default targets on well-sampled meshes.
_FIRST_LIMIT = 3.0


@dataclass(frozen=True)
class MeshHierarchy:
    """The connection matrices of a hierarchy and where its points lie on the template.

    connections: the 4L + 2 layers in config order (pool0 .. pool{2L}, unpool{2L} .. unpool0).
    level_vertices: L + 1 arrays (N_l,) int64 of template vertex ids, ascending; level 0 is arange(V).
    covering_radii: (L + 1) every vertex lies within this distance of a point of the level (0 for level 0).
    conv_radii: (L + 1) the farthest neighbour a convolution row of the level may read.
    pool_radii: (L) the farthest finer point a pool row of level l + 1 may read.
    metric: the edge metric ("relative" or "length") every distance above is measured in.
    """

    connections: tuple[Connection, ...]
    level_vertices: tuple[np.ndarray, ...]
    covering_radii: tuple[float, ...]
    conv_radii: tuple[float, ...]
    pool_radii: tuple[float, ...]
    metric: str

    @property
    def level_points(self) -> tuple[int, ...]:
        return tuple(len(ids) for ids in self.level_vertices)

    @property
    def levels(self) -> int:
        """Number of pooling steps L."""
        return len(self.level_vertices) - 1


def hierarchy_layer_names(levels: int) -> tuple[str, ...]:
    """Layer names of a hierarchy with `levels` pooling steps: pool0 .. pool{2L}, unpool{2L} .. unpool0."""
    _check_positive_int(levels, "levels")
    encoder = [f"pool{index}" for index in range(2 * levels + 1)]
    decoder = [f"unpool{index}" for index in reversed(range(2 * levels + 1))]
    return tuple(encoder + decoder)


def hierarchy_config(levels: int, *, latent_channels: int = 9, base_channels: int = 32, weight_num: int = 9,
                     **quantizer) -> MeshVQConfig:
    """A MeshVQConfig for a hierarchy with `levels` pooling steps (levels=3 gives the official "medium" one).

    The encoder works at base_channels * 2**l channels on level l (convolution, then pooling), its last layer
    convolves the coarsest level to `latent_channels` per token; the decoder mirrors it and ends with 3
    coordinates. Convolutions use `weight_num` basis kernels; pool / unpool layers are pure resampling.
    `quantizer`: the remaining MeshVQConfig fields (num_embeddings, commitment_cost, decay, epsilon).
    """
    for value, name in ((levels, "levels"), (latent_channels, "latent_channels"),
                        (base_channels, "base_channels"), (weight_num, "weight_num")):
        _check_positive_int(value, name)
    widths = [base_channels * 2**level for level in range(levels)]
    encoder = [width for width in widths for _ in range(2)] + [latent_channels]
    decoder = [width for width in reversed(widths) for _ in range(2)] + [3]
    is_conv = [True, False] * levels + [True]
    is_conv = is_conv + is_conv[::-1]
    return MeshVQConfig(
        connection_layers=hierarchy_layer_names(levels),
        channels=tuple(encoder + decoder),
        weight_nums=tuple(weight_num if conv else 0 for conv in is_conv),
        residual_rates=tuple(0.0 if conv else 1.0 for conv in is_conv),
        **quantizer,
    )


def build_hierarchy(vertices, faces, level_points: Sequence[int], conv_neighbors: float = 11.0,
                    pool_coverage: float = 6.0, metric: str = "relative", seed: int = 0) -> list[Connection]:
    """The connection matrices of `build_mesh_hierarchy`, in config layer order."""
    hierarchy = build_mesh_hierarchy(vertices, faces, level_points, conv_neighbors, pool_coverage, metric, seed)
    return list(hierarchy.connections)


def build_mesh_hierarchy(vertices, faces, level_points: Sequence[int], conv_neighbors: float = 11.0,
                         pool_coverage: float = 6.0, metric: str = "relative", seed: int = 0) -> MeshHierarchy:
    """Sample a point hierarchy on a template mesh and build its 4L + 2 connection matrices.

    vertices: (V, 3) float template positions. faces: (F, K) int corner ids, K >= 3 (triangles: K = 3).
    level_points: (V, N_1, ..., N_L) points per level, strictly decreasing; level 0 is the template itself.
    conv_neighbors: mean size (the point included) of the convolution rows of levels 1..L (official: 10 to 14).
    pool_coverage: mean number of pool rows each finer point lies in (official: 5.4 to 6.9).
    metric: "relative" (edge length over local resolution) or "length" (plain edge length), see module docstring.
    seed: picks the vertex the farthest-point ordering starts from; the result is deterministic given it.
    """
    vertices, faces = _checked_mesh(vertices, faces)
    level_points = _checked_levels(level_points, len(vertices))
    _check_targets(conv_neighbors, pool_coverage, metric, seed)
    edges = _mesh_edges(faces)
    bridges = _component_bridges(vertices, edges)
    weights = _edge_weights(vertices, edges, bridges, metric)
    graph = _weighted_graph(len(vertices), np.concatenate([edges, bridges]), weights)
    start = int(np.random.default_rng(seed).integers(len(vertices)))
    order, covering = _farthest_point_order(graph, level_points[1], start)
    level_vertices = [np.arange(len(vertices))] + [np.sort(order[:count]) for count in level_points[1:]]
    covering_radii = [0.0] + [float(covering[count - 1]) for count in level_points[1:]]

    mesh_weights = weights[: len(edges)]
    coarse = [
        _level_neighbourhoods(graph, level_vertices[level], level_vertices[level - 1], covering_radii[level],
                              conv_neighbors, pool_coverage)
        for level in range(1, len(level_points))
    ]
    convs = [_edge_convolution(len(vertices), edges, mesh_weights)] + [layers.conv for layers in coarse]
    return MeshHierarchy(
        connections=tuple(_layers_in_config_order(convs, [layers.pool for layers in coarse],
                                                  [layers.unpool for layers in coarse])),
        level_vertices=tuple(level_vertices),
        covering_radii=tuple(covering_radii),
        conv_radii=(float(mesh_weights.max(initial=0.0)),) + tuple(layers.conv_radius for layers in coarse),
        pool_radii=tuple(layers.pool_radius for layers in coarse),
        metric=metric,
    )


def save_hierarchy(folder: str | Path, hierarchy: MeshHierarchy) -> None:
    """Write `_<layer>.npy` per layer (the official format, readable by `load_connections`) and
    `hierarchy_levels.npz`: `level<l>` (N_l,) template vertex ids of each level, plus the radii."""
    folder = Path(folder)
    save_connections(folder, hierarchy.connections)
    arrays = {f"level{level}": ids for level, ids in enumerate(hierarchy.level_vertices)}
    arrays.update(covering_radii=np.asarray(hierarchy.covering_radii), conv_radii=np.asarray(hierarchy.conv_radii),
                  pool_radii=np.asarray(hierarchy.pool_radii), metric=np.asarray(hierarchy.metric))
    handle, temporary = tempfile.mkstemp(dir=folder, suffix=".npz")
    try:
        with os.fdopen(handle, "wb") as stream:
            np.savez(stream, **arrays)
        os.replace(temporary, folder / LEVELS_FILE)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# Input checks ---------------------------------------------------------------------------------------------------


def _checked_mesh(vertices, faces) -> tuple[np.ndarray, np.ndarray]:
    """-> vertices (V, 3) float64, faces (F, K) int64, or an InputError saying what is wrong."""
    vertices = np.asarray(vertices)
    if vertices.ndim != 2 or vertices.shape[1] != 3 or vertices.shape[0] < 2:
        raise InputError(f"expected vertices of shape (V, 3) with V >= 2, found shape {vertices.shape}")
    if not (np.issubdtype(vertices.dtype, np.floating) or np.issubdtype(vertices.dtype, np.integer)):
        raise InputError(f"expected numeric vertex positions, found dtype {vertices.dtype}")
    vertices = vertices.astype(np.float64)
    if not np.all(np.isfinite(vertices)):
        raise InputError("vertices contain NaN or inf")
    faces = np.asarray(faces)
    if faces.ndim != 2 or faces.shape[1] < 3 or faces.shape[0] < 1:
        raise InputError(f"expected faces of shape (F, 3) (or (F, K) polygons, K >= 3), found shape {faces.shape}")
    if not np.issubdtype(faces.dtype, np.integer):
        raise InputError(f"expected integer vertex ids in faces, found dtype {faces.dtype}")
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise InputError(
            f"faces must index vertices in [0, {len(vertices) - 1}] ({len(vertices)} vertices), "
            f"found ids in [{faces.min()}, {faces.max()}]"
        )
    return vertices, faces.astype(np.int64)


def _checked_levels(level_points: Sequence[int], vertex_count: int) -> tuple[int, ...]:
    """(V, N_1, ..., N_L): integers, the template's vertex count first, strictly decreasing, at least 1."""
    counts = tuple(level_points)
    if len(counts) < 2:
        raise InputError(f"expected at least two levels (V, N_1, ...), found level_points={counts}")
    if not all(isinstance(count, (int, np.integer)) and not isinstance(count, bool) for count in counts):
        raise InputError(f"expected integer point counts, found level_points={counts}")
    counts = tuple(int(count) for count in counts)
    if counts[0] != vertex_count:
        raise InputError(
            f"level_points[0] is the template itself: expected {vertex_count} (its vertex count), found {counts[0]}"
        )
    for level in range(1, len(counts)):
        if not 1 <= counts[level] < counts[level - 1]:
            raise InputError(
                f"each level must have fewer points than the one before and at least 1: level {level} has "
                f"{counts[level]} points after {counts[level - 1]} (level_points={counts})"
            )
    return counts


def _check_targets(conv_neighbors: float, pool_coverage: float, metric: str, seed: int) -> None:
    for value, name in ((conv_neighbors, "conv_neighbors"), (pool_coverage, "pool_coverage")):
        if not isinstance(value, (int, float, np.integer, np.floating)) or not value >= 1.0 or math.isinf(value):
            raise InputError(f"{name} must be a finite number >= 1 (the point itself counts), found {value!r}")
    if metric not in EDGE_METRICS:
        raise InputError(f"metric must be one of {EDGE_METRICS}, found {metric!r}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise InputError(f"seed must be a non-negative integer, found {seed!r}")


def _check_positive_int(value, name: str) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise InputError(f"{name} must be a positive integer, found {value!r}")


# The edge graph -------------------------------------------------------------------------------------------------


def _mesh_edges(faces: np.ndarray) -> np.ndarray:
    """(F, K) polygons -> (E, 2) unique undirected edges (i < j); repeated corners of degenerate faces add none."""
    pairs = np.stack([faces.ravel(), np.roll(faces, -1, axis=1).ravel()], axis=1)
    pairs = np.sort(pairs, axis=1)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    return np.unique(pairs, axis=0).reshape(-1, 2)


def _component_bridges(vertices: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """(B, 2) extra edges joining the connected components, each between two closest vertices (Euclidean).

    Borůvka-style rounds: every component but the largest links to its nearest outside vertex, which at least
    halves the number of components per round.
    """
    vertex_count = len(vertices)
    tree = cKDTree(vertices)
    bridges = np.empty((0, 2), dtype=np.int64)
    while True:
        adjacency = _weighted_graph(vertex_count, np.concatenate([edges, bridges]), None)
        count, labels = connected_components(adjacency, directed=False)
        if count == 1:
            return bridges
        largest = int(np.argmax(np.bincount(labels)))
        new = [_nearest_outside_pair(vertices, tree, labels, c) for c in range(count) if c != largest]
        bridges = np.unique(np.sort(np.concatenate([bridges, np.asarray(new)]), axis=1), axis=0)


def _nearest_outside_pair(vertices: np.ndarray, tree: cKDTree, labels: np.ndarray, component: int) -> list[int]:
    """[inside, outside]: the closest pair between a component's vertices and all the others."""
    members = np.flatnonzero(labels == component)
    if len(members) <= _SMALL_COMPONENT:
        # At most len(members) of the k nearest are inside, so one of them is outside.
        distances, ids = tree.query(vertices[members], k=len(members) + 1)
        distances = np.where(labels[ids] != component, distances, np.inf)
    else:
        others = np.flatnonzero(labels != component)
        distances, nearest = cKDTree(vertices[others]).query(vertices[members])
        distances, ids = distances[:, None], others[nearest][:, None]
    row, column = np.unravel_index(int(np.argmin(distances)), distances.shape)
    return [int(members[row]), int(ids[row, column])]


def _edge_weights(vertices: np.ndarray, edges: np.ndarray, bridges: np.ndarray, metric: str) -> np.ndarray:
    """(E + B,) positive weights of the mesh edges then the bridges, in the chosen metric."""
    all_edges = np.concatenate([edges, bridges])
    lengths = np.linalg.norm(vertices[all_edges[:, 0]] - vertices[all_edges[:, 1]], axis=1)
    if metric == "length":
        positive = lengths[lengths > 0]
        if positive.size == 0:
            raise InputError("all edges have zero length: the template's vertices coincide")
        return np.maximum(lengths, _MIN_EDGE_WEIGHT * float(np.median(positive)))
    local = _local_edge_length(len(vertices), edges, lengths[: len(edges)])
    relative = lengths / (0.5 * (local[all_edges[:, 0]] + local[all_edges[:, 1]]))
    return np.maximum(relative, _MIN_EDGE_WEIGHT)


def _local_edge_length(vertex_count: int, edges: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """(V,) mean length of each vertex's non-degenerate mesh edges; vertices without one get the median."""
    positive = lengths > 0
    if not np.any(positive):
        raise InputError("every face is degenerate (all edges have zero length): the template has no surface")
    ends = edges[positive].ravel()
    sums = np.bincount(ends, weights=np.repeat(lengths[positive], 2), minlength=vertex_count)
    counts = np.bincount(ends, minlength=vertex_count)
    local = np.divide(sums, counts, out=np.zeros(vertex_count), where=counts > 0)
    local[counts == 0] = np.median(local[counts > 0])
    return local


def _weighted_graph(vertex_count: int, edges: np.ndarray, weights: np.ndarray | None) -> csr_matrix:
    """(V, V) symmetric CSR adjacency of unique undirected edges (E, 2); weights (E,) or 1."""
    weights = np.ones(len(edges)) if weights is None else weights
    rows = np.concatenate([edges[:, 0], edges[:, 1]])
    columns = np.concatenate([edges[:, 1], edges[:, 0]])
    data = np.concatenate([weights, weights]).astype(np.float64)
    return coo_matrix((data, (rows, columns)), shape=(vertex_count, vertex_count)).tocsr()


# Sampling and neighbourhoods ------------------------------------------------------------------------------------


def _farthest_point_order(graph: csr_matrix, count: int, start: int) -> tuple[np.ndarray, np.ndarray]:
    """The first `count` vertices of a farthest-point ordering -> order (count,), covering (count,).

    covering[k]: the largest distance from any vertex to the first k + 1 ordered vertices. Each new vertex only
    lowers distances smaller than the current covering radius, so its Dijkstra search stops there.
    """
    nearest = np.full(graph.shape[0], np.inf)
    order = np.empty(count, dtype=np.int64)
    covering = np.empty(count)
    current = start
    for index in range(count):
        order[index] = current
        reach = dijkstra(graph, directed=True, indices=current, limit=float(nearest.max()))
        np.minimum(nearest, reach, out=nearest)
        current = int(np.argmax(nearest))
        covering[index] = nearest[current]
    return order, covering


def _distances_within(graph: csr_matrix, sources: np.ndarray, limit: float) -> tuple[np.ndarray, ...]:
    """Every (source index, vertex, distance) with distance <= limit, as three flat arrays."""
    chunk = max(1, _DIJKSTRA_CHUNK_VALUES // graph.shape[0])
    rows, columns, distances = [], [], []
    for begin in range(0, len(sources), chunk):
        reach = dijkstra(graph, directed=True, indices=sources[begin:begin + chunk], limit=limit)
        row, column = np.nonzero(reach <= limit)
        rows.append(row + begin)
        columns.append(column)
        distances.append(reach[row, column])
    return np.concatenate(rows), np.concatenate(columns), np.concatenate(distances)


class _LevelLayers(NamedTuple):
    """The layers of one coarse level: conv (N, N), pool (N reading N_finer), unpool (N_finer reading N)."""

    conv: Connection
    pool: Connection
    unpool: Connection
    conv_radius: float
    pool_radius: float


def _level_neighbourhoods(graph: csr_matrix, points: np.ndarray, finer: np.ndarray, covering: float,
                          conv_neighbors: float, pool_coverage: float) -> _LevelLayers:
    """Convolution rows of a level, its pool rows over the finer level and their transpose (the unpool rows).

    points, finer: template vertex ids of the level and of the finer one. The search limit grows until both
    targets are reachable; the graph is connected, so it ends.
    """
    conv_pairs_needed = math.ceil(min(conv_neighbors, len(points)) * len(points))
    pool_pairs_needed = math.ceil(min(pool_coverage, len(points)) * len(finer))
    limit = _FIRST_LIMIT * covering
    while True:
        rows, vertices, distances = _distances_within(graph, points, limit)
        conv = _pairs_into(rows, vertices, distances, points, graph.shape[0])
        pool = _pairs_into(rows, vertices, distances, finer, graph.shape[0])
        if len(conv[2]) >= conv_pairs_needed and len(pool[2]) >= pool_pairs_needed:
            break
        limit *= 2.0
    conv_radius = float(np.partition(conv[2], conv_pairs_needed - 1)[conv_pairs_needed - 1])
    # The covering radius (with slack for rounding) puts every finer point into at least one pool row.
    pool_radius = float(np.partition(pool[2], pool_pairs_needed - 1)[pool_pairs_needed - 1])
    pool_radius = max(pool_radius, covering * (1.0 + 1e-9))
    conv_rows = _connection_from_pairs("conv", *_within(conv, conv_radius), len(points), len(points))
    coarse, fine, distances = _within(pool, pool_radius)
    pool_rows = _connection_from_pairs("pool", coarse, fine, distances, len(points), len(finer))
    unpool_rows = _connection_from_pairs("unpool", fine, coarse, distances, len(finer), len(points))
    return _LevelLayers(conv_rows, pool_rows, unpool_rows, conv_radius, pool_radius)


def _pairs_into(rows: np.ndarray, vertices: np.ndarray, distances: np.ndarray, targets: np.ndarray,
                vertex_count: int) -> tuple[np.ndarray, ...]:
    """Keep the pairs whose vertex is one of `targets` (ids) and renumber it as its index in `targets`."""
    position = np.full(vertex_count, -1, dtype=np.int64)
    position[targets] = np.arange(len(targets))
    keep = position[vertices] >= 0
    return rows[keep], position[vertices[keep]], distances[keep]


def _within(pairs: tuple[np.ndarray, ...], radius: float) -> tuple[np.ndarray, ...]:
    keep = pairs[2] <= radius
    return tuple(array[keep] for array in pairs)


def _edge_convolution(vertex_count: int, edges: np.ndarray, weights: np.ndarray) -> Connection:
    """Level-0 convolution rows: each vertex, then its mesh neighbours by increasing edge weight."""
    own = np.arange(vertex_count)
    rows = np.concatenate([own, edges[:, 0], edges[:, 1]])
    columns = np.concatenate([own, edges[:, 1], edges[:, 0]])
    distances = np.concatenate([np.zeros(vertex_count), weights, weights])
    return _connection_from_pairs("conv", rows, columns, distances, vertex_count, vertex_count)


def _connection_from_pairs(name: str, rows: np.ndarray, columns: np.ndarray, distances: np.ndarray,
                           out_points: int, in_points: int) -> Connection:
    """(row, column, distance) pairs -> a Connection whose rows list their columns by increasing distance.

    Each row's own point (distance 0; other distances are positive) comes first. Rows must be non-empty.
    """
    order = np.lexsort((columns, distances, rows))
    rows, columns = rows[order], columns[order]
    counts = np.bincount(rows, minlength=out_points)
    if counts.min() < 1:  # guarded by construction (own point, covering radius); kept as a loud invariant
        raise RuntimeError(f"{name}: output point {int(np.argmin(counts))} reads no input point")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    slots = np.arange(len(rows)) - starts[rows]
    neighbor_ids = np.full((out_points, int(counts.max())), in_points, dtype=np.int64)
    neighbor_ids[rows, slots] = columns
    return Connection(name=name, neighbor_ids=neighbor_ids, counts=counts.astype(np.int64), in_points=in_points)


def _layers_in_config_order(convs: list[Connection], pools: list[Connection],
                            unpools: list[Connection]) -> list[Connection]:
    """Name and order the layers: conv/pool per level, latent conv, then the mirrored decoder.

    convs: L + 1 convolutions (level 0 .. L); pools: L layers (level l -> l + 1); unpools: L (l + 1 -> l).
    """
    levels = len(pools)
    encoder, decoder = [], []
    for level in range(levels):
        encoder.append(replace(convs[level], name=f"pool{2 * level}"))
        encoder.append(replace(pools[level], name=f"pool{2 * level + 1}"))
        decoder.append(replace(convs[level], name=f"unpool{2 * level}"))
        decoder.append(replace(unpools[level], name=f"unpool{2 * level + 1}"))
    encoder.append(replace(convs[levels], name=f"pool{2 * levels}"))
    decoder.append(replace(convs[levels], name=f"unpool{2 * levels}"))
    return encoder + decoder[::-1]

"""Connection matrices of the mesh hierarchy, in MeshConvolution's file format.

A file `_<layer>.npy` is an integer array (P_out, 1 + 2 * M): column 0 is the number of neighbours of an output
point, then M pairs (neighbour id, distance). Unused slots hold the id P_in (the number of input points), which
points at the zero row appended to the input. Distances are not used by the network.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConnectionMatrixError


@dataclass(frozen=True)
class Connection:
    """Neighbourhoods of one layer: output point p reads input points `neighbor_ids[p, :counts[p]]`.

    neighbor_ids: (P_out, M) int64, padded with `in_points`.
    counts: (P_out,) int64.
    """

    name: str
    neighbor_ids: np.ndarray
    counts: np.ndarray
    in_points: int

    @property
    def out_points(self) -> int:
        return self.neighbor_ids.shape[0]

    @property
    def max_neighbors(self) -> int:
        return self.neighbor_ids.shape[1]

    @property
    def mask(self) -> np.ndarray:
        """(P_out, M) float32: 1 for a real neighbour, 0 for padding."""
        return (self.neighbor_ids != self.in_points).astype(np.float32)

    def to_array(self, distances: np.ndarray | None = None) -> np.ndarray:
        """The official file layout; padding slots get distance -1."""
        ids = self.neighbor_ids
        if distances is None:
            distances = np.where(ids == self.in_points, -1, 0)
        table = np.empty((self.out_points, 1 + 2 * self.max_neighbors), dtype=np.int32)
        table[:, 0] = self.counts
        table[:, 1::2] = ids
        table[:, 2::2] = distances
        return table


def parse_connection(table: np.ndarray, in_points: int, name: str = "connection") -> Connection:
    """Validate an official connection table against the number of points of the layer below."""
    table = np.asarray(table)
    if table.ndim != 2 or table.shape[1] < 3 or table.shape[1] % 2 != 1:
        raise ConnectionMatrixError(
            f"{name}: expected an array (points, 1 + 2 * max_neighbors), found shape {table.shape}"
        )
    if not np.issubdtype(table.dtype, np.integer):
        if not np.all(np.isfinite(table)) or not np.all(table == np.round(table)):
            raise ConnectionMatrixError(f"{name}: expected integer ids, found non-integer {table.dtype} values")
    table = table.astype(np.int64)
    counts = table[:, 0]
    ids = table[:, 1::2]
    max_neighbors = ids.shape[1]
    if counts.min() < 1 or counts.max() > max_neighbors:
        raise ConnectionMatrixError(
            f"{name}: neighbour counts must be in [1, {max_neighbors}], found [{counts.min()}, {counts.max()}]"
        )
    if ids.min() < 0 or ids.max() > in_points:
        raise ConnectionMatrixError(
            f"{name}: neighbour ids must be in [0, {in_points}] ({in_points} = padding) for a layer reading "
            f"{in_points} points, found [{ids.min()}, {ids.max()}]"
        )
    slots = np.arange(max_neighbors)[None, :]
    real = slots < counts[:, None]
    if np.any(ids[real] == in_points) or np.any(ids[~real] != in_points):
        raise ConnectionMatrixError(
            f"{name}: the first `count` slots of each row must be real neighbours and the rest padding "
            f"(id {in_points}); the rows do not follow that layout for a layer reading {in_points} points"
        )
    return Connection(name=name, neighbor_ids=ids, counts=counts, in_points=in_points)


def connection_path(folder: Path, layer: str) -> Path:
    """`_<layer>.npy` (or .npz) in `folder`, as the official code finds it."""
    for suffix in (".npy", ".npz"):
        candidate = Path(folder) / f"_{layer}{suffix}"
        if candidate.exists():
            return candidate
    raise ConnectionMatrixError(f"no connection file _{layer}.npy in {folder}")


def _read_table(path: Path) -> np.ndarray:
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise ConnectionMatrixError(f"cannot read connection file {path}: {exc}") from exc
    if isinstance(data, np.lib.npyio.NpzFile):
        with data:
            if len(data.files) != 1:
                raise ConnectionMatrixError(f"{path}: expected one array, found {data.files}")
            return data[data.files[0]]
    return data


def load_connections(folder: str | Path, layers: Sequence[str]) -> list[Connection]:
    """Read and chain-check the connection files of `layers` (first layer: P_in = P_out of its own file)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConnectionMatrixError(f"connection folder {folder} does not exist")
    tables = [(layer, _read_table(connection_path(folder, layer))) for layer in layers]
    return chain_connections(tables)


def chain_connections(tables: Sequence[tuple[str, np.ndarray]]) -> list[Connection]:
    """Parse tables in layer order; each layer reads the points the previous one wrote."""
    connections = []
    in_points = int(np.asarray(tables[0][1]).shape[0])
    for name, table in tables:
        connection = parse_connection(table, in_points, name)
        connections.append(connection)
        in_points = connection.out_points
    return connections


def save_connections(folder: str | Path, connections: Sequence[Connection]) -> None:
    """Write `_<name>.npy` files in the official layout."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for connection in connections:
        target = folder / f"_{connection.name}.npy"
        temporary = target.with_suffix(".tmp.npy")
        np.save(temporary, connection.to_array())
        temporary.replace(target)

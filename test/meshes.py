"""Small template meshes built in code, for tests that need a surface."""

import numpy as np


def icosphere(subdivisions: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit icosphere: (10 * 4**s + 2, 3) vertices, (20 * 4**s, 3) faces."""
    t = (1.0 + 5.0**0.5) / 2.0
    vertices = [(-1, t, 0), (1, t, 0), (-1, -t, 0), (1, -t, 0), (0, -1, t), (0, 1, t), (0, -1, -t), (0, 1, -t),
                (t, 0, -1), (t, 0, 1), (-t, 0, -1), (-t, 0, 1)]
    vertices = [np.asarray(vertex, dtype=np.float64) / np.linalg.norm(vertex) for vertex in vertices]
    faces = [(0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4), (11, 10, 2),
             (10, 7, 6), (7, 1, 8), (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8), (3, 8, 9), (4, 9, 5), (2, 4, 11),
             (6, 2, 10), (8, 6, 7), (9, 8, 1)]
    for _ in range(subdivisions):
        midpoints = {}
        refined = []
        for a, b, c in faces:
            ab, bc, ca = (_midpoint(vertices, midpoints, *edge) for edge in ((a, b), (b, c), (c, a)))
            refined += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
        faces = refined
    return np.asarray(vertices), np.asarray(faces, dtype=np.int64)


def _midpoint(vertices: list, midpoints: dict, a: int, b: int) -> int:
    """Id of the (new, once per edge) vertex halfway between a and b, pushed onto the unit sphere."""
    key = (min(a, b), max(a, b))
    if key not in midpoints:
        middle = vertices[a] + vertices[b]
        vertices.append(middle / np.linalg.norm(middle))
        midpoints[key] = len(vertices) - 1
    return midpoints[key]

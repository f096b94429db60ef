"""A compact triangle rasteriser in torch: RGB, depth, normals, face / vertex / mesh ids and masks.

Why not an OpenGL renderer: pyrender renders headless on a CPU only through OSMesa with a PyOpenGL version other than
its pinned one, and needs EGL and a matching driver stack on a Jetson. This rasteriser needs nothing but torch, which
the package already requires: the same code runs on the CPU in CI and on the robot's CUDA device, gives exact
integer face and vertex ids (what the alignment refinement needs), and stays in torch tensors.

Method: every triangle is tested only against the pixel centres of its own bounding box (all triangles at once,
vectorised, in chunks that bound the memory), and a z-buffer keeps, per pixel, the nearest covering triangle by a
single `scatter_reduce(amin)` over 64-bit keys (depth bits << 32 | triangle index; positive float32 depths order
like their bit patterns). Depth is interpolated as 1/z, which is exact for planar triangles under perspective, and
attributes with perspective-correct barycentric coordinates.

Conventions: camera frame OpenCV (x right, y down, z forward, metres); pixel (i, j) is the centre of column i, row j
(`vqhps_ros.hps.crops`); intrinsics K (3, 3). Triangles whose vertices are not all beyond `near` are skipped (no
clipping). Faces are counter-clockwise seen from outside the mesh; back faces are culled unless asked otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import InputError

DEFAULT_LIGHT_DIRECTION = (-0.3, -0.6, -0.75)  # from the surface towards the light: above, left, behind the camera
_MAX_CANDIDATES_PER_CHUNK = 1 << 22  # pixel-triangle tests held in memory at once
_NO_HIT = torch.iinfo(torch.int64).max


@dataclass(frozen=True)
class Fragments:
    """Rasteriser output for an H x W image; -1 / 0 where no triangle covers the pixel.

    face_index (H, W) int64 into the concatenated faces; depth (H, W) float32 metres along z (0: background);
    barycentric (H, W, 3) float32 perspective-correct weights of the face's three vertices.
    """

    face_index: torch.Tensor
    depth: torch.Tensor
    barycentric: torch.Tensor

    @property
    def covered(self) -> torch.Tensor:
        return self.face_index >= 0


@dataclass(frozen=True)
class Rendering:
    """What `render_meshes` returns for P meshes on an H x W image (torch tensors on the rendering device).

    rgb (H, W, 3) float32 in [0, 1], composited over the background; depth (H, W) float32 metres (0: background);
    normals (H, W, 3) float32 unit camera-frame normals (0: background); mesh_id (H, W) int64 (-1: background);
    vertex_id (H, W) int64, the corner of the visible face nearest (in 3D) to the surface point the pixel sees, as
    an index into its own mesh's vertices (-1: background);
    face_id (H, W) int64 within its own mesh (-1: background); masks (P, H, W) bool, the visible pixels of each mesh.
    """

    rgb: torch.Tensor
    depth: torch.Tensor
    normals: torch.Tensor
    mesh_id: torch.Tensor
    vertex_id: torch.Tensor
    face_id: torch.Tensor
    masks: torch.Tensor

    def rgb_uint8(self) -> np.ndarray:
        """(H, W, 3) uint8 RGB as a numpy array."""
        return (self.rgb.clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu().numpy()


# ---------------------------------------------------------------------------------------------- rasterising


def rasterize(vertices: torch.Tensor, faces: torch.Tensor, intrinsics, image_size: tuple[int, int],
              near: float = 0.05, cull_backfaces: bool = True, compute_dtype: torch.dtype | None = None) -> Fragments:
    """Nearest triangle per pixel. vertices (N, 3) camera frame, faces (F, 3) int64, image_size (H, W).

    compute_dtype: precision of the coverage tests; default float64 on the CPU, float32 on other devices (GPUs,
    a Jetson's above all, run float64 many times slower; float32 keeps pixel positions to about 1e-4 pixel).
    """
    height, width = _check_size(image_size)
    vertices, faces = _check_mesh(vertices, faces)
    dtype = compute_dtype or (torch.float64 if vertices.device.type == "cpu" else torch.float32)
    K = torch.as_tensor(np.asarray(intrinsics, dtype=np.float64), device=vertices.device).to(dtype)
    if K.shape != (3, 3):
        raise InputError(f"expected intrinsics of shape (3, 3), found {tuple(K.shape)}")
    points = _project(vertices.to(dtype), K)  # (N, 3): u, v, z
    corners = points[faces]  # (F, 3, 3)
    keep = _drawable_faces(corners, near, cull_backfaces)
    keys = torch.full((height * width,), _NO_HIT, dtype=torch.int64, device=vertices.device)
    for chunk in _face_chunks(corners, keep, height, width):
        _rasterize_chunk(corners, faces, chunk, width, keys)
    return _fragments_from_keys(keys, corners, height, width)


def _project(vertices: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    z = vertices[:, 2]
    safe_z = torch.where(z.abs() > 1e-12, z, torch.full_like(z, 1e-12))
    u = K[0, 0] * vertices[:, 0] / safe_z + K[0, 1] * vertices[:, 1] / safe_z + K[0, 2]
    v = K[1, 1] * vertices[:, 1] / safe_z + K[1, 2]
    return torch.stack([u, v, z], dim=1)


def _edge(a: torch.Tensor, b: torch.Tensor, px: torch.Tensor, py: torch.Tensor) -> torch.Tensor:
    """Twice the signed area of (a, b, p): positive when p is on the left of a -> b in a y-down image."""
    return (b[..., 0] - a[..., 0]) * (py - a[..., 1]) - (b[..., 1] - a[..., 1]) * (px - a[..., 0])


def _drawable_faces(corners: torch.Tensor, near: float, cull_backfaces: bool) -> torch.Tensor:
    area = _edge(corners[:, 0], corners[:, 1], corners[:, 2, 0], corners[:, 2, 1])
    keep = (corners[:, :, 2] > near).all(dim=1) & (area != 0)
    if cull_backfaces:
        # Seen from the camera (looking along +z, y down) a triangle that faces it, counter-clockwise from outside,
        # has its normal towards -z, which makes its signed area in the y-down image negative.
        keep &= area < 0
    return keep


def _face_chunks(corners: torch.Tensor, keep: torch.Tensor, height: int, width: int):
    """Yield (face indices, x0, y0, box widths, box pixel counts), about `_MAX_CANDIDATES_PER_CHUNK` tests each."""
    x0 = corners[:, :, 0].amin(dim=1).ceil().clamp(0, width)
    x1 = corners[:, :, 0].amax(dim=1).floor().clamp(-1, width - 1)
    y0 = corners[:, :, 1].amin(dim=1).ceil().clamp(0, height)
    y1 = corners[:, :, 1].amax(dim=1).floor().clamp(-1, height - 1)
    box_w, box_h = (x1 - x0 + 1).clamp(min=0), (y1 - y0 + 1).clamp(min=0)
    counts = (box_w * box_h).long() * keep
    faces = torch.nonzero(counts > 0).squeeze(1)
    if len(faces) == 0:
        return
    cumulative = torch.cumsum(counts[faces], 0)
    start = 0
    while start < len(faces):
        done = int(cumulative[start - 1]) if start else 0
        stop = int(torch.searchsorted(cumulative, done + _MAX_CANDIDATES_PER_CHUNK, right=True))
        stop = max(stop, start + 1)  # one huge triangle still makes a chunk of its own
        chunk = faces[start:stop]
        yield chunk, x0[chunk].long(), y0[chunk].long(), box_w[chunk].long(), counts[chunk]
        start = stop


def _rasterize_chunk(corners: torch.Tensor, faces: torch.Tensor, chunk, width: int, keys: torch.Tensor) -> None:
    chunk_faces, x0, y0, box_w, counts = chunk
    device = corners.device
    owner = torch.repeat_interleave(torch.arange(len(chunk_faces), device=device), counts)
    offsets = torch.cumsum(counts, 0) - counts
    local = torch.arange(int(counts.sum()), device=device) - offsets[owner]
    px = (x0[owner] + local % box_w[owner]).to(corners.dtype)
    py = (y0[owner] + torch.div(local, box_w[owner], rounding_mode="floor")).to(corners.dtype)
    face = chunk_faces[owner]
    tri = corners[face]  # (C, 3, 3)
    edges = _watertight_edge_functions(tri, faces[face], px, py)
    area = edges.sum(dim=1, keepdim=True)
    inside = (edges * area.sign() >= 0).all(dim=1)
    if not bool(inside.any()):
        return
    weights, tri, px, py = edges[inside] / area[inside], tri[inside], px[inside], py[inside]
    inverse_depth = (weights / tri[:, :, 2]).sum(dim=1)
    depth_bits = (1.0 / inverse_depth).float().view(torch.int32).long()
    key = (depth_bits << 32) | face[inside]
    pixel = py.long() * width + px.long()
    keys.scatter_reduce_(0, pixel, key, reduce="amin")


def _watertight_edge_functions(tri: torch.Tensor, ids: torch.Tensor, px: torch.Tensor,
                               py: torch.Tensor) -> torch.Tensor:
    """(C, 3) edge functions of the edges opposite each corner, at pixel centres (C,).

    Each edge is evaluated from its lower vertex id to its higher one and negated when the triangle runs the other
    way, so the two triangles sharing an edge get exactly opposite values even in float32: a pixel centre on the
    edge is covered by both (the z-buffer picks one), never by neither.
    """
    values = []
    for k in range(3):
        a, b = tri[:, (k + 1) % 3], tri[:, (k + 2) % 3]
        swap = ids[:, (k + 1) % 3] > ids[:, (k + 2) % 3]
        first, second = torch.where(swap[:, None], b, a), torch.where(swap[:, None], a, b)
        value = _edge(first, second, px, py)
        values.append(torch.where(swap, -value, value))
    return torch.stack(values, dim=1)


def _screen_barycentric(tri: torch.Tensor, px: torch.Tensor, py: torch.Tensor) -> torch.Tensor:
    """(C, 3, 3) projected triangles (u, v, z) and (C,) pixel centres -> (C, 3) screen-space barycentrics."""
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    area = _edge(a, b, c[:, 0], c[:, 1])
    return torch.stack([_edge(b, c, px, py), _edge(c, a, px, py), _edge(a, b, px, py)], dim=1) / area[:, None]


def _fragments_from_keys(keys: torch.Tensor, corners: torch.Tensor, height: int, width: int) -> Fragments:
    hit = keys != _NO_HIT
    face_index = torch.full_like(keys, -1)
    face_index[hit] = keys[hit] & 0xFFFFFFFF
    depth = torch.zeros(height * width, dtype=torch.float32, device=keys.device)
    barycentric = torch.zeros(height * width, 3, dtype=torch.float32, device=keys.device)
    pixels = torch.nonzero(hit).squeeze(1)
    if len(pixels):
        tri = corners[face_index[pixels]]
        px = (pixels % width).to(corners.dtype)
        py = torch.div(pixels, width, rounding_mode="floor").to(corners.dtype)
        screen = _screen_barycentric(tri, px, py)
        perspective = screen / tri[:, :, 2]
        depth[pixels] = (1.0 / perspective.sum(dim=1)).float()
        barycentric[pixels] = (perspective / perspective.sum(dim=1, keepdim=True)).float()
    return Fragments(face_index.view(height, width), depth.view(height, width), barycentric.view(height, width, 3))


# ------------------------------------------------------------------------------------------------- shading


def vertex_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """(N, 3) unit vertex normals: the area-weighted mean of the normals of the faces around each vertex."""
    v0, v1, v2 = (vertices[faces[:, k]] for k in range(3))
    face_normals = torch.cross(v1 - v0, v2 - v0, dim=1)  # length = twice the area
    normals = torch.zeros_like(vertices)
    normals.index_add_(0, faces.reshape(-1), face_normals.repeat_interleave(3, dim=0))
    return torch.nn.functional.normalize(normals, dim=1)


def render_meshes(meshes: Sequence[tuple], intrinsics, image_size: tuple[int, int], colors: Sequence | None = None,
                  background=None, light_direction=DEFAULT_LIGHT_DIRECTION, ambient: float = 0.35,
                  diffuse: float = 0.65, near: float = 0.05, cull_backfaces: bool = True,
                  compute_dtype: torch.dtype | None = None) -> Rendering:
    """Render P meshes together (they occlude each other) on the device of the first mesh's vertices.

    meshes: P pairs (vertices (N_p, 3) camera frame metres, faces (F_p, 3)), numpy or torch. colors: per mesh an
    RGB (3,) or per-vertex RGB (N_p, 3) in [0, 1] (default light grey). background: (H, W, 3) uint8 or float
    RGB image in [0, 1], or an RGB triple (default black). Shading: ambient + diffuse * max(0, n . light), with
    the light direction (towards the light) in the camera frame. compute_dtype: see `rasterize`.
    """
    if len(meshes) == 0:
        raise InputError("expected at least one mesh to render")
    device = torch.as_tensor(meshes[0][0]).device
    vertices, faces, face_mesh, vertex_offsets, face_offsets = _concatenate(meshes, device)
    fragments = rasterize(vertices, faces, intrinsics, image_size, near, cull_backfaces, compute_dtype)
    height, width = fragments.depth.shape
    # Attributes are computed for the covered pixels only: the background is most of a frame.
    pixels = torch.nonzero(fragments.covered.reshape(-1)).squeeze(1)
    face = fragments.face_index.reshape(-1)[pixels]
    bary = fragments.barycentric.reshape(-1, 3)[pixels, :, None]  # (N, 3, 1) float32
    corner_ids = faces[face]  # (N, 3)
    normals = (vertex_normals(vertices, faces).float()[corner_ids] * bary).sum(dim=1)
    normals = torch.nn.functional.normalize(normals, dim=1)
    mesh = face_mesh[face]
    corners = vertices[corner_ids].float()  # (N, 3, 3)
    surface = (corners * bary).sum(dim=1, keepdim=True)  # the 3D point each pixel sees
    nearest = corner_ids.gather(1, (corners - surface).norm(dim=2).argmin(dim=1, keepdim=True)).squeeze(1)
    albedo = (_vertex_colors(meshes, colors, device)[corner_ids] * bary).sum(dim=1)
    light = torch.nn.functional.normalize(torch.as_tensor(light_direction, dtype=torch.float32, device=device), dim=0)
    shaded = albedo * (ambient + diffuse * (normals @ light).clamp(min=0))[:, None]

    rgb = _background(background, height, width, device).reshape(-1, 3).clone()
    rgb[pixels] = shaded
    normal_image = torch.zeros(height * width, 3, dtype=torch.float32, device=device)
    normal_image[pixels] = normals
    mesh_id, vertex_id, face_id = (torch.full((height * width,), -1, dtype=torch.int64, device=device)
                                   for _ in range(3))
    mesh_id[pixels] = mesh
    vertex_id[pixels] = nearest - vertex_offsets[mesh]
    face_id[pixels] = face - face_offsets[mesh]
    mesh_id = mesh_id.view(height, width)
    masks = mesh_id[None] == torch.arange(len(meshes), device=device)[:, None, None]
    return Rendering(rgb.view(height, width, 3).clamp(0, 1), fragments.depth, normal_image.view(height, width, 3),
                     mesh_id, vertex_id.view(height, width), face_id.view(height, width), masks)


def _concatenate(meshes: Sequence[tuple], device):
    vertex_list, face_list, owners, vertex_offsets, face_offsets = [], [], [], [0], [0]
    for index, (mesh_vertices, mesh_faces) in enumerate(meshes):
        mesh_vertices, mesh_faces = _check_mesh(torch.as_tensor(mesh_vertices, device=device),
                                                torch.as_tensor(mesh_faces, device=device))
        vertex_list.append(mesh_vertices.double())
        face_list.append(mesh_faces + vertex_offsets[-1])
        owners.append(torch.full((len(mesh_faces),), index, dtype=torch.int64, device=device))
        vertex_offsets.append(vertex_offsets[-1] + len(mesh_vertices))
        face_offsets.append(face_offsets[-1] + len(mesh_faces))
    as_tensor = lambda values: torch.as_tensor(values[:-1], dtype=torch.int64, device=device)  # noqa: E731
    return (torch.cat(vertex_list), torch.cat(face_list), torch.cat(owners), as_tensor(vertex_offsets),
            as_tensor(face_offsets))


def _vertex_colors(meshes: Sequence[tuple], colors: Sequence | None, device) -> torch.Tensor:
    if colors is not None and len(colors) != len(meshes):
        raise InputError(f"expected one colour entry per mesh ({len(meshes)}), found {len(colors)}")
    per_mesh = []
    for index, (mesh_vertices, _) in enumerate(meshes):
        count = len(mesh_vertices)
        color = torch.as_tensor(np.asarray(colors[index] if colors is not None else (0.8, 0.8, 0.8),
                                           dtype=np.float32), device=device)
        if color.shape == (3,):
            color = color.expand(count, 3)
        if color.shape != (count, 3):
            raise InputError(f"expected the colour of mesh {index} as (3,) or ({count}, 3), found {tuple(color.shape)}")
        per_mesh.append(color)
    return torch.cat(per_mesh)


def _background(background, height: int, width: int, device) -> torch.Tensor:
    """(H, W, 3) float32 background in [0, 1]."""
    if background is None:
        return torch.zeros(height, width, 3, dtype=torch.float32, device=device)
    image = torch.as_tensor(np.asarray(background), device=device)
    image = image.float() / 255.0 if image.dtype == torch.uint8 else image.float()
    if image.shape == (3,):
        return image.expand(height, width, 3)
    if image.shape != (height, width, 3):
        raise InputError(f"expected a background of shape ({height}, {width}, 3) or an RGB triple, "
                         f"found {tuple(image.shape)}")
    return image


def _check_size(image_size) -> tuple[int, int]:
    if len(image_size) != 2 or min(image_size) <= 0:
        raise InputError(f"expected an image size (height, width) of positive integers, found {image_size}")
    return int(image_size[0]), int(image_size[1])


def _check_mesh(vertices: torch.Tensor, faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    vertices, faces = torch.as_tensor(vertices), torch.as_tensor(faces)
    if vertices.ndim != 2 or vertices.shape[1] != 3 or not vertices.is_floating_point():
        raise InputError(f"expected floating-point vertices of shape (N, 3), found {tuple(vertices.shape)} "
                         f"{vertices.dtype}")
    if faces.ndim != 2 or faces.shape[1] != 3 or faces.is_floating_point():
        raise InputError(f"expected integer faces of shape (F, 3), found {tuple(faces.shape)} {faces.dtype}")
    faces = faces.long().to(vertices.device)
    if len(faces) and (int(faces.min()) < 0 or int(faces.max()) >= len(vertices)):
        raise InputError(f"expected face indices in [0, {len(vertices)}), found [{int(faces.min())}, "
                         f"{int(faces.max())}]")
    if not bool(torch.isfinite(vertices).all()):
        raise InputError("expected finite vertices, found NaN or infinity")
    return vertices, faces

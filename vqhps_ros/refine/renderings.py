"""What the alignment refinement compares with the image: each person's current mesh rendered into that person's
crop, with colour from the track's texture, depth, normals and the id of the vertex each pixel sees.

All people of a frame are rendered together (`visible_vertices`), so that a vertex hidden by another person counts
as hidden. A crop (`hps.CropGeometry`, a scale and a shift of the image) is a pinhole camera of its own: the crop's
intrinsics are the affine map applied to the camera's (`crop_intrinsics`), and the mesh is rendered with them
directly at the crop's resolution, not rendered in the image and then warped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import InputError
from ..hps.camera import project_points
from ..synth import render_meshes
from ..synth.render import vertex_normals

FLAT_LIGHT = {"ambient": 1.0, "diffuse": 0.0}  # colour = albedo: the texture as the camera saw it, no shading


@dataclass(frozen=True)
class PersonRendering:
    """One person in a crop of S x S pixels (numpy): colour (S, S, 3) float32 in [0, 1] over black; depth (S, S)
    float32 metres (0: not the person); normals (S, S, 3) float32 camera frame; vertex_id (S, S) int64 (-1: not the
    person); mask (S, S) bool."""

    colour: np.ndarray
    depth: np.ndarray
    normals: np.ndarray
    vertex_id: np.ndarray
    mask: np.ndarray


def crop_intrinsics(intrinsics, crop_from_image) -> np.ndarray:
    """(3, 3) intrinsics of the crop: K followed by the (2, 3) crop affine, which must not rotate or shear."""
    affine = np.asarray(crop_from_image, dtype=np.float64)
    if affine.shape != (2, 3) or abs(affine[0, 1]) > 1e-9 or abs(affine[1, 0]) > 1e-9:
        raise InputError(f"a crop must be a scale and a shift of the image (2, 3), found {affine.tolist()}")
    return np.vstack([affine, [0.0, 0.0, 1.0]]) @ np.asarray(intrinsics, dtype=np.float64)


def render_in_crop(vertices: np.ndarray, faces: np.ndarray, intrinsics, crop_from_image, crop_size: int,
                   colours: np.ndarray | None = None) -> PersonRendering:
    """One person's mesh (V, 3) camera frame, in the crop of `crop_from_image`; `colours` (V, 3) in [0, 1] per
    vertex (default mid grey, where there is no texture yet)."""
    colour = np.full((len(vertices), 3), 0.5, np.float32) if colours is None else np.asarray(colours, np.float32)
    rendering = render_meshes([(torch.from_numpy(np.asarray(vertices, np.float64)), torch.from_numpy(faces))],
                              crop_intrinsics(intrinsics, crop_from_image), (crop_size, crop_size), colors=[colour],
                              background=(0.0, 0.0, 0.0), **FLAT_LIGHT)
    mask = rendering.masks[0].cpu().numpy()
    return PersonRendering(np.where(mask[..., None], rendering.rgb.cpu().numpy(), 0.0).astype(np.float32),
                           rendering.depth.cpu().numpy(), rendering.normals.cpu().numpy(),
                           rendering.vertex_id.cpu().numpy(), mask)


def visible_vertices(meshes: list[np.ndarray], faces: np.ndarray, intrinsics, image_size: tuple[int, int]
                     ) -> list[np.ndarray]:
    """Per mesh (V, 3), the (V,) bool of its visible vertices, the meshes occluding each other: a pixel sees the
    vertex (it is the nearest corner of the surface there) and the pixel the vertex projects to shows its mesh (so
    that outline vertices, whose colour would come from the background, do not count)."""
    if not meshes:
        return []
    faces_tensor = torch.from_numpy(np.asarray(faces, dtype=np.int64))
    rendering = render_meshes([(torch.from_numpy(np.asarray(m, np.float64)), faces_tensor) for m in meshes],
                              intrinsics, image_size, **FLAT_LIGHT)
    mesh_id, vertex_id = rendering.mesh_id.cpu().numpy(), rendering.vertex_id.cpu().numpy()
    height, width = image_size
    visible = []
    for index, mesh in enumerate(meshes):
        seen = np.zeros(len(mesh), dtype=bool)
        seen[vertex_id[mesh_id == index]] = True
        pixels = np.rint(project_points(np.asarray(mesh, np.float64)[None], intrinsics)[0])
        inside = np.isfinite(pixels).all(axis=1)
        inside[inside] &= ((pixels[inside] >= 0).all(axis=1) & (pixels[inside, 0] < width)
                           & (pixels[inside, 1] < height))
        columns, rows = np.where(inside[:, None], pixels, 0).astype(np.int64).T
        visible.append(seen & inside & (mesh_id[rows, columns] == index))
    return visible


def facing_camera(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V,) cosine between each vertex normal and the direction to the camera (1: faces it, <= 0: turned away)."""
    points = torch.from_numpy(np.asarray(vertices, np.float64))
    normals = vertex_normals(points, torch.from_numpy(np.asarray(faces, np.int64))).double()
    towards_camera = torch.nn.functional.normalize(-points, dim=1)
    return (normals * towards_camera).sum(dim=1).float().numpy()

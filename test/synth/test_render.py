"""The torch rasteriser: exact depth of planes, ids that point back at the right vertices, occlusion, culling."""

import numpy as np
import pytest
import torch

from vqhps_ros.body import load_free_body_data
from vqhps_ros.errors import InputError
from vqhps_ros.synth import rasterize, render_meshes

K = np.array([[300.0, 0.0, 80.0], [0.0, 320.0, 60.0], [0.0, 0.0, 1.0]])
SIZE = (120, 160)


def _quad(corners):
    """Two triangles over 4 corners (camera frame), counter-clockwise when seen from the camera's side."""
    return torch.as_tensor(np.asarray(corners, dtype=np.float64)), torch.tensor([[0, 2, 1], [0, 3, 2]])


def _pixel_rays(size=SIZE, intrinsics=K):
    v, u = np.mgrid[0 : size[0], 0 : size[1]].astype(np.float64)
    return np.stack([u, v, np.ones_like(u)], axis=-1) @ np.linalg.inv(intrinsics).T  # z = 1 rays


@pytest.mark.parametrize(("dtype", "tolerance"), [(torch.float64, 2e-6), (torch.float32, 2e-5)])
def test_depth_of_a_tilted_plane_is_exact_and_its_normal_faces_the_camera(dtype, tolerance):
    normal = np.array([0.2, -0.3, -1.0]) / np.linalg.norm([0.2, -0.3, -1.0])  # towards the camera
    offset = -2.5  # plane: normal . X = offset, about 2.5 m away
    corners = []
    for x, y in ((-3, -3), (3, -3), (3, 3), (-3, 3)):  # (x, y) on the plane, z solved from the plane equation
        z = (offset - normal[0] * x - normal[1] * y) / normal[2]
        corners.append((x, y, z))
    vertices, faces = _quad(corners)
    rendering = render_meshes([(vertices, faces)], K, SIZE, compute_dtype=dtype)
    assert bool(rendering.masks[0].all())  # the plane fills the view
    rays = _pixel_rays()
    expected = offset / (rays @ normal)  # z of the ray-plane intersection (rays have z = 1)
    np.testing.assert_allclose(rendering.depth.numpy(), expected, rtol=tolerance)
    np.testing.assert_allclose(rendering.normals.numpy().reshape(-1, 3), np.tile(normal, (SIZE[0] * SIZE[1], 1)),
                               atol=1e-5)


def test_coverage_follows_the_projected_triangle_edges():
    vertices, faces = _quad([(-0.4, -0.3, 2.0), (0.5, -0.3, 2.0), (0.5, 0.2, 2.0), (-0.4, 0.2, 2.0)])
    fragments = rasterize(vertices, faces, K, SIZE)
    projected = (vertices.numpy() / 2.0) @ K.T
    u0, v0 = projected[0, :2]
    u1, v1 = projected[2, :2]
    v, u = np.mgrid[0 : SIZE[0], 0 : SIZE[1]]
    inside = (u >= u0) & (u <= u1) & (v >= v0) & (v <= v1)
    np.testing.assert_array_equal(fragments.covered.numpy(), inside)
    np.testing.assert_allclose(fragments.depth.numpy()[inside], 2.0, rtol=1e-6)
    assert np.all(fragments.depth.numpy()[~inside] == 0)


def test_back_faces_are_culled_unless_asked():
    vertices, faces = _quad([(-0.4, -0.3, 2.0), (0.5, -0.3, 2.0), (0.5, 0.2, 2.0), (-0.4, 0.2, 2.0)])
    flipped = faces[:, [0, 2, 1]]
    assert not rasterize(vertices, flipped, K, SIZE).covered.any()
    both = rasterize(vertices, flipped, K, SIZE, cull_backfaces=False).covered
    assert torch.equal(both, rasterize(vertices, faces, K, SIZE).covered)


def test_nearer_mesh_hides_the_farther_one():
    far = _quad([(-2, -2, 4.0), (2, -2, 4.0), (2, 2, 4.0), (-2, 2, 4.0)])
    near = _quad([(-0.2, -0.2, 1.5), (0.2, -0.2, 1.5), (0.2, 0.2, 1.5), (-0.2, 0.2, 1.5)])
    for order in ((far, near), (near, far)):
        rendering = render_meshes(list(order), K, SIZE, colors=[(1, 0, 0), (0, 0, 1)], background=(0, 1, 0))
        near_index = 1 if order[1] is near else 0
        centre = rendering.mesh_id[60, 80].item()
        assert centre == near_index and rendering.depth[60, 80].item() == pytest.approx(1.5)
        assert not (rendering.masks[0] & rendering.masks[1]).any()
        assert torch.equal(rendering.masks[1 - near_index] | rendering.masks[near_index],
                           torch.ones(SIZE, dtype=torch.bool))
        expected_colour = torch.tensor([1.0, 0, 0]) if near_index == 0 else torch.tensor([0, 0, 1.0])
        assert torch.allclose(rendering.rgb[60, 80] / rendering.rgb[60, 80].max(), expected_colour)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_vertex_and_face_ids_point_back_at_the_visible_surface(dtype):
    body = load_free_body_data()
    rotation = np.diag([1.0, -1.0, -1.0])  # SMPL's y up, facing +z -> camera frame, facing the camera
    vertices = body.v_template.astype(np.float64) @ rotation.T + np.array([0.0, 0.0, 3.2])
    faces = torch.as_tensor(body.faces)
    rendering = render_meshes([(torch.as_tensor(vertices), faces)], K, SIZE, compute_dtype=dtype)
    covered = rendering.masks[0].numpy()
    assert covered.sum() > 1500
    rows, columns = np.nonzero(covered)
    vertex_ids, face_ids = rendering.vertex_id.numpy()[covered], rendering.face_id.numpy()[covered]
    assert np.all(np.any(body.faces[face_ids] == vertex_ids[:, None], axis=1))  # the vertex is a corner of the face
    depth = rendering.depth.numpy()[covered]
    points = _pixel_rays()[rows, columns] * depth[:, None]  # the 3D surface point each pixel sees
    corners = vertices[body.faces[face_ids]]  # (N, 3, 3)
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    assert np.abs(np.einsum("ij,ij->i", points - corners[:, 0], normals)).max() < 1e-5  # on the face's plane
    assert np.all(np.einsum("ij,ij->i", normals, points) < 0)  # visible faces face the camera
    projected_corners = corners @ K.T
    projected_corners = projected_corners[..., :2] / projected_corners[..., 2:]
    face_size = np.linalg.norm(projected_corners - np.roll(projected_corners, 1, axis=1), axis=2).max(axis=1)
    projected = vertices[vertex_ids] @ K.T
    pixel_error = np.linalg.norm(projected[:, :2] / projected[:, 2:] - np.stack([columns, rows], 1), axis=1)
    assert np.all(pixel_error <= face_size + 0.5)  # the vertex projects onto the pixel's own triangle
    nearest_corner = body.faces[face_ids, np.linalg.norm(corners - points[:, None], axis=2).argmin(axis=1)]
    np.testing.assert_array_equal(vertex_ids, nearest_corner)  # the corner nearest to the seen surface point
    assert np.all(rendering.vertex_id.numpy()[~covered] == -1) and np.all(rendering.depth.numpy()[~covered] == 0)


def test_renders_on_the_device_of_the_vertices_and_shades_by_light():
    vertices, faces = _quad([(-1, -1, 2.0), (1, -1, 2.0), (1, 1, 2.0), (-1, 1, 2.0)])
    lit = render_meshes([(vertices, faces)], K, SIZE, light_direction=(0, 0, -1), ambient=0.2, diffuse=0.8)
    grazing = render_meshes([(vertices, faces)], K, SIZE, light_direction=(1, 0, -0.05), ambient=0.2, diffuse=0.8)
    assert lit.rgb[60, 80, 0].item() == pytest.approx(0.8, abs=1e-5)  # albedo 0.8 * (0.2 + 0.8 * 1)
    assert grazing.rgb[60, 80, 0].item() < 0.3
    assert lit.rgb.device == vertices.device and lit.rgb_uint8().shape == (*SIZE, 3)


def test_bad_inputs_say_what_is_wrong():
    vertices, faces = _quad([(-1, -1, 2.0), (1, -1, 2.0), (1, 1, 2.0), (-1, 1, 2.0)])
    with pytest.raises(InputError, match="face indices"):
        rasterize(vertices, faces + 10, K, SIZE)
    with pytest.raises(InputError, match=r"\(3, 3\)"):
        rasterize(vertices, faces, np.eye(2), SIZE)
    with pytest.raises(InputError, match="colour"):
        render_meshes([(vertices, faces)], K, SIZE, colors=[np.ones((7, 3))])
    with pytest.raises(InputError, match="background"):
        render_meshes([(vertices, faces)], K, SIZE, background=np.zeros((5, 5, 3)))

"""The refinement's inputs: renderings of a mesh in its person's crop, and the per-track vertex texture learnt from
frames (seen and facing vertices only, others' occlusion respected, unmodelled occluders rejected)."""

import numpy as np
import pytest
import torch

from vqhps_ros.body import load_free_body_data
from vqhps_ros.errors import InputError
from vqhps_ros.hps.camera import project_points
from vqhps_ros.hps.crops import crop_geometry_from_boxes
from vqhps_ros.refine import (
    TextureSettings,
    VertexTexture,
    crop_intrinsics,
    facing_camera,
    render_in_crop,
    visible_vertices,
)
from vqhps_ros.synth import render_meshes

K = np.array([[600.0, 0, 320], [0, 600.0, 240], [0, 0, 1]])
IMAGE_SIZE = (480, 640)
FACING_CAMERA = np.diag([1.0, -1.0, -1.0])  # the body's up and front turned into the camera's frame


@pytest.fixture(scope="module")
def body():
    data = load_free_body_data()
    rest = (data.v_template - data.v_template.mean(axis=0)) @ FACING_CAMERA.T
    # A smooth colour pattern (neighbouring vertices alike, as cloth and skin), so a sample between vertices is fair.
    unit = (rest - rest.min(axis=0)) / np.ptp(rest, axis=0)
    colours = np.stack([unit[:, 1], 0.5 + 0.4 * np.sin(6 * unit[:, 0]), 1.0 - unit[:, 1]], axis=1)
    return rest, data.faces, colours.astype(np.float32)


def rendered(meshes, faces, colours) -> np.ndarray:
    faces_tensor = torch.from_numpy(faces)
    rendering = render_meshes([(torch.from_numpy(m), faces_tensor) for m in meshes], K, IMAGE_SIZE, colors=colours,
                              background=(0.1, 0.1, 0.1), ambient=1.0, diffuse=0.0)
    return rendering.rgb_uint8()


def learn(texture, image, meshes, faces, index=0) -> int:
    visible = visible_vertices(meshes, faces, K, IMAGE_SIZE)[index]
    points = project_points(meshes[index][None], K)[0]
    return texture.update(image, points, visible, facing_camera(meshes[index], faces))


def test_the_texture_takes_the_colours_of_seen_vertices_that_face_the_camera(body):
    rest, faces, colours = body
    person = rest + [0.0, 0.0, 3.0]
    texture = VertexTexture(len(rest))
    updated = learn(texture, rendered([person], faces, [colours]), [person], faces)
    learnt = texture.weights > 0
    assert updated == learnt.sum() and 0.3 < texture.coverage < 0.7  # the front half, seen from the front
    assert np.all(facing_camera(person, faces)[learnt] >= TextureSettings().min_facing)
    error = np.abs(texture.colours[learnt] - colours[learnt]).max(axis=1)
    assert np.median(error) < 0.02 and np.mean(error < 0.1) > 0.95
    shown = texture.rendering_colours()  # what the displacement network sees: the colours, grey where none
    np.testing.assert_array_equal(shown[learnt], texture.colours[learnt])
    assert np.all(shown[~learnt] == 0.5) and shown.dtype == np.float32
    texture.reset()
    assert texture.coverage == 0.0 and not texture.colours.any()


def test_a_person_in_front_hides_vertices_from_the_texture(body):
    rest, faces, colours = body
    behind, in_front = rest + [0.0, 0.0, 4.0], rest + [0.25, 0.0, 2.5]
    alone = visible_vertices([behind], faces, K, IMAGE_SIZE)[0]
    hidden = visible_vertices([behind, in_front], faces, K, IMAGE_SIZE)[0]
    assert hidden.sum() < 0.7 * alone.sum() and not (hidden & ~alone).any()
    texture = VertexTexture(len(rest))
    image = rendered([behind, in_front], faces, [colours, np.tile([1.0, 0.0, 1.0], (len(rest), 1))])
    learn(texture, image, [behind, in_front], faces)
    learnt = texture.weights > 0
    assert not (learnt & ~hidden).any()  # nothing learnt where the other person stands
    assert np.median(np.abs(texture.colours[learnt] - colours[learnt]).max(axis=1)) < 0.03


def test_an_unmodelled_occluder_does_not_overwrite_a_learnt_texture(body):
    rest, faces, colours = body
    person = rest + [0.0, 0.0, 3.0]
    image = rendered([person], faces, [colours])
    texture = VertexTexture(len(rest))
    for _ in range(3):
        learn(texture, image, [person], faces)
    before = texture.colours.copy()
    covered = image.copy()
    covered[:, 200:440] = (255, 255, 0)  # a yellow board in front of the person, which has no mesh
    assert learn(texture, covered, [person], faces) == 0 and texture.skipped_frames == 1
    np.testing.assert_array_equal(texture.colours, before)
    with pytest.raises(InputError, match="uint8 RGB image"):
        texture.update(image.astype(np.float32), np.zeros((len(rest), 2)), np.ones(len(rest), bool), np.ones(len(rest)))
    with pytest.raises(InputError, match="expected 1229 vertex pixels"):
        texture.update(image, np.zeros((5, 2)), np.ones(5, bool), np.ones(5))


def test_a_rendering_in_the_crop_is_the_crop_of_the_rendering(body):
    rest, faces, colours = body
    person = rest + [0.3, 0.1, 3.0]
    points = project_points(person[None], K)[0]
    box = np.concatenate([points.min(axis=0), np.ptp(points, axis=0)])
    geometry = crop_geometry_from_boxes(box[None])
    in_crop = render_in_crop(person, faces, K, geometry.crop_from_image[0], geometry.crop_size, colours)
    size = geometry.crop_size
    crop_points = project_points(person[None], crop_intrinsics(K, geometry.crop_from_image[0]))[0]
    rows, columns = np.nonzero(in_crop.mask)
    np.testing.assert_allclose([columns.min(), rows.min()], crop_points.min(axis=0), atol=1.5)
    np.testing.assert_allclose([columns.max(), rows.max()], crop_points.max(axis=0), atol=1.5)
    assert in_crop.colour.shape == (size, size, 3) and in_crop.depth[in_crop.mask].min() > 2.5
    seen = in_crop.vertex_id[in_crop.mask]
    np.testing.assert_allclose(in_crop.colour[in_crop.mask], colours[seen], atol=0.15)  # each pixel shows its vertex
    assert np.all(in_crop.vertex_id[~in_crop.mask] == -1) and np.all(in_crop.depth[~in_crop.mask] == 0)
    with pytest.raises(InputError, match="scale and a shift"):
        crop_intrinsics(K, np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]))

"""Synthetic frames: the ground truth agrees with itself, with the camera and with what was rendered."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from vqhps_ros.body import H36M_TO_J17
from vqhps_ros.synth import (
    Camera,
    PersonPlacement,
    SceneGenerator,
    SceneSettings,
    intrinsics_from_fov,
    look_at,
    sample_lighting,
)
from vqhps_ros.synth.backgrounds import floor_depth_map, room_background


@pytest.fixture(scope="module")
def generator():
    return SceneGenerator()


@pytest.fixture(scope="module")
def frames(generator):
    rng = np.random.default_rng(11)
    return [generator.random_frame(rng, SceneSettings(image_size=(240, 320))) for _ in range(4)]


def _camera(size=(240, 320)):
    rotation, translation = look_at([0.0, 1.2, 0.0], [0.0, 1.0, 5.0])
    return Camera(intrinsics_from_fov(size, 60.0), rotation, translation, size)


def _project(points, camera):
    projected = points @ camera.intrinsics.T
    return projected[:, :2] / projected[:, 2:]


def test_camera_frame_mesh_is_the_rotated_canonical_mesh(frames):
    people = [person for frame in frames for person in frame.people]
    assert 4 <= len(people) <= 12
    for person in people:
        rotation = Rotation.from_rotvec(person.global_orient).as_matrix()
        np.testing.assert_allclose(person.canonical_vertices.mean(axis=0), 0.0, atol=1e-5)
        rebuilt = person.canonical_vertices @ rotation.T + person.translation
        np.testing.assert_allclose(rebuilt, person.vertices_camera, atol=1e-5)


def test_people_stand_on_the_floor_in_front_of_the_camera(frames):
    for frame in frames:
        camera = frame.camera
        for person in frame.people:
            world = (person.vertices_camera - camera.translation) @ camera.rotation  # camera -> world
            assert world[:, 1].min() == pytest.approx(0.0, abs=1e-5)
            assert person.vertices_camera[:, 2].min() > 0.5


def test_keypoints_and_boxes_are_projections_of_the_3d_truth(frames):
    for frame in frames:
        camera, (height, width) = frame.camera, frame.camera.image_size
        for person in frame.people:
            keypoints = _project(person.h36m_camera[list(H36M_TO_J17)], camera)
            np.testing.assert_allclose(person.keypoints_2d[:, :2], keypoints, atol=1e-6)
            inside = (keypoints[:, 0] > -0.5) & (keypoints[:, 0] < width - 0.5) & (keypoints[:, 1] > -0.5) & (
                keypoints[:, 1] < height - 0.5)
            np.testing.assert_array_equal(person.keypoints_2d[:, 2] == 1, inside)
            assert not np.any(person.keypoints_visible & ~inside)
            pixels = _project(person.vertices_camera.astype(np.float64), camera)
            x, y, w, h = person.box
            shown = (pixels[:, 0] >= -0.5) & (pixels[:, 0] <= width - 0.5) & (pixels[:, 1] >= -0.5) & (
                pixels[:, 1] <= height - 0.5)
            assert np.all((pixels[shown] >= [x - 1e-3, y - 1e-3]) & (pixels[shown] <= [x + w + 1e-3, y + h + 1e-3]))


def test_rendered_masks_lie_inside_each_persons_box(frames):
    for frame in frames:
        assert frame.image.shape == (240, 320, 3) and frame.image.dtype == np.uint8
        for index, person in enumerate(frame.people):
            rows, columns = np.nonzero(frame.rendering.masks[index].numpy())
            if len(rows) == 0:
                continue
            x, y, w, h = person.box
            assert columns.min() >= x - 1 and columns.max() <= x + w + 1
            assert rows.min() >= y - 1 and rows.max() <= y + h + 1


def test_the_person_behind_is_less_visible(generator):
    rng = np.random.default_rng(3)
    camera = _camera()
    colors = generator.random_colors(rng)
    standing = np.zeros(69)
    front = PersonPlacement(np.zeros(10), standing, np.pi, np.array([0.0, 3.0]), colors)
    back = PersonPlacement(np.zeros(10), standing, np.pi, np.array([0.05, 5.0]), colors)
    alone = generator.compose_frame(rng, camera, [back], room_background(rng, camera), sample_lighting(rng))
    together = generator.compose_frame(rng, camera, [front, back], room_background(rng, camera),
                                       sample_lighting(rng))
    assert alone.people[0].visible_fraction > 0.7
    assert together.people[1].visible_fraction < 0.5 * alone.people[0].visible_fraction
    assert together.people[0].visible_fraction > 0.7
    assert together.people[1].keypoints_visible.sum() < alone.people[0].keypoints_visible.sum()


def test_parameters_rebuild_the_camera_frame_mesh(generator, frames):
    people = frames[0].people
    rebuilt = generator.camera_vertices(np.stack([p.betas for p in people]), np.stack([p.body_pose for p in people]),
                                        np.stack([p.global_orient for p in people]),
                                        np.stack([p.translation for p in people]))
    np.testing.assert_allclose(rebuilt, np.stack([p.vertices_camera for p in people]), atol=1e-5)


def test_floor_depth_agrees_with_the_floor_homography():
    camera = _camera()
    depth = floor_depth_map(camera)
    for x, z in ((0.0, 3.0), (1.0, 6.0), (-1.5, 4.0)):
        pixel = camera.floor_homography() @ [x, z, 1.0]
        column, row = np.rint(pixel[:2] / pixel[2]).astype(int)
        assert depth[row, column] == pytest.approx(z, rel=0.03)
    assert np.isinf(depth[0]).all()  # the top row looks above the horizon

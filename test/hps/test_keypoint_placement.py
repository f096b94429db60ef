"""Placing meshes on their 2D keypoints (`hps.keypoint_placement`): the translation and the orientation are
recovered from exact keypoints, the priors hold what the keypoints do not fix, wild keypoints are resisted, and an
unusable fit keeps the network's placement."""

from dataclasses import replace

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from vqhps_ros.errors import InputError
from vqhps_ros.hps.camera import project_points
from vqhps_ros.hps.keypoint_placement import KeypointPlacement, PlacementSettings
from vqhps_ros.hps.predict import PersonMesh
from vqhps_ros.humans import POSE_KEYPOINT_SET, BodyKeypoints

INTRINSICS = np.array([[500.0, 0.0, 319.5], [0.0, 500.0, 239.5], [0.0, 0.0, 1.0]])
IMAGE_SIZE = (480, 640)
NUM_VERTICES, NUM_LANDMARKS = 200, 33
TRUE_TRANSLATION = np.array([0.3, -0.1, 3.0])


@pytest.fixture(scope="module")
def body() -> np.ndarray:
    """(V, 3) a body-sized point cloud around its origin (1.7 m tall, 0.5 m wide, 0.3 m deep)."""
    return np.random.default_rng(0).uniform(-0.5, 0.5, (NUM_VERTICES, 3)) * [0.5, 1.7, 0.3]


@pytest.fixture(scope="module")
def landmarks() -> np.ndarray:
    """(33, V) each landmark one vertex."""
    matrix = np.zeros((NUM_LANDMARKS, NUM_VERTICES))
    matrix[np.arange(NUM_LANDMARKS), np.arange(0, 6 * NUM_LANDMARKS, 6)] = 1.0
    return matrix


def person_at(body: np.ndarray, translation) -> PersonMesh:
    vertices = (body + translation).astype(np.float32)
    box = np.array([200.0, 80.0, 120.0, 300.0])
    return PersonMesh(box=box, vertices=vertices, joints=vertices[:3].copy(), translation=np.asarray(translation),
                      rotation=np.eye(3), tokens=np.zeros(4, np.int64), token_confidence=np.ones(4, np.float32),
                      crop_camera=np.array([0.9, 0.0, 0.0]),
                      vertices_2d=project_points(vertices.astype(np.float64), INTRINSICS).astype(np.float32))


def keypoints_of(body: np.ndarray, landmarks: np.ndarray, translation=TRUE_TRANSLATION, **changes) -> BodyKeypoints:
    points = project_points(landmarks @ (body + translation), INTRINSICS).astype(np.float32)
    keypoints = BodyKeypoints(POSE_KEYPOINT_SET, points, np.ones(NUM_LANDMARKS, np.float32))
    return replace(keypoints, **changes)


def test_exact_keypoints_give_the_true_translation_and_move_everything_with_it(body, landmarks):
    placement = KeypointPlacement(landmarks, PlacementSettings(depth_prior=0.0, orient=False))
    start = TRUE_TRANSLATION + [0.15, 0.1, 0.6]  # off to the side and 60 cm too far
    person = placement.place_one(person_at(body, start), keypoints_of(body, landmarks), INTRINSICS, IMAGE_SIZE)
    np.testing.assert_allclose(person.translation, TRUE_TRANSLATION, atol=1e-6)
    np.testing.assert_allclose(person.vertices, body + TRUE_TRANSLATION, atol=1e-5)
    np.testing.assert_allclose(person.joints, person.vertices[:3])
    np.testing.assert_allclose(person.vertices_2d, project_points(body + TRUE_TRANSLATION, INTRINSICS), atol=1e-3)
    np.testing.assert_array_equal(person.rotation, np.eye(3))  # the shape and rotation stay the network's


TRUE_TURN = Rotation.from_euler("yx", [20.0, -8.0], degrees=True).as_matrix()  # heading and tilt the network missed


def test_exact_keypoints_of_a_turned_body_give_its_orientation_and_keep_its_pose(body, landmarks):
    placement = KeypointPlacement(landmarks, PlacementSettings(depth_prior=0.0, rotation_prior=0.0, iterations=10))
    turned = body @ TRUE_TURN.T  # the same pose, turned about its origin
    start = TRUE_TRANSLATION + [0.1, 0.05, 0.4]
    person = placement.place_one(person_at(body, start), keypoints_of(turned, landmarks), INTRINSICS, IMAGE_SIZE)
    np.testing.assert_allclose(person.translation, TRUE_TRANSLATION, atol=1e-5)
    np.testing.assert_allclose(person.rotation, TRUE_TURN, atol=1e-5)  # the network's (identity) turned
    np.testing.assert_allclose(person.vertices, turned + TRUE_TRANSLATION, atol=1e-4)
    np.testing.assert_allclose(person.joints, person.vertices[:3])
    np.testing.assert_allclose(person.vertices_2d, project_points(turned + TRUE_TRANSLATION, INTRINSICS), atol=1e-2)


def test_the_rotation_prior_holds_the_networks_orientation(body, landmarks):
    turned = body @ TRUE_TURN.T
    angles = []
    for prior in (0.0, 1.0, 1000.0):
        placement = KeypointPlacement(landmarks, PlacementSettings(depth_prior=0.0, rotation_prior=prior))
        person = placement.place_one(person_at(body, TRUE_TRANSLATION), keypoints_of(turned, landmarks), INTRINSICS,
                                     IMAGE_SIZE)
        angles.append(np.degrees(np.linalg.norm(Rotation.from_matrix(person.rotation).as_rotvec())))
    true_angle = np.degrees(np.linalg.norm(Rotation.from_matrix(TRUE_TURN).as_rotvec()))
    assert abs(angles[0] - true_angle) < 0.01
    assert true_angle > angles[1] > angles[2] and angles[2] < 1.0


def test_the_depth_prior_holds_the_depth_but_not_the_image_position(body, landmarks):
    start = TRUE_TRANSLATION * 1.2  # the same image position, 20 % too far
    start[0] += 0.2
    free, held = (KeypointPlacement(landmarks, PlacementSettings(depth_prior=prior)).place_one(
        person_at(body, start), keypoints_of(body, landmarks), INTRINSICS, IMAGE_SIZE) for prior in (0.0, 50.0))
    assert abs(free.translation[2] - TRUE_TRANSLATION[2]) < 1e-6
    assert abs(held.translation[2] - start[2]) < 0.5 * abs(start[2] - TRUE_TRANSLATION[2])
    centre = lambda person: person.translation[:2] / person.translation[2]  # noqa: E731 (direction of the body)
    np.testing.assert_allclose(centre(held), centre(free), atol=0.01)


def test_wild_keypoints_are_resisted(body, landmarks):
    keypoints = keypoints_of(body, landmarks)
    wild = keypoints.points.copy()
    wild[:4] += [150.0, -120.0]  # four of 33 keypoints land far away
    keypoints = replace(keypoints, points=wild)
    start = TRUE_TRANSLATION + [0.2, 0.0, 0.5]
    robust = KeypointPlacement(landmarks, PlacementSettings(depth_prior=0.0))
    plain = KeypointPlacement(landmarks, PlacementSettings(depth_prior=0.0, robust_share=100.0))
    errors = [np.linalg.norm(placement.place_one(person_at(body, start), keypoints, INTRINSICS, IMAGE_SIZE)
                             .translation - TRUE_TRANSLATION) for placement in (robust, plain)]
    assert errors[0] < 0.03 and errors[0] < 0.25 * errors[1]


def test_a_turn_beyond_the_limit_leaves_the_mesh_only_moved(body, landmarks):
    keypoints = keypoints_of(body @ TRUE_TURN.T, landmarks)  # a body turned by 21 degrees
    start = person_at(body, TRUE_TRANSLATION + [0.1, 0.0, 0.2])
    settings = PlacementSettings(depth_prior=0.0, rotation_prior=0.0, max_turn_deg=15)
    limited = KeypointPlacement(landmarks, settings).place_one(start, keypoints, INTRINSICS, IMAGE_SIZE)
    unturned = KeypointPlacement(landmarks, replace(settings, orient=False)).place_one(start, keypoints, INTRINSICS,
                                                                                       IMAGE_SIZE)
    np.testing.assert_array_equal(limited.rotation, np.eye(3))
    np.testing.assert_allclose(limited.translation, unturned.translation)
    assert np.linalg.norm(limited.translation - start.translation) > 0.05


@pytest.mark.parametrize("case", ["no keypoints", "too few seen", "another set", "depth doubled", "unplaced"])
def test_an_unusable_fit_keeps_the_networks_placement(body, landmarks, case):
    placement = KeypointPlacement(landmarks, PlacementSettings(depth_prior=0.0))
    start = TRUE_TRANSLATION + [0.1, 0.0, 0.2]
    person, keypoints = person_at(body, start), keypoints_of(body, landmarks)
    if case == "no keypoints":
        keypoints = None
    elif case == "too few seen":
        visibility = np.zeros(NUM_LANDMARKS, np.float32)
        visibility[:5] = 1.0
        keypoints = replace(keypoints, visibility=visibility)
    elif case == "another set":
        keypoints = replace(keypoints, keypoint_set="coco_17")
    elif case == "depth doubled":  # keypoints of a body five times as far: beyond max_depth_ratio
        keypoints = keypoints_of(body, landmarks, TRUE_TRANSLATION * 5)
    else:
        person = replace(person, vertices=person.vertices - [0.0, 0.0, 4.0])  # behind the camera: not placed
    assert placement.place_one(person, keypoints, INTRINSICS, IMAGE_SIZE) is person


def test_people_are_placed_in_order_and_bad_settings_are_refused(body, landmarks):
    placement = KeypointPlacement(landmarks)
    people = [person_at(body, TRUE_TRANSLATION + [0.1, 0.0, 0.0]), person_at(body, TRUE_TRANSLATION)]
    placed = placement.place(people, [keypoints_of(body, landmarks), None], INTRINSICS, IMAGE_SIZE)
    assert placed[1] is people[1] and np.linalg.norm(placed[0].translation - TRUE_TRANSLATION) < 0.01
    for bad in ({"robust_share": 0.0}, {"rotation_prior": -1.0}, {"max_turn_deg": 0.0}):
        with pytest.raises(InputError, match="unusable keypoint placement settings"):
            PlacementSettings(**bad)
    with pytest.raises(InputError, match=r"\(K, V\) regressor"):
        KeypointPlacement(np.zeros(5))


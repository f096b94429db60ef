"""The facing guard: the reflection in depth of a body, when a measurement is taken as one, and the tracker keeping a
person's facing through frames where the network reads the person reflected, until the image insists."""

from collections import Counter
from dataclasses import dataclass, replace

import numpy as np
import pytest
from world import START_NS, K

from vqhps_ros.config import TemporalConfig
from vqhps_ros.errors import InputError
from vqhps_ros.humans import Detection, Frame, FrameResult, Human
from vqhps_ros.temporal import FacingGuard, FacingSettings, TemporalTracker, depth_reflection, rotation_exp

FPS = 15.0
IMAGE_SIZE = (480, 640)


@dataclass
class Pose:
    translation: np.ndarray
    rotation: np.ndarray
    vertices: np.ndarray
    joints: np.ndarray | None


def mirrored_pairs(half: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points (2N, 3): `half` (x > 0) and its mirror image x -> -x; each point's twin index (2N,)."""
    points = np.concatenate([half, half * np.array([-1.0, 1.0, 1.0])])
    count = len(half)
    return points, np.concatenate([np.arange(count, 2 * count), np.arange(count)])


def asymmetric_body(seed: int = 0):
    """A body (vertices (120, 3), joints (6, 3), body frame: x left-right, y up, z forward) whose rest shape is
    mirror-symmetric, posed asymmetrically: its left side (x > 0) reaches 25 cm forward, as an arm held out; with the
    vertex twins and joint partners."""
    rng = np.random.default_rng(seed)
    half = rng.uniform([0.02, -0.85, -0.12], [0.3, 0.85, 0.12], size=(60, 3))
    vertices, twins = mirrored_pairs(half)
    joints, partners = mirrored_pairs(rng.uniform([0.05, -0.8, -0.05], [0.2, 0.8, 0.05], size=(3, 3)))
    vertices[vertices[:, 0] > 0, 2] += 0.25
    joints[joints[:, 0] > 0, 2] += 0.25
    return vertices, joints, twins, partners


def camera_mesh(pose) -> np.ndarray:
    return pose.vertices @ pose.rotation.T + pose.translation


def test_the_reflection_is_the_mirror_image_in_depth_with_left_and_right_swapped():
    vertices, joints, twins, partners = asymmetric_body()
    pose = Pose(np.array([0.4, 0.1, 4.0]), rotation_exp([0.1, 2.9, -0.2]), vertices, joints)  # seen from the back
    guard = FacingGuard(twins, partners)
    reflected = guard.reflected(pose)
    reflection = depth_reflection(pose.translation)
    expected = (camera_mesh(pose)[twins] - pose.translation) @ reflection.T + pose.translation
    np.testing.assert_allclose(camera_mesh(reflected), expected, atol=1e-12)
    np.testing.assert_allclose(reflected.joints @ reflected.rotation.T + pose.translation,
                               (joints[partners] @ pose.rotation.T) @ reflection.T + pose.translation, atol=1e-12)
    np.testing.assert_allclose(reflected.rotation @ reflected.rotation.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(reflected.rotation) == pytest.approx(1.0)  # a rotation, not a reflection
    np.testing.assert_allclose(reflected.translation, pose.translation)
    # each vertex lands near its twin's place in the image (only perspective tells them apart), far from its own
    pixels = [(mesh @ K.T)[:, :2] / (mesh @ K.T)[:, 2:] for mesh in (camera_mesh(pose), camera_mesh(reflected))]
    near_twin, near_own = (np.linalg.norm(pixels[1] - pixels[0][order], axis=1).mean()
                           for order in (twins, slice(None)))
    assert near_twin < 0.25 * near_own and near_own > 20.0
    again = guard.reflected(reflected)
    np.testing.assert_allclose(camera_mesh(again), camera_mesh(pose), atol=1e-12)


def test_a_measurement_is_taken_as_reflected_only_when_its_reflection_is_much_nearer():
    vertices, joints, twins, partners = asymmetric_body()
    guard = FacingGuard(twins, partners)
    track = Pose(np.array([0.0, 0.2, 3.0]), rotation_exp([0.0, 0.3, 0.0]), vertices, joints)
    reflected = guard.reflected(track)
    taken = guard.nearer_reflection(reflected, track)
    np.testing.assert_allclose(camera_mesh(taken), camera_mesh(track), atol=1e-12)
    moved = replace(track, vertices=track.vertices + np.array([0.0, 0.0, 0.02]))  # 2 cm: under min_change
    assert guard.nearer_reflection(moved, track) is None
    turned = replace(track, rotation=rotation_exp([0.0, 1.2, 0.0]) @ track.rotation)  # far, but no reflection
    assert guard.nearer_reflection(turned, track) is None
    other = FacingGuard(np.arange(7), None)  # another topology's mesh is never compared
    assert other.nearer_reflection(reflected, replace(track, vertices=np.zeros((7, 3)))) is None


def test_bad_twins_meshes_and_roots_are_refused_with_what_was_found():
    vertices, joints, twins, partners = asymmetric_body()
    with pytest.raises(InputError, match="permutation"):
        FacingGuard(np.zeros(len(twins), np.int64), partners)
    with pytest.raises(InputError, match="120 vertices"):
        FacingGuard(twins, partners).reflected(Pose(np.ones(3), np.eye(3), vertices[:10], None))
    with pytest.raises(InputError, match="6 joints"):
        FacingGuard(twins, partners).reflected(Pose(np.ones(3), np.eye(3), vertices, joints[:4]))
    with pytest.raises(InputError, match="away from the camera centre"):
        depth_reflection(np.zeros(3))
    with pytest.raises(InputError, match="min_change"):
        FacingSettings(min_change=0.0)


class Scene:
    """One person standing 3 m in front of the camera, turned a little, turning slowly (10 degrees a second); the
    network reads the person reflected in depth in the frames of `reflected`, and from the track's predicted box in
    the frames of `missed`."""

    def __init__(self, guard: FacingGuard | None, reflected: set[int], hold: float = 1.0,
                 missed: frozenset = frozenset()):
        vertices, joints, twins, partners = asymmetric_body()
        self.vertices, self.joints = vertices, joints
        self.reflection = FacingGuard(twins, partners)
        self.reflected = reflected
        self.missed = missed  # frames where the detector misses the person: the network reads the predicted box
        settings = TemporalConfig(confirm_hits=1, facing_hold=hold, predicted_frames=40, max_misses=40, max_age=5.0)
        self.tracker = TemporalTracker(settings, facing=guard)

    def truth(self, index: int) -> Pose:
        angle = 0.4 + np.radians(10.0) * index / FPS
        return Pose(np.array([0.1, 0.2, 3.0]), rotation_exp([0.0, angle, 0.0]), self.vertices, self.joints)

    def step(self, index: int):
        """(published mesh (V, 3), true mesh (V, 3), the frame's skipped counts)."""
        truth = self.truth(index)
        measured = self.reflection.reflected(truth) if index in self.reflected else truth
        mesh = camera_mesh(measured)
        pixels = (mesh @ K.T)[:, :2] / (mesh @ K.T)[:, 2:]
        box = np.concatenate([pixels.min(axis=0), pixels.max(axis=0) - pixels.min(axis=0)])
        human = Human(id="", score=0.9, box=box, tokens=np.zeros(4, np.int64), token_confidence=np.ones(4, np.float32),
                      vertices=mesh.astype(np.float32), joints=camera_mesh(replace(measured, vertices=measured.joints))
                      .astype(np.float32), joints_2d=None, vertices_2d=pixels.astype(np.float32),
                      root_position=measured.translation.copy(), root_rotation=measured.rotation,
                      crop_camera=np.array([1.0, 0.0, 0.0]), translation=measured.translation.copy())
        stamp = START_NS + int(round(index * 1e9 / FPS))
        detections = () if index in self.missed else (Detection(box, 0.9, "person"),)
        frame = Frame(np.zeros((*IMAGE_SIZE, 3), np.uint8), stamp, "camera", K, detections)
        skipped = Counter()
        assert len(self.tracker.persons(frame, frame.detections, skipped)) == 1  # the detection or the predicted box
        result = self.tracker.update(FrameResult(stamp, "camera", IMAGE_SIZE, [human], {}, dict(skipped)), [0])
        (published,) = result.humans
        return published.vertices.astype(np.float64), camera_mesh(truth), result.skipped


def vertex_errors(scene: Scene, frames: range) -> tuple[np.ndarray, int]:
    """Mean vertex error (metres) of each frame's published mesh, and the frames counted as facing_reflected."""
    errors, counted = [], 0
    for index in frames:
        published, truth, skipped = scene.step(index)
        errors.append(np.linalg.norm(published - truth, axis=1).mean())
        counted += skipped.get("facing_reflected", 0)
    return np.asarray(errors), counted


def test_the_tracker_keeps_the_facing_through_a_few_reflected_frames():
    _, _, twins, partners = asymmetric_body()
    reflected = set(range(10, 16))
    guarded, counted = vertex_errors(Scene(FacingGuard(twins, partners), reflected), range(30))
    unguarded, _ = vertex_errors(Scene(None, reflected), range(30))
    assert counted == len(reflected)
    assert guarded.max() < 0.03  # the filters' lag on a slow turn
    assert unguarded[10:16].min() > 0.1  # without the guard the track follows the reflection


def test_a_track_turns_to_the_reflection_once_the_image_insists_for_the_hold():
    _, _, twins, partners = asymmetric_body()
    scene = Scene(FacingGuard(twins, partners), set(range(10, 40)), hold=1.0)
    errors, counted = vertex_errors(scene, range(40))
    turned_at = 10 + int(FPS)  # a second of reflected measurements in a row
    assert counted == turned_at - 10
    assert errors[:turned_at].max() < 0.03
    assert errors[turned_at:].min() > 0.1  # from there the track follows what the network says


def test_measurements_from_predicted_boxes_never_turn_the_track():
    _, _, twins, partners = asymmetric_body()
    missed = frozenset(range(10, 40))  # the network reads the predicted box, reflected, for two seconds
    scene = Scene(FacingGuard(twins, partners), set(missed), hold=1.0, missed=missed)
    errors, counted = vertex_errors(scene, range(40))
    assert counted == len(missed)
    assert errors.max() < 0.03


"""Mirror averaging: the mirror maps of the landmarks, joints and the free body's vertices, the mirrored keypoint
input, and the average of an output with its mirror image's."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from vqhps_ros.body import H36M_17_JOINT_NAMES, load_free_body_data
from vqhps_ros.errors import InputError
from vqhps_ros.hps.mirror_average import (
    MirrorAverage,
    mirrored_names,
    mirrored_rotations,
    nearest_rotations,
    vertex_mirror,
)
from vqhps_ros.humans import POSE_LANDMARK_NAMES
from vqhps_ros.runtime import EngineOutput

FLIP = np.diag([-1.0, 1.0, 1.0])


@pytest.fixture(scope="module")
def rest():
    return np.asarray(load_free_body_data().v_template, dtype=np.float64)


@pytest.fixture(scope="module")
def mirror(rest):
    return MirrorAverage(vertex_mirror(rest), mirrored_names(POSE_LANDMARK_NAMES), mirrored_names(H36M_17_JOINT_NAMES))


def output(vertices, rotation, camera, joints) -> EngineOutput:
    """An engine output of people whose verts are `vertices` (N, V, 3) turned by `rotation` (N, 3, 3)."""
    count, size = len(vertices), 54
    return EngineOutput(
        indices=np.arange(count * size, dtype=np.int32).reshape(count, size),
        token_confidence=np.full((count, size), 0.5, np.float32), rotmat=rotation.astype(np.float32),
        cam=camera.astype(np.float32), verts_canonical=np.einsum("nvj,nji->nvi", vertices, rotation).astype(np.float32),
        verts=vertices.astype(np.float32), joints=joints.astype(np.float32))


def mirror_image(found: EngineOutput, mirror: MirrorAverage) -> EngineOutput:
    """What an exactly mirror-symmetric network would give for the mirrored input."""
    return output(mirror.mirrored_points(found.verts, mirror.vertex_twins), mirrored_rotations(found.rotmat),
                  found.cam * [1, -1, 1], mirror.mirrored_points(found.joints, mirror.joint_partners))


def people(rest, count=3, seed=0) -> EngineOutput:
    rng = np.random.default_rng(seed)
    rotation = Rotation.random(count, random_state=seed).as_matrix()
    vertices = np.einsum("vj,nij->nvi", rest, rotation) + rng.normal(0, 0.01, (count, len(rest), 3))
    return output(vertices, rotation, rng.uniform([0.5, -0.2, -0.2], [1.2, 0.2, 0.2], (count, 3)),
                  rng.normal(0, 0.3, (count, len(H36M_17_JOINT_NAMES), 3)))


def test_left_and_right_names_swap_and_the_rest_stay():
    partners = mirrored_names(POSE_LANDMARK_NAMES)
    assert POSE_LANDMARK_NAMES[partners[POSE_LANDMARK_NAMES.index("left_hip")]] == "right_hip"
    assert POSE_LANDMARK_NAMES[partners[POSE_LANDMARK_NAMES.index("right_eye_outer")]] == "left_eye_outer"
    assert partners[POSE_LANDMARK_NAMES.index("nose")] == POSE_LANDMARK_NAMES.index("nose")
    np.testing.assert_array_equal(partners[partners], np.arange(len(POSE_LANDMARK_NAMES)))
    joints = mirrored_names(H36M_17_JOINT_NAMES)
    assert H36M_17_JOINT_NAMES[joints[H36M_17_JOINT_NAMES.index("left_wrist")]] == "right_wrist"
    with pytest.raises(InputError, match="'left_toe' has no mirror partner 'right_toe'"):
        mirrored_names(("pelvis", "left_toe"))


def test_the_free_body_vertices_pair_with_their_mirror_twins(rest):
    twins = vertex_mirror(rest)
    np.testing.assert_array_equal(twins[twins], np.arange(len(rest)))
    np.testing.assert_allclose(rest[twins] * [-1, 1, 1], rest, atol=1e-3)
    assert (twins != np.arange(len(rest))).mean() > 0.9  # only the midline maps to itself
    lopsided = rest.copy()
    lopsided[rest[:, 0] > 0.1] += [0.02, 0, 0]
    with pytest.raises(InputError, match=r"not mirror-symmetric about x = 0: vertex \d+'s mirror image lies"):
        vertex_mirror(lopsided)


def test_mirrored_keypoints_negate_x_and_swap_sides(mirror):
    keypoints = np.random.default_rng(1).uniform(-1, 1, (2, 33, 3)).astype(np.float32)
    keypoints[..., 2] = keypoints[..., 2] > 0
    mirrored = mirror.mirrored_keypoints(keypoints)
    left, right = POSE_LANDMARK_NAMES.index("left_wrist"), POSE_LANDMARK_NAMES.index("right_wrist")
    np.testing.assert_array_equal(mirrored[:, left], keypoints[:, right] * [-1, 1, 1])
    np.testing.assert_array_equal(mirror.mirrored_keypoints(mirrored), keypoints)
    assert mirrored.dtype == np.float32


def test_a_mirror_symmetric_estimate_averages_to_itself(rest, mirror):
    found = people(rest)
    averaged = mirror.averaged(found, mirror_image(found, mirror))
    for name in ("verts", "rotmat", "cam", "joints", "verts_canonical"):
        np.testing.assert_allclose(getattr(averaged, name), getattr(found, name), atol=1e-5, err_msg=name)
    np.testing.assert_array_equal(averaged.indices, found.indices)


def test_two_estimates_average_halfway_and_keep_the_outputs_contract(rest, mirror):
    found = people(rest)
    shift = np.array([0.02, -0.01, 0.03])
    turn = Rotation.from_rotvec([0.0, 0.3, 0.0]).as_matrix()
    other = output(found.verts + shift, found.rotmat @ turn, found.cam + [0.1, 0.05, 0.0], found.joints + shift)
    averaged = mirror.averaged(found, mirror_image(other, mirror))
    np.testing.assert_allclose(averaged.verts, found.verts + shift / 2, atol=1e-5)
    np.testing.assert_allclose(averaged.joints, found.joints + shift / 2, atol=1e-5)
    np.testing.assert_allclose(averaged.cam, found.cam + [0.05, 0.025, 0.0], atol=1e-6)
    halfway = Rotation.from_matrix(found.rotmat.astype(np.float64).transpose(0, 2, 1) @ averaged.rotmat).magnitude()
    np.testing.assert_allclose(halfway, 0.15, atol=1e-4)
    np.testing.assert_allclose(np.einsum("nvj,nij->nvi", averaged.verts_canonical, averaged.rotmat), averaged.verts,
                               atol=1e-5)
    np.testing.assert_array_equal(averaged.token_confidence, found.token_confidence)


def test_nearest_rotations_are_rotations():
    noisy = Rotation.random(5, random_state=2).as_matrix() + np.random.default_rng(2).normal(0, 0.1, (5, 3, 3))
    rotations = nearest_rotations(noisy)
    np.testing.assert_allclose(rotations @ rotations.transpose(0, 2, 1), np.broadcast_to(np.eye(3), (5, 3, 3)),
                               atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(rotations), 1.0)
    np.testing.assert_allclose(nearest_rotations(2 * np.eye(3)[None]), np.eye(3)[None])
    np.testing.assert_allclose(mirrored_rotations(np.eye(3)[None]), np.eye(3)[None])
    turn = Rotation.from_rotvec([0.0, 0.0, 0.4]).as_matrix()
    np.testing.assert_allclose(mirrored_rotations(turn[None])[0], FLIP @ turn @ FLIP)


class MirroredEngine:
    """Answers each keypoint row with an exactly mirror-consistent person, and records its calls."""

    def __init__(self, rest, mirror):
        self.rest, self.mirror, self.calls = rest, mirror, []

    def infer(self, keypoints):
        self.calls.append(len(keypoints))
        half = len(keypoints) // 2
        found = people(self.rest, half)
        both = [found, mirror_image(found, self.mirror)]
        return EngineOutput(*(np.concatenate([getattr(part, name) for part in both])
                              for name in EngineOutput._fields))


def test_infer_reads_people_and_their_mirror_images_in_one_call(rest, mirror):
    engine = MirroredEngine(rest, mirror)
    averaged = mirror.infer(engine, np.zeros((3, 33, 3), np.float32))
    assert engine.calls == [6]
    np.testing.assert_allclose(averaged.verts, people(rest, 3).verts, atol=1e-5)
    assert averaged.indices.shape == (3, 54)

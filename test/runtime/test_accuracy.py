"""The accuracy cost measure on outputs whose differences are known."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from vqhps_ros.errors import InputError
from vqhps_ros.runtime import EngineOutput, measure_precision_cost
from vqhps_ros.runtime.accuracy import rotation_angle_deg


def outputs(indices, rotmat, verts_canonical, joints=None):
    verts = verts_canonical @ np.swapaxes(rotmat, 1, 2)
    count = len(indices)
    return EngineOutput(np.asarray(indices, dtype=np.int32), np.ones(np.shape(indices), np.float32), rotmat,
                        np.zeros((count, 3), np.float32), verts_canonical, verts, joints)


@pytest.fixture
def reference():
    rng = np.random.default_rng(0)
    canonical = rng.normal(0, 0.3, (4, 50, 3))
    return outputs(np.arange(24).reshape(4, 6), np.repeat(np.eye(3)[None], 4, axis=0), canonical)


def test_identical_outputs_cost_nothing(reference):
    cost = measure_precision_cost(reference, reference)
    assert (cost.token_agreement, cost.vertex_error_mm, cost.rotation_error_deg) == (1.0, 0.0, 0.0)
    assert cost.persons_all_tokens_equal == 1.0 and cost.vertex_error_all_tokens_equal_mm == 0.0
    assert cost.aligned_metric == "PA-PVE" and cost.aligned_to_reference_mm == pytest.approx(0.0, abs=1e-6)
    assert cost.truth_change_mm is None


def test_known_flips_offsets_and_rotations(reference):
    indices = reference.indices.copy()
    indices[1, 2] = 99  # one flipped token in person 1
    canonical = reference.verts_canonical.copy()
    canonical[1] += [0.002, 0.0, 0.0]  # person 1's mesh moved by 2 mm
    rotations = reference.rotmat.copy()
    rotations[3] = Rotation.from_rotvec([0.0, 0.0, np.radians(10.0)]).as_matrix()
    cost = measure_precision_cost(reference, outputs(indices, rotations, canonical))
    assert cost.token_agreement == pytest.approx(23 / 24)
    assert cost.canonical_vertex_error_mm == pytest.approx(2.0 / 4)
    assert cost.rotation_error_deg == pytest.approx(10.0 / 4)
    assert cost.persons_all_tokens_equal == 0.75
    # Persons 0, 2 and 3 have every token: only person 3's rotation moves their vertices.
    expected = np.linalg.norm(outputs(indices, rotations, canonical).verts[3] - reference.verts[3], axis=-1).mean()
    assert cost.vertex_error_all_tokens_equal_mm == pytest.approx(1000 * expected / 3)
    assert cost.aligned_to_reference_mm == pytest.approx(0.0, abs=1e-6)  # a shift and a rotation align away


def test_joints_give_pa_mpjpe_and_truth_gives_the_change(reference):
    regressor = np.full((2, 50), 1 / 50)
    regressor[1] = 0
    regressor[1, :10] = 0.1
    joints = regressor @ reference.verts
    candidate_canonical = reference.verts_canonical * 1.0
    candidate_canonical[:, :10] += 0.01  # bends part of each mesh by 1 cm
    candidate = outputs(reference.indices, reference.rotmat, candidate_canonical, regressor @ candidate_canonical)
    truth = reference.verts_canonical
    cost = measure_precision_cost(outputs(reference.indices, reference.rotmat, reference.verts_canonical, joints),
                                  candidate, truth_vertices=truth, joint_regressor=regressor)
    assert cost.aligned_metric == "PA-MPJPE"
    assert cost.reference_to_truth_mm == pytest.approx(0.0, abs=1e-6)
    assert cost.candidate_to_truth_mm > 0 and cost.truth_change_mm == pytest.approx(cost.candidate_to_truth_mm)


def test_truth_of_another_topology_is_left_out(reference):
    cost = measure_precision_cost(reference, reference, truth_vertices=np.zeros((4, 7, 3)))
    assert cost.reference_to_truth_mm is None and cost.candidate_to_truth_mm is None


def test_outputs_of_different_persons_are_refused(reference):
    fewer = EngineOutput(*(None if array is None else array[:2] for array in reference))
    with pytest.raises(InputError, match="same persons"):
        measure_precision_cost(reference, fewer)


def test_rotation_angle_is_accurate_near_zero_and_near_half_a_turn():
    angles = np.array([1e-6, 0.3, 0.2, 3.0])
    rotations = Rotation.from_rotvec(angles[:, None] * [[0.0, 1.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0],
                                                        [0.0, 0.6, 0.8]]).as_matrix()
    np.testing.assert_allclose(rotation_angle_deg(rotations, np.repeat(np.eye(3)[None], 4, axis=0)),
                               np.degrees(angles), rtol=1e-6)

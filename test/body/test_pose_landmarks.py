"""MediaPipe's pose landmarks on the free body: the prior from named vertices and joints, the shipped fit, and the
calibration that fits and measures them against the landmark model on renders."""

import numpy as np
import pytest

from vqhps_ros.body import free_body_pose_landmarks, load_free_body_data, prior_pose_landmarks
from vqhps_ros.body.joints import SMPL_24_JOINT_NAMES, JointRegressor
from vqhps_ros.body.pose_landmarks import landmark_info, save_pose_landmarks
from vqhps_ros.errors import CheckpointError
from vqhps_ros.humans import POSE_LANDMARK_NAMES


@pytest.fixture(scope="module")
def body():
    return load_free_body_data()


def landmark(name: str) -> int:
    return POSE_LANDMARK_NAMES.index(name)


def test_the_prior_takes_named_vertices_and_joints(body):
    prior = prior_pose_landmarks(body)
    assert prior.matrix.shape == (33, body.num_vertices) and prior.joint_names == POSE_LANDMARK_NAMES
    np.testing.assert_allclose(prior.matrix.sum(axis=1), 1.0, atol=1e-6)  # affine: moves with the body
    nose = np.zeros(body.num_vertices, np.float32)
    nose[body.vertex_ids["nose"]] = 1.0
    np.testing.assert_array_equal(prior.matrix[landmark("nose")], nose)
    np.testing.assert_array_equal(prior.matrix[landmark("left_knee")],
                                  body.J_regressor[SMPL_24_JOINT_NAMES.index("left_knee")])


def test_left_landmarks_are_on_the_persons_left_and_mirror_the_right(body):
    points = prior_pose_landmarks(body)(body.v_template.astype(np.float64))
    for name in POSE_LANDMARK_NAMES:
        if name.startswith("left_"):
            left, right = points[landmark(name)], points[landmark(name.replace("left_", "right_"))]
            assert left[0] > 0 > right[0], name  # the body faces +z: its left is +x
            np.testing.assert_allclose(left * [-1, 1, 1], right, atol=0.02, err_msg=name)


def test_the_shipped_fit_stays_near_the_prior_and_moves_with_the_body(body):
    fitted = free_body_pose_landmarks(num_vertices=body.num_vertices)
    assert fitted.joint_names == POSE_LANDMARK_NAMES
    np.testing.assert_allclose(fitted.matrix.sum(axis=1), 1.0, atol=1e-4)
    rest = body.v_template.astype(np.float64)
    moved = fitted(rest) - prior_pose_landmarks(body)(rest)
    # metres: a correction, not another landmark. The most: the hands, whose MediaPipe "pinky" and "index" are
    # knuckles while the body names its finger tips
    distances = np.linalg.norm(moved, axis=1)
    assert distances.max() < 0.12 and np.median(distances) < 0.05
    info = landmark_info()
    assert info["people"] >= 300 and info["made_by"] == "tools/fit_pose_landmarks.py"
    assert np.median(info["median_error_box_heights"]["fitted"]) < np.median(info["median_error_box_heights"]["prior"])


def test_unusable_landmark_files_are_refused(tmp_path, body):
    with pytest.raises(CheckpointError, match="does not exist"):
        free_body_pose_landmarks(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a numpy file")
    with pytest.raises(CheckpointError, match="not a pose landmark file"):
        free_body_pose_landmarks(tmp_path / "junk.npz")
    save_pose_landmarks(tmp_path / "small.npz", JointRegressor(np.eye(33, 40, dtype=np.float32), POSE_LANDMARK_NAMES),
                        {"made_by": "test"})
    assert free_body_pose_landmarks(tmp_path / "small.npz").num_vertices == 40
    with pytest.raises(CheckpointError, match="meshes of 40 vertices, not 1229"):
        free_body_pose_landmarks(tmp_path / "small.npz", num_vertices=1229)
    wrong = JointRegressor(np.eye(17, 40, dtype=np.float32), [f"j{i}" for i in range(17)])
    save_pose_landmarks(tmp_path / "other.npz", wrong, {})
    with pytest.raises(CheckpointError, match=r"expected weights \(33, V\)"):
        free_body_pose_landmarks(tmp_path / "other.npz")

"""The shipped free body: file format, smplx loading, skinning, shape space, regressors, bad files."""

import pickle

import numpy as np
import pytest
import smplx
import torch
from scipy.spatial.transform import Rotation

from vqhps_ros.body import (
    FREE_BODY_PATH,
    H36M_17_JOINT_NAMES,
    SMPL_24_JOINT_NAMES,
    free_body_h36m_regressor,
    load_free_body,
    load_free_body_data,
    save_free_body_data,
)
from vqhps_ros.body.free_body import EXTRA_JOINT_VERTEX_NAMES, SMPL_PARENTS, pickle_for_numpy1
from vqhps_ros.errors import InputError
from vqhps_ros.train.hps_data import mirror_permutation

JOINT = {name: index for index, name in enumerate(SMPL_24_JOINT_NAMES)}


@pytest.fixture(scope="module")
def data():
    return load_free_body_data()


@pytest.fixture(scope="module")
def body():
    return load_free_body(dtype=torch.float64)


def _pose(body, joint_angles=None, betas=None):
    """Posed body with zero global orientation: (vertices (V, 3), joints (24, 3)) as numpy."""
    body_pose = torch.zeros(1, 69, dtype=torch.float64)
    for name, axis_angle in (joint_angles or {}).items():
        start = (JOINT[name] - 1) * 3
        body_pose[0, start:start + 3] = torch.as_tensor(axis_angle, dtype=torch.float64)
    betas = torch.zeros(1, 10, dtype=torch.float64) if betas is None else torch.as_tensor(betas)[None].double()
    with torch.no_grad():
        output = body(body_pose=body_pose, betas=betas)
    return output.vertices[0].numpy(), output.joints[0, :24].numpy()


def _descendants(joint: int) -> set[int]:
    found = {joint}
    for child, parent in enumerate(SMPL_PARENTS):  # parents always come before their children
        if parent in found:
            found.add(child)
    return found


def test_shipped_file_is_small_and_complete(data):
    assert FREE_BODY_PATH.stat().st_size < 5e6
    assert (data.num_vertices, data.num_faces, data.num_betas) == (1229, 2454, 10)
    assert data.posedirs.shape == (1229, 3, 207) and not data.posedirs.any()  # documented: no correctives
    np.testing.assert_allclose(data.weights.sum(axis=1), 1.0, atol=1e-5)
    assert set(data.vertex_ids) == set(EXTRA_JOINT_VERTEX_NAMES)
    assert "Apache" in data.info["licence"] and "CC0" in data.info["licence"]
    assert (FREE_BODY_PATH.parent / "NOTICE.md").is_file()


def test_template_is_a_closed_symmetric_surface(data):
    vertices, faces = data.v_template.astype(np.float64), data.faces
    edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    assert np.all(counts == 2)  # every edge between exactly two triangles: watertight, no holes
    corners = vertices[faces]
    volume = np.einsum("ij,ij->i", corners[:, 0], np.cross(corners[:, 1], corners[:, 2])).sum() / 6
    assert 0.04 < volume < 0.12  # m^3, positive: faces counter-clockwise from outside
    assert mirror_permutation(vertices) is not None  # flip augmentation needs left-right twins


def test_loads_as_smpl_with_smplx_from_the_file(data, body):
    plain = smplx.SMPL(model_path=str(FREE_BODY_PATH), vertex_ids=data.vertex_ids, dtype=torch.float64)
    pose = torch.randn(1, 69, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 0.2
    betas = torch.linspace(-1, 1, 10, dtype=torch.float64)[None]
    expected, found = plain(body_pose=pose, betas=betas), body(body_pose=pose, betas=betas)
    assert found.vertices.shape == (1, 1229, 3) and found.joints.shape == (1, 24 + 21, 3)
    torch.testing.assert_close(found.vertices, expected.vertices)
    extra = found.joints[0, 24:]
    ids = torch.as_tensor([data.vertex_ids[name] for name in EXTRA_JOINT_VERTEX_NAMES])
    torch.testing.assert_close(extra, found.vertices[0, ids])


def test_zero_pose_is_a_t_pose_of_adult_size(body):
    vertices, joints = _pose(body)
    height = vertices[:, 1].max() - vertices[:, 1].min()
    assert 1.55 < height < 1.85
    for side, sign in (("left", 1.0), ("right", -1.0)):  # SMPL: the body's left is +x, arms along x
        shoulder, wrist = joints[JOINT[f"{side}_shoulder"]], joints[JOINT[f"{side}_wrist"]]
        assert sign * (wrist[0] - shoulder[0]) > 0.45
        assert abs(wrist[1] - shoulder[1]) < 0.02
    assert joints[JOINT["head"], 1] > joints[JOINT["neck"], 1] > joints[JOINT["spine3"], 1] > joints[0, 1]
    assert joints[JOINT["left_ankle"], 1] < joints[JOINT["left_knee"], 1] < joints[JOINT["left_hip"], 1]


def test_shape_space_spans_plausible_adults(body):
    heights = []
    for beta in (-2.0, 2.0):
        for component in range(3):
            betas = np.zeros(10)
            betas[component] = beta
            vertices, _ = _pose(body, betas=betas)
            heights.append(vertices[:, 1].max() - vertices[:, 1].min())
    assert 1.35 < min(heights) and max(heights) < 2.15
    assert max(heights) - min(heights) > 0.15  # the first components change the stature


@pytest.mark.parametrize(("joint", "axis_angle"), [("left_elbow", [0.0, -1.2, 0.0]), ("right_knee", [1.2, 0.0, 0.0]),
                                                   ("neck", [0.4, 0.3, 0.0])])
def test_skinning_moves_the_vertices_of_the_rotated_joint_and_only_those(data, body, joint, axis_angle):
    rest, rest_joints = _pose(body)
    bent, _ = _pose(body, {joint: axis_angle})
    influence = data.weights[:, sorted(_descendants(JOINT[joint]))].sum(axis=1)
    untouched, carried = influence < 1e-6, influence > 1 - 1e-6
    assert untouched.sum() > 100 and carried.sum() > 10
    np.testing.assert_allclose(bent[untouched], rest[untouched], atol=1e-9)
    rotation = Rotation.from_rotvec(axis_angle).as_matrix()
    pivot = rest_joints[JOINT[joint]]
    np.testing.assert_allclose(bent[carried], (rest[carried] - pivot) @ rotation.T + pivot, atol=1e-6)
    partial = ~(untouched | carried)
    assert np.all(np.linalg.norm(bent[partial] - rest[partial], axis=1) > 0)


def test_h36m_regressor_follows_posed_limbs(data, body):
    regressor = free_body_h36m_regressor(data)
    assert regressor.matrix.shape == (17, 1229) and regressor.joint_names == H36M_17_JOINT_NAMES
    assert np.all(regressor.matrix >= 0)
    np.testing.assert_allclose(regressor.matrix.sum(axis=1), 1.0, atol=1e-5)
    h36m = {name: index for index, name in enumerate(H36M_17_JOINT_NAMES)}
    for pose in ({}, {"left_elbow": [0.0, -1.4, 0.0], "left_knee": [1.3, 0.0, 0.0], "left_shoulder": [0, 0, -1.0]}):
        vertices, joints = _pose(body, pose)
        found = regressor(vertices)
        for name in ("left_wrist", "left_elbow", "left_knee", "left_ankle", "right_shoulder"):
            assert np.linalg.norm(found[h36m[name]] - joints[JOINT[name]]) < 0.05, name
        mid_hips = (joints[JOINT["left_hip"]] + joints[JOINT["right_hip"]]) / 2
        assert np.linalg.norm(found[h36m["pelvis"]] - mid_hips) < 0.03
        assert found[h36m["head"], 1] > found[h36m["neck_nose"], 1] > found[h36m["thorax"], 1]


def test_extra_joint_vertices_sit_where_their_names_say(data):
    vertices, ids = data.v_template, data.vertex_ids
    face = vertices[[ids[name] for name in ("nose", "leye", "reye", "lear", "rear")]]
    assert face[0, 2] > face[1:, 2].max()  # the nose tip is the most forward
    assert face[1, 0] > 0 > face[2, 0] and face[3, 0] > face[1, 0] and face[4, 0] < face[2, 0]
    for side in ("L", "R"):
        toe, small_toe, heel = (vertices[ids[f"{side}{part}"]] for part in ("BigToe", "SmallToe", "Heel"))
        assert toe[2] > heel[2] + 0.15 and small_toe[2] > heel[2] + 0.1
    assert vertices[ids["lmiddle"], 0] > 0.75 and vertices[ids["rmiddle"], 0] < -0.75  # T-pose finger tips


def test_saved_file_round_trips_and_is_readable_by_numpy_1(tmp_path, data):
    path = tmp_path / "body.pkl"
    save_free_body_data(data, path)
    payload = path.read_bytes()
    assert b"numpy._core" not in payload and b"numpy.core.multiarray" in payload
    again = load_free_body_data(path)
    np.testing.assert_array_equal(again.v_template, data.v_template)
    np.testing.assert_array_equal(again.J_regressor_h36m, data.J_regressor_h36m)
    assert again.vertex_ids == data.vertex_ids
    assert pickle.loads(pickle_for_numpy1({"a": np.arange(3.0)}))["a"].tolist() == [0.0, 1.0, 2.0]


def _write_pickle(path, content):
    path.write_bytes(pickle.dumps(content, protocol=2))
    return path


def test_wrong_files_say_what_is_wrong(tmp_path, data):
    with pytest.raises(InputError, match="found nothing"):
        load_free_body_data(tmp_path / "missing.pkl")
    (tmp_path / "text.pkl").write_text("not a pickle")
    with pytest.raises(InputError, match="SMPL-style pickle"):
        load_free_body_data(tmp_path / "text.pkl")
    with pytest.raises(InputError, match="dictionary"):
        load_free_body_data(_write_pickle(tmp_path / "list.pkl", [1, 2, 3]))
    smpl_like = {"v_template": np.zeros((6890, 3)), "f": np.zeros((10, 3), np.uint32)}
    with pytest.raises(InputError, match="load it with smplx directly"):
        load_free_body_data(_write_pickle(tmp_path / "smpl.pkl", smpl_like))
    content = data.smpl_dict()
    for name, value, message in (("weights", None, "'weights'"),
                                 ("J_regressor_h36m", np.ones((17, 5)), r"\(17, 1229\)"),
                                 ("kintree_table", np.zeros((2, 24)), "kinematic tree"),
                                 ("format_version", 99, "version 1"),
                                 ("f", np.full((3, 3), 5000), r"face indices in \[0, 1229\)")):
        broken = dict(content)
        if value is None:
            del broken[name]
        else:
            broken[name] = value
        with pytest.raises(InputError, match=message):
            load_free_body_data(_write_pickle(tmp_path / f"{name}.pkl", broken))


def test_num_betas_is_checked():
    with pytest.raises(InputError, match="num_betas"):
        load_free_body(num_betas=11)

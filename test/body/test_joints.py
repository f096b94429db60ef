"""Joint regressors: application to numpy and torch meshes, file formats, the restricted pickle loader."""

import os
import pickle
import sys
import types

import numpy as np
import pytest
import scipy.sparse
import torch

from vqhps_ros.body import (
    H36M_17_JOINT_NAMES,
    H36M_TO_J14,
    H36M_TO_J17,
    SMPL_24_JOINT_NAMES,
    ChumpyArray,
    JointRegressor,
    load_h36m_regressor,
    load_regressor_matrix,
    load_restricted_pickle,
    load_smpl_regressor,
)
from vqhps_ros.errors import InputError

VERTICES = 40  # small stand-in for SMPL's 6890


def _regressor_matrix(joints: int, vertices: int = VERTICES, seed: int = 0) -> np.ndarray:
    """Rows of non-negative weights summing to one, like SMPL regressors."""
    weights = np.random.default_rng(seed).uniform(0, 1, (joints, vertices))
    weights[weights < 0.7] = 0.0
    weights[:, 0] += 1e-3  # no empty row
    return weights / weights.sum(axis=1, keepdims=True)


def test_joint_orders():
    assert len(SMPL_24_JOINT_NAMES) == 24 and SMPL_24_JOINT_NAMES[0] == "pelvis"
    assert SMPL_24_JOINT_NAMES[15] == "head" and SMPL_24_JOINT_NAMES[23] == "right_hand"
    assert len(H36M_17_JOINT_NAMES) == 17 and H36M_17_JOINT_NAMES[0] == "pelvis"
    assert H36M_17_JOINT_NAMES[10] == "head" and H36M_17_JOINT_NAMES[16] == "right_wrist"
    assert sorted(H36M_TO_J17) == list(range(17))  # the official evaluation keeps all 17 joints
    assert H36M_TO_J14 == H36M_TO_J17[:14] and 0 not in H36M_TO_J14  # SPIN's subset drops pelvis, spine, nose


def test_applies_to_numpy_and_torch_batches():
    matrix = _regressor_matrix(17)
    regressor = JointRegressor(matrix, H36M_17_JOINT_NAMES)
    vertices = np.random.default_rng(1).normal(size=(3, VERTICES, 3))
    expected = np.einsum("jv,bvc->bjc", matrix.astype(np.float32).astype(np.float64), vertices)
    joints = regressor(vertices)
    assert joints.shape == (3, 17, 3) and joints.dtype == np.float64
    np.testing.assert_allclose(joints, expected, rtol=1e-12, atol=1e-15)
    as_torch = regressor(torch.from_numpy(vertices).float())
    assert as_torch.dtype == torch.float32 and as_torch.shape == (3, 17, 3)
    np.testing.assert_allclose(as_torch.numpy(), expected, rtol=1e-5, atol=1e-6)
    assert regressor.matrix.dtype == np.float32
    assert regressor(vertices[0]).shape == (17, 3)


def test_vertex_count_is_checked_against_the_mesh():
    regressor = JointRegressor(_regressor_matrix(17))
    with pytest.raises(InputError, match=f"expects meshes of {VERTICES} vertices, found a mesh of 41 vertices"):
        regressor(np.zeros((2, 41, 3)))
    with pytest.raises(InputError, match=r"\(\.\.\., V, 3\)"):
        regressor(np.zeros((2, VERTICES, 2)))
    with pytest.raises(InputError, match="floating-point"):
        regressor(np.zeros((2, VERTICES, 3), dtype=np.int64))


def test_select_reorders_rows_and_names():
    regressor = JointRegressor(_regressor_matrix(17), H36M_17_JOINT_NAMES)
    j17 = regressor.select(H36M_TO_J17)
    np.testing.assert_array_equal(j17.matrix, regressor.matrix[list(H36M_TO_J17)])
    assert j17.joint_names[0] == H36M_17_JOINT_NAMES[6]
    with pytest.raises(InputError, match=r"\[0, 17\)"):
        regressor.select([17])


def test_loads_npy_and_npz(tmp_path):
    matrix = _regressor_matrix(17)
    np.save(tmp_path / "J_regressor_h36m.npy", matrix)
    np.savez(tmp_path / "single.npz", weights=matrix)
    np.savez(tmp_path / "model.npz", J_regressor=matrix, v_template=np.zeros((VERTICES, 3)))
    np.savez(tmp_path / "two.npz", a=matrix, b=matrix)
    scipy.sparse.save_npz(tmp_path / "sparse.npz", scipy.sparse.csr_matrix(matrix))
    for name in ("J_regressor_h36m.npy", "single.npz", "model.npz", "sparse.npz"):
        np.testing.assert_allclose(load_regressor_matrix(tmp_path / name), matrix, rtol=1e-6)
    np.testing.assert_allclose(load_regressor_matrix(tmp_path / "two.npz", key="b"), matrix, rtol=1e-6)
    with pytest.raises(InputError, match=r"found entries \['a', 'b'\]"):
        load_regressor_matrix(tmp_path / "two.npz")
    h36m = load_h36m_regressor(tmp_path / "J_regressor_h36m.npy", num_vertices=VERTICES)
    assert h36m.joint_names == H36M_17_JOINT_NAMES
    with pytest.raises(InputError, match=r"expected a \(17, 6890\) joint regressor"):
        load_h36m_regressor(tmp_path / "J_regressor_h36m.npy")


def test_file_errors(tmp_path):
    with pytest.raises(InputError, match="found nothing"):
        load_regressor_matrix(tmp_path / "missing.npy")
    (tmp_path / "regressor.txt").write_text("1 2 3")
    with pytest.raises(InputError, match=r"\.npy, \.npz or \.pkl"):
        load_regressor_matrix(tmp_path / "regressor.txt")
    np.save(tmp_path / "vector.npy", np.ones(5))
    with pytest.raises(InputError, match=r"\(J, V\) matrix .* shape \(5,\)"):
        load_regressor_matrix(tmp_path / "vector.npy")
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match="object array"):
        load_regressor_matrix(tmp_path / "objects.npy")
    np.save(tmp_path / "nan.npy", np.full((2, 3), np.nan))
    with pytest.raises(InputError, match="finite"):
        load_regressor_matrix(tmp_path / "nan.npy")


@pytest.fixture
def fake_chumpy(monkeypatch):
    """A module named chumpy.ch with a Ch class, only while the test pickles; chumpy itself is not needed."""
    module = types.ModuleType("chumpy.ch")

    class Ch:
        def __init__(self, x):
            self.x = x
            self._dirty_vars = set()

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    module.Ch = Ch
    monkeypatch.setitem(sys.modules, "chumpy", types.ModuleType("chumpy"))
    monkeypatch.setitem(sys.modules, "chumpy.ch", module)
    return Ch


def _smpl_like_pickle(fake_chumpy, matrix: np.ndarray, sparse_module: bytes | None = None) -> bytes:
    """An SMPL-model-like pickle: sparse J_regressor, chumpy arrays, plain arrays (protocol 2, like SMPL's)."""
    model = {
        "J_regressor": scipy.sparse.csc_matrix(matrix),
        "v_template": fake_chumpy(np.arange(VERTICES * 3, dtype=np.float64).reshape(VERTICES, 3)),
        "f": np.zeros((5, 3), dtype=np.uint32),
        "bs_type": "lrotmin",
        "kintree_table": np.zeros((2, 24), dtype=np.int64),
    }
    data = pickle.dumps(model, protocol=2)
    if sparse_module is not None:  # the module path of csc_matrix in old scipy versions
        data = data.replace(scipy.sparse.csc_matrix.__module__.encode(), sparse_module)
    return data


@pytest.mark.parametrize("sparse_module", [None, b"scipy.sparse.csc"])
def test_loads_smpl_pickles_without_chumpy(tmp_path, fake_chumpy, sparse_module):
    matrix = _regressor_matrix(24)
    data = _smpl_like_pickle(fake_chumpy, matrix, sparse_module)
    (tmp_path / "basicModel_neutral.pkl").write_bytes(data)
    sys.modules.pop("chumpy.ch")
    sys.modules.pop("chumpy")
    regressor = load_smpl_regressor(tmp_path / "basicModel_neutral.pkl", num_vertices=VERTICES)
    assert regressor.joint_names == SMPL_24_JOINT_NAMES
    np.testing.assert_allclose(regressor.matrix, matrix, rtol=1e-6)
    content = load_restricted_pickle(data)
    np.testing.assert_array_equal(content["v_template"], np.arange(VERTICES * 3).reshape(VERTICES, 3))
    assert "chumpy" not in sys.modules


def test_chumpy_stand_in_without_array_stays_a_stand_in():
    stand_in = ChumpyArray()
    stand_in.__setstate__({"a": 1})
    assert stand_in.value is None


class _RunsCode:
    """Pickles as a call to os.getcwd: harmless, but any callable outside the allow-list must be refused."""

    def __reduce__(self):
        return (os.getcwd, ())


def test_restricted_pickle_refuses_code(tmp_path):
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps({"J_regressor": _RunsCode()}, protocol=2))
    with pytest.raises(InputError, match=r"refusing to load (posix|nt|os)\.getcwd"):
        load_regressor_matrix(tmp_path / "evil.pkl")
    (tmp_path / "torch.pkl").write_bytes(pickle.dumps({"J_regressor": torch.zeros(2, 3)}))
    with pytest.raises(InputError, match="refusing to load torch"):
        load_regressor_matrix(tmp_path / "torch.pkl")

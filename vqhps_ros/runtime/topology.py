"""The static description of a model's output mesh (faces, joints, token counts), stored in exported graphs.

An exported graph carries its `MeshTopology` in its metadata, so a robot that only has the ONNX file (or builds a
TensorRT engine from it) can publish meshes, skeletons and the topology message without the model checkpoint.
The same entries are computed from a PyTorch model (`topology_metadata`) and parsed back
(`mesh_topology_from_metadata`): one code path whichever backend runs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..body.joints import H36M_17_JOINT_NAMES
from ..errors import CheckpointError
from ..humans import H36M_17_JOINT_SET, MeshTopology
from .signatures import JOINT_NAMES_KEY, NUM_TOKENS_KEY, NUM_VERTICES_KEY

FACES_KEY = "vqhps_ros.faces"  # JSON (F, 3) list of vertex indices
JOINT_SET_KEY = "vqhps_ros.joint_set"
CODEBOOK_SIZE_KEY = "vqhps_ros.codebook_size"
TOPOLOGY_ID_KEY = "vqhps_ros.topology_id"


def joint_set_name(joint_names: Sequence[str]) -> str:
    """"h36m_17" for the H36M-17 order, "" without joints, "custom_<J>" for any other joint list."""
    names = tuple(joint_names)
    if not names:
        return ""
    return H36M_17_JOINT_SET if names == H36M_17_JOINT_NAMES else f"custom_{len(names)}"


def topology_id(num_vertices: int, faces: np.ndarray | None) -> str:
    """A short name that changes whenever the vertex count or the triangles change: "mesh_<V>v_<sha8 of faces>"."""
    digest = hashlib.sha256(np.ascontiguousarray(faces if faces is not None else [], dtype=np.int64).tobytes())
    return f"mesh_{num_vertices}v_{digest.hexdigest()[:8]}"


def topology_metadata(num_vertices: int, faces: np.ndarray | None, joint_names: Sequence[str], num_tokens: int,
                      codebook_size: int) -> dict[str, str]:
    """The metadata entries of a topology (string values, as ONNX metadata_props need)."""
    face_list = [] if faces is None else np.asarray(faces, dtype=np.int64).reshape(-1, 3).tolist()
    return {
        FACES_KEY: json.dumps(face_list, separators=(",", ":")),
        JOINT_SET_KEY: joint_set_name(joint_names),
        JOINT_NAMES_KEY: json.dumps(list(joint_names)),
        NUM_VERTICES_KEY: str(num_vertices),
        NUM_TOKENS_KEY: str(num_tokens),
        CODEBOOK_SIZE_KEY: str(codebook_size),
        TOPOLOGY_ID_KEY: topology_id(num_vertices, faces),
    }


def mesh_topology_from_metadata(metadata: dict[str, str], source: str) -> MeshTopology:
    """The MeshTopology a graph declares; CheckpointError naming the missing entry for older or foreign files."""
    try:
        num_vertices = int(metadata[NUM_VERTICES_KEY])
        faces = np.asarray(json.loads(metadata[FACES_KEY]), dtype=np.int64).reshape(-1, 3)
        topology = MeshTopology(
            topology_id=metadata[TOPOLOGY_ID_KEY],
            num_vertices=num_vertices,
            faces=faces,
            joint_set=metadata[JOINT_SET_KEY],
            joint_names=tuple(json.loads(metadata[JOINT_NAMES_KEY])),
            num_tokens=int(metadata[NUM_TOKENS_KEY]),
            codebook_size=int(metadata[CODEBOOK_SIZE_KEY]),
        )
    except KeyError as error:
        raise CheckpointError(f"{source}: the graph metadata has no {error.args[0]} entry (exported by an older "
                              "vqhps_ros?); export it again with `vqhps-ros export`") from error
    except (ValueError, TypeError) as error:
        raise CheckpointError(f"{source}: unreadable mesh topology in the graph metadata: {error}") from error
    if len(faces) and (faces.min() < 0 or faces.max() >= num_vertices):
        raise CheckpointError(f"{source}: faces index vertices outside 0..{num_vertices - 1}")
    return topology


def read_graph_metadata(path: str | Path) -> dict[str, str]:
    """The metadata of an ONNX file, without loading its weights into a session."""
    from .onnx_meta import import_onnx, read_metadata

    onnx = import_onnx()
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"ONNX graph {path} does not exist")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as error:  # protobuf's DecodeError and friends
        raise CheckpointError(f"{path} is not a readable ONNX file: {error}") from error
    return read_metadata(model)

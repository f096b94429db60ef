"""The inputs and outputs of every exported graph: one definition shared by the exporter and the engines.

A graph's batch axis is its only dynamic axis (named `batch` in the ONNX file); every other axis is static, which is
what TensorRT needs to build one engine with a batch-range optimisation profile.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import CheckpointError, InputError
from ..humans import POSE_LANDMARK_NAMES

BATCH = "batch"
GRAPH_KEY = "vqhps_ros.graph"  # the kind of graph a file holds (re-exported by onnx_meta)

# Metadata keys of the mesh decoder graph (generic keys are in onnx_meta).
MESH_DECODER_GRAPH = "mesh_decoder"
DISPLACEMENT_GRAPH = "displacement_net"  # the alignment refinement's (`refine.displacement`)
MESH_VQ_CONFIG_KEY = "vqhps_ros.mesh_vq.config"
NUM_VERTICES_KEY = "vqhps_ros.mesh_vq.num_vertices"
NUM_TOKENS_KEY = "vqhps_ros.mesh_vq.num_tokens"
MAX_BATCH_KEY = "vqhps_ros.max_batch"

# Metadata keys of the whole VQ-HPS graph (it also carries the mesh decoder keys above).
VQHPS_GRAPH = "vqhps"
REGRESSOR_CONFIG_KEY = "vqhps_ros.regressor.config"
POSE_INIT_KEY = "vqhps_ros.pose_init"
JOINT_NAMES_KEY = "vqhps_ros.joint_names"
NUM_JOINTS_KEY = "vqhps_ros.num_joints"
PRECISION_KEY = "vqhps_ros.precision"
QUANTIZATION_KEY = "vqhps_ros.quantization"
SOURCE_KEY = "vqhps_ros.source"
INPUT_KEY = "vqhps_ros.input"  # what the whole graph reads: CROPS or KEYPOINTS (files without it read crops)
TOKEN_DECODING_KEY = "vqhps_ros.token_decoding"  # how the graph decodes its mesh (files without it: argmax)

CROPS = "crops"
CROP_SIZE = 224
KEYPOINTS = "keypoints"
NUM_KEYPOINTS = len(POSE_LANDMARK_NAMES)  # mediapipe's pose landmarks
KEYPOINT_VALUES = 3  # x, y in the normalised crop, visibility
# The whole graph's input by what it reads, without the batch axis.
VQHPS_INPUT_SHAPES = {CROPS: (3, CROP_SIZE, CROP_SIZE), KEYPOINTS: (NUM_KEYPOINTS, KEYPOINT_VALUES)}
# Graph outputs of the whole network, in order; `joints` only exists when the model has a joint regressor.
VQHPS_OUTPUTS = ("indices", "token_confidence", "rotmat", "cam", "verts_canonical", "verts", "joints")

# Which array kinds (numpy `dtype.kind`) each graph dtype accepts: integers of any width become int64 (tokens
# travel as uint16 in messages), floats of any width become float32; bools are never indices.
_ACCEPTED_KINDS = {"int64": "iu", "int32": "iu", "float32": "f", "float16": "f"}


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output. `shape` holds ints for static axes and BATCH for the dynamic one."""

    name: str
    dtype: str  # numpy dtype name: "int64", "float32", ...
    shape: tuple[int | str, ...]

    @property
    def dynamic_axes(self) -> dict[int, str]:
        return {axis: size for axis, size in enumerate(self.shape) if isinstance(size, str)}

    @property
    def shape_text(self) -> str:
        return "(" + ", ".join(str(size) for size in self.shape) + ")"

    def accepts_shape(self, shape: tuple[int, ...]) -> bool:
        """True when `shape` has this rank and every static axis has its size."""
        if len(shape) != len(self.shape):
            return False
        return all(isinstance(size, str) or size == found for size, found in zip(self.shape, shape, strict=True))

    def prepare(self, array: np.ndarray) -> np.ndarray:
        """Check kind and shape of a host array, return it C-contiguous in this spec's dtype (InputError if wrong)."""
        if not isinstance(array, np.ndarray):
            raise InputError(f"{self.name}: expected a numpy array of shape {self.shape_text}, "
                             f"found {type(array).__name__}")
        if array.dtype.kind not in _ACCEPTED_KINDS.get(self.dtype, np.dtype(self.dtype).kind):
            raise InputError(f"{self.name}: expected {self.dtype} values, found {array.dtype}")
        if not self.accepts_shape(array.shape):
            raise InputError(f"{self.name}: expected shape {self.shape_text}, found {tuple(array.shape)}")
        return np.ascontiguousarray(array, dtype=self.dtype)


@dataclass(frozen=True)
class GraphSignature:
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    @property
    def input_names(self) -> list[str]:
        return [spec.name for spec in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [spec.name for spec in self.outputs]

    @property
    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        """The `dynamic_axes` argument of torch.onnx.export."""
        return {spec.name: spec.dynamic_axes for spec in self.inputs + self.outputs if spec.dynamic_axes}


def mesh_decoder_signature(num_tokens: int, num_vertices: int) -> GraphSignature:
    """indices (batch, T) int64 -> vertices (batch, N, 3) float32, canonical meshes."""
    return GraphSignature(
        inputs=(TensorSpec("indices", "int64", (BATCH, num_tokens)),),
        outputs=(TensorSpec("vertices", "float32", (BATCH, num_vertices, 3)),),
    )


def displacement_signature(channels: int, crop_size: int, stride: int) -> GraphSignature:
    """rendering_and_image (batch, C, S, S) float32 -> flow (batch, 2, S/stride, S/stride) crop pixels and
    confidence_logit (batch, 1, S/stride, S/stride)."""
    cells = crop_size // stride
    return GraphSignature(
        inputs=(TensorSpec("rendering_and_image", "float32", (BATCH, channels, crop_size, crop_size)),),
        outputs=(TensorSpec("flow", "float32", (BATCH, 2, cells, cells)),
                 TensorSpec("confidence_logit", "float32", (BATCH, 1, cells, cells))),
    )


def vqhps_signature(num_tokens: int, num_vertices: int, num_joints: int | None, reads: str = CROPS
                    ) -> GraphSignature:
    """crops (batch, 3, 224, 224) float32 ImageNet-normalised RGB, or with `reads=KEYPOINTS` keypoints (batch, 33,
    3) float32 (`hps.KeypointMeshRegressor`'s input) -> per person:

    indices (batch, T) int32 codebook indices (int32, not int64: TensorRT 8.x has no 64-bit I/O tensors);
    token_confidence (batch, T) float32 softmax probability of each chosen index;
    rotmat (batch, 3, 3), cam (batch, 3) weak-perspective [s, tx, ty];
    verts_canonical and verts (batch, V, 3) float32 (verts = verts_canonical @ rotmat^T);
    joints (batch, J, 3) float32, only when `num_joints` is not None.
    """
    outputs = [
        TensorSpec("indices", "int32", (BATCH, num_tokens)),
        TensorSpec("token_confidence", "float32", (BATCH, num_tokens)),
        TensorSpec("rotmat", "float32", (BATCH, 3, 3)),
        TensorSpec("cam", "float32", (BATCH, 3)),
        TensorSpec("verts_canonical", "float32", (BATCH, num_vertices, 3)),
        TensorSpec("verts", "float32", (BATCH, num_vertices, 3)),
    ]
    if num_joints is not None:
        outputs.append(TensorSpec("joints", "float32", (BATCH, num_joints, 3)))
    if reads not in VQHPS_INPUT_SHAPES:
        raise InputError(f"a VQ-HPS graph reads one of {sorted(VQHPS_INPUT_SHAPES)}, not {reads!r}")
    return GraphSignature(inputs=(TensorSpec(reads, "float32", (BATCH, *VQHPS_INPUT_SHAPES[reads])),),
                          outputs=tuple(outputs))


def vqhps_signature_from_metadata(metadata: dict[str, str], source: str) -> GraphSignature:
    """The signature a whole-model graph declares in its metadata; CheckpointError for any other file."""
    graph = metadata.get(GRAPH_KEY)
    if graph != VQHPS_GRAPH:
        raise CheckpointError(f"{source}: expected a VQ-HPS graph exported by vqhps_ros ({GRAPH_KEY} = {VQHPS_GRAPH}),"
                              f" found {GRAPH_KEY} = {graph}")
    reads = metadata.get(INPUT_KEY, CROPS)
    if reads not in VQHPS_INPUT_SHAPES:
        raise CheckpointError(f"{source}: the graph reads {reads!r}; this version runs graphs reading "
                              f"{sorted(VQHPS_INPUT_SHAPES)}")
    try:
        joints = int(metadata[NUM_JOINTS_KEY])
        return vqhps_signature(int(metadata[NUM_TOKENS_KEY]), int(metadata[NUM_VERTICES_KEY]), joints or None, reads)
    except (KeyError, ValueError) as error:
        raise CheckpointError(f"{source}: incomplete VQ-HPS graph metadata ({error!r}); export it again") from error

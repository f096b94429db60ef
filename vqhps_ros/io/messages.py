"""ROS messages from the pipeline's results: one set of builders for the rclpy node and for bags.

The builders never import a message class themselves: they ask a `MessageTypes` for it by its ROS 2 name
("std_msgs/msg/Header"). `rosbags_types()` answers from a rosbags typestore (replay, bag writing, tests: no ROS
needed), `rclpy_types()` from the generated Python modules of a ROS install (the node). So both paths fill the
same fields from the same code.

The two kinds of classes differ in three ways, all absorbed by `MessageTypes.make`:
* rosbags' dataclasses need every field; generated classes have defaults, and the set of fields differs between
  distributions (Jazzy's Marker has texture fields Humble lacks). Builders pass only the fields they mean, and
  the rosbags side fills the others with ROS defaults. (Defaults from the .msg, such as Quaternion's w = 1, are
  not known to rosbags: builders always set what matters.)
* Primitive arrays (`float32[]`, `uint16[]`, ...): rosbags copies the bytes of a numpy array of the exact dtype;
  generated classes take `array.array` of the matching typecode (a numpy array fails their type assertion, a list
  is checked element by element). Builders pass 1-D numpy arrays of the exact dtype; rclpy's side converts.
* Scalars: generated classes assert `isinstance(value, float)` / `int`, so builders pass Python numbers.

Frames and time follow the source image: every header carries its stamp and optical frame (never the wall clock).
3D values are metres in that frame; 2D values are pixels. Every published float is finite: a person with a NaN
where it matters raises `InputError` naming the person and the field (the estimator drops such persons first;
this is the last guard before data leaves the process).

The .msg files live in `<repo>/msg` (the rosidl build needs them there). They are found, in order, beside the
package in a checkout, then in `<prefix>/share/vqhps_ros/msg` of the Python prefix (where `setup.py`'s
data_files puts them on a pip install), of the user base, and of each `AMENT_PREFIX_PATH` entry (where
`rosidl_generate_interfaces` installs them in a ROS build). A copy inside the Python package is avoided on
purpose: `vqhps_ros/msg/` is the generated message module of the ROS build.
"""

from __future__ import annotations

import array
import itertools
import os
import site
import sys
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..errors import InputError
from ..humans import FrameResult, Human, MeshTopology
from .cdr import generated_class

PACKAGE = "vqhps_ros"
MESSAGE_NAMES = ("HumanMesh", "HumanMeshArray", "MeshTopology")
HUMAN_MESH = "vqhps_ros/msg/HumanMesh"
HUMAN_MESH_ARRAY = "vqhps_ros/msg/HumanMeshArray"
MESH_TOPOLOGY = "vqhps_ros/msg/MeshTopology"
TIME = "builtin_interfaces/msg/Time"
DURATION = "builtin_interfaces/msg/Duration"
HEADER = "std_msgs/msg/Header"
COLOR = "std_msgs/msg/ColorRGBA"
POINT = "geometry_msgs/msg/Point"
VECTOR3 = "geometry_msgs/msg/Vector3"
QUATERNION = "geometry_msgs/msg/Quaternion"
POSE = "geometry_msgs/msg/Pose"
TRANSFORM = "geometry_msgs/msg/Transform"
TRANSFORM_STAMPED = "geometry_msgs/msg/TransformStamped"
TF_MESSAGE = "tf2_msgs/msg/TFMessage"
REGION_OF_INTEREST = "sensor_msgs/msg/RegionOfInterest"
MARKER = "visualization_msgs/msg/Marker"
MARKER_ARRAY = "visualization_msgs/msg/MarkerArray"

NO_PROJECTION = -1.0  # joints_2d value of a joint without a projection (see HumanMesh.msg)
UINT16_LIMIT = 1 << 16


# --- where message classes come from -------------------------------------------------------------------------


class MessageTypes(Protocol):
    """Message classes by ROS 2 name ("pkg/msg/Type"), and construction that hides the class family's quirks."""

    def get(self, msgtype: str, /) -> type:
        """The message class."""

    def make(self, msgtype: str, /, **fields: Any) -> Any:
        """A message with `fields` set, the others at their defaults.

        Primitive arrays are given as 1-D numpy arrays of the field's exact dtype, scalars as Python numbers.
        """

    def point_sequence(self, xyz: np.ndarray, indices: np.ndarray | None = None) -> Any:
        """The value of a sequence<geometry_msgs/Point> field: the rows of (N, 3) `xyz`, or the rows at `indices`
        (a mesh's triangle corners)."""


class RosbagsTypes:
    """Message classes of a rosbags typestore (serialise with `self.typestore.serialize_cdr`)."""

    def __init__(self, typestore):
        self.typestore = typestore

    def get(self, msgtype: str, /) -> type:
        try:
            return self.typestore.types[msgtype]
        except KeyError:
            raise InputError(f"message type {msgtype} is not registered in the rosbags typestore") from None

    def make(self, msgtype: str, /, **fields: Any) -> Any:
        message_class = self.get(msgtype)
        _, field_descriptions = self.typestore.fielddefs[msgtype]
        known = {field_name for field_name, _ in field_descriptions}
        if unknown := sorted(set(fields) - known):
            raise InputError(f"{msgtype} has no field(s) {unknown}; its fields are {sorted(known)}")
        values = {field_name: fields[field_name] if field_name in fields else self._default(description)
                  for field_name, description in field_descriptions}
        return message_class(**values)

    def point_sequence(self, xyz: np.ndarray, indices: np.ndarray | None = None) -> list:
        return _point_objects(self.get(POINT), xyz, indices)

    def _default(self, description) -> Any:
        """The ROS default of a field that the builder left out: zeros, empty strings and sequences."""
        from rosbags.interfaces import Nodetype

        kind, detail = description
        if kind == Nodetype.NAME:
            return self.make(detail)
        if kind == Nodetype.BASE:
            return _BASE_DEFAULTS.get(detail[0], 0)
        (item_kind, item), length = detail
        count = length if kind == Nodetype.ARRAY else 0  # a sequence's number is its bound, not its length
        if item_kind == Nodetype.BASE and item[0] != "string":
            return np.zeros(count, dtype=_ROSBAGS_DTYPES.get(item[0], item[0]))
        return [self._default((item_kind, item)) for _ in range(count)]


_BASE_DEFAULTS = {"string": "", "bool": False, "float32": 0.0, "float64": 0.0}
_ROSBAGS_DTYPES = {"bool": np.bool_, "byte": np.uint8, "char": np.uint8}  # names numpy reads differently


class RclpyTypes:
    """Message classes generated by rosidl for a ROS install, imported when first asked for."""

    def get(self, msgtype: str, /) -> type:
        return generated_class(msgtype)

    def make(self, msgtype: str, /, **fields: Any) -> Any:
        return self.get(msgtype)(**{key: _rclpy_value(value) for key, value in fields.items()})

    def point_sequence(self, xyz: np.ndarray, indices: np.ndarray | None = None) -> list:
        return _point_objects(self.get(POINT), xyz, indices)


def _point_objects(point_class: type, xyz: np.ndarray, indices: np.ndarray | None) -> list:
    """One Point object per row, shared by every index that names it: a mesh has about six times more triangle
    corners than vertices, and building the objects is what makes a mesh marker slow."""
    points = [point_class(x=x, y=y, z=z) for x, y, z in np.asarray(xyz, dtype=np.float64).reshape(-1, 3).tolist()]
    return points if indices is None else [points[index] for index in np.asarray(indices).reshape(-1).tolist()]


# rosidl_generator_py's typecodes of unbounded primitive sequences
_ARRAY_TYPECODES = {np.dtype(np.float32): "f", np.dtype(np.float64): "d", np.dtype(np.uint8): "B",
                    np.dtype(np.uint16): "H", np.dtype(np.uint32): "I", np.dtype(np.int32): "i"}


def _rclpy_value(value: Any) -> Any:
    if not isinstance(value, np.ndarray):
        return value
    return array.array(_ARRAY_TYPECODES[value.dtype], np.ascontiguousarray(value).tobytes())


def rclpy_types() -> RclpyTypes:
    """Message types of the running ROS install (needs rclpy's environment and the built vqhps_ros messages)."""
    return RclpyTypes()


# vision_msgs 4.x (Humble and later), which rosbags' stores lack; dependencies first. Bags written by ROS store their
# own definitions, so reading needs none of this: writing detections (tests, the sample bag) does.
VISION_MSGS_DEFINITIONS = {
    "vision_msgs/msg/Point2D": "float64 x\nfloat64 y\n",
    "vision_msgs/msg/Pose2D": "vision_msgs/Point2D position\nfloat64 theta\n",
    "vision_msgs/msg/BoundingBox2D": "vision_msgs/Pose2D center\nfloat64 size_x\nfloat64 size_y\n",
    "vision_msgs/msg/ObjectHypothesis": "string class_id\nfloat64 score\n",
    "vision_msgs/msg/ObjectHypothesisWithPose": (
        "vision_msgs/ObjectHypothesis hypothesis\ngeometry_msgs/PoseWithCovariance pose\n"),
    "vision_msgs/msg/Detection2D": (
        "std_msgs/Header header\nvision_msgs/ObjectHypothesisWithPose[] results\nvision_msgs/BoundingBox2D bbox\n"
        "string id\n"),
    "vision_msgs/msg/Detection2DArray": "std_msgs/Header header\nvision_msgs/Detection2D[] detections\n",
}


def rosbags_types(msg_dir: str | Path | None = None) -> RosbagsTypes:
    """A ROS 2 Jazzy rosbags typestore with vision_msgs and vqhps_ros's messages (from their .msg files).

    msg_dir: the folder holding HumanMesh.msg, HumanMeshArray.msg, MeshTopology.msg; found when None (see the
    module docstring).
    """
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    typestore = get_typestore(Stores.ROS2_JAZZY)
    definitions = {}
    for name, text in {**VISION_MSGS_DEFINITIONS, **message_definitions(msg_dir)}.items():
        definitions.update(get_types_from_msg(text, name))
    typestore.register(definitions)
    return RosbagsTypes(typestore)


def message_definitions(msg_dir: str | Path | None = None) -> dict[str, str]:
    """{"vqhps_ros/msg/<Name>": .msg text} of the package's messages."""
    folder = Path(msg_dir) if msg_dir is not None else find_msg_dir()
    files = {f"{PACKAGE}/msg/{name}": folder / f"{name}.msg" for name in MESSAGE_NAMES}
    if missing := [str(path) for path in files.values() if not path.is_file()]:
        raise FileNotFoundError(f"expected the vqhps_ros message definitions, missing {missing}")
    return {name: path.read_text(encoding="utf-8") for name, path in files.items()}


def find_msg_dir() -> Path:
    """The first folder of `msg_search_path()` that holds all of the package's .msg files."""
    candidates = msg_search_path()
    for folder in candidates:
        if all((folder / f"{name}.msg").is_file() for name in MESSAGE_NAMES):
            return folder
    raise FileNotFoundError(f"expected {', '.join(MESSAGE_NAMES)} .msg files in one of {[str(c) for c in candidates]}; "
                            "install the package (pip or colcon) or pass msg_dir")


def msg_search_path() -> list[Path]:
    """Checkout first (the files being edited win), then installed share folders."""
    share = Path("share") / PACKAGE / "msg"
    prefixes = [sys.prefix, site.getuserbase(), *os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)]
    return [Path(__file__).resolve().parents[2] / "msg", *(Path(prefix) / share for prefix in prefixes if prefix)]


# --- headers, poses, boxes ----------------------------------------------------------------------------------


def header(types: MessageTypes, stamp_ns: int, frame_id: str) -> Any:
    """std_msgs/Header of the source image: stamp split into whole seconds and nanoseconds."""
    seconds, nanoseconds = divmod(int(stamp_ns), 1_000_000_000)
    return types.make(HEADER, stamp=types.make(TIME, sec=seconds, nanosec=nanoseconds), frame_id=str(frame_id))


def quaternion_from_matrix(rotation: np.ndarray) -> np.ndarray:
    """(3, 3) rotation matrix -> (4,) unit quaternion (x, y, z, w), ROS order, w >= 0.

    Shepperd's method: of 4w^2, 4x^2, 4y^2, 4z^2 (each a linear function of the diagonal) the largest is square
    rooted and divides the rest, so 180-degree turns (w = 0) stay exact. Small drift from orthonormality is
    absorbed by the final normalisation.
    """
    m = np.asarray(rotation, dtype=np.float64)
    trace = np.trace(m)
    squares = 1.0 + np.array([2 * m[0, 0] - trace, 2 * m[1, 1] - trace, 2 * m[2, 2] - trace, trace])
    largest = int(np.argmax(squares))
    root = 2.0 * np.sqrt(squares[largest])  # 4 * |component|
    # Off-diagonal sums and differences give the products 4*q_i*q_j.
    products = np.array([
        [squares[0], m[0, 1] + m[1, 0], m[0, 2] + m[2, 0], m[2, 1] - m[1, 2]],
        [m[0, 1] + m[1, 0], squares[1], m[1, 2] + m[2, 1], m[0, 2] - m[2, 0]],
        [m[0, 2] + m[2, 0], m[1, 2] + m[2, 1], squares[2], m[1, 0] - m[0, 1]],
        [m[2, 1] - m[1, 2], m[0, 2] - m[2, 0], m[1, 0] - m[0, 1], squares[3]],
    ])  # fmt: skip
    quaternion = products[largest] / root
    quaternion /= np.linalg.norm(quaternion)
    return -quaternion if quaternion[3] < 0 else quaternion


def region_of_interest(types: MessageTypes, box: np.ndarray, image_size: tuple[int, int], who: str = "box") -> Any:
    """sensor_msgs/RegionOfInterest of an x, y, w, h pixel box: the whole pixels it touches, clipped to the image.

    A box outside the image gets a zero width or height at the image border.
    """
    x, y, width, height = _finite_array(box, "box", who, (4,), np.float64)
    image_height, image_width = image_size
    left, right = np.clip([np.floor(x), np.ceil(x + width)], 0, image_width)
    top, bottom = np.clip([np.floor(y), np.ceil(y + height)], 0, image_height)
    return types.make(REGION_OF_INTEREST, x_offset=int(left), y_offset=int(top), height=int(max(bottom - top, 0)),
                      width=int(max(right - left, 0)), do_rectify=False)


def _pose(types: MessageTypes, position: np.ndarray, rotation: np.ndarray, who: str) -> Any:
    x, y, z = _finite_array(position, "root_position", who, (3,), np.float64)
    rotation = _rotation(rotation, who)
    return types.make(POSE, position=types.make(POINT, x=float(x), y=float(y), z=float(z)),
                      orientation=_quaternion(types, rotation))


def _rotation(rotation: np.ndarray, who: str) -> np.ndarray:
    rotation = _finite_array(rotation, "root_rotation", who, (3, 3), np.float64)
    # A reflection or a sheared matrix has no quaternion; float drift (well below 1e-2) is fine.
    if not np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-2) or np.linalg.det(rotation) <= 0:
        raise InputError(f"{who}: root_rotation should be a rotation matrix, found {rotation.tolist()}")
    return rotation


def _quaternion(types: MessageTypes, rotation: np.ndarray) -> Any:
    x, y, z, w = quaternion_from_matrix(rotation).tolist()
    return types.make(QUATERNION, x=x, y=y, z=z, w=w)



# --- the package's messages ---------------------------------------------------------------------------------


def mesh_topology(types: MessageTypes, topology: MeshTopology) -> Any:
    """vqhps_ros/MeshTopology: faces flattened row-major to uint32."""
    who = f"topology {topology.topology_id!r}"
    faces = np.asarray(topology.faces)
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise InputError(f"{who}: faces should have shape (F, 3), found {faces.shape}")
    if faces.size and (faces.min() < 0 or faces.max() >= topology.num_vertices):
        raise InputError(f"{who}: faces should index [0, {topology.num_vertices}), found "
                         f"[{faces.min()}, {faces.max()}]")
    for name in ("num_tokens", "codebook_size"):
        if not 0 <= getattr(topology, name) < UINT16_LIMIT:
            raise InputError(f"{who}: {name} should fit uint16, found {getattr(topology, name)}")
    return types.make(MESH_TOPOLOGY, topology_id=str(topology.topology_id), num_vertices=int(topology.num_vertices),
                      faces=faces.astype(np.uint32).reshape(-1), joint_set=str(topology.joint_set),
                      joint_names=[str(name) for name in topology.joint_names],
                      keypoint_set=str(topology.keypoint_set),
                      keypoint_names=[str(name) for name in topology.keypoint_names],
                      num_tokens=int(topology.num_tokens), codebook_size=int(topology.codebook_size))


def human_mesh_array(types: MessageTypes, result: FrameResult, topology: MeshTopology,
                     publish_vertices: bool = True) -> Any:
    """vqhps_ros/HumanMeshArray of one frame, stamped and framed like its source image."""
    humans = [human_mesh(types, human, topology, result.image_size, publish_vertices) for human in result.humans]
    return types.make(HUMAN_MESH_ARRAY, header=header(types, result.stamp_ns, result.frame_id), humans=humans)


def human_mesh(types: MessageTypes, human: Human, topology: MeshTopology, image_size: tuple[int, int],
               publish_vertices: bool = True) -> Any:
    """vqhps_ros/HumanMesh of one person (3D in the image's optical frame, metres; 2D in pixels).

    Joints without a projection (NaN in `joints_2d`) are published as -1, -1; any other non-finite value raises
    InputError. publish_vertices=False leaves `vertices` empty (the mesh follows from the tokens).
    """
    who = f"person {human.id!r}"
    joints, joints_2d = _joints(human, topology, who)
    keypoint_set, keypoints_2d = _keypoints(human, topology, who)
    tokens, token_confidence = _tokens(human, topology, who)
    empty = np.zeros(0, dtype=np.float32)
    return types.make(
        HUMAN_MESH, id=str(human.id), confidence=float(_finite_array(human.score, "score", who, (), np.float32)),
        roi=region_of_interest(types, human.box, image_size, who),
        root_pose=_pose(types, human.root_position, human.root_rotation, who), joint_set=str(topology.joint_set),
        joints=joints.reshape(-1), joints_2d=joints_2d.reshape(-1), keypoint_set=keypoint_set,
        keypoints_2d=keypoints_2d.reshape(-1),
        vertices=_vertices(human, topology, who).reshape(-1) if publish_vertices else empty,
        tokens=tokens, token_confidence=token_confidence, topology_id=str(topology.topology_id),
        refined=bool(human.refined))


def _joints(human: Human, topology: MeshTopology, who: str) -> tuple[np.ndarray, np.ndarray]:
    """(J, 3) metres and (J, 2) pixels float32, empty when the person has none; unprojected joints -> -1."""
    if human.joints is None:
        return np.zeros((0, 3), np.float32), np.zeros((0, 2), np.float32)
    count = len(topology.joint_names)
    joints = _finite_array(human.joints, "joints", who, (count, 3), np.float32)
    if human.joints_2d is None:
        return joints, np.zeros((0, 2), np.float32)
    joints_2d = _array(human.joints_2d, "joints_2d", who, (count, 2), np.float32).copy()
    joints_2d[~np.isfinite(joints_2d).all(axis=1)] = NO_PROJECTION
    return joints, joints_2d


def _keypoints(human: Human, topology: MeshTopology, who: str) -> tuple[str, np.ndarray]:
    """The keypoint set's name and (K, 3) float32 u, v, visibility; ("", empty) when the person has none."""
    keypoints = human.keypoints
    if keypoints is None:
        return "", np.zeros((0, 3), np.float32)
    if keypoints.keypoint_set != topology.keypoint_set:
        raise InputError(f"{who}: keypoints are {keypoints.keypoint_set!r}, the topology names "
                         f"{topology.keypoint_set or 'no keypoint set'!r}")
    count = len(topology.keypoint_names)
    points = _finite_array(keypoints.points, "keypoints.points", who, (count, 2), np.float32)
    visibility = _finite_array(keypoints.visibility, "keypoints.visibility", who, (count,), np.float32)
    return keypoints.keypoint_set, np.concatenate([points, visibility[:, None]], axis=1)


def _tokens(human: Human, topology: MeshTopology, who: str) -> tuple[np.ndarray, np.ndarray]:
    tokens = _array(human.tokens, "tokens", who, (topology.num_tokens,), np.int64)
    limit = min(topology.codebook_size, UINT16_LIMIT)
    if tokens.size and (tokens.min() < 0 or tokens.max() >= limit):
        raise InputError(f"{who}: tokens should lie in [0, {limit}), found [{tokens.min()}, {tokens.max()}]")
    confidence = _finite_array(human.token_confidence, "token_confidence", who, (topology.num_tokens,), np.float32)
    return tokens.astype(np.uint16), confidence


def _vertices(human: Human, topology: MeshTopology, who: str) -> np.ndarray:
    return _finite_array(human.vertices, "vertices", who, (topology.num_vertices, 3), np.float32)


def _array(values: Any, field: str, who: str, shape: tuple[int, ...], dtype) -> np.ndarray:
    """A contiguous array of `dtype` with exactly `shape` (rosbags serialises its raw bytes)."""
    converted = np.asarray(values, dtype=dtype, order="C")
    if converted.shape != shape:
        raise InputError(f"{who}: {field} should have shape {shape}, found {converted.shape}")
    return converted


def _finite_array(values: Any, field: str, who: str, shape: tuple[int, ...], dtype) -> np.ndarray:
    converted = _array(values, field, who, shape, dtype)  # after the cast: float32 overflow counts as inf
    if not np.isfinite(converted).all():
        raise InputError(f"{who}: {field} holds NaN or infinite values; only finite values are published")
    return converted


# --- TF --------------------------------------------------------------------------------------------------------


def transforms(types: MessageTypes, result: FrameResult, frame_prefix: str = "body_") -> Any:
    """tf2_msgs/TFMessage: per person, the frame `<prefix><id>` (REP-155) at the pelvis, oriented like the body.

    Parent frame and stamp are the source image's.
    """
    head = header(types, result.stamp_ns, result.frame_id)
    return types.make(TF_MESSAGE, transforms=[_transform(types, head, human, frame_prefix) for human in result.humans])


def _transform(types: MessageTypes, head: Any, human: Human, frame_prefix: str) -> Any:
    who = f"person {human.id!r}"
    x, y, z = _finite_array(human.root_position, "root_position", who, (3,), np.float64).tolist()
    transform = types.make(TRANSFORM, translation=types.make(VECTOR3, x=x, y=y, z=z),
                           rotation=_quaternion(types, _rotation(human.root_rotation, who)))
    return types.make(TRANSFORM_STAMPED, header=head, child_frame_id=f"{frame_prefix}{human.id}", transform=transform)


# --- RViz markers ----------------------------------------------------------------------------------------------

MESH_NS, SKELETON_NS, LABEL_NS = "mesh", "skeleton", "label"
SKELETON_WIDTH = 0.02  # metres, line width of the skeleton
LABEL_HEIGHT = 0.12  # metres, height of the id text
LABEL_CLEARANCE = 0.15  # metres between the top of the body and the label
# Ten well separated colours (RGB in [0, 1]); a track keeps its colour for as long as it keeps its id.
TRACK_PALETTE = (
    (0.12, 0.47, 0.71), (1.00, 0.50, 0.05), (0.17, 0.63, 0.17), (0.84, 0.15, 0.16), (0.58, 0.40, 0.74),
    (0.55, 0.34, 0.29), (0.89, 0.47, 0.76), (0.50, 0.50, 0.50), (0.74, 0.74, 0.13), (0.09, 0.75, 0.81),
)  # fmt: skip


class PublishedMarkers:
    """What the last MarkerArray left in RViz, so the next one updates it in place and deletes what is gone.

    Marker ids are int32 and track ids strings: each track on screen holds the smallest number no other track on
    screen holds, and gives it back when it leaves. The table therefore never holds more entries than people shown
    at once, and numbers stay below that count.
    """

    def __init__(self) -> None:
        self.numbers: dict[str, int] = {}  # track id -> marker id, tracks shown last time only
        self.keys: set[tuple[str, int]] = set()  # (ns, id) of every marker shown last time

    def numbers_for(self, track_ids: Iterable[str]) -> dict[str, int]:
        """Marker ids of this frame's tracks: kept for tracks still shown, freed numbers reused for new ones."""
        current = dict.fromkeys(track_ids)
        numbers = {track: number for track, number in self.numbers.items() if track in current}
        taken = set(numbers.values())
        free = (number for number in itertools.count() if number not in taken)
        numbers.update({track: next(free) for track in current if track not in numbers})
        return numbers


def track_color(track_id: str) -> tuple[float, float, float]:
    """A palette colour picked by a hash of the id that is stable across runs (Python's hash() is salted)."""
    return TRACK_PALETTE[zlib.crc32(str(track_id).encode("utf-8")) % len(TRACK_PALETTE)]


def markers(types: MessageTypes, result: FrameResult, topology: MeshTopology, state: PublishedMarkers, *,
            mesh: bool = True, skeleton: bool = True, labels: bool = True) -> Any:
    """visualization_msgs/MarkerArray of one frame: per person a mesh, a skeleton and an id label.

    Each kind has its namespace and each track a stable id, so RViz replaces a person's markers in place. Markers
    shown last time and not now (a person who left, a kind switched off) are deleted first. `state` is updated
    only when the whole array is built, so a frame that raises leaves it as it was.
    """
    numbers = state.numbers_for(human.id for human in result.humans)
    head = header(types, result.stamp_ns, result.frame_id)
    shown = []
    for human in result.humans:
        who, number = f"person {human.id!r}", numbers[human.id]
        color = _color(types, human)
        if mesh and topology.num_vertices and len(topology.faces):
            shown.append(_mesh_marker(types, head, number, color, _vertices(human, topology, who), topology))
        if skeleton and human.joints is not None and topology.bones:
            joints = _finite_array(human.joints, "joints", who, (len(topology.joint_names), 3), np.float64)
            shown.append(_skeleton_marker(types, head, number, color, joints, topology.bones))
        if labels:
            shown.append(_label_marker(types, head, number, color, human, who))
    keys = {(marker.ns, marker.id) for marker in shown}
    deleted = [_marker(types, head, ns, number, action=types.get(MARKER).DELETE)
               for ns, number in sorted(state.keys - keys)]
    state.numbers, state.keys = numbers, keys
    return types.make(MARKER_ARRAY, markers=deleted + shown)


def _color(types: MessageTypes, human: Human) -> Any:
    red, green, blue = track_color(human.id)
    # A track kept without a detection this frame (valid False) is drawn half transparent.
    return types.make(COLOR, r=red, g=green, b=blue, a=1.0 if human.valid else 0.5)


def _mesh_marker(types, head, number, color, vertices, topology) -> Any:
    corners = types.point_sequence(vertices, topology.faces)  # three points per triangle
    return _marker(types, head, MESH_NS, number, kind=types.get(MARKER).TRIANGLE_LIST, color=color,
                   scale=(1.0, 1.0, 1.0), points=corners)


def _skeleton_marker(types, head, number, color, joints, bones) -> Any:
    ends = joints[np.asarray(bones).reshape(-1)]  # two points per bone
    return _marker(types, head, SKELETON_NS, number, kind=types.get(MARKER).LINE_LIST, color=color,
                   scale=(SKELETON_WIDTH, 0.0, 0.0), points=types.point_sequence(ends))


def _label_marker(types, head, number, color, human, who) -> Any:
    x, y, z = _finite_array(human.root_position, "root_position", who, (3,), np.float64).tolist()
    vertices = np.asarray(human.vertices, dtype=np.float64).reshape(-1, 3)
    # Above the head is -y in an optical frame (image up), which is world up for a roughly level camera.
    top = float(vertices[:, 1].min()) if len(vertices) and np.isfinite(vertices).all() else y
    position = (x, top - LABEL_CLEARANCE, z)
    return _marker(types, head, LABEL_NS, number, kind=types.get(MARKER).TEXT_VIEW_FACING, color=color,
                   scale=(0.0, 0.0, LABEL_HEIGHT), position=position, text=str(human.id))


def _marker(types: MessageTypes, head: Any, ns: str, number: int, *, action: int | None = None, kind: int = 0,
            color: Any = None, scale=(0.0, 0.0, 0.0), position=(0.0, 0.0, 0.0), points=None, text: str = "") -> Any:
    """A Marker whose pose is the identity at `position` (points are in the header frame), living until deleted."""
    marker_class = types.get(MARKER)
    x, y, z = position
    pose = types.make(POSE, position=types.make(POINT, x=x, y=y, z=z),
                      orientation=types.make(QUATERNION, x=0.0, y=0.0, z=0.0, w=1.0))
    return types.make(
        MARKER, header=head, ns=ns, id=int(number), type=int(kind),
        action=int(marker_class.ADD if action is None else action), pose=pose,
        scale=types.make(VECTOR3, x=float(scale[0]), y=float(scale[1]), z=float(scale[2])),
        color=color if color is not None else types.make(COLOR, r=0.0, g=0.0, b=0.0, a=0.0),
        lifetime=types.make(DURATION, sec=0, nanosec=0), frame_locked=False,
        points=types.point_sequence(np.zeros((0, 3))) if points is None else points, text=text)

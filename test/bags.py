"""Small ROS 2 bags written with rosbags, for the bag and replay tests (a module of its own so tests can import it).

`write_bag(path, frames, BagSpec(...))` writes a rosbag2 folder (metadata version 9) with, per `FrameSpec`, an
image, a CameraInfo and a Detection2DArray stamped alike, in that order and logged at the stamp, as a recorder of
a camera driver and a detector would. `BagSpec` varies what real recorders vary: storage (mcap, sqlite3), zstd
compression (per file or per message), topic names, raw encodings or compressed images, and which topics exist.
`FrameSpec` varies a frame: its size, its person boxes, and damage (an image that does not decode, or bytes that
are not even a CDR message).

vision_msgs is not in rosbags' type stores: its 4.x definitions (ROS 2 Humble and later) are registered here, and
the bag stores every definition, so readers need nothing of their own.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

NS_PER_S = 1_000_000_000
FRAME_ID = "camera_color_optical_frame"
START_NS = 1_767_225_600 * NS_PER_S + 123_456_789  # a stamp with both sec and nanosec set
FPS = 15.0
SIZE = (120, 160)  # height, width


COMPRESSED_FORMATS = {"jpeg": ".jpg", "png": ".png"}
RAW_CHANNELS = {"rgb8": 3, "bgr8": 3, "mono8": 1}
GARBLED_CDR = b"\x00\x01\x00\x00" + bytes(8) + b"\xff" * 8  # a CDR header, then a string length of 4 GiB


@dataclass(frozen=True)
class FrameSpec:
    """One camera frame of a bag."""

    stamp_ns: int
    size: tuple[int, int] = SIZE  # (height, width) pixels
    boxes: tuple[tuple[float, float, float, float], ...] | None = ()  # x, y, w, h; None: no detection message
    damage: str = ""  # "": a good image; "undecodable": an image message whose pixels do not decode;
    #                   "garbled": bytes that are not a CDR message at all (a corrupt bag)

    @property
    def index(self) -> int:
        return int(round((self.stamp_ns - START_NS) * FPS / NS_PER_S))


@dataclass(frozen=True)
class BagSpec:
    """How a bag is recorded."""

    storage: str = "mcap"  # "mcap" or "sqlite3"
    compression: str = ""  # "", "file" or "message" (zstd)
    image_topic: str = "/camera/image_raw"
    encoding: str = "rgb8"  # a raw encoding of RAW_CHANNELS (sensor_msgs/Image), or "jpeg" / "png" (CompressedImage)
    frame_id: str = FRAME_ID
    camera_info_topic: str | None = "/camera/camera_info"  # None: no camera_info in the bag
    detections_topic: str | None = "/camera/detections"  # None: no detections in the bag
    second_image_topic: str | None = None  # another topic with the same images (an ambiguous bag)

    @property
    def compressed(self) -> bool:
        return self.encoding in COMPRESSED_FORMATS

    @property
    def image_type(self) -> str:
        return "sensor_msgs/msg/CompressedImage" if self.compressed else "sensor_msgs/msg/Image"


def frame_specs(count: int, size: tuple[int, int] = SIZE, first: int = 0) -> list[FrameSpec]:
    """`count` good frames at FPS from frame `first` on; frame i shows i % 3 persons (0, 1 or 2 boxes)."""
    return [FrameSpec(stamp_of(index), size, person_boxes(size, index % 3)) for index in range(first, first + count)]


def stamp_of(index: int) -> int:
    return START_NS + int(round(index * NS_PER_S / FPS))


def person_boxes(size: tuple[int, int], count: int) -> tuple[tuple[float, float, float, float], ...]:
    """`count` upright boxes side by side (person k at 10 % + 45 % k of the width), 35 % x 75 % of the image."""
    height, width = size
    return tuple((width * (0.1 + 0.45 * k), height * 0.15, width * 0.35, height * 0.75) for k in range(count))


def intrinsics_of(size: tuple[int, int]) -> np.ndarray:
    """The K of a bag's camera_info for images of `size`: fx = fy = 0.9 width, principal point at the centre."""
    height, width = size
    return np.array([[0.9 * width, 0.0, width / 2], [0.0, 0.9 * width, height / 2], [0.0, 0.0, 1.0]])


def synthetic_image(size: tuple[int, int], index: int) -> np.ndarray:
    """H x W x 3 uint8 RGB: colour gradients with a bright block that moves with `index` (different every frame)."""
    height, width = size
    rows, columns = np.mgrid[0:height, 0:width]
    image = np.stack([(columns * 255) // max(width - 1, 1), (rows * 255) // max(height - 1, 1),
                      np.full_like(rows, (40 * index) % 256)], axis=-1).astype(np.uint8)
    left = (7 * index) % max(width - 12, 1)
    image[height // 3: height // 3 + 12, left: left + 12] = (250, 240, 230)
    return image


def expected_pixels(spec: BagSpec, frame: FrameSpec) -> np.ndarray:
    """What a frame decodes to (exactly, for raw encodings and png; jpeg is lossy)."""
    image = synthetic_image(frame.size, frame.index)
    if spec.encoding == "mono8":
        return np.repeat(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    return image


# -------------------------------------------------------------------------------------------------- writing


def make_typestore():
    """The ROS 2 Jazzy type store with vision_msgs (and this package's messages)."""
    from vqhps_ros.io.messages import rosbags_types

    return rosbags_types().typestore


def write_bag(path: Path, frames: list[FrameSpec], spec: BagSpec = BagSpec()) -> Path:
    """Write the rosbag2 folder `path` (must not exist); returns it."""
    from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer

    typestore = make_typestore()
    plugin = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}[spec.storage]
    writer = Writer(path, version=9, storage_plugin=plugin)
    if spec.compression:
        mode = {"file": CompressionMode.FILE, "message": CompressionMode.MESSAGE}[spec.compression]
        writer.set_compression(mode, CompressionFormat.ZSTD)
    with writer:
        topics = [(spec.image_topic, spec.image_type), (spec.second_image_topic, spec.image_type),
                  (spec.camera_info_topic, "sensor_msgs/msg/CameraInfo"),
                  (spec.detections_topic, "vision_msgs/msg/Detection2DArray")]
        connections = {topic: writer.add_connection(topic, msgtype, typestore=typestore)
                       for topic, msgtype in topics if topic is not None}
        for frame in frames:
            image = image_bytes(typestore, spec, frame)
            for topic in (spec.image_topic, spec.second_image_topic):
                if topic is not None:
                    writer.write(connections[topic], frame.stamp_ns, image)
            if spec.camera_info_topic is not None:
                info = camera_info(typestore, frame.stamp_ns, spec.frame_id, frame.size)
                writer.write(connections[spec.camera_info_topic], frame.stamp_ns,
                             typestore.serialize_cdr(info, "sensor_msgs/msg/CameraInfo"))
            if spec.detections_topic is not None and frame.boxes is not None:
                detections = detection_array(typestore, frame.stamp_ns, spec.frame_id, frame.boxes)
                writer.write(connections[spec.detections_topic], frame.stamp_ns,
                             typestore.serialize_cdr(detections, "vision_msgs/msg/Detection2DArray"))
    return path


def image_bytes(typestore, spec: BagSpec, frame: FrameSpec) -> bytes:
    """The serialised image message of `frame` (or garbage, for a garbled frame)."""
    if frame.damage == "garbled":
        return GARBLED_CDR
    types = typestore.types
    head = header(typestore, frame.stamp_ns, spec.frame_id)
    rgb = synthetic_image(frame.size, frame.index)
    if spec.compressed:
        ok, encoded = cv2.imencode(COMPRESSED_FORMATS[spec.encoding], cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        assert ok
        data = np.frombuffer(b"this is not an image", np.uint8) if frame.damage == "undecodable" else encoded
        message = types["sensor_msgs/msg/CompressedImage"](header=head, format=spec.encoding,
                                                           data=np.asarray(data, np.uint8).reshape(-1))
    else:
        pixels = {"rgb8": rgb, "bgr8": rgb[..., ::-1], "mono8": cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)}[spec.encoding]
        data = np.ascontiguousarray(pixels).reshape(-1)
        if frame.damage == "undecodable":
            data = data[: data.size // 2]  # half the rows are missing
        height, width = frame.size
        message = types["sensor_msgs/msg/Image"](header=head, height=height, width=width, encoding=spec.encoding,
                                                 is_bigendian=0, step=width * RAW_CHANNELS[spec.encoding],
                                                 data=data)
    return bytes(typestore.serialize_cdr(message, message.__msgtype__))


def header(typestore, stamp_ns: int, frame_id: str):
    types = typestore.types
    stamp = types["builtin_interfaces/msg/Time"](sec=stamp_ns // NS_PER_S, nanosec=stamp_ns % NS_PER_S)
    return types["std_msgs/msg/Header"](stamp=stamp, frame_id=frame_id)


def camera_info(typestore, stamp_ns: int, frame_id: str, size: tuple[int, int]):
    types = typestore.types
    intrinsics = intrinsics_of(size)
    projection = np.concatenate([intrinsics, np.zeros((3, 1))], axis=1)
    roi = types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    return types["sensor_msgs/msg/CameraInfo"](
        header=header(typestore, stamp_ns, frame_id), height=size[0], width=size[1], distortion_model="plumb_bob",
        d=np.zeros(5), k=intrinsics.reshape(-1), r=np.eye(3).reshape(-1), p=projection.reshape(-1), binning_x=0,
        binning_y=0, roi=roi)


def detection_array(typestore, stamp_ns: int, frame_id: str, boxes) -> object:
    """One Detection2D per box: class "person", score 0.9, id "1", "2", ... (vision_msgs 4 layout)."""
    types = typestore.types
    pose = types["geometry_msgs/msg/Pose"](position=types["geometry_msgs/msg/Point"](x=0.0, y=0.0, z=0.0),
                                           orientation=types["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0,
                                                                                             w=1.0))
    detections = []
    for number, (x, y, w, h) in enumerate(boxes, start=1):
        hypothesis = types["vision_msgs/msg/ObjectHypothesisWithPose"](
            hypothesis=types["vision_msgs/msg/ObjectHypothesis"](class_id="person", score=0.9),
            pose=types["geometry_msgs/msg/PoseWithCovariance"](pose=pose, covariance=np.zeros(36)))
        center = types["vision_msgs/msg/Pose2D"](position=types["vision_msgs/msg/Point2D"](x=x + w / 2, y=y + h / 2),
                                                 theta=0.0)
        detections.append(types["vision_msgs/msg/Detection2D"](
            header=header(typestore, stamp_ns, frame_id), results=[hypothesis],
            bbox=types["vision_msgs/msg/BoundingBox2D"](center=center, size_x=float(w), size_y=float(h)),
            id=str(number)))
    return types["vision_msgs/msg/Detection2DArray"](header=header(typestore, stamp_ns, frame_id),
                                                     detections=detections)


# -------------------------------------------------------------------------------------------------- reading


class Record(NamedTuple):
    log_time: int
    raw: bytes
    message: object


@dataclass
class BagContents:
    """Every message of a bag by topic (in log order), and each topic's type."""

    msgtypes: dict[str, str] = field(default_factory=dict)
    records: dict[str, list[Record]] = field(default_factory=lambda: defaultdict(list))

    def messages(self, topic: str) -> list:
        return [record.message for record in self.records[topic]]


def read_bag(path: Path) -> BagContents:
    """All messages of the bag at `path`, read with rosbags' AnyReader (definitions from the bag)."""
    from rosbags.highlevel import AnyReader

    contents = BagContents()
    with AnyReader([Path(path)]) as reader:
        for connection in reader.connections:
            contents.msgtypes[connection.topic] = connection.msgtype
        for connection, log_time, raw in reader.messages():
            message = reader.deserialize(raw, connection.msgtype)
            contents.records[connection.topic].append(Record(log_time, bytes(raw), message))
    return contents

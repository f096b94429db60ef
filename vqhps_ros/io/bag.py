"""Camera frames from a ROS 2 bag (MCAP or sqlite3, compressed or not), read with rosbags: no ROS install needed.

Message definitions come from the bag itself (rosbag2 stores them), so types outside the standard stores, such as
vision_msgs, read without registration. Messages go through the same `FrameAssembler` as in the node, in log
order, with the log time as the receive clock.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..humans import Frame
from .assembler import AssembledFrame, FrameAssembler

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
DETECTIONS_TYPE = "vision_msgs/msg/Detection2DArray"


@dataclass(frozen=True)
class BagTopics:
    """The input topics of a bag: rosbags connections (None where absent)."""

    image: object
    camera_info: object | None
    detections: object | None

    @property
    def connections(self) -> list:
        return [c for c in (self.image, self.camera_info, self.detections) if c is not None]


@contextmanager
def open_bag(bag: str | Path) -> Iterator:
    """`with open_bag(bag) as reader`: an open rosbags AnyReader on `bag` (a rosbag2 folder or a single .mcap /
    .db3 file). A bag that cannot be opened (a truncated MCAP has no footer, a damaged sqlite3 file no valid
    pages, a folder no metadata) raises InputError."""
    from rosbags.highlevel import AnyReader, AnyReaderError

    path = Path(bag)
    if not path.exists():
        raise InputError(f"bag {path} does not exist")
    if path.is_dir() and not (path / "metadata.yaml").is_file():
        raise InputError(f"bag folder {path} has no metadata.yaml (an interrupted recording?): give its .mcap or "
                         ".db3 file instead, or run `ros2 bag reindex` on the folder")
    try:
        reader = AnyReader([path])
        reader.open()
    except AnyReaderError as error:
        raise InputError(f"bag {path} cannot be opened: it is truncated or corrupt, or not a ROS bag ({error})"
                         ) from error
    try:
        yield reader
    finally:
        reader.close()


def select_topics(reader, image_topic: str | None = None, camera_info_topic: str | None = None,
                  detections_topic: str | None = None) -> BagTopics:
    """Each topic by name, or the bag's only topic of its type; camera_info and detections are optional.

    An empty string for camera_info or detections means "do not use it". Errors list what the bag has.
    """
    image = _connection(reader, IMAGE_TYPES, image_topic, required=True)
    info = None if camera_info_topic == "" else _connection(reader, (CAMERA_INFO_TYPE,), camera_info_topic, False)
    detections = None if detections_topic == "" else _connection(reader, (DETECTIONS_TYPE,), detections_topic, False)
    return BagTopics(image, info, detections)


def assembled_frames(reader, topics: BagTopics, assembler: FrameAssembler,
                     on_message=None) -> Iterator[AssembledFrame]:
    """Frames in log order, paired by `assembler`. on_message(connection, log_time_ns, raw bytes, message), if
    given, sees every input message as it is read (the replay copies inputs with it)."""
    for connection, log_time, raw in reader.messages(connections=topics.connections):
        message = reader.deserialize(raw, connection.msgtype)
        if on_message is not None:
            on_message(connection, log_time, raw, message)
        if connection is topics.camera_info:
            assembler.add_camera_info(message)
        elif connection is topics.detections:
            yield from assembler.add_detections(message, log_time)
        else:
            yield from assembler.add_image(message, log_time)
    yield from assembler.flush()


def read_frames(bag: str | Path, image_topic: str | None = None, camera_info_topic: str | None = None,
                detections_topic: str | None = None, assembler: FrameAssembler | None = None) -> Iterator[Frame]:
    """Decoded frames of a bag (undecodable ones and ones without intrinsics are skipped and counted in the
    assembler's `counts`). The default assembler waits for detections when the bag has a detection topic."""
    with open_bag(bag) as reader:
        topics = select_topics(reader, image_topic, camera_info_topic, detections_topic)
        assembler = assembler or FrameAssembler(expect_detections=topics.detections is not None)
        for assembled in assembled_frames(reader, topics, assembler):
            frame = assembler.to_frame(assembled)
            if frame is not None:
                yield frame


def _connection(reader, msgtypes: tuple[str, ...], topic: str | None, required: bool):
    candidates = [c for c in reader.connections if c.msgtype in msgtypes and (topic is None or c.topic == topic)]
    if len({c.topic for c in candidates}) == 1:
        return candidates[0]
    if not candidates and not required and topic is None:
        return None
    found = sorted({f"{c.topic} ({c.msgtype})" for c in reader.connections})
    types = " or ".join(msgtypes)
    wanted = f"topic {topic!r} of type {types}" if topic else f"one topic of type {types}"
    problem = "several match (choose one with its option)" if candidates else "none matches"
    raise InputError(f"expected {wanted} in the bag, {problem}; the bag has: {', '.join(found)}")

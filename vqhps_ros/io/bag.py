"""Camera frames from a ROS 2 bag (MCAP or sqlite3), read with rosbags: no ROS install needed.

Message definitions come from the bag itself (rosbag2 stores them), so types outside the standard stores, such as
vision_msgs, read without registration.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from .images import camera_matrix, decode_compressed_image, decode_raw_image

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
DETECTIONS_TYPE = "vision_msgs/msg/Detection2DArray"
NO_BOXES: tuple[np.ndarray, tuple[str, ...]] = (np.zeros((0, 4)), ())


@dataclass(frozen=True)
class CameraFrame:
    stamp_ns: int  # header stamp of the image
    frame_id: str
    image: np.ndarray  # H x W x 3 uint8 RGB
    intrinsics: np.ndarray | None  # (3, 3) K of the latest camera_info, None before the first one
    boxes: np.ndarray  # (N, 4) x, y, w, h pixels of the detections stamped like the image
    detection_ids: tuple[str, ...]  # Detection2D.id of each box (a tracker's id, or "")


def read_frames(bag: str | Path, image_topic: str | None = None, camera_info_topic: str | None = None,
                detections_topic: str | None = None) -> Iterator[CameraFrame]:
    """Frames in log order. Topics default to the bag's only topic of each type; detections are optional.

    A frame's boxes are the detections whose header stamp equals the image's (what a detector publishing per
    image produces); frames without one get no boxes.
    """
    from rosbags.highlevel import AnyReader

    path = Path(bag)
    if not path.exists():
        raise InputError(f"bag {path} does not exist")
    with AnyReader([path]) as reader:
        image = _connection(reader, IMAGE_TYPES, image_topic, required=True)
        info = _connection(reader, (CAMERA_INFO_TYPE,), camera_info_topic, required=False)
        detections = _connection(reader, (DETECTIONS_TYPE,), detections_topic, required=False)
        yield from _frames(reader, image, info, detections)


# Images waiting for their detections (and detections waiting for their image) are bounded: a detector that
# skips frames must not grow memory without limit.
MAX_WAITING = 8


def _frames(reader, image, info, detections) -> Iterator[CameraFrame]:
    wanted = [connection for connection in (image, info, detections) if connection is not None]
    intrinsics = None
    waiting_images: dict[int, object] = {}  # stamp -> image message whose detections are not logged yet
    early_boxes: dict[int, tuple] = {}  # stamp -> boxes logged before their image
    for connection, _, raw in reader.messages(connections=wanted):
        message = reader.deserialize(raw, connection.msgtype)
        if connection is info:
            intrinsics = camera_matrix(message)
            continue
        stamp = _stamp_ns(message.header)
        if connection is detections:
            boxes = detection_boxes(message)
            if stamp in waiting_images:
                yield _frame(waiting_images.pop(stamp), image.msgtype, intrinsics, boxes)
            else:
                early_boxes[stamp] = boxes
                _pop_oldest(early_boxes)
        elif detections is None or stamp in early_boxes:
            yield _frame(message, image.msgtype, intrinsics, early_boxes.pop(stamp, NO_BOXES))
        else:
            waiting_images[stamp] = message
            for undetected in _pop_oldest(waiting_images):
                yield _frame(undetected, image.msgtype, intrinsics, NO_BOXES)
    for undetected in waiting_images.values():
        yield _frame(undetected, image.msgtype, intrinsics, NO_BOXES)


def _pop_oldest(entries: dict) -> list:
    """Remove and return the entries beyond MAX_WAITING, oldest stamps first."""
    return [entries.pop(min(entries)) for _ in range(len(entries) - MAX_WAITING)]


def _frame(message, msgtype: str, intrinsics, boxes) -> CameraFrame:
    decode = decode_compressed_image if msgtype.endswith("CompressedImage") else decode_raw_image
    return CameraFrame(_stamp_ns(message.header), message.header.frame_id, decode(message), intrinsics, *boxes)


def detection_boxes(message) -> tuple[np.ndarray, tuple[str, ...]]:
    """vision_msgs/Detection2DArray -> (N, 4) x, y, w, h boxes and the detections' ids.

    vision_msgs 4 (Humble, Jazzy) puts the centre in `bbox.center.position`; older releases in `bbox.center`.
    """
    boxes, ids = [], []
    for detection in message.detections:
        center = detection.bbox.center
        position = getattr(center, "position", center)
        width, height = float(detection.bbox.size_x), float(detection.bbox.size_y)
        boxes.append((position.x - width / 2, position.y - height / 2, width, height))
        ids.append(str(getattr(detection, "id", "")))
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4), tuple(ids)


def _stamp_ns(header) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def _connection(reader, msgtypes: tuple[str, ...], topic: str | None, required: bool):
    candidates = [c for c in reader.connections if c.msgtype in msgtypes and (topic is None or c.topic == topic)]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates and not required and topic is None:
        return None
    found = sorted(f"{c.topic} ({c.msgtype})" for c in reader.connections)
    types = " or ".join(msgtypes)
    wanted = f"topic {topic!r} of type {types}" if topic else f"one topic of type {types}"
    problem = "several match" if candidates else "none matches"
    raise InputError(f"expected {wanted} in the bag, {problem}; the bag has: {', '.join(found)}")

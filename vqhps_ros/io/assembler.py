"""Pairing camera images with their camera_info and detections, message by message, with bounded memory.

The node and the bag replay feed the same `FrameAssembler`: `add_camera_info`, `add_detections` and `add_image`
take ROS messages (rclpy's or rosbags' classes: only the fields are read) and a receive time, and return the frames
that became complete. A frame is complete when its image has arrived and, if a detection source is configured,
the detections with the image's exact header stamp have arrived too (what a detector publishing one message per
image produces), or `detection_timeout` has passed since the image came, or a newer image completed first (the
frame then goes on without detections: `Frame.detections` is None and the estimator applies its fallback).
Frames therefore leave in stamp order.

Images are decoded only when `to_frame` is called, so a node that drops stale frames never pays for decoding them.

Time: `received_ns` is the clock the timeout runs on: the node's receive time, or the bag's log time in a replay.
Stamps going backwards (a looping bag, a simulation reset) clear every buffer, with a warning and a count, except
what already belongs to the new timeline: a camera_info stamped at or shortly before the new image (within
`camera_info_max_age`), and detections for the new image or later that came before it (they had looked late).
"""

from __future__ import annotations

import logging
import math
from collections import Counter, OrderedDict
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..humans import Detection, Frame
from .images import camera_matrix, decode_image

LOG = logging.getLogger(__name__)

NS_PER_S = 1_000_000_000
# Images waiting for detections, and detections waiting for their image: a detector that skips or reorders
# frames must not grow memory; past this, the oldest image goes on without detections.
MAX_WAITING = 8


@dataclass(frozen=True)
class CameraInfo:
    stamp_ns: int
    intrinsics: np.ndarray  # (3, 3) K
    width: int
    height: int


@dataclass(frozen=True)
class AssembledFrame:
    """An image message with what was paired with it; `to_frame` decodes it."""

    image_message: object
    stamp_ns: int
    frame_id: str
    camera_info: CameraInfo | None
    detections: tuple[Detection, ...] | None


class FrameAssembler:
    """See the module docstring. Counts of what was skipped or degraded are in `counts` (reason -> number).

    expect_detections: a detection source is configured (else frames complete with their image).
    detection_timeout_s: how long an image waits for its detections (receive clock).
    camera_info_max_age_s: the latest camera_info serves images stamped at most this far from it.
    fallback_intrinsics: (3, 3) K used when no fresh camera_info exists (None: none).
    fallback_fov_deg: else, K from the image size and this horizontal field of view (0: none).
    """

    def __init__(self, expect_detections: bool, detection_timeout_s: float = 0.2, camera_info_max_age_s: float = 5.0,
                 fallback_intrinsics: np.ndarray | None = None, fallback_fov_deg: float = 0.0):
        self.expect_detections = expect_detections
        self.detection_timeout_ns = int(detection_timeout_s * NS_PER_S)
        self.camera_info_max_age_ns = int(camera_info_max_age_s * NS_PER_S)
        self.fallback_intrinsics = None if fallback_intrinsics is None else np.asarray(fallback_intrinsics, float)
        self.fallback_fov_deg = float(fallback_fov_deg)
        self.counts: Counter[str] = Counter()
        self._camera_info: CameraInfo | None = None
        self._waiting_images: OrderedDict[int, tuple[object, int]] = OrderedDict()  # stamp -> (message, received)
        self._early_detections: OrderedDict[int, tuple[Detection, ...]] = OrderedDict()
        # detections whose image had gone on without them: kept (bounded) in case the stamps go back to them
        self._late_detections: OrderedDict[int, tuple[Detection, ...]] = OrderedDict()
        self._last_image_stamp: int | None = None
        self._last_size: tuple[int, int] | None = None

    @classmethod
    def from_config(cls, config, expect_detections: bool) -> FrameAssembler:
        """From an `EstimatorConfig` (its persons and camera sections)."""
        fx, fy, cx, cy = config.camera.fallback_intrinsics
        fallback = None if fx <= 0 or fy <= 0 else np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], dtype=float)
        return cls(expect_detections, config.persons.detection_timeout, config.camera.camera_info_max_age,
                   fallback, config.camera.fallback_horizontal_fov_deg)

    # ------------------------------------------------------------------------------------------------ inputs

    def add_camera_info(self, message) -> None:
        """sensor_msgs/CameraInfo; an uncalibrated one (zero focal length) is counted and ignored."""
        try:
            intrinsics = camera_matrix(message)
        except InputError as error:
            self._skip("camera_info_uncalibrated", error)
            return
        self._camera_info = CameraInfo(stamp_ns(message.header), intrinsics, int(message.width), int(message.height))

    def add_detections(self, message, received_ns: int) -> list[AssembledFrame]:
        """vision_msgs/Detection2DArray -> the frames it completes (its own, and any that timed out)."""
        stamp = stamp_ns(message.header)
        detections = detections_from_message(message)
        ready = self.expire(received_ns)
        if stamp in self._waiting_images:
            image_message, _ = self._waiting_images.pop(stamp)
            return ready + self._older_than(stamp) + [self._assemble(image_message, stamp, detections)]
        if self._last_image_stamp is not None and stamp <= self._last_image_stamp:
            self.counts["detections_late"] += 1  # its image already went on without it (or the stamps went back)
            self._late_detections[stamp] = detections
            while len(self._late_detections) > MAX_WAITING:
                self._late_detections.popitem(last=False)
            return ready
        self._early_detections[stamp] = detections
        while len(self._early_detections) > MAX_WAITING:
            self._early_detections.popitem(last=False)
            self.counts["detections_unmatched"] += 1
        return ready

    def add_image(self, message, received_ns: int) -> list[AssembledFrame]:
        """sensor_msgs/Image or CompressedImage -> the frames that are complete now (possibly this one)."""
        stamp = stamp_ns(message.header)
        if self._last_image_stamp is not None and stamp < self._last_image_stamp:
            self.reset(f"image stamp went back from {self._last_image_stamp} to {stamp} ns", new_stamp=stamp)
        self._last_image_stamp = stamp
        ready = self.expire(received_ns)
        if not self.expect_detections:
            return ready + [self._assemble(message, stamp, None)]
        if stamp in self._early_detections:
            detections = self._early_detections.pop(stamp)
            return ready + self._older_than(stamp) + [self._assemble(message, stamp, detections)]
        self._waiting_images[stamp] = (message, received_ns)
        while len(self._waiting_images) > MAX_WAITING:
            old_stamp, (old_message, _) = self._waiting_images.popitem(last=False)
            ready.append(self._without_detections(old_message, old_stamp))
        return ready

    def expire(self, received_ns: int) -> list[AssembledFrame]:
        """Images that waited longer than the detection timeout, going on without detections."""
        ready = []
        while self._waiting_images:
            stamp, (message, received) = next(iter(self._waiting_images.items()))
            if received_ns - received < self.detection_timeout_ns:
                break
            del self._waiting_images[stamp]
            ready.append(self._without_detections(message, stamp))
        return ready

    def _older_than(self, stamp: int) -> list[AssembledFrame]:
        """Waiting images older than a frame about to complete go on without detections first: frames leave in
        stamp order (what the temporal stage needs), and a detector that answered a newer image has passed them."""
        older = [old for old in self._waiting_images if old < stamp]
        return [self._without_detections(self._waiting_images.pop(old)[0], old) for old in sorted(older)]

    def flush(self) -> list[AssembledFrame]:
        """Every waiting image, without detections (the end of a bag)."""
        ready = [self._without_detections(message, stamp) for stamp, (message, _) in self._waiting_images.items()]
        self._waiting_images.clear()
        return ready

    def reset(self, why: str, new_stamp: int | None = None) -> None:
        """Forget the old timeline. new_stamp: the image that started the new one, whose camera_info and detections
        may have come first (see the module docstring)."""
        LOG.warning("frame assembly reset: %s; waiting images, detections and camera_info are dropped", why)
        self.counts["time_reset"] += 1
        self._waiting_images.clear()
        self._early_detections.clear()
        if new_stamp is not None:
            recovered = {stamp: found for stamp, found in self._late_detections.items() if stamp >= new_stamp}
            self._early_detections.update(sorted(recovered.items()))
            self.counts["detections_late"] -= len(recovered)  # not late after all: the stamps went back to them
            self.counts += Counter()  # drops a count that fell to zero
        self._late_detections.clear()
        info = self._camera_info
        fresh = (info is not None and new_stamp is not None
                 and 0 <= new_stamp - info.stamp_ns <= self.camera_info_max_age_ns)
        self._camera_info = info if fresh else None
        self._last_image_stamp = None

    # ----------------------------------------------------------------------------------------------- outputs

    def to_frame(self, assembled: AssembledFrame) -> Frame | None:
        """Decode the image and settle the intrinsics; None (counted) when the frame cannot be used."""
        try:
            image = decode_image(assembled.image_message)
        except InputError as error:
            self._skip("image_undecodable", error)
            return None
        size = (int(image.shape[0]), int(image.shape[1]))
        if self._last_size is not None and size != self._last_size:
            LOG.warning("image size changed from %s to %s", self._last_size, size)
            self.counts["image_size_changed"] += 1
        self._last_size = size
        intrinsics = self._intrinsics(assembled, size)
        if intrinsics is None:
            self._skip("no_camera_info", f"no camera_info within {self.camera_info_max_age_ns / NS_PER_S} s of the "
                                         "image and no fallback intrinsics configured")
            return None
        return Frame(image, assembled.stamp_ns, assembled.frame_id, intrinsics, assembled.detections)

    def _intrinsics(self, assembled: AssembledFrame, size: tuple[int, int]) -> np.ndarray | None:
        info = assembled.camera_info
        if info is not None and abs(assembled.stamp_ns - info.stamp_ns) <= self.camera_info_max_age_ns:
            return intrinsics_for_size(info, size, self.counts)
        if self.fallback_intrinsics is not None:
            return self.fallback_intrinsics
        if self.fallback_fov_deg > 0:
            return intrinsics_from_fov(size, self.fallback_fov_deg)
        return None

    def _assemble(self, message, stamp: int, detections) -> AssembledFrame:
        return AssembledFrame(message, stamp, str(message.header.frame_id), self._camera_info, detections)

    def _without_detections(self, message, stamp: int) -> AssembledFrame:
        self.counts["detections_timeout"] += 1
        return self._assemble(message, stamp, None)

    def _skip(self, reason: str, detail) -> None:
        self.counts[reason] += 1
        LOG.debug("skipped (%s): %s", reason, detail)


def intrinsics_for_size(info: CameraInfo, size: tuple[int, int], counts: Counter) -> np.ndarray:
    """K for an image of `size` (height, width): camera_info's own, or scaled when the image was resized.

    A camera_info whose width or height is 0 (some drivers leave the size unset) is taken as the image's size.
    """
    height, width = size
    if info.width <= 0 or info.height <= 0 or (info.width, info.height) == (width, height):
        return info.intrinsics
    counts["camera_info_rescaled"] += 1
    scale = np.diag([width / info.width, height / info.height, 1.0])
    # pixel centres: x_new + 0.5 = (x + 0.5) * sx, so the principal point moves by half a pixel of the change
    shift = np.array([[0, 0, (width / info.width - 1) / 2], [0, 0, (height / info.height - 1) / 2], [0, 0, 0]])
    return scale @ info.intrinsics + shift


def intrinsics_from_fov(size: tuple[int, int], horizontal_fov_deg: float) -> np.ndarray:
    """A pinhole K with square pixels, the principal point at the image centre and the given horizontal FOV."""
    height, width = size
    focal = (width / 2.0) / math.tan(math.radians(horizontal_fov_deg) / 2.0)
    return np.array([[focal, 0, (width - 1) / 2.0], [0, focal, (height - 1) / 2.0], [0, 0, 1.0]])


def detections_from_message(message) -> tuple[Detection, ...]:
    """vision_msgs/Detection2DArray -> Detections, with the best-scoring hypothesis's class and score.

    vision_msgs 4 (Humble, Jazzy) puts the centre in `bbox.center.position` and hypotheses in
    `results[i].hypothesis.{class_id, score}`; older releases use `bbox.center` and `results[i].{id, score}`.
    A detection without hypotheses has class "" and score 1.
    """
    detections = []
    for detection in message.detections:
        center = detection.bbox.center
        position = getattr(center, "position", center)
        width, height = float(detection.bbox.size_x), float(detection.bbox.size_y)
        box = np.array([position.x - width / 2, position.y - height / 2, width, height], dtype=np.float64)
        class_id, score = _best_hypothesis(detection.results)
        detections.append(Detection(box, score, class_id, str(getattr(detection, "id", ""))))
    return tuple(detections)


def _best_hypothesis(results) -> tuple[str, float]:
    best = ("", 1.0)
    best_score = -math.inf
    for result in results:
        hypothesis = getattr(result, "hypothesis", result)
        class_id = str(getattr(hypothesis, "class_id", getattr(hypothesis, "id", "")))
        score = float(hypothesis.score)
        if score > best_score:
            best, best_score = (class_id, score), score
    return best


def stamp_ns(header) -> int:
    return int(header.stamp.sec) * NS_PER_S + int(header.stamp.nanosec)

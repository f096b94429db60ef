"""`vqhps-ros replay IN --out OUT`: a recorded bag through the estimator into an output bag, without ROS.

The input is read with rosbags (MCAP or sqlite3, compressed or not, definitions from the bag) and paired by the
node's own `FrameAssembler`; every frame goes through `Estimator.process`; the node's message builders make
HumanMeshArray, MarkerArray, MeshTopology and /tf, written into OUT as a rosbag2 folder with MCAP storage (what
`ros2 bag record -o OUT` makes), stamped with the source stamps. Optional: the input topics copied (`copy_inputs`),
an overlay video, key frames as PNG. The summary counts frames, persons, drops and skips by reason, and gives the
latency of every stage (p50, p95).

Failures: bad frames and persons are skipped and counted; a truncated or corrupt input bag stops the replay with
an error, after the output bag written so far is closed (and so readable); an existing OUT is never overwritten.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .atomic_files import write_bytes_atomically
from .errors import EngineError, InputError, VqhpsError
from .estimator import Estimator
from .humans import Frame, FrameResult
from .io import messages
from .io.assembler import FrameAssembler
from .io.bag import assembled_frames, open_bag, select_topics
from .io.outputs import HUMANS, MARKERS, MESSAGE_TYPES, TF, TOPOLOGY, FrameOutputs

LOG = logging.getLogger(__name__)

NODE_NAME = "vqhps_estimator"  # the node's default name: "~/humans" is /vqhps_estimator/humans in a replay
TF_TOPIC = "/tf"


@dataclass
class ReplayOptions:
    image_topic: str | None = None  # None: the bag's only image topic
    camera_info_topic: str | None = None  # None: the only one, if any; "": ignore camera_info
    detections_topic: str | None = None  # None: the only one, if any; "": ignore detections
    copy_inputs: bool = False
    video: Path | None = None  # an .mp4 overlay video
    png_every: int = 0  # a key frame every N processed frames (0: none)
    png_dir: Path | None = None
    max_frames: int | None = None
    progress: bool = True


@dataclass
class ReplayStats:
    frames_read: int = 0
    frames_processed: int = 0
    humans: int = 0
    skipped: Counter = field(default_factory=Counter)
    timings_ms: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    first_stamp_ns: int | None = None
    last_stamp_ns: int | None = None
    wall_s: float = 0.0

    def add_timing(self, stage: str, milliseconds: float) -> None:
        self.timings_ms[stage].append(milliseconds)

    def summary(self) -> dict:
        span_s = 0.0 if self.first_stamp_ns is None else (self.last_stamp_ns - self.first_stamp_ns) / 1e9
        latency = {stage: {"mean_ms": round(float(np.mean(values)), 2),
                           "p50_ms": round(float(np.percentile(values, 50)), 2),
                           "p95_ms": round(float(np.percentile(values, 95)), 2)}
                   for stage, values in self.timings_ms.items() if values}
        return {
            "frames_read": self.frames_read, "frames_processed": self.frames_processed, "humans": self.humans,
            "humans_per_frame": round(self.humans / max(self.frames_processed, 1), 2),
            "skipped": dict(sorted(self.skipped.items())), "latency": latency,
            "wall_s": round(self.wall_s, 2), "bag_span_s": round(span_s, 2),
            "real_time_factor": round(span_s / self.wall_s, 2) if self.wall_s > 0 else None,
        }  # fmt: skip


def replay_bag(bag: str | Path, out: str | Path, config, options: ReplayOptions | None = None,
               estimator: Estimator | None = None) -> dict:
    """Replay `bag` into the output bag `out` (see the module docstring); returns the summary."""
    options = options or ReplayOptions()
    bag, out = Path(bag), Path(out)
    if out.exists():
        raise InputError(f"output {out} already exists; give a new path (a replay never overwrites a bag)")
    owns_estimator = estimator is None
    estimator = estimator or Estimator.from_config(config)
    engine = str(estimator.description)
    try:
        stats = _replay(bag, out, config, options, estimator)
    finally:
        if owns_estimator:
            estimator.close()
    return {"input": str(bag), "output": str(out), "engine": engine, **stats.summary()}


def _replay(bag: Path, out: Path, config, options: ReplayOptions, estimator: Estimator) -> ReplayStats:
    stats = ReplayStats()
    started = time.perf_counter()
    with open_bag(bag) as reader:
        topics = select_topics(reader, options.image_topic, options.camera_info_topic, options.detections_topic)
        assembler = FrameAssembler.from_config(config, expect_detections=topics.detections is not None)
        total = topics.image.msgcount if options.max_frames is None else options.max_frames
        with OutputBag(out, config, estimator.topology) as output, KeyFrames(options, _frame_rate(reader, topics)
                                                                             ) as key_frames:
            copy = output.input_copier(topics) if options.copy_inputs else None
            frames = _guarded(assembled_frames(reader, topics, assembler, copy), bag, out, stats)
            for assembled in _progress(frames, total, options.progress):
                if options.max_frames is not None and stats.frames_read >= options.max_frames:
                    break
                stats.frames_read += 1
                decode_started = time.perf_counter()
                frame = assembler.to_frame(assembled)
                stats.add_timing("decode", 1000 * (time.perf_counter() - decode_started))
                if frame is not None:
                    _process(frame, estimator, output, key_frames, stats)
        stats.skipped.update(assembler.counts)
    stats.wall_s = time.perf_counter() - started
    return stats


def _process(frame: Frame, estimator: Estimator, output: OutputBag, key_frames: KeyFrames,
             stats: ReplayStats) -> None:
    try:
        result = estimator.process(frame)
    except (InputError, EngineError) as error:
        stats.skipped["frame_failed"] += 1
        LOG.warning("frame %d skipped: %s", frame.stamp_ns, error)
        return
    stats.frames_processed += 1
    stats.humans += len(result.humans)
    stats.skipped.update(result.skipped)
    stats.first_stamp_ns = frame.stamp_ns if stats.first_stamp_ns is None else stats.first_stamp_ns
    stats.last_stamp_ns = frame.stamp_ns
    for stage, milliseconds in result.timings_ms.items():
        stats.add_timing(stage, milliseconds)
    for stage, milliseconds in output.write(result).items():
        stats.add_timing(stage, milliseconds)
    key_frames.add(frame, result, estimator.topology.faces)


def _guarded(frames: Iterator, bag: Path, out: Path, stats: ReplayStats) -> Iterator:
    """The frames of `frames`, timed; an error of the bag reader becomes an InputError that says what was kept."""
    while True:
        started = time.perf_counter()
        try:
            frame = next(frames)
            stats.add_timing("read", 1000 * (time.perf_counter() - started))  # bag read, deserialise, assemble
        except StopIteration:
            return
        except VqhpsError:
            raise
        except Exception as error:  # rosbags, mcap and sqlite raise many types for damaged files
            raise InputError(f"input bag {bag} is truncated or corrupt (read {stats.frames_read} frames): "
                             f"{type(error).__name__}: {error}; the output bag {out} holds the frames before "
                             "it and is closed") from error
        yield frame


def _progress(frames: Iterator, total: int, enabled: bool) -> Iterator:
    if not enabled:
        return frames
    from tqdm import tqdm

    return tqdm(frames, total=total, unit="frame", desc="replay")


def _frame_rate(reader, topics) -> float:
    """Images per second of the bag (for the video), 15 when the bag is too short to tell."""
    count = topics.image.msgcount
    span_s = (reader.end_time - reader.start_time) / 1e9
    return count / span_s if count > 1 and span_s > 0 else 15.0


class OutputBag:
    """The rosbag2 (MCAP) output: what `io.outputs.FrameOutputs` makes of each frame, at the image stamp."""

    def __init__(self, path: Path, config, topology):
        from rosbags.rosbag2 import StoragePlugin, Writer

        self.path = path
        self.outputs = config.outputs
        self.types = messages.rosbags_types()
        self.frame_outputs = FrameOutputs(self.types, config.outputs, topology)
        self.writer = Writer(path, version=9, storage_plugin=StoragePlugin.MCAP)
        self.connections: dict[str, object] = {}

    def __enter__(self) -> OutputBag:
        self.writer.open()
        topics = {TOPOLOGY: self.outputs.topology_topic, HUMANS: self.outputs.humans_topic,
                  MARKERS: self.outputs.markers_topic, TF: TF_TOPIC}
        for kind, topic in topics.items():
            self.connections[kind] = self.writer.add_connection(expand_topic(topic), MESSAGE_TYPES[kind],
                                                                typestore=self.types.typestore)
        return self

    def __exit__(self, *exc_info) -> None:
        self.writer.close()

    def input_copier(self, topics):
        """A callback for `assembled_frames` that writes every input message unchanged, with its definition."""
        copies = {}
        for connection in topics.connections:
            copies[connection.id] = self.writer.add_connection(
                connection.topic, connection.msgtype, msgdef=connection.msgdef.data, rihs01=connection.digest)
        return lambda connection, log_time, raw, message: self.writer.write(copies[connection.id], log_time, raw)

    def write(self, result: FrameResult) -> dict[str, float]:
        """Write one frame's messages at the image stamp; returns {"build": ms, "write": ms}."""
        started = time.perf_counter()
        records = self.frame_outputs.messages(result)
        built = time.perf_counter()
        for kind, message in records:
            data = self.types.typestore.serialize_cdr(message, MESSAGE_TYPES[kind])
            self.writer.write(self.connections[kind], result.stamp_ns, data)
        return {"build": 1000 * (built - started), "write": 1000 * (time.perf_counter() - built)}


class KeyFrames:
    """The overlay video (every processed frame) and PNG key frames (every N-th), for a person to look at.

    The video is written to a temporary name and renamed when complete, so a file at the final name is whole.
    """

    def __init__(self, options: ReplayOptions, fps: float):
        self.video_path = options.video
        self.png_every = options.png_every
        self.png_dir = options.png_dir
        self.fps = fps
        self.writer = None
        self.size: tuple[int, int] | None = None
        self.count = 0

    def __enter__(self) -> KeyFrames:
        if self.png_every and self.png_dir is not None:
            self.png_dir.mkdir(parents=True, exist_ok=True)
        return self

    def __exit__(self, exc_type, *exc_info) -> None:
        if self.writer is not None:
            self.writer.release()
            os.replace(self._partial_video, self.video_path)

    @property
    def wanted(self) -> bool:
        return self.video_path is not None or (self.png_every > 0 and self.png_dir is not None)

    @property
    def _partial_video(self) -> Path:
        return self.video_path.with_name(self.video_path.stem + ".partial" + self.video_path.suffix)

    def add(self, frame: Frame, result: FrameResult, faces) -> None:
        if not self.wanted:
            return
        from .overlay import draw_humans, encode_rgb

        png_due = self.png_every > 0 and self.png_dir is not None and self.count % self.png_every == 0
        if self.video_path is not None or png_due:
            overlay = draw_humans(frame.image, result.humans, frame.intrinsics, faces)
            if png_due:
                write_bytes_atomically(encode_rgb(overlay, ".png"), self.png_dir / f"frame_{self.count:05d}.png")
            if self.video_path is not None:
                self._write_video(overlay)
        self.count += 1

    def _write_video(self, overlay: np.ndarray) -> None:
        import cv2

        if self.writer is None:
            self.size = (overlay.shape[1], overlay.shape[0])
            self.video_path.parent.mkdir(parents=True, exist_ok=True)
            self.writer = cv2.VideoWriter(str(self._partial_video), cv2.VideoWriter_fourcc(*"mp4v"), self.fps,
                                          self.size)
            if not self.writer.isOpened():
                raise InputError(f"OpenCV cannot write the video {self.video_path} (mp4v codec)")
        if (overlay.shape[1], overlay.shape[0]) != self.size:
            overlay = cv2.resize(overlay, self.size)  # the video keeps its first size when the camera's changes
        self.writer.write(cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR))


def expand_topic(name: str, node: str = NODE_NAME) -> str:
    """ROS name expansion of the node's output topics for a bag: "~/humans" -> "/vqhps_estimator/humans"."""
    if name.startswith("~"):
        return f"/{node}{name[1:]}"
    return name if name.startswith("/") else f"/{name}"


def write_summary(summary: dict, path: Path) -> None:
    write_bytes_atomically((json.dumps(summary, indent=2) + "\n").encode(), path)

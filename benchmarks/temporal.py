"""The temporal stage on synthetic sequences: the same replay with and without `temporal.enabled`, scored.

Each sequence is a rosbag2 (MCAP) like the sample bag (`tools/make_sample_bag.py`): free-body people rendered by
`vqhps_ros.synth` (walkers and people gesturing in place, static camera, 640x480 JPEG), CameraInfo, and the
Detection2DArray of a simulated detector with a real detector's faults:

* people less than `MIN_VISIBLE` visible (occluded, or leaving the image) or shorter than 24 px are not reported;
* random misses: a person is missed with probability `MISS_PROBABILITY`, and a miss continues into the next frame
  with probability `MISS_BURST` (bursts of misses);
* box jitter: every box edge moves by Gaussian noise of `BOX_JITTER` times the box height (pixels);
* false positives: with probability `FALSE_POSITIVE_RATE` per frame, a box of person-like shape on the background;
* no upstream ids (Detection2D.id empty): identities come from the tracker alone.

Layouts (positions and speeds drawn from the seed): `crossing` (two walkers cross at different depths, the nearer
one hides the farther), `occlusion` (a walker passes in front of a person gesturing in place), `enter_leave`
(walkers come in from one side and leave on the other), `group` (two people in place and a walker behind them). Rates
15 and 30 Hz, some with dropped frames (a frame is missing from the bag, so stamps jump).

Every sequence is replayed twice through `vqhps_ros.replay.replay_bag` with the bundled model (ONNX Runtime),
`temporal.enabled=false` (per frame) and `true`, and each output bag is scored against the ground truth by
`vqhps_ros.scoring` (acceleration error pelvis-aligned and camera-frame, MPJPE, id switches, fragmentations, token
flip rate, the share of detected people published); the temporal stage's time per published person comes from the
replay's stage timings.

    python benchmarks/temporal.py [--seeds 100 101] [--work-dir DIR] [--set temporal.KEY=VALUE ...]
        [--threads 0] [--name temporal] [--out benchmarks/results]

The default seeds are held out: the stage's defaults were tuned on seeds 1-3 (`--seeds 1 2 3 --name
temporal_tuning`), never on these. Writes <name>.json and <name>.md.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import make_sample_bag as sample_bag  # noqa: E402
from machine import cpu_seconds, machine_info, other_processes_share, write_results  # noqa: E402

from vqhps_ros.config import load_config  # noqa: E402
from vqhps_ros.replay import ReplayOptions, replay_bag  # noqa: E402
from vqhps_ros.scoring import load_truth, score_replay  # noqa: E402
from vqhps_ros.synth.appearance import sample_betas  # noqa: E402
from vqhps_ros.synth.backgrounds import Lighting, room_background  # noqa: E402
from vqhps_ros.synth.cameras import Camera, intrinsics_from_fov, look_at  # noqa: E402
from vqhps_ros.synth.scene import SceneGenerator  # noqa: E402
from vqhps_ros.synth.tracks import placements_at, standing_track, walking_track  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
HELD_OUT_SEEDS = (100, 101)
TUNING_SEEDS = (1, 2, 3)
IMAGE_SIZE = (480, 640)
FOV_DEG = 64.0
START_TIME_NS = 1_767_225_600 * 10**9
MIN_VISIBLE = 0.3
MIN_HEIGHT_PX = 24.0
MISS_PROBABILITY = 0.08
MISS_BURST = 0.4
BOX_JITTER = 0.025
FALSE_POSITIVE_RATE = 0.03
FACING_CAMERA = np.pi  # the body's forward (+z) turned towards the camera at the origin


@dataclass(frozen=True)
class SequenceSpec:
    layout: str  # crossing | occlusion | enter_leave | group
    fps: float
    seconds: float
    drop_rate: float  # share of frames missing from the bag
    seed: int

    @property
    def name(self) -> str:
        drop = f"-drop{round(100 * self.drop_rate)}" if self.drop_rate else ""
        return f"{self.layout}-{self.fps:g}hz{drop}-s{self.seed}"


def sequence_specs(seeds) -> list[SequenceSpec]:
    """The sequences of each seed: every layout, at 15 and 30 Hz, two of them with dropped frames."""
    specs = []
    for seed in seeds:
        specs += [SequenceSpec("crossing", 15.0, 4.0, 0.0, seed), SequenceSpec("crossing", 30.0, 4.0, 0.15, seed),
                  SequenceSpec("occlusion", 15.0, 4.0, 0.0, seed), SequenceSpec("occlusion", 30.0, 4.0, 0.0, seed),
                  SequenceSpec("enter_leave", 15.0, 5.0, 0.15, seed), SequenceSpec("group", 30.0, 3.0, 0.0, seed)]
    return specs


# ------------------------------------------------------------------------------------------------ the scenes


def scene_tracks(spec: SequenceSpec, generator: SceneGenerator, rng: np.random.Generator, num_frames: int) -> list:
    """The people of a layout (synth PersonTracks), positions and speeds drawn from `rng`."""
    fps = spec.fps
    betas = sample_betas(rng, 3, generator.body.num_betas, scale=0.8)
    colors = [generator.random_colors(rng) for _ in range(3)]

    def walker(index, x_from, x_to, z_from, z_to, speed, first=0.0):
        return walking_track(rng, index + 1, betas[index], colors[index], (x_from, z_from), (x_to, z_to), speed, fps,
                             first_frame=int(round(first * fps)))

    def stander(index, x, z):
        return standing_track(rng, index + 1, betas[index], colors[index], (x, z),
                              FACING_CAMERA + rng.uniform(-0.5, 0.5), num_frames, fps)

    if spec.layout == "crossing":  # both reach x = meet at meet_s seconds
        near, far = rng.uniform(2.8, 3.4), rng.uniform(4.2, 5.5)
        meet, meet_s = rng.uniform(-0.4, 0.4), rng.uniform(0.4, 0.6) * spec.seconds
        speeds = rng.uniform(0.8, 1.3, size=2)
        return [walker(0, meet - speeds[0] * meet_s, meet + speeds[0] * (spec.seconds * 2), near, near + 0.3,
                       speeds[0]),
                walker(1, meet + speeds[1] * meet_s, meet - speeds[1] * (spec.seconds * 2), far, far - 0.4,
                       speeds[1])]
    if spec.layout == "occlusion":  # the walker passes in front of the other at pass_s seconds
        x, z = rng.uniform(-0.8, 0.8), rng.uniform(4.2, 5.5)
        speed, pass_s = rng.uniform(0.7, 1.1), rng.uniform(0.4, 0.6) * spec.seconds
        direction = rng.choice([-1.0, 1.0])
        near = rng.uniform(2.6, 3.2)
        x_at_pass = x * near / z  # in the line of sight
        start = x_at_pass - direction * speed * pass_s
        return [stander(0, x, z), walker(1, start, start + direction * speed * spec.seconds * 2, near, near, speed)]
    if spec.layout == "enter_leave":  # from outside the image on one side to outside on the other
        tracks = []
        for index, (side, first) in enumerate(((-1.0, 0.0), (1.0, rng.uniform(0.25, 0.45) * spec.seconds))):
            z = rng.uniform(3.2, 5.0)
            edge = 0.62 * z + 0.6  # just outside the 64-degree field of view
            speed = rng.uniform(1.1, 1.5)
            tracks.append(walker(index, side * edge, -side * (edge + 1.0), z, z + rng.uniform(-0.5, 0.5), speed,
                                 first))
        return tracks
    if spec.layout == "group":
        x, z = rng.uniform(-0.6, 0.2), rng.uniform(3.5, 4.5)
        gap = rng.uniform(0.9, 1.3)
        behind = z + rng.uniform(1.5, 2.5)
        direction = rng.choice([-1.0, 1.0])
        speed = rng.uniform(0.7, 1.1)
        start = -direction * (0.62 * behind * 0.8)
        return [stander(0, x, z), stander(1, x + gap, z + rng.uniform(-0.3, 0.3)),
                walker(2, start, start + direction * speed * spec.seconds * 2, behind, behind, speed)]
    raise ValueError(f"unknown layout {spec.layout!r}")


class SimulatedDetector:
    """Person boxes from the ground truth with a real detector's faults (see the module docstring)."""

    def __init__(self, rng: np.random.Generator, image_size: tuple[int, int]):
        self.rng = rng
        self.image_size = image_size
        self.missed: dict[int, bool] = {}

    def detect(self, track_ids: list[int], people) -> tuple[list[tuple[np.ndarray, float]], list[bool]]:
        """[(box, score)] and, per person, whether it was reported."""
        boxes, detected = [], []
        for track_id, person in zip(track_ids, people, strict=True):
            seen = person.visible_fraction >= MIN_VISIBLE and person.box[3] >= MIN_HEIGHT_PX
            chance = MISS_BURST if self.missed.get(track_id) else MISS_PROBABILITY
            miss = bool(self.rng.uniform() < chance)
            self.missed[track_id] = miss
            reported = seen and not miss
            detected.append(reported)
            if reported:
                boxes.append((self._jittered(person.box),
                              float(np.clip(0.5 + 0.5 * person.visible_fraction + self.rng.normal(0, 0.05), 0, 1))))
        if self.rng.uniform() < FALSE_POSITIVE_RATE:
            height, width = self.image_size
            h = self.rng.uniform(0.2, 0.5) * height
            box = np.array([self.rng.uniform(0, width - 0.4 * h), self.rng.uniform(0, height - h), 0.4 * h, h])
            boxes.append((box, float(self.rng.uniform(0.35, 0.6))))
        return boxes, detected

    def _jittered(self, box: np.ndarray) -> np.ndarray:
        x0, y0, w, h = box
        edges = np.array([x0, y0, x0 + w, y0 + h]) + self.rng.normal(0.0, BOX_JITTER * h, size=4)
        height, width = self.image_size
        edges = np.clip(edges, [0, 0, 0, 0], [width, height, width, height])
        return np.array([edges[0], edges[1], max(edges[2] - edges[0], 1.0), max(edges[3] - edges[1], 1.0)])


def detections_message(typestore, stamp_ns: int, boxes: list[tuple[np.ndarray, float]]):
    types = typestore.types
    detections = []
    for (x, y, w, h), score in boxes:
        hypothesis = types["vision_msgs/msg/ObjectHypothesisWithPose"](
            hypothesis=types["vision_msgs/msg/ObjectHypothesis"](class_id="person", score=score),
            pose=sample_bag._zero_pose(types))
        center = types["vision_msgs/msg/Pose2D"](position=types["vision_msgs/msg/Point2D"](x=x + w / 2, y=y + h / 2),
                                                 theta=0.0)
        detections.append(types["vision_msgs/msg/Detection2D"](
            header=sample_bag.header(typestore, stamp_ns), results=[hypothesis],
            bbox=types["vision_msgs/msg/BoundingBox2D"](center=center, size_x=float(w), size_y=float(h)), id=""))
    return types["vision_msgs/msg/Detection2DArray"](header=sample_bag.header(typestore, stamp_ns),
                                                     detections=detections)


def sequence_scene(spec: SequenceSpec, generator: SceneGenerator):
    """The static parts of a sequence, drawn from its seed: (rng to draw the frames with, camera, background,
    lighting, person tracks, number of frames)."""
    rng = np.random.default_rng([spec.seed, sorted(("crossing", "occlusion", "enter_leave", "group")).index(
        spec.layout), int(spec.fps)])
    num_frames = int(round(spec.seconds * spec.fps))
    intrinsics = intrinsics_from_fov(IMAGE_SIZE, FOV_DEG)
    rotation, translation = look_at([0.0, rng.uniform(1.1, 1.5), 0.0], [0.0, 1.0, 5.0])
    camera = Camera(intrinsics, rotation, translation, IMAGE_SIZE)
    background = room_background(rng, camera, wall_distance=rng.uniform(8.0, 11.0))
    direction = np.array([rng.uniform(-0.5, 0.5), -0.75, -0.55])
    lighting = Lighting(direction / np.linalg.norm(direction), 0.38, 0.62, np.array([1.03, 1.0, 0.97]))
    return rng, camera, background, lighting, scene_tracks(spec, generator, rng, num_frames), num_frames


def write_sequence(spec: SequenceSpec, folder: Path, generator: SceneGenerator) -> Path:
    """The bag of `spec` in folder/<name> with ground_truth.npz beside its MCAP file (reused when complete)."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    bag = folder / spec.name
    if (bag / "ground_truth.npz").is_file():
        return bag
    shutil.rmtree(bag, ignore_errors=True)
    rng, camera, background, lighting, tracks, num_frames = sequence_scene(spec, generator)
    detector = SimulatedDetector(rng, IMAGE_SIZE)
    typestore = sample_bag.make_typestore()
    rows: dict[str, list] = {}
    staging = folder / f".{spec.name}.partial" / spec.name
    shutil.rmtree(staging.parent, ignore_errors=True)
    with Writer(staging, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        connections = {topic: writer.add_connection(topic, msgtype, typestore=typestore) for topic, msgtype in (
            (sample_bag.IMAGE_TOPIC, "sensor_msgs/msg/CompressedImage"),
            (sample_bag.INFO_TOPIC, "sensor_msgs/msg/CameraInfo"),
            (sample_bag.DETECTION_TOPIC, "vision_msgs/msg/Detection2DArray"))}
        for frame_index in range(num_frames):
            dropped = rng.uniform() < spec.drop_rate
            track_ids, placements = placements_at(tracks, frame_index)
            if dropped or not placements:
                continue
            stamp_ns = START_TIME_NS + int(round(frame_index * 1e9 / spec.fps))
            frame = generator.compose_frame(rng, camera, placements, background, lighting)
            boxes, detected = detector.detect(track_ids, frame.people)
            messages = {sample_bag.IMAGE_TOPIC: sample_bag.compressed_image(typestore, stamp_ns, frame.image),
                        sample_bag.INFO_TOPIC: sample_bag.camera_info(typestore, stamp_ns, camera),
                        sample_bag.DETECTION_TOPIC: detections_message(typestore, stamp_ns, boxes)}
            for topic, message in messages.items():
                writer.write(connections[topic], stamp_ns, typestore.serialize_cdr(message, message.__msgtype__))
            sample_bag._append_truth(rows, frame, frame_index, stamp_ns, track_ids, detected)
    staging.rename(bag)
    staging.parent.rmdir()
    sample_bag._save_ground_truth(bag / "ground_truth.npz", rows, camera)
    return bag


# --------------------------------------------------------------------------------------------- the replays


def replay_and_score(bag: Path, overrides: list[str], work: Path) -> tuple[dict, dict[int, float]]:
    """The replay's scores and timings, and the MPJPE of each true person it matched (truth row -> mm)."""
    config = load_config(overrides=overrides)
    out = work / f"{bag.name}-{'on' if config.temporal.enabled else 'off'}"
    shutil.rmtree(out, ignore_errors=True)
    summary = replay_bag(bag, out, config, ReplayOptions(progress=False))
    scored = score_replay(out, bag / "ground_truth.npz")
    scores = scored.summary()
    shutil.rmtree(out, ignore_errors=True)
    temporal = summary["latency"].get("temporal", {"mean_ms": 0.0, "p50_ms": 0.0})
    humans_per_frame = max(summary["humans"], 1) / max(summary["frames_processed"], 1)
    return {**scores, "temporal_ms_per_frame": temporal["mean_ms"], "temporal_p50_ms_per_frame": temporal["p50_ms"],
            "temporal_ms_per_person": round(temporal["mean_ms"] / humans_per_frame, 4),
            "temporal_p50_ms_per_person": round(temporal["p50_ms"] / humans_per_frame, 4),
            "skipped": summary["skipped"], "humans": summary["humans"]}, scored.row_mpjpe_mm


def run(specs: list[SequenceSpec], work_dir: Path, overrides: list[str], threads: int) -> list[dict]:
    generator = SceneGenerator()
    base = ["model.backend=onnxruntime", f"model.threads={threads}", f"model.engine_cache_dir={work_dir / 'engines'}"]
    rows = []
    for spec in specs:
        started = time.perf_counter()
        bag = write_sequence(spec, work_dir / "bags", generator)
        rendered = time.perf_counter()
        truth = load_truth(bag / "ground_truth.npz")
        results, row_errors = {}, {}
        for mode in ("off", "on"):
            results[mode], row_errors[mode] = replay_and_score(
                bag, [*base, *overrides, f"temporal.enabled={mode == 'on'}"], work_dir)
        add_common_mpjpe(results, row_errors)
        rows.append({"sequence": spec.name, "layout": spec.layout, "fps": spec.fps, "seed": spec.seed,
                     "drop_rate": spec.drop_rate, "frames": int(len(np.unique(truth["stamp_ns"]))),
                     "people": int(len(np.unique(truth["track_id"]))), "off": results["off"], "on": results["on"],
                     "render_s": round(rendered - started, 1), "replay_s": round(time.perf_counter() - rendered, 1)})
        print(row_line(rows[-1]), flush=True)
    return rows


def add_common_mpjpe(results: dict[str, dict], row_errors: dict[str, dict[int, float]]) -> None:
    """Each replay's MPJPE over the true people both replays matched ("mpjpe_common_mm"): the stage also publishes
    people the detector missed, on predicted boxes, which the per-frame replay cannot; this compares like with like."""
    common = set(row_errors["off"]).intersection(row_errors["on"])
    for mode, errors in row_errors.items():
        values = [errors[row] for row in common]
        results[mode]["mpjpe_common_mm"] = round(float(np.mean(values)), 1) if values else None


# ------------------------------------------------------------------------------------------------- results


def reduction(off, on) -> float | None:
    return None if not off or on is None else round(100.0 * (1.0 - on / off), 1)


def targets(row: dict) -> dict:
    """The issue's targets for one sequence: True when met."""
    off, on = row["off"], row["on"]
    met = {"accel_down_70": (reduction(off["accel_error_mm"], on["accel_error_mm"]) or 0) >= 70.0,
           "mpjpe_within_2mm": on["mpjpe_mm"] is not None and on["mpjpe_mm"] <= off["mpjpe_mm"] + 2.0,
           "published_90": (on["published_of_detected"] or 0) >= 0.9,
           "under_1ms_per_person": on["temporal_p50_ms_per_person"] < 1.0}
    if row["layout"] == "crossing":
        met["crossing_id_switches_le_1"] = on["id_switches"] <= 1
    return met


def row_line(row: dict) -> str:
    off, on = row["off"], row["on"]

    def pair(key, digits=1):
        def show(value):
            return "-" if value is None else f"{value:.{digits}f}"
        return f"{show(off[key])} -> {show(on[key])}"

    return (f"| {row['sequence']} | {row['frames']} | {row['people']} | {pair('accel_error_mm')} "
            f"({reduction(off['accel_error_mm'], on['accel_error_mm'])} %) | {pair('accel_error_camera_mm')} | "
            f"{pair('mpjpe_mm')} | {pair('mpjpe_common_mm')} | {off['id_switches']} -> {on['id_switches']} | "
            f"{off['fragmentations']} -> {on['fragmentations']} | {pair('token_flip_rate', 3)} | "
            f"{pair('published_of_detected', 2)} | {on['temporal_p50_ms_per_person']:.2f} / "
            f"{on['temporal_ms_per_person']:.2f} |")


HEADER = ("| sequence | frames | people | accel. error, pelvis-aligned (mm/frame^2) | accel. error, camera frame | "
          "MPJPE (mm) | MPJPE, people both publish | id switches | fragmentations | token flip rate | "
          "detected people published | temporal ms/person (median / mean) |\n"
          "|---|---:|---:|---|---|---|---|---|---|---|---|---:|\n")


def totals(rows: list[dict]) -> dict:
    def mean(mode, key):
        values = [row[mode][key] for row in rows if row[mode][key] is not None]
        return round(float(np.mean(values)), 3) if values else None

    keys = ("accel_error_mm", "accel_error_camera_mm", "mpjpe_mm", "mpjpe_common_mm", "pelvis_error_mm",
            "token_flip_rate", "published_of_detected", "temporal_ms_per_person", "temporal_p50_ms_per_person")
    summary = {mode: {key: mean(mode, key) for key in keys} for mode in ("off", "on")}
    for mode in ("off", "on"):
        summary[mode]["id_switches"] = sum(row[mode]["id_switches"] for row in rows)
        summary[mode]["fragmentations"] = sum(row[mode]["fragmentations"] for row in rows)
    met = [targets(row) for row in rows]
    summary["targets_met"] = {key: f"{sum(m[key] for m in met if key in m)}/{sum(key in m for m in met)}"
                              for key in dict.fromkeys(k for m in met for k in m)}
    off, on = summary["off"], summary["on"]
    summary["on_the_means"] = {
        "accel_reduction_percent": reduction(off["accel_error_mm"], on["accel_error_mm"]),
        "accel_camera_reduction_percent": reduction(off["accel_error_camera_mm"], on["accel_error_camera_mm"]),
        "mpjpe_change_mm": round(on["mpjpe_mm"] - off["mpjpe_mm"], 2),
        "mpjpe_common_change_mm": round(on["mpjpe_common_mm"] - off["mpjpe_common_mm"], 2)}
    return summary


def table(rows: list[dict], summary: dict, cpu: str, overrides: list[str]) -> str:
    lines = [row_line(row) for row in rows]
    off, on = summary["off"], summary["on"]
    lines.append(f"| **mean** | | | {off['accel_error_mm']:.1f} -> {on['accel_error_mm']:.1f} "
                 f"({reduction(off['accel_error_mm'], on['accel_error_mm'])} %) | "
                 f"{off['accel_error_camera_mm']:.1f} -> {on['accel_error_camera_mm']:.1f} | "
                 f"{off['mpjpe_mm']:.1f} -> {on['mpjpe_mm']:.1f} | "
                 f"{off['mpjpe_common_mm']:.1f} -> {on['mpjpe_common_mm']:.1f} | "
                 f"{off['id_switches']} -> {on['id_switches']} | "
                 f"{off['fragmentations']} -> {on['fragmentations']} | "
                 f"{off['token_flip_rate']:.3f} -> {on['token_flip_rate']:.3f} | "
                 f"{off['published_of_detected']:.2f} -> {on['published_of_detected']:.2f} | "
                 f"{on['temporal_p50_ms_per_person']:.2f} / {on['temporal_ms_per_person']:.2f} |")
    met = ", ".join(f"{key} {value}" for key, value in summary["targets_met"].items())
    means = summary["on_the_means"]
    met += (f"; on the means: acceleration error (pelvis-aligned) {means['accel_reduction_percent']} % lower, "
            f"camera frame {means['accel_camera_reduction_percent']} % lower, MPJPE {means['mpjpe_change_mm']:+.1f} mm "
            f"({means['mpjpe_common_change_mm']:+.1f} mm on the people both publish)")
    settings = f" Settings changed from the defaults: {' '.join(overrides)}." if overrides else ""
    return (HEADER + "\n".join(lines) + f"\n\nEach cell: per frame (`temporal.enabled=false`) -> temporal stage. "
            "Sequences named layout-rate[-dropN]-seed. MPJPE pelvis-aligned, over every true person a replay matched, "
            "and over those both replays matched (the stage also publishes people on predicted boxes where the "
            "detector missed them); accelerations over runs of consecutive "
            "frames (VIBE convention, no rate scaling); id switches and fragmentations of the true people; token "
            "flip rate: share of published tokens that change between consecutive frames of one published id; "
            "detected people published: share of the people the simulated detector reported that a published "
            "person matches (IoU >= 0.5). Per-frame ids are frame indices, so their id switches mean little. "
            "Temporal ms/person: the stage's time per frame (median / mean over frames) over published persons per "
            "frame; the mean includes pauses caused by other processes and the garbage collector. "
            f"Targets met (sequences): {met}. CPU: {cpu}.{settings}\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(HELD_OUT_SEEDS))
    parser.add_argument("--layouts", nargs="+", help="only these layouts")
    parser.add_argument("--work-dir", type=Path, help="keeps the rendered bags for later runs (default: a "
                                                       "temporary folder)")
    parser.add_argument("--set", dest="overrides", nargs="*", default=[], help="configuration overrides KEY=VALUE")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--name", default="temporal")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    specs = [spec for spec in sequence_specs(args.seeds) if not args.layouts or spec.layout in args.layouts]
    print(HEADER, end="", flush=True)
    before = cpu_seconds()
    if args.work_dir is None:
        with tempfile.TemporaryDirectory() as folder:
            rows = run(specs, Path(folder), args.overrides, args.threads)
    else:
        rows = run(specs, args.work_dir, args.overrides, args.threads)
    info = machine_info(args.threads)
    summary = totals(rows)
    report = {"machine": info, "seeds": args.seeds, "overrides": args.overrides,
              "other_processes_share": other_processes_share(before, cpu_seconds()),
              "detector": {"min_visible": MIN_VISIBLE, "miss_probability": MISS_PROBABILITY, "miss_burst": MISS_BURST,
                           "box_jitter": BOX_JITTER, "false_positive_rate": FALSE_POSITIVE_RATE},
              "summary": summary, "sequences": rows, "targets": {row["sequence"]: targets(row) for row in rows}}
    title = f"Temporal stage on synthetic sequences (seeds {', '.join(map(str, args.seeds))})"
    write_results(args.out, args.name, report, title, table(rows, summary, info["cpu"], args.overrides))
    return 0


if __name__ == "__main__":
    sys.exit(main())

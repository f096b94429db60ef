"""The bundled models side by side, on synthetic people they never saw and on real photographs: the figures the
default model is chosen on.

- Synthetic, whole pipeline: rendered scenes (`synth.SceneGenerator`) of `--synthetic-seed` (the keypoint model
  trained on sampled keypoints of seeds 100, 102 and 103 and on renders of seed 4000; its stages, the placement,
  mirror averaging and the token decoding were chosen on renders of seed 3000; the landmark fit used renders of seed
  1000 and its measure seeds 2000 and 2001: none of these), every person at least 100 px tall and half visible, its
  true box given as the detection (what an external detector gives); the estimator with each model, temporal stage
  off. The keypoint model reads the landmark model's keypoints on the box (not the true ones). Official MPJPE,
  PA-MPJPE, PVE and PA-PVE (mm) over the people every model published, and each model's published share; where the
  meshes are in the camera frame: the error of the vertex centroid (root, mm) and the mean vertex reprojection error
  (pixels).
- Real photographs (`../shared/bags`, three photographs, 60 frames; no 3D truth): persons from the built-in
  detector, as a camera-only user gets them. Per frame, the silhouette IoU of the rendered meshes against the
  person mask of an independent network (`detect.SelfieSegmenter`, probability >= 0.5); over all people, PCK at 0.1
  of the box size of the meshes' projected pose landmarks against the detector's keypoints (`image_metrics`).
  Overlays of one frame per photograph: `--overlay` (default docs/default_model_photos.jpg).
- Speed: persons per second through everything after the person source (model input, including the landmark model
  on boxes for the keypoint model; engine; placement), ONNX Runtime with `--threads`, on the bags' frames with their
  recorded boxes: after one untimed pass over them, the fastest of `SPEED_PASSES` timed passes (each pass's figure
  is in the JSON).

Each bundled model is measured as configured by default and with `model.token_decoding` argmax (the rows "...,
argmax tokens": the mesh of the most probable codes, as the official implementation decodes), and the default one
also with `model.mirror_average` off (the row "..., one reading": each person read once, not averaged with its
mirror image), with `model.orient_on_keypoints` off (the row "..., placed, not turned": moved onto the keypoints in
the network's orientation) and with `model.place_on_keypoints` off (the row "..., network camera": the meshes
where the network's crop camera puts them).

    python benchmarks/default_model.py [--synthetic-seed 3100] [--synthetic-frames 120] [--out benchmarks/results]

Writes default_model.json and default_model.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_info, write_results  # noqa: E402

from vqhps_ros.atomic_files import write_bytes_atomically  # noqa: E402
from vqhps_ros.body.pose_landmarks import free_body_pose_landmarks  # noqa: E402
from vqhps_ros.config import load_config  # noqa: E402
from vqhps_ros.detect import SelfieSegmenter  # noqa: E402
from vqhps_ros.estimator import Estimator  # noqa: E402
from vqhps_ros.hps.camera import project_points  # noqa: E402
from vqhps_ros.humans import Detection, Frame  # noqa: E402
from vqhps_ros.image_metrics import landmark_hits, mask_iou, mesh_silhouette  # noqa: E402
from vqhps_ros.io import read_frames  # noqa: E402
from vqhps_ros.metrics import evaluate_meshes  # noqa: E402
from vqhps_ros.models import BUNDLED_MODELS, DEFAULT_MODEL, load_image_model  # noqa: E402
from vqhps_ros.overlay import draw_humans, encode_rgb  # noqa: E402
from vqhps_ros.synth.scene import SceneGenerator  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_BAGS = REPO.parent / "shared" / "bags"
PHOTO_BAGS = ("ros2_jazzy_photos_sqlite3", "ros2_jazzy_photos_mcap")
PHOTOS = ("Grace Hopper", "Eileen Collins", "cameraman")  # 10 frames each, in turn (the bags' README)
FRAMES_PER_PHOTO = 10
MIN_HEIGHT, MIN_VISIBLE = 100.0, 0.5
MASK_THRESHOLD = 0.5
OVERLAY_WIDTH = 320


@dataclass(frozen=True)
class Variant:
    """A row of the tables: a model file and the configuration overrides it runs with."""

    path: Path
    overrides: tuple[str, ...] = ()


def default_variants() -> dict[str, Variant]:
    variants = {name: Variant(path) for name, path in BUNDLED_MODELS.items()}
    for name, path in BUNDLED_MODELS.items():
        variants[f"{name}, argmax tokens"] = Variant(path, ("model.token_decoding=argmax",))
    variants[f"{DEFAULT_MODEL}, one reading"] = Variant(BUNDLED_MODELS[DEFAULT_MODEL], ("model.mirror_average=false",))
    variants[f"{DEFAULT_MODEL}, placed, not turned"] = Variant(BUNDLED_MODELS[DEFAULT_MODEL],
                                                               ("model.orient_on_keypoints=false",))
    variants[f"{DEFAULT_MODEL}, network camera"] = Variant(BUNDLED_MODELS[DEFAULT_MODEL],
                                                           ("model.place_on_keypoints=false",))
    return variants


def estimator_for(variant: Variant, source: str, threads: int) -> Estimator:
    config = load_config(overrides=[f"model.path={variant.path}", "model.backend=onnxruntime",
                                    f"model.threads={threads}", f"persons.source={source}", "temporal.enabled=false",
                                    *variant.overrides])
    estimator = Estimator.from_config(config)
    estimator.warm_up()
    return estimator


def synthetic_frames(seed: int, count: int):
    """(Frame with the true boxes as detections, the people's truths) per rendered scene with someone to measure."""
    rng = np.random.default_rng(seed)
    generator = SceneGenerator()
    for index in range(count):
        scene = generator.random_frame(rng)
        people = [p for p in scene.people if p.box[3] >= MIN_HEIGHT and p.visible_fraction >= MIN_VISIBLE]
        if people:
            detections = tuple(Detection(np.asarray(p.box, float), 1.0, "person", str(i)) for i, p in enumerate(people))
            yield Frame(scene.image, index + 1, "camera", scene.camera.intrinsics, detections), people


def measure_synthetic(models: dict[str, Variant], seed: int, count: int, threads: int) -> dict:
    estimators = {name: estimator_for(variant, "detections", threads) for name, variant in models.items()}
    published: dict[str, dict] = {name: {} for name in models}
    truth, intrinsics = {}, {}
    for frame, people in synthetic_frames(seed, count):
        for index, person in enumerate(people):
            truth[(frame.stamp_ns, str(index))] = person.vertices_camera
            intrinsics[(frame.stamp_ns, str(index))] = frame.intrinsics
        for name, estimator in estimators.items():
            for human in estimator.process(frame).humans:
                published[name][(frame.stamp_ns, human.detection_id)] = human.vertices
    for estimator in estimators.values():
        estimator.close()
    common = sorted(set(truth).intersection(*(set(found) for found in published.values())))
    regressor = load_image_model().joint_regressor.numpy()
    report = {"seed": seed, "frames": count, "people": len(truth), "measured": len(common)}
    gt = np.stack([truth[key] for key in common]).astype(np.float64)
    for name, found in published.items():
        meshes = np.stack([found[key] for key in common]).astype(np.float64)
        errors = evaluate_meshes(meshes, gt, regressor)
        errors["root_mm"] = 1000 * np.linalg.norm(meshes.mean(axis=1) - gt.mean(axis=1), axis=1)
        errors["reprojection_px"] = np.array([reprojection_error(mesh, truth_mesh, intrinsics[key])
                                              for mesh, truth_mesh, key in zip(meshes, gt, common, strict=True)])
        report[name] = {key: round(float(values.mean()), 1) for key, values in errors.items()}
        report[name]["published"] = round(len(found) / len(truth), 3)
    return report


def reprojection_error(vertices: np.ndarray, truth: np.ndarray, intrinsics: np.ndarray) -> float:
    """Mean distance (pixels) between the projections of the same vertices of two meshes in the camera frame."""
    return float(np.nanmean(np.linalg.norm(project_points(vertices, intrinsics) - project_points(truth, intrinsics),
                                           axis=1)))


def photo_frames():
    for bag in PHOTO_BAGS:
        for index, frame in enumerate(read_frames(SHARED_BAGS / bag)):
            yield bag, PHOTOS[min(index // FRAMES_PER_PHOTO, len(PHOTOS) - 1)], index, frame


def measure_photos(models: dict[str, Variant], threads: int, overlay: Path | None) -> dict:
    segmenter = SelfieSegmenter()
    landmarks = free_body_pose_landmarks().matrix
    report: dict = {}
    tiles = defaultdict(list)
    for name, variant in models.items():
        estimator = estimator_for(variant, "builtin", threads)
        faces = estimator.topology.faces
        ious, hits, counted, people = defaultdict(list), defaultdict(int), defaultdict(int), 0
        for bag, photo, index, frame in photo_frames():
            humans = estimator.process(frame).humans
            people += len(humans)
            mask = segmenter(frame.image) >= MASK_THRESHOLD
            silhouette = mesh_silhouette(humans, faces, frame.intrinsics, frame.image_size)
            ious[photo].append(mask_iou(silhouette, mask))
            for human in humans:
                hit, seen = landmark_hits(human, landmarks, frame.intrinsics, frame.image_size)
                hits[photo] += hit
                counted[photo] += seen
            if overlay is not None and bag == PHOTO_BAGS[0] and index % FRAMES_PER_PHOTO == 0:
                tiles[name].append(draw_humans(frame.image, humans, frame.intrinsics, faces))
        estimator.close()
        report[name] = {
            "people": people,
            "silhouette_iou": round(float(np.mean([v for values in ious.values() for v in values])), 3),
            "pck": round(sum(hits.values()) / max(1, sum(counted.values())), 3),
            "per_photo": {photo: {"silhouette_iou": round(float(np.mean(ious[photo])), 3),
                                  "pck": round(hits[photo] / max(1, counted[photo]), 3)} for photo in ious},
        }
    if overlay is not None:
        write_overlay(tiles, overlay)
    return report


def write_overlay(tiles: dict[str, list[np.ndarray]], path: Path) -> None:
    """One row per model (its name on the first tile), one column per photograph."""
    rows = []
    for name, images in tiles.items():
        scaled = [cv2.resize(image, (OVERLAY_WIDTH, OVERLAY_WIDTH * image.shape[0] // image.shape[1]),
                             interpolation=cv2.INTER_AREA) for image in images]
        cv2.putText(scaled[0], name, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 0), 1, cv2.LINE_AA)
        rows.append(np.concatenate(scaled, axis=1))
    write_bytes_atomically(encode_rgb(np.concatenate(rows, axis=0)), path)


SPEED_PASSES = 3  # timed passes over the photo frames; the fastest counts (this shared CPU has slow spells)


def measure_speed(models: dict[str, Variant], threads: int) -> dict:
    report = {}
    for name, variant in models.items():
        estimator = estimator_for(variant, "detections", threads)
        for _, _, _, frame in photo_frames():  # untimed: each batch size's first run allocates
            estimator.process(frame)
        passes = [timed_pass(estimator) for _ in range(SPEED_PASSES)]
        estimator.close()
        persons, seconds = min(passes, key=lambda found: found[1])
        report[name] = {"persons": persons, "persons_per_second": round(persons / seconds, 1),
                        "passes_persons_per_second": [round(count / took, 1) for count, took in passes]}
    return report


def timed_pass(estimator: Estimator) -> tuple[int, float]:
    """(persons, seconds) of one pass over the photo frames, the person source's time left out."""
    persons, seconds = 0, 0.0
    for _, _, _, frame in photo_frames():
        started = time.perf_counter()
        result = estimator.process(frame)
        seconds += time.perf_counter() - started - result.timings_ms.get("persons", 0.0) / 1000
        persons += len(result.humans)
    return persons, seconds


def table(report: dict) -> str:
    synthetic, photos, speed = report["synthetic"], report["photos"], report["speed"]
    lines = ["| model | MPJPE | PA-MPJPE | PVE | PA-PVE | root | reprojection px | published | photo IoU | "
             "photo PCK@0.1 | persons/s |", "|---" * 11 + "|"]
    for name in report["models"]:
        row, photo = synthetic[name], photos[name]
        lines.append(f"| {name} | {row['mpjpe']} | {row['pa_mpjpe']} | {row['pve']} | {row['pa_pve']} | "
                     f"{row['root_mm']} | {row['reprojection_px']} | {row['published']:.0%} | "
                     f"{photo['silhouette_iou']} | {photo['pck']:.0%} | "
                     f"{speed[name]['persons_per_second']} |")
    lines += ["", f"Synthetic: mm (root: error of the vertex centroid in the camera frame; reprojection: mean "
              f"vertex error in the image), {synthetic['measured']} people of {synthetic['frames']} rendered "
              f"scenes (seed {synthetic['seed']}) that every model published. Photos: the 60 frames of "
              "../shared/bags, persons from the built-in detector; IoU against the selfie segmentation mask. "
              "Speed: ONNX Runtime, "
              f"{report['settings']['threads']} threads, everything after the person source.", "",
              "| photo | " + " | ".join(f"{name} IoU | {name} PCK" for name in report["models"]) + " |",
              "|---" * (1 + 2 * len(report["models"])) + "|"]
    for photo in PHOTOS:
        cells = [f"{photos[name]['per_photo'][photo]['silhouette_iou']} | {photos[name]['per_photo'][photo]['pck']:.0%}"
                 for name in report["models"]]
        lines.append(f"| {photo} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", default=[], metavar="NAME=PATH",
                        help="a model to measure (default: every bundled model)")
    parser.add_argument("--synthetic-seed", type=int, default=3100)
    parser.add_argument("--synthetic-frames", type=int, default=120)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--overlay", type=Path, default=REPO / "docs" / "default_model_photos.jpg")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args(argv)
    models = ({name: Variant(Path(path)) for name, path in (item.split("=", 1) for item in args.model)}
              if args.model else default_variants())
    report = {"models": list(models), "settings": {"synthetic_seed": args.synthetic_seed,
                                                   "synthetic_frames": args.synthetic_frames,
                                                   "threads": args.threads},
              "synthetic": measure_synthetic(models, args.synthetic_seed, args.synthetic_frames, args.threads),
              "photos": measure_photos(models, args.threads, args.overlay),
              "speed": measure_speed(models, args.threads),
              "machine": machine_info(threads=args.threads)}
    write_results(args.out, "default_model", report, "The bundled models: synthetic people and real photographs",
                  table(report))
    print(table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())

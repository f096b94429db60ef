"""The alignment refinement, before and after, dense against sparse, with and without the personalised texture.

- Synthetic sequences (`benchmarks/temporal.py`'s layouts `crossing`, `occlusion` and `group`: walkers, people in
  place, people hiding each other; static camera, 640x480, 15 Hz, 3 s each), seeds `--seeds`: the displacement network
  was trained on pairs of seeds 200 and 210 (scenes) and checked on 201 and 211, the stage's settings were chosen on
  sequences of seed 1; the default seeds are none of these. Persons come from the simulated detector of `temporal.py`
  (misses, jittered boxes, false positives) as detections; the estimator runs the bundled default model (ONNX Runtime)
  with the temporal stage on, once per variant: `regressed` (refinement off), `regressed_no_facing_guard` (the same
  without the temporal stage's facing guard, `temporal.facing_guard`), `dense` (displacement network, texture),
  `dense_no_texture`, `sparse` (the landmark model's keypoints on each box), `both` (the default). Each published
  person is matched to the true person whose box overlaps its box most (IoU >= 0.5). Per variant, over the matched
  persons: mean vertex reprojection error (pixels, every vertex, against the true mesh's projection), silhouette IoU
  of the person's mesh alone against the true mesh alone, MPJPE and PVE (mm, `metrics.evaluate_meshes`), the share
  of meshes turned 90 degrees or more from the truth (back to front: what 2D targets cannot undo) and the
  reprojection error and PVE of the others, the share refined, and the refine stage's milliseconds per person.
- Real photographs (`../shared/bags`, 60 frames, no 3D truth): the built-in detector as person source; silhouette
  IoU of all meshes against the independent person mask (`detect.SelfieSegmenter`) per variant (those of `--variants`
  among regressed, dense, sparse and both), and an overlay of one frame per photograph, one row per variant
  (`--overlay`, default docs/refine_photos.jpg).

The stage runs with a generous budget (`--budget-ms`) so that the figures are the method's; the time it took is
reported beside them.

    python benchmarks/refine.py [--seeds 100] [--budget-ms 2000] [--threads 2] [--out benchmarks/results]

Writes refine.json and refine.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import temporal as sequences  # noqa: E402
from default_model import MASK_THRESHOLD, SHARED_BAGS, photo_frames, write_overlay  # noqa: E402
from machine import machine_info, write_results  # noqa: E402

from vqhps_ros.config import load_config  # noqa: E402
from vqhps_ros.detect import SelfieSegmenter  # noqa: E402
from vqhps_ros.estimator import Estimator  # noqa: E402
from vqhps_ros.hps.camera import project_points  # noqa: E402
from vqhps_ros.humans import Detection, Frame  # noqa: E402
from vqhps_ros.image_metrics import mask_iou, mesh_silhouette  # noqa: E402
from vqhps_ros.metrics import best_rotation, evaluate_meshes  # noqa: E402
from vqhps_ros.models import load_image_model  # noqa: E402
from vqhps_ros.overlay import draw_humans  # noqa: E402
from vqhps_ros.runtime.accuracy import rotation_angle_deg  # noqa: E402
from vqhps_ros.scoring import box_iou  # noqa: E402
from vqhps_ros.synth import render_meshes  # noqa: E402
from vqhps_ros.synth.scene import SceneGenerator  # noqa: E402
from vqhps_ros.synth.tracks import placements_at  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
HELD_OUT_SEEDS = (100, 101)
TUNING_SEEDS = (1,)
VARIANTS = {
    "regressed_no_facing_guard": ["refine.enabled=false", "temporal.facing_guard=false"],
    "regressed": ["refine.enabled=false"],
    "dense": ["refine.enabled=true", "refine.signal=dense", "refine.texture=true"],
    "dense_no_texture": ["refine.enabled=true", "refine.signal=dense", "refine.texture=false"],
    "sparse": ["refine.enabled=true", "refine.signal=sparse"],
    "both": ["refine.enabled=true", "refine.signal=both"],
}
PHOTO_VARIANTS = ("regressed", "dense", "sparse", "both")  # the texture's effect is measured on the sequences
MIN_MATCH_IOU = 0.5
TURNED_DEG = 90.0  # a person's mesh turned this far from the truth faces the wrong way
LAYOUTS = ("crossing", "occlusion", "group")


def estimator_for(variant: str, source: str, threads: int, budget_ms: float, extra: list[str]) -> Estimator:
    config = load_config(overrides=["model.backend=onnxruntime", f"model.threads={threads}",
                                    f"persons.source={source}", f"refine.budget_ms={budget_ms}",
                                    *VARIANTS[variant], *extra])
    estimator = Estimator.from_config(config)
    estimator.warm_up()
    return estimator


def sequence_frames(seeds):
    """(Frame with the simulated detector's boxes, the true people seen) of every frame of the seeds' sequences."""
    generator = SceneGenerator()
    for spec in [sequences.SequenceSpec(layout, 15.0, 3.0, 0.0, seed) for seed in seeds for layout in LAYOUTS]:
        rng, camera, background, lighting, tracks, num_frames = sequences.sequence_scene(spec, generator)
        detector = sequences.SimulatedDetector(rng, sequences.IMAGE_SIZE)
        for frame_index in range(num_frames):
            track_ids, placements = placements_at(tracks, frame_index)
            if not placements:
                continue
            scene = generator.compose_frame(rng, camera, placements, background, lighting)
            boxes, _ = detector.detect(track_ids, scene.people)
            detections = tuple(Detection(box, score, "person") for box, score in boxes)
            stamp = sequences.START_TIME_NS + int(round(frame_index * 1e9 / spec.fps))
            seen = [p for p in scene.people if p.visible_fraction >= sequences.MIN_VISIBLE]
            yield spec.name, Frame(scene.image, stamp, "camera", camera.intrinsics, detections), seen


def matched(humans, people):
    """(human, true person) pairs: each human with the true person of the most overlapping box (IoU >= 0.5)."""
    pairs = []
    for human in humans:
        overlaps = [box_iou(human.box, person.box) for person in people]
        if overlaps and max(overlaps) >= MIN_MATCH_IOU:
            pairs.append((human, people[int(np.argmax(overlaps))]))
    return pairs


def person_measures(human, person, faces, intrinsics, image_size) -> dict:
    truth = person.vertices_camera.astype(np.float64)
    found = human.vertices.astype(np.float64)
    pixels = project_points(np.stack([found, truth]), intrinsics)
    # each mesh rendered alone: the silhouettes compare the person's whole outline, hidden parts included
    alone = [render_meshes([(mesh, faces)], intrinsics, image_size).masks[0].numpy() for mesh in (found, truth)]
    return {"reprojection_px": float(np.linalg.norm(pixels[0] - pixels[1], axis=1).mean()),
            "silhouette_iou": mask_iou(alone[0], alone[1]),
            "position_mm": 1000 * float(np.linalg.norm(found.mean(axis=0) - truth.mean(axis=0))),
            "turned_deg": turned_deg(found, truth)}


def turned_deg(found: np.ndarray, truth: np.ndarray) -> float:
    """Angle (degrees) of the rotation that best fits the centred mesh onto the centred truth: how far the whole
    body is turned (near 180: back to front, which 2D targets cannot undo)."""
    return float(rotation_angle_deg(best_rotation(found[None], truth[None]), np.eye(3)[None])[0])


def measure_sequences(seeds, threads: int, budget_ms: float, extra: list[str], variants=tuple(VARIANTS)) -> dict:
    frames = list(sequence_frames(seeds))
    report = {"seeds": list(seeds), "frames": len(frames), "variants": {}}
    for variant in variants:
        report["variants"][variant] = measure_variant(frames, variant, threads, budget_ms, extra)
    return report


def measure_variant(frames, variant: str, threads: int, budget_ms: float, extra: list[str]) -> dict:
    """The figures of one variant over `frames` (see the module docstring)."""
    regressor = load_image_model().joint_regressor.numpy()
    estimator = estimator_for(variant, "detections", threads, budget_ms, extra)
    faces = estimator.topology.faces
    rows, found, truth, refine_ms, people = defaultdict(list), [], [], 0.0, 0
    for _, frame, seen in frames:
        result = estimator.process(frame)
        refine_ms += result.timings_ms.get("refine", 0.0)
        people += len(result.humans)
        for human, person in matched(result.humans, seen):
            for key, value in person_measures(human, person, faces, frame.intrinsics, frame.image_size).items():
                rows[key].append(value)
            rows["refined"].append(float(human.refined))
            found.append(human.vertices)
            truth.append(person.vertices_camera)
    estimator.close()
    errors = evaluate_meshes(np.stack(found).astype(np.float64), np.stack(truth).astype(np.float64), regressor)
    turned = np.asarray(rows.pop("turned_deg")) >= TURNED_DEG
    summary = {key: round(float(np.mean(values)), 3) for key, values in rows.items()}
    summary.update({key: round(float(values.mean()), 1) for key, values in errors.items()})
    def mean_not_turned(values, digits):
        return round(float(np.asarray(values)[~turned].mean()), digits) if (~turned).any() else None

    summary.update(turned_share=round(float(turned.mean()), 3), pve_not_turned=mean_not_turned(errors["pve"], 1),
                   reprojection_not_turned=mean_not_turned(rows["reprojection_px"], 2))
    summary.update(matched=len(found), ms_per_person=round(refine_ms / max(people, 1), 1))
    return summary


def measure_photos(threads: int, budget_ms: float, extra: list[str], overlay: Path | None,
                   variants=PHOTO_VARIANTS) -> dict:
    segmenter = SelfieSegmenter()
    report, tiles = {}, {}
    for variant in variants:
        estimator = estimator_for(variant, "builtin", threads, budget_ms, extra)
        faces = estimator.topology.faces
        ious, refined, people, images = [], 0, 0, []
        for bag, _, index, frame in photo_frames():
            humans = estimator.process(frame).humans
            people += len(humans)
            refined += sum(human.refined for human in humans)
            mask = segmenter(frame.image) >= MASK_THRESHOLD
            ious.append(mask_iou(mesh_silhouette(humans, faces, frame.intrinsics, frame.image_size), mask))
            if overlay is not None and index % 10 == 9 and bag == "ros2_jazzy_photos_sqlite3":
                images.append(draw_humans(frame.image, humans, frame.intrinsics, faces))
        estimator.close()
        tiles[variant] = images
        report[variant] = {"people": people, "refined_share": round(refined / max(people, 1), 3),
                           "silhouette_iou": round(float(np.mean(ious)), 3)}
    if overlay is not None:
        write_overlay(tiles, overlay)
    return report


def table(report: dict) -> str:
    lines = ["| variant | reprojection (px) | silhouette IoU | MPJPE | PVE | PA-PVE | position | turned | not turned: "
             "reprojection | not turned: PVE | refined | ms / person |", "|---" * 12 + "|"]
    for name, row in report["synthetic"]["variants"].items():
        lines.append(f"| {name} | {row['reprojection_px']:.2f} | {row['silhouette_iou']:.3f} | {row['mpjpe']:.1f} | "
                     f"{row['pve']:.1f} | {row['pa_pve']:.1f} | {row['position_mm']:.0f} | "
                     f"{100 * row['turned_share']:.0f} % | {_figure(row['reprojection_not_turned'], 2)} | "
                     f"{_figure(row['pve_not_turned'], 1)} | {100 * row['refined']:.0f} % | "
                     f"{row['ms_per_person']:.1f} |")
    if "photos" not in report:
        return "\n".join(lines) + "\n"
    lines += ["", "Real photographs (silhouette IoU against the independent person mask):", "",
              "| variant | people | refined | silhouette IoU |", "|---|---|---|---|"]
    for name, row in report["photos"].items():
        lines.append(f"| {name} | {row['people']} | {100 * row['refined_share']:.0f} % | {row['silhouette_iou']:.3f} |")
    return "\n".join(lines) + "\n"


def _figure(value, digits: int) -> str:
    """A table cell: the value with `digits` decimals, or "-" when there is none (no person of the kind)."""
    return "-" if value is None else f"{value:.{digits}f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(HELD_OUT_SEEDS))
    parser.add_argument("--budget-ms", type=float, default=2000.0, help="refine.budget_ms per frame")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="refine.KEY=VALUE")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-photos", action="store_true")
    parser.add_argument("--overlay", type=Path, default=REPO / "docs" / "refine_photos.jpg")
    parser.add_argument("--name", default="refine")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    report = {"machine": machine_info(args.threads), "budget_ms": args.budget_ms, "overrides": args.overrides,
              "synthetic": measure_sequences(args.seeds, args.threads, args.budget_ms, args.overrides, args.variants)}
    if not args.no_photos and SHARED_BAGS.is_dir():
        variants = [variant for variant in args.variants if variant in PHOTO_VARIANTS]
        report["photos"] = measure_photos(args.threads, args.budget_ms, args.overrides, args.overlay, variants)
    report["seconds"] = round(time.perf_counter() - started, 1)
    write_results(args.out, args.name, report, "Alignment refinement", table(report))
    print(table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())

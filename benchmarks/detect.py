"""The built-in person detector: recall and precision against ground truth, speed per backend, and the real photos.

- Boxes on synthetic sequences with exact ground truth (`ground_truth.npz` beside each bag): the shipped sample bag
  (15 Hz; and every second frame, 7.5 Hz) and, with --bag, other bags made by `tools/make_sample_bag.py` (e.g.
  `--fps 30`), with and without tracking-by-keypoints. People at least 60 px tall and half visible must be found;
  boxes match at IoU 0.5 (`vqhps_ros.detect.evaluation`).
- Time per frame of the whole source on the sample bag, and per network call: the detector (the frame and one
  zoom tile) and the landmark model per person (batches of 1 and 3), for ONNX Runtime and PyTorch.
- Parity with LiteRT (when `ai-edge-litert` is installed): the largest differences over the photos and sample frames.
- The real photos of ../shared/bags (no ground truth): how many people each frame shows, and overlay images.

Writes detect.json and detect.md (and overlay PNGs) into --out.

    python benchmarks/detect.py --out benchmarks/results [--bag /tmp/bag30] [--threads 2]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_seconds, machine_info, other_processes_share, write_results  # noqa: E402

from vqhps_ros.data import sample_bag_path  # noqa: E402
from vqhps_ros.detect import (  # noqa: E402
    POSE_DETECTOR_FILE,
    POSE_DETECTOR_GRAPH,
    POSE_LANDMARK_FILE,
    POSE_LANDMARK_GRAPH,
    BoxCounts,
    BuiltinPersonDetector,
    DetectionRunner,
    DetectorSettings,
    Roi,
    counted_people,
    crop_roi,
    decode_detections,
    frame_counts,
    full_image_roi,
    load_pose_detector,
    load_pose_landmarker,
    ssd_anchor_centers,
)
from vqhps_ros.io.bag import read_frames  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_BAGS = REPO.parent / "shared" / "bags"
BACKENDS = ("onnxruntime", "pytorch")
THREE_PEOPLE_FRAME = 54  # a sample-bag frame in which a fresh source (frame + first tile) finds all three


def runners(backend: str, threads: int, cache_dir: Path) -> tuple[DetectionRunner, DetectionRunner]:
    return (DetectionRunner(POSE_DETECTOR_GRAPH, backend, threads=threads, cache_dir=cache_dir).activate(),
            DetectionRunner(POSE_LANDMARK_GRAPH, backend, threads=threads, cache_dir=cache_dir).activate())


# ------------------------------------------------------------------------------------------- recall, precision


def bag_case(bag: Path, step: int, tracking: bool, pair, threads: int, backend: str = "onnxruntime") -> dict:
    """Run the source over every `step`-th frame of a bag; recall, precision, time per frame, network calls."""
    with np.load(bag / "ground_truth.npz") as data:
        truth = {key: data[key] for key in ("frame_index", "boxes", "visible_fraction")}
    detector = BuiltinPersonDetector(DetectorSettings(tracking=tracking, threads=threads), *pair)
    totals, skipped, times = BoxCounts(), Counter(), []
    frames = list(read_frames(bag))
    for index in range(0, len(frames), step):
        start = time.perf_counter()
        boxes = [detection.box for detection in detector.persons(frames[index], skipped)]
        times.append((time.perf_counter() - start) * 1000)
        rows = np.flatnonzero(truth["frame_index"] == index)
        totals.add(frame_counts(np.array(boxes).reshape(-1, 4), truth["boxes"][rows],
                                counted_people(truth["boxes"][rows], truth["visible_fraction"][rows])))
    return {"bag": bag.name, "backend": backend, "frames": len(times), "step": step, "tracking": tracking,
            "recall": totals.recall,
            "precision": totals.precision, "counted": totals.counted, "found": totals.found,
            "predicted": totals.predicted, "correct": totals.correct, "ms_per_frame_p50": float(np.median(times)),
            "ms_per_frame_mean": float(np.mean(times)), "detector_runs": detector.detector_runs,
            "landmark_runs": detector.landmark_runs, "skipped": dict(skipped)}


# ------------------------------------------------------------------------------------------------------ speed


def call_ms(runner: DetectionRunner, batch: np.ndarray, repeats: int) -> float:
    runner.infer(batch)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        runner.infer(batch)
        times.append((time.perf_counter() - start) * 1000)
    return float(np.median(times))


def speed_case(backend: str, pair, repeats: int) -> dict:
    detector, landmarker = pair
    rng = np.random.default_rng(0)
    frames = rng.uniform(-1, 1, (2, 3, 224, 224)).astype(np.float32)  # the frame and one zoom tile
    crops = rng.uniform(0, 1, (3, 3, 256, 256)).astype(np.float32)
    return {"backend": backend, "description": f"{detector.description}; {landmarker.description}",
            "detector_ms_frame_and_tile": call_ms(detector, frames, repeats),
            "detector_ms_frame_only": call_ms(detector, frames[:1], repeats),
            "landmarks_ms_1_person": call_ms(landmarker, crops[:1], repeats),
            "landmarks_ms_3_persons": call_ms(landmarker, crops, repeats)}


def source_speed(image: np.ndarray, pair, threads: int, repeats: int) -> dict:
    """The whole source on one frame showing three people: with the detector (frame and one tile) and landmarks
    for everyone, and tracked (landmarks only)."""
    result = {}
    for name, tracking in (("source_ms_detect_and_landmarks", False), ("source_ms_tracked", True)):
        detector = BuiltinPersonDetector(DetectorSettings(tracking=tracking, threads=threads, detect_every=10 ** 6),
                                         *pair)
        people = len(detector.detect_people(image))
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            detector.detect_people(image)
            times.append((time.perf_counter() - start) * 1000)
        result[name] = float(np.median(times))
        result["source_people"] = people
    return result


# ----------------------------------------------------------------------------------------------------- parity


def parity(photo_images: list[np.ndarray], sample_images: list[np.ndarray]) -> dict | None:
    """Largest differences from LiteRT: detector raw outputs, decoded keypoints (normalised), landmark outputs on
    the ROIs of the detected people."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        return None
    detector, landmarker, anchors = load_pose_detector(), load_pose_landmarker(), ssd_anchor_centers()
    reference = {}
    for name, network in (("detector", POSE_DETECTOR_FILE), ("landmarker", POSE_LANDMARK_FILE)):
        interpreter = Interpreter(model_path=str(network.path), num_threads=1)
        interpreter.allocate_tensors()
        reference[name] = interpreter
    worst = Counter()
    for image in photo_images + sample_images:
        letterbox = full_image_roi(image.shape[:2])
        batch = (crop_roi(image, letterbox, 224, "zero").astype(np.float32) / 127.5 - 1)[None]
        expected = run_litert(reference["detector"], batch)
        with torch.inference_mode():
            boxes, scores = (t.numpy() for t in detector(torch.from_numpy(batch).permute(0, 3, 1, 2)))
        note(worst, "detector raw boxes and keypoints (px of 224)", boxes, expected["Identity"])
        note(worst, "detector raw scores (logits)", scores, expected["Identity_1"][..., 0])
        for found in decode_detections(boxes[0], scores[0], anchors):
            to_image = letterbox.tensor_to_image(224)
            points = found.keypoints @ to_image[:, :2].T + to_image[:, 2]
            center, radius_point = points[0], points[1]
            size = 2.5 * float(np.hypot(*(radius_point - center)))
            crop = (crop_roi(image, Roi(tuple(center), size, 0.0), 256).astype(np.float32) / 255)[None]
            expected = run_litert(reference["landmarker"], crop)
            with torch.inference_mode():
                outputs = [t.numpy() for t in landmarker(torch.from_numpy(crop).permute(0, 3, 1, 2))]
            landmarks, expected_landmarks = outputs[0][0], expected["Identity"].reshape(39, 5)
            note(worst, "landmarks x, y, z (px of 256)", landmarks[:, :3], expected_landmarks[:, :3])
            note(worst, "landmarks x, y, z normalised", landmarks[:, :3] / 256, expected_landmarks[:, :3] / 256)
            note(worst, "visibility, presence (probability)", sigmoid(landmarks[:, 3:]),
                 sigmoid(expected_landmarks[:, 3:]))
            note(worst, "pose presence", outputs[1], expected["Identity_1"][:, 0])
            note(worst, "world landmarks (m)", outputs[4].reshape(-1), expected["Identity_4"].reshape(-1))
            note(worst, "segmentation (probability)", sigmoid(outputs[2]), sigmoid(expected["Identity_2"][..., 0]))
    return {key: float(value) for key, value in worst.items()}


def run_litert(interpreter, batch: np.ndarray) -> dict[str, np.ndarray]:
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], batch)
    interpreter.invoke()
    return {detail["name"]: interpreter.get_tensor(detail["index"]) for detail in interpreter.get_output_details()}


def note(worst: Counter, name: str, found: np.ndarray, expected: np.ndarray) -> None:
    worst[name] = max(worst[name], float(np.abs(np.asarray(found) - np.asarray(expected)).max()))


def sigmoid(values: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(values, -80, 80)))


# ------------------------------------------------------------------------------------------------- real photos


def photo_case(bag: Path, pair, threads: int, out: Path) -> dict:
    """People per frame of a recorded bag (each photo in turn) and one overlay per photo."""
    detector = BuiltinPersonDetector(DetectorSettings(threads=threads), *pair)
    counts, overlays = [], []
    for index, frame in enumerate(read_frames(bag)):
        people = detector.detect_people(frame.image)
        counts.append(len(people))
        if index % 10 == 0:
            overlays.append(draw_people(frame.image, people))
    path = out / f"detect_{bag.name}.jpg"
    mosaic = np.hstack(overlays)[..., ::-1]
    scale = min(1.0, 1440 / mosaic.shape[1])
    cv2.imwrite(str(path), cv2.resize(mosaic, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA),
                [cv2.IMWRITE_JPEG_QUALITY, 85])
    return {"bag": bag.name, "people_per_frame": counts, "overlay": path.name}


def draw_people(image: np.ndarray, people) -> np.ndarray:
    canvas = image.copy()
    for person in people:
        x, y, w, h = person.box.astype(int)
        cv2.rectangle(canvas, (x, y), (x + w, y + h), (0, 255, 0), 2)
        cv2.polylines(canvas, [person.roi.corners().astype(np.int32)], True, (0, 128, 255), 1)
        for point, presence in zip(person.keypoints[:, :2], person.presence, strict=True):
            cv2.circle(canvas, (int(point[0]), int(point[1])), 3, (255, 0, 0) if presence >= 0.5 else (90, 90, 90), -1)
        cv2.putText(canvas, f"{person.track_id}: {person.score:.2f}", (x + 3, y + 18), cv2.FONT_HERSHEY_SIMPLEX,
                    0.6, (0, 255, 0), 2)
    return canvas


# ------------------------------------------------------------------------------------------------------ report


def table(report: dict) -> str:
    lines = ["| bag | backend | frames (step) | tracking | recall | precision | found / counted | "
             "ms per frame (p50) | detector runs | landmark runs |", "|---|---|---|---|---|---|---|---|---|---|"]
    for case in report["boxes"]:
        lines.append(f"| {case['bag']} | {case['backend']} | {case['frames']} ({case['step']}) | {case['tracking']} | "
                     f"{case['recall']:.3f} | {case['precision']:.3f} | {case['found']} / {case['counted']} | "
                     f"{case['ms_per_frame_p50']:.0f} | {case['detector_runs']} | {case['landmark_runs']} |")
    lines += ["", "| backend | detector: frame + tile (ms) | frame only | landmarks, 1 person (ms) | 3 persons | "
              "source, N people: detector + landmarks (ms) | tracked (ms) |", "|---|---|---|---|---|---|---|"]
    for case in report["speed"]:
        lines.append(f"| {case['backend']} | {case['detector_ms_frame_and_tile']:.1f} | "
                     f"{case['detector_ms_frame_only']:.1f} | {case['landmarks_ms_1_person']:.1f} | "
                     f"{case['landmarks_ms_3_persons']:.1f} | N={case['source_people']}: "
                     f"{case['source_ms_detect_and_landmarks']:.1f} | {case['source_ms_tracked']:.1f} |")
    if report["parity"]:
        lines += ["", "| largest difference from LiteRT | value |", "|---|---|"]
        lines += [f"| {name} | {value:.2e} |" for name, value in report["parity"].items()]
    lines += ["", "| recorded bag | people per frame (30 frames: Hopper, Collins, cameraman) |", "|---|---|"]
    for case in report["photos"]:
        lines.append(f"| {case['bag']} | {''.join(str(count) for count in case['people_per_frame'])} |")
    lines += ["", f"CPU: {report['machine']['cpu']}; threads {report['machine']['threads']}; other processes' share "
              f"of the cores: {report['other_processes_share']}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--bag", type=Path, action="append", default=[], help="more synthetic bags with truth")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--cache-dir", type=Path, default=Path("/tmp/vqhps_detect_benchmark"))
    arguments = parser.parse_args(argv)
    torch.set_num_threads(arguments.threads)
    arguments.out.mkdir(parents=True, exist_ok=True)
    start = cpu_seconds()
    pairs = {backend: runners(backend, arguments.threads, arguments.cache_dir) for backend in BACKENDS}
    onnx_pair = pairs["onnxruntime"]
    boxes = []
    for bag, steps in ((sample_bag_path(), (1, 2)), *((bag, (1,)) for bag in arguments.bag)):
        for step in steps:
            for tracking in (True, False):
                boxes.append(bag_case(bag, step, tracking, onnx_pair, arguments.threads))
                print(boxes[-1])
    boxes.append(bag_case(sample_bag_path(), 1, True, pairs["pytorch"], arguments.threads, "pytorch"))
    sample = list(read_frames(sample_bag_path()))
    speed = [speed_case(backend, pair, arguments.repeats) | source_speed(sample[THREE_PEOPLE_FRAME].image, pair,
                                                                         arguments.threads, arguments.repeats)
             for backend, pair in pairs.items()]
    photo_bags = [SHARED_BAGS / name for name in ("ros2_jazzy_photos_sqlite3", "ros2_jazzy_photos_mcap")]
    photos = [photo_case(bag, onnx_pair, arguments.threads, arguments.out) for bag in photo_bags if bag.is_dir()]
    photo_images = [frame.image for index, frame in enumerate(read_frames(photo_bags[0])) if index % 10 == 0] \
        if photo_bags[0].is_dir() else []
    report = {"machine": machine_info(arguments.threads), "boxes": boxes, "speed": speed,
              "parity": parity(photo_images, [sample[index].image for index in (0, 50, 100, 149)]),
              "photos": photos, "other_processes_share": other_processes_share(start, cpu_seconds())}
    write_results(arguments.out, "detect", report, "Built-in person detector (mediapipe pose networks)",
                  table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())

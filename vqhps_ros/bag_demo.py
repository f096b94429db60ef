"""The demo on a bag: every frame through the model, meshes placed in the camera frame, overlays and scores.

With a `ground_truth.npz` beside the bag (the shipped sample bag has one), each estimated person is matched to the
true person whose box overlaps it most, and the errors are reported: MPJPE (pelvis-aligned), PA-MPJPE and the
distance between the estimated and true pelvis in the camera frame (how far the mesh lands from the person).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from .atomic_files import write_bytes_atomically
from .hps import PersonMesh, load_model, predict_people, valid_box_mask
from .io import CameraFrame, read_frames
from .metrics import mpjpe, pa_mpjpe

GROUND_TRUTH_FILE = "ground_truth.npz"
MATCH_MIN_IOU = 0.5
PERSON_COLORS = np.array([[0.90, 0.45, 0.30], [0.30, 0.60, 0.90], [0.45, 0.80, 0.40], [0.85, 0.75, 0.30]])


@dataclass
class DemoScores:
    frames: int = 0
    people: int = 0
    matched: int = 0
    skipped_boxes: int = 0
    seconds: float = 0.0
    mpjpe_mm: list[float] = field(default_factory=list)
    pa_mpjpe_mm: list[float] = field(default_factory=list)
    pelvis_error_mm: list[float] = field(default_factory=list)

    def summary(self) -> dict:
        def mean(values):
            return round(float(np.mean(values)), 1) if values else None

        return {
            "frames": self.frames, "people": self.people, "matched_to_ground_truth": self.matched,
            "skipped_boxes": self.skipped_boxes,
            "ms_per_frame": round(1000 * self.seconds / max(self.frames, 1), 1),
            "mpjpe_mm": mean(self.mpjpe_mm), "pa_mpjpe_mm": mean(self.pa_mpjpe_mm),
            "pelvis_error_mm": mean(self.pelvis_error_mm),
        }  # fmt: skip


def run_bag_demo(model_path: Path, bag: Path, output: Path, overlay_every: int = 15,
                 max_frames: int | None = None) -> dict:
    """Estimate every person of every frame of `bag` (or of its first `max_frames`); write overlays (every
    `overlay_every`-th frame) and `summary.json` into `output`; return the summary."""
    model = load_model(model_path)
    truth = _load_truth(bag)
    scores = DemoScores()
    output.mkdir(parents=True, exist_ok=True)
    for index, frame in enumerate(read_frames(bag)):
        if max_frames is not None and index >= max_frames:
            break
        started = time.perf_counter()
        people = _estimate(model, frame, scores)
        scores.seconds += time.perf_counter() - started
        scores.frames += 1
        scores.people += len(people)
        if truth is not None:
            _score(people, frame, truth, scores)
        if index % overlay_every == 0:
            _write_overlay(output / f"frame_{index:04d}.jpg", frame, people, model.faces)
    summary = {"model": str(model_path), "bag": str(bag), **scores.summary()}
    write_bytes_atomically((json.dumps(summary, indent=2) + "\n").encode(), output / "summary.json")
    return summary


@torch.no_grad()
def _estimate(model, frame: CameraFrame, scores: DemoScores) -> list[PersonMesh]:
    if frame.intrinsics is None or len(frame.boxes) == 0:
        return []
    usable = valid_box_mask(frame.boxes, frame.image.shape[:2])
    scores.skipped_boxes += int((~usable).sum())
    return predict_people(model, frame.image, frame.boxes[usable], frame.intrinsics)


def _load_truth(bag: Path) -> dict | None:
    path = Path(bag) / GROUND_TRUTH_FILE
    if not path.exists():
        return None
    with np.load(path) as archive:
        return {key: archive[key] for key in ("stamp_ns", "boxes", "joints_h36m_camera")}


def _score(people: list[PersonMesh], frame: CameraFrame, truth: dict, scores: DemoScores) -> None:
    rows = np.flatnonzero(truth["stamp_ns"] == frame.stamp_ns)
    for person in people:
        if person.joints is None or len(rows) == 0:
            continue
        overlaps = [box_iou(person.box, truth["boxes"][row]) for row in rows]
        best = int(np.argmax(overlaps))
        if overlaps[best] < MATCH_MIN_IOU or not np.all(np.isfinite(person.joints)):
            continue
        true_joints = truth["joints_h36m_camera"][rows[best]][None]
        estimated = person.joints[None].astype(np.float64)
        scores.matched += 1
        scores.mpjpe_mm.append(float(mpjpe(estimated, true_joints)[0]))
        scores.pa_mpjpe_mm.append(float(pa_mpjpe(estimated, true_joints)[0]))
        scores.pelvis_error_mm.append(float(1000 * np.linalg.norm(estimated[0, 0] - true_joints[0, 0])))


def box_iou(first: np.ndarray, second: np.ndarray) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    x0, y0 = np.maximum(first[:2], second[:2])
    x1, y1 = np.minimum(first[:2] + first[2:], second[:2] + second[2:])
    intersection = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = first[2] * first[3] + second[2] * second[3] - intersection
    return float(intersection / union) if union > 0 else 0.0


def _write_overlay(path: Path, frame: CameraFrame, people: list[PersonMesh], faces) -> None:
    from .synth import render_meshes

    image = frame.image
    placed = [p for p in people if np.all(np.isfinite(p.vertices)) and np.all(p.vertices[:, 2] > 0)]
    if faces is not None and placed:
        meshes = [(torch.from_numpy(p.vertices.astype(np.float64)), torch.from_numpy(faces)) for p in placed]
        colors = [PERSON_COLORS[i % len(PERSON_COLORS)] for i in range(len(placed))]
        rendering = render_meshes(meshes, frame.intrinsics, image.shape[:2], colors=colors, background=image)
        covered = rendering.masks.any(dim=0).cpu().numpy()[..., None]
        image = np.where(covered, (0.4 * image + 0.6 * rendering.rgb_uint8()).astype(np.uint8), image)
    image = np.ascontiguousarray(image)
    for person in people:
        x, y, w, h = np.round(person.box).astype(int)
        cv2.rectangle(image, (x, y), (x + w, y + h), (255, 255, 255), 1)
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    write_bytes_atomically(encoded.tobytes(), path)

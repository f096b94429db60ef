"""Scores of a replay (its output bag) against ground truth in the sample bag's `ground_truth.npz` format.

Each published human is matched, frame by frame, to the true person whose box overlaps its ROI most (Hungarian
assignment on box IoU, at least MATCH_MIN_IOU). Per match: MPJPE (pelvis-aligned), PA-MPJPE, the pelvis error in
the camera frame (how far the mesh lands from the person) and, when the truth holds body parameters of the free
body and the published mesh has the free body's vertex count, PVE (both meshes centred on their centroid, the
official convention). Per true person over time: acceleration error (pelvis-aligned joints, and the joints as
published in the camera frame; mm/frame^2, over runs of consecutive frames), id switches (the matched published id
changes between two matched frames), fragmentations (the person stops being matched and is matched again later,
as CLEAR-MOT counts them), and the token flip rate (the share of the published tokens that change between two
consecutive frames of the same published id). When the truth says which people the detector reported (`detected`),
`published_of_detected` is the share of them that a published human matches.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .atomic_files import write_bytes_atomically
from .boxes import box_iou
from .errors import InputError
from .metrics import accel_error, mpjpe, pa_mpjpe, pve

MATCH_MIN_IOU = 0.5
HUMANS_TYPE = "vqhps_ros/msg/HumanMeshArray"
TRUTH_KEYS = ("frame_index", "stamp_ns", "track_id", "boxes", "joints_h36m_camera")


@dataclass
class PublishedHuman:
    id: str
    box: np.ndarray  # (4,) x, y, w, h from the ROI
    joints: np.ndarray  # (J, 3)
    vertices: np.ndarray  # (V, 3), possibly (0, 3)
    tokens: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # (T,)


@dataclass
class Scores:
    """Per-match and per-frame errors, millimetres."""

    frames: int = 0
    published: int = 0
    truth_people: int = 0
    matched: int = 0
    mpjpe_mm: list[float] = field(default_factory=list)
    pa_mpjpe_mm: list[float] = field(default_factory=list)
    pve_mm: list[float] = field(default_factory=list)
    pelvis_error_mm: list[float] = field(default_factory=list)
    accel_error_mm: list[float] = field(default_factory=list)
    accel_error_camera_mm: list[float] = field(default_factory=list)
    id_switches: int = 0
    fragmentations: int = 0
    token_changes: list[float] = field(default_factory=list)  # per consecutive pair: share of tokens changed
    detected_people: int | None = None  # truth rows the detector reported (None: the truth does not say)
    detected_matched: int = 0
    frame_mpjpe_mm: list[tuple[int, float]] = field(default_factory=list)  # (frame index, mean over matches)
    # truth row -> MPJPE of the human matched to it: compares two replays on the people both of them published
    row_mpjpe_mm: dict[int, float] = field(default_factory=dict)

    def summary(self) -> dict:
        def mean(values):
            return round(float(np.mean(values)), 1) if values else None

        return {
            "frames": self.frames, "published_humans": self.published, "true_people": self.truth_people,
            "matched": self.matched,
            "recall": round(self.matched / self.truth_people, 3) if self.truth_people else None,
            "mpjpe_mm": mean(self.mpjpe_mm), "pa_mpjpe_mm": mean(self.pa_mpjpe_mm), "pve_mm": mean(self.pve_mm),
            "pelvis_error_mm": mean(self.pelvis_error_mm), "accel_error_mm": mean(self.accel_error_mm),
            "accel_error_camera_mm": mean(self.accel_error_camera_mm),
            "id_switches": self.id_switches, "fragmentations": self.fragmentations,
            "token_flip_rate": round(float(np.mean(self.token_changes)), 4) if self.token_changes else None,
            "detected_people": self.detected_people,
            "published_of_detected": round(self.detected_matched / self.detected_people, 3)
            if self.detected_people else None,
        }  # fmt: skip


def score_replay(replay_bag: str | Path, truth_path: str | Path, humans_topic: str | None = None) -> Scores:
    return score_published(read_published(replay_bag, humans_topic), load_truth(truth_path))


def score_published(published: dict[int, list[PublishedHuman]], truth: dict[str, np.ndarray]) -> Scores:
    """Scores of the published humans of each frame (stamp_ns -> humans) against ground truth (`load_truth`)."""
    vertex_truth = TruthVertices(truth)
    replayed = np.isin(truth["stamp_ns"], np.fromiter(published, dtype=np.int64, count=len(published)))
    scores = Scores(frames=len(published), truth_people=int(replayed.sum()))
    detected = truth.get("detected")
    if detected is not None:
        scores.detected_people = int((replayed & detected.astype(bool)).sum())
    matched_rows: set[int] = set()
    tracks: dict[int, list[tuple[int, str, np.ndarray, np.ndarray, np.ndarray]]] = defaultdict(list)
    for stamp, humans in sorted(published.items()):
        scores.published += len(humans)
        rows = np.flatnonzero(truth["stamp_ns"] == stamp)
        frame_errors = []
        for human, row in match_humans(humans, truth["boxes"][rows], rows):
            estimated, true = human.joints[None].astype(np.float64), truth["joints_h36m_camera"][row][None]
            scores.matched += 1
            frame_errors.append(float(mpjpe(estimated, true)[0]))
            scores.row_mpjpe_mm[int(row)] = frame_errors[-1]
            scores.pa_mpjpe_mm.append(float(pa_mpjpe(estimated, true)[0]))
            scores.pelvis_error_mm.append(float(1000 * np.linalg.norm(estimated[0, 0] - true[0, 0])))
            true_vertices = vertex_truth.vertices(row, len(human.vertices))
            if true_vertices is not None:
                scores.pve_mm.append(float(pve(human.vertices[None].astype(np.float64), true_vertices[None])[0]))
            tracks[int(truth["track_id"][row])].append((int(truth["frame_index"][row]), human.id, estimated[0],
                                                        true[0], human.tokens))
            matched_rows.add(row)
        scores.mpjpe_mm.extend(frame_errors)
        if frame_errors and len(rows):
            scores.frame_mpjpe_mm.append((int(truth["frame_index"][rows[0]]), float(np.mean(frame_errors))))
    for matches in tracks.values():
        scores.id_switches += sum(a[1] != b[1] for a, b in zip(matches[:-1], matches[1:], strict=True))
        scores.accel_error_mm.extend(track_accel_errors(matches))
        scores.accel_error_camera_mm.extend(track_accel_errors(matches, aligned=False))
        scores.token_changes.extend(token_changes(matches))
    if detected is not None:
        scores.detected_matched = sum(bool(detected[row]) for row in matched_rows)
    scores.fragmentations = fragmentations(truth, np.flatnonzero(replayed), matched_rows)
    return scores


def token_changes(matches) -> list[float]:
    """Share of tokens that differ between consecutive frames matched to the same published id."""
    return [float(np.mean(a[4] != b[4])) for a, b in zip(matches[:-1], matches[1:], strict=True)
            if b[0] == a[0] + 1 and a[1] == b[1] and len(a[4]) and len(a[4]) == len(b[4])]


def fragmentations(truth: dict[str, np.ndarray], rows: np.ndarray, matched_rows: set[int]) -> int:
    """How often a true person's matches are interrupted: matched, then unmatched in a replayed frame where the
    person is in the image (a non-empty box), then matched again."""
    count = 0
    for track_id in np.unique(truth["track_id"][rows]):
        mine = rows[truth["track_id"][rows] == track_id]
        mine = mine[np.argsort(truth["frame_index"][mine])]
        in_image = (truth["boxes"][mine][:, 2] > 0) & (truth["boxes"][mine][:, 3] > 0)
        states = [row in matched_rows for row, shown in zip(mine, in_image, strict=True) if shown]
        count += sum(1 for a, b in zip(states[:-1], states[1:], strict=True) if a and not b
                     ) - (1 if states and not states[-1] and any(states) else 0)
    return count


def match_humans(humans: list[PublishedHuman], true_boxes: np.ndarray, rows: np.ndarray):
    """(human, truth row) pairs of a frame: Hungarian assignment on box IoU, pairs under MATCH_MIN_IOU dropped."""
    from scipy.optimize import linear_sum_assignment

    if not humans or not len(rows):
        return []
    overlaps = np.array([[box_iou(human.box, box) for box in true_boxes] for human in humans])
    chosen_humans, chosen_rows = linear_sum_assignment(-overlaps)
    return [(humans[h], int(rows[r])) for h, r in zip(chosen_humans, chosen_rows, strict=True)
            if overlaps[h, r] >= MATCH_MIN_IOU and len(humans[h].joints)]


def track_accel_errors(matches, aligned: bool = True) -> list[float]:
    """Acceleration errors over each run of at least 3 consecutive matched frames: pelvis-aligned (`aligned`),
    else of the joints as published (camera frame)."""
    errors = []
    run: list = []
    for match in matches + [None]:
        if match is not None and (not run or match[0] == run[-1][0] + 1):
            run.append(match)
            continue
        if len(run) >= 3:
            estimated = np.stack([m[2] - m[2][0] if aligned else m[2] for m in run])
            true = np.stack([m[3] - m[3][0] if aligned else m[3] for m in run])
            errors.extend(accel_error(estimated, true).tolist())
        run = [match] if match is not None else []
    return errors


def read_published(replay_bag: str | Path, humans_topic: str | None = None) -> dict[int, list[PublishedHuman]]:
    """stamp_ns -> the humans of each HumanMeshArray of an output bag (definitions read from the bag)."""
    from .io.bag import open_bag

    with open_bag(replay_bag) as reader:
        connections = [c for c in reader.connections
                       if c.msgtype == HUMANS_TYPE and (humans_topic is None or c.topic == humans_topic)]
        if not connections:
            topics = sorted(f"{c.topic} ({c.msgtype})" for c in reader.connections)
            raise InputError(f"{replay_bag}: expected a {HUMANS_TYPE} topic (a `vqhps-ros replay` output), found: "
                             f"{', '.join(topics) or 'no topics'}")
        published = {}
        for connection, _, raw in reader.messages(connections=connections[:1]):
            message = reader.deserialize(raw, connection.msgtype)
            stamp = int(message.header.stamp.sec) * 1_000_000_000 + int(message.header.stamp.nanosec)
            published[stamp] = [_published_human(human) for human in message.humans]
    return published


def _published_human(message) -> PublishedHuman:
    roi = message.roi
    box = np.array([roi.x_offset, roi.y_offset, roi.width, roi.height], dtype=np.float64)
    joints = np.asarray(message.joints, dtype=np.float32).reshape(-1, 3)
    vertices = np.asarray(message.vertices, dtype=np.float32).reshape(-1, 3)
    return PublishedHuman(str(message.id), box, joints, vertices, np.asarray(message.tokens, dtype=np.int64))


def load_truth(path: str | Path) -> dict[str, np.ndarray]:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"ground truth {path} does not exist")
    with np.load(path, allow_pickle=False) as archive:
        missing = [key for key in TRUTH_KEYS if key not in archive.files]
        if missing:
            raise InputError(f"{path}: expected arrays {list(TRUTH_KEYS)} (the sample bag's ground_truth.npz "
                             f"format), missing {missing}")
        return {key: archive[key] for key in archive.files}


class TruthVertices:
    """Camera-frame meshes of the truth, computed from free-body parameters when the truth has them."""

    PARAMETERS = ("betas", "body_pose", "global_orient", "translation")

    def __init__(self, truth: dict[str, np.ndarray]):
        self.truth = truth
        self._generator = None
        self.available = all(key in truth for key in self.PARAMETERS)

    def vertices(self, row: int, num_vertices: int) -> np.ndarray | None:
        if not self.available or num_vertices == 0:
            return None
        if self._generator is None:
            from .synth import SceneGenerator

            self._generator = SceneGenerator()
        if num_vertices != self._generator.body.v_template.shape[0]:
            return None
        parameters = [self.truth[key][row:row + 1] for key in self.PARAMETERS]
        return self._generator.camera_vertices(*parameters)[0]


def write_score_outputs(scores: Scores, output_dir: Path, source: str) -> dict:
    """scores.json, scores.md and error_per_frame.png in `output_dir`; returns the summary."""
    summary = {"replay": source, **scores.summary()}
    output_dir.mkdir(parents=True, exist_ok=True)
    write_bytes_atomically((json.dumps(summary, indent=2) + "\n").encode(), output_dir / "scores.json")
    write_bytes_atomically(markdown_table(summary).encode(), output_dir / "scores.md")
    ok, png = cv2.imencode(".png", error_plot(scores.frame_mpjpe_mm))
    write_bytes_atomically(png.tobytes(), output_dir / "error_per_frame.png")
    return summary


def markdown_table(summary: dict) -> str:
    rows = "".join(f"| {key} | {'-' if value is None else value} |\n" for key, value in summary.items())
    return "| metric | value |\n|---|---|\n" + rows


def error_plot(points: list[tuple[int, float]], size: tuple[int, int] = (320, 720)) -> np.ndarray:
    """A line chart of MPJPE (mm) per frame, drawn with OpenCV (BGR image)."""
    height, width = size
    image = np.full((height, width, 3), 255, np.uint8)
    left, bottom, top, right = 60, height - 40, 20, width - 20
    cv2.line(image, (left, bottom), (right, bottom), (0, 0, 0), 1)
    cv2.line(image, (left, bottom), (left, top), (0, 0, 0), 1)
    cv2.putText(image, "MPJPE (mm) per frame", (left + 10, top + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1)
    if not points:
        return image
    frames, errors = np.array([p[0] for p in points], float), np.array([p[1] for p in points], float)
    top_error = max(float(errors.max()), 1.0)
    span = max(float(frames.max() - frames.min()), 1.0)
    xs = left + (frames - frames.min()) / span * (right - left)
    ys = bottom - errors / top_error * (bottom - top - 20)
    polyline = np.stack([xs, ys], axis=1).round().astype(np.int32)
    cv2.polylines(image, [polyline], False, (200, 80, 30), 1, cv2.LINE_AA)
    for value, label in ((0.0, "0"), (top_error, f"{top_error:.0f}")):
        y = int(round(bottom - value / top_error * (bottom - top - 20)))
        cv2.putText(image, label, (5, y + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
    cv2.putText(image, f"frames {int(frames.min())}..{int(frames.max())}", (left, height - 12),
                cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
    return image

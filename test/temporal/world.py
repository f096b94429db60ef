"""A tiny world for tracker tests: people as rigid point bodies moving in the camera frame, seen by a pinhole camera.

No rendering and no network: `Person.human(t)` is what a perfect mesh network would place for that person, and
`World.frame(...)` / `World.step(...)` drive a `TemporalTracker` the way `Estimator.process` does (persons, then the
"network" on every box, then update). The network's answer for a box is the person whose box overlaps it most (IoU
at least 0.3), as a crop shows whoever fills it; a box on nobody gives nothing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from vqhps_ros.humans import Detection, Frame, FrameResult, Human
from vqhps_ros.temporal import box_iou_matrix

K = np.array([[500.0, 0.0, 319.5], [0.0, 500.0, 239.5], [0.0, 0.0, 1.0]])
IMAGE_SIZE = (480, 640)
NUM_TOKENS = 54
NS_PER_S = 1_000_000_000
START_NS = 1_767_225_600 * NS_PER_S


def body_points(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Canonical vertices (200, 3) and joints (17, 3) of a 0.5 x 1.7 x 0.3 m body centred on its vertex centroid."""
    rng = np.random.default_rng(seed)
    vertices = rng.uniform(-0.5, 0.5, size=(200, 3)) * np.array([0.5, 1.7, 0.3])
    vertices -= vertices.mean(axis=0)
    joints = rng.uniform(-0.5, 0.5, size=(17, 3)) * np.array([0.4, 1.5, 0.2])
    return vertices, joints


@dataclass
class Person:
    """Root (vertex centroid) at start + velocity * t in the camera frame (metres, m/s), upright, facing the camera."""

    name: int
    start: np.ndarray
    velocity: np.ndarray
    tokens: np.ndarray
    seed: int = 0

    def position(self, t: float) -> np.ndarray:
        return np.asarray(self.start, float) + np.asarray(self.velocity, float) * t

    def human(self, t: float, box=None, detection_id: str = "") -> Human:
        vertices, joints = body_points(self.seed)
        translation = self.position(t)
        vertices_camera, joints_camera = vertices + translation, joints + translation
        return Human(id=str(self.name), score=0.8, box=self.box(t) if box is None else np.asarray(box, float),
                     tokens=self.tokens.copy(), token_confidence=np.full(NUM_TOKENS, 0.6, np.float32),
                     vertices=vertices_camera.astype(np.float32), joints=joints_camera.astype(np.float32),
                     joints_2d=project(joints_camera), vertices_2d=project(vertices_camera),
                     root_position=joints_camera[0].astype(np.float64), root_rotation=np.eye(3),
                     crop_camera=np.array([1.0, 0.0, 0.0]), translation=translation, detection_id=detection_id)

    def box(self, t: float) -> np.ndarray:
        vertices, _ = body_points(self.seed)
        pixels = project(vertices + self.position(t))
        low, high = pixels.min(axis=0), pixels.max(axis=0)
        return np.concatenate([low, high - low]).astype(np.float64)


def project(points: np.ndarray) -> np.ndarray:
    projected = points @ K.T
    return (projected[:, :2] / projected[:, 2:]).astype(np.float32)


def walker(name: int, x: float, z: float, vx: float, vz: float = 0.0, seed: int = 0) -> Person:
    tokens = np.random.default_rng(100 + name).integers(0, 512, NUM_TOKENS)
    return Person(name, np.array([x, 0.2, z]), np.array([vx, 0.0, vz]), tokens, seed)


class World:
    """Drives a tracker through frames of `people` (see the module docstring)."""

    def __init__(self, tracker, people: list[Person], fps: float = 15.0):
        self.tracker = tracker
        self.people = people
        self.fps = fps

    def stamp(self, index: int) -> int:
        return START_NS + int(round(index * NS_PER_S / self.fps))

    def step(self, index: int, visible=None, detection_ids=None, extra_boxes=(), stamp_ns: int | None = None,
             noise=None) -> FrameResult:
        """Frame `index`: people in `visible` (default all) are detected; returns the tracker's result.

        detection_ids: {person name: upstream id}; extra_boxes: detections on nobody; noise: callable(human) ->
        human, the network's error."""
        stamp = self.stamp(index) if stamp_ns is None else stamp_ns
        t = (stamp - START_NS) / NS_PER_S
        names = [p.name for p in self.people] if visible is None else list(visible)
        detections = [Detection(p.box(t), 0.9, "person", (detection_ids or {}).get(p.name, ""))
                      for p in self.people if p.name in names]
        detections += [Detection(np.asarray(box, float), 0.9, "person", "") for box in extra_boxes]
        frame = Frame(np.zeros((*IMAGE_SIZE, 3), np.uint8), stamp, "camera", K, tuple(detections))
        skipped = Counter()
        persons = self.tracker.persons(frame, frame.detections, skipped)
        humans, sources = [], []
        for index_, detection in enumerate(persons):
            person = self.seen_in(detection.box, t)
            if person is None:
                continue
            human = person.human(t, detection.box, detection.id)
            humans.append(noise(human) if noise is not None else human)
            sources.append(index_)
        result = FrameResult(stamp, "camera", IMAGE_SIZE, humans, {}, dict(skipped))
        return self.tracker.update(result, sources)

    def seen_in(self, box: np.ndarray, t: float) -> Person | None:
        if not self.people:
            return None
        overlaps = box_iou_matrix(np.asarray(box)[None], np.stack([p.box(t) for p in self.people]))[0]
        best = int(np.argmax(overlaps))
        return self.people[best] if overlaps[best] >= 0.3 else None

"""`TemporalTracker`: the estimator's temporal stage. Stable track ids, predicted boxes for missed people, filters.

Per frame the estimator calls it twice (`estimator.TemporalStage`):

1. `persons(frame, detections, skipped)`, before cropping: the stamp is checked (going back resets every track with
   a warning), tracks too old end, and the detections are assigned to the tracks' predicted boxes (IoU only). A
   confirmed track that no detection took, missed for fewer than `predicted_frames` frames, gets its predicted box
   appended to the persons to crop, within the frame's person budget (`persons.max_persons`).
2. `update(result, sources)`, after placement: the detected humans are assigned to the tracks (IoU + root distance
   + the upstream-id hint, Hungarian); matched tracks filter them, unmatched humans start tentative tracks, a track
   that lost its detection uses the human cropped from its predicted box (if its root is within `root_gate` of the
   prediction, moved `predicted_measurement_weight` of the way from the prediction) or else its prediction alone.

Published: the humans of confirmed tracks, with `Human.id` the track id (decimal counter, never reused while the
process lives). A human from a predicted box or from the prediction alone has `valid=False` (the markers draw it
half transparent) and its confidence scaled by `predicted_score_scale`. Humans of tentative tracks are counted in
`skipped["tentative_track"]`; persons beyond `max_tracks`, in `skipped["over_max_tracks"]`.

Filtering (per track, on stamps; see `filters`): the root translation with a per-axis One-Euro filter, the
orientation with the SO(3) One-Euro filter, and the body in its own frame (vertices and joints with the global
rotation and translation removed) with one shared cutoff; translation and body with `filter_order` sections. The
mesh is put back together from the three and re-projected with the frame's intrinsics. Tokens pass through
`TokenHysteresis`. A track updated after more than `reinit_gap` seconds restarts its filters from the new
measurement. Before filtering, the facing guard (`facing.FacingGuard`, when given) replaces a measurement that is
the track's body reflected in depth by its reflection (`skipped["facing_reflected"]`).

Everything is bounded: at most `max_tracks` tracks of fixed-size state, at most `persons.max_persons` persons
per frame in the assignment (the rest counted in `skipped["over_max_persons"]`).
"""

from __future__ import annotations

import itertools
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from ..humans import Detection, Frame, FrameResult, Human, root_position
from ..persons import visible_box_size
from .association import MotionModel, assign, association_cost, box_state, state_box
from .facing import FacingGuard
from .filters import BodyFilter, OneEuroFilter, RotationOneEuroFilter, rotation_exp, rotation_log
from .tokens import TokenHysteresis

LOG = logging.getLogger(__name__)
NS_PER_S = 1_000_000_000


@dataclass
class _Body:
    """One body state in the decomposition the filters work on (camera frame = rotation @ body + translation)."""

    translation: np.ndarray  # (3,)
    rotation: np.ndarray  # (3, 3)
    vertices: np.ndarray  # (V, 3) body frame
    joints: np.ndarray | None  # (J, 3) body frame

    @classmethod
    def of(cls, human: Human) -> _Body:
        """The body of a human (meshes keep their float32: see `BodyFilter`)."""
        translation = np.asarray(human.translation, dtype=np.float64)
        rotation = np.asarray(human.root_rotation, dtype=np.float64)
        vertices = _to_body_frame(human.vertices, translation, rotation)
        joints = None if human.joints is None else _to_body_frame(human.joints, translation, rotation)
        return cls(translation, rotation, vertices, joints)

    def camera_points(self, points: np.ndarray) -> np.ndarray:
        """Body-frame points -> camera frame (float32)."""
        return (points @ self.rotation.T.astype(points.dtype) + self.translation.astype(points.dtype)).astype(
            np.float32, copy=False)


def _to_body_frame(points, translation: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    points = np.asarray(points)
    dtype = points.dtype if points.dtype in (np.float32, np.float64) else np.float64
    return (points.astype(dtype, copy=False) - translation.astype(dtype)) @ rotation.astype(dtype)


class Track:
    """One person over time: identity, motion models, filters and the last published state."""

    def __init__(self, track_id: str, human: Human, stamp_ns: int, settings, facing: FacingGuard | None = None):
        self.id = track_id
        self.settings = settings
        self.facing = facing
        self.reflected_since_ns: int | None = None  # first of the reflected measurements in a row
        self.reflected = False  # whether the last measurement (at last_update_ns) was taken as reflected (`facing`)
        self.hits = 1
        self.confirmed = settings.confirm_hits <= 1
        self.misses = 0  # consecutive frames without a detection
        self.last_detection_ns = stamp_ns
        self.last_update_ns = stamp_ns  # last frame whose measurement went into the filters
        self.upstream_id = human.detection_id
        self.detection_score = float(human.score)  # the last detected human's confidence
        self.box_motion = MotionModel(box_state(human.box), stamp_ns, settings.motion_smoothing, settings.reinit_gap)
        self.translation_filter = OneEuroFilter(settings.translation_min_cutoff, settings.translation_beta,
                                                settings.translation_derivative_cutoff, order=settings.filter_order)
        self.rotation_filter = RotationOneEuroFilter(settings.rotation_min_cutoff, settings.rotation_beta,
                                                     settings.rotation_derivative_cutoff)
        self.body_filter = BodyFilter(settings.body_min_cutoff, settings.body_beta, settings.body_derivative_cutoff,
                                      order=settings.filter_order)
        self.tokens = TokenHysteresis(settings.token_hold_frames, settings.token_switch_confidence)
        self.state: _Body | None = None  # filtered
        self.token_state: tuple[np.ndarray, np.ndarray] | None = None  # published tokens and their confidences
        self.published: Human | None = None
        self.filter(human, stamp_ns)

    # --- predictions

    def predicted_box(self, stamp_ns: int) -> np.ndarray:
        return state_box(self.box_motion.predict(stamp_ns))

    def predicted_translation(self, stamp_ns: int) -> np.ndarray:
        """The filtered root moved on by the filter's velocity (no extrapolation past reinit_gap)."""
        dt_s = (stamp_ns - self.last_update_ns) / NS_PER_S
        if dt_s <= 0 or dt_s > self.settings.reinit_gap or self.translation_filter.derivative is None:
            return self.state.translation.copy()
        return self.state.translation + self.translation_filter.derivative * dt_s

    # --- updates

    def detected(self, human: Human, stamp_ns: int) -> None:
        self.hits += 1
        self.confirmed = self.confirmed or self.hits >= self.settings.confirm_hits
        self.misses = 0
        self.last_detection_ns = stamp_ns
        self.upstream_id = human.detection_id or self.upstream_id
        self.detection_score = float(human.score)
        self.box_motion.update(box_state(human.box), stamp_ns)
        self.filter(human, stamp_ns)

    def missed(self) -> None:
        self.misses += 1
        self.hits = 0

    def filter(self, human: Human, stamp_ns: int, measurement: _Body | None = None) -> _Body:
        """Filter a measurement (`human`'s body unless given) taken at `stamp_ns`; returns the filtered body. The
        tokens follow `human` only when it is the measurement itself (a predicted box's crop may show another
        person: its tokens are not taken)."""
        dt_s = (stamp_ns - self.last_update_ns) / NS_PER_S
        if self.state is None or dt_s > self.settings.reinit_gap:
            for each in (self.translation_filter, self.rotation_filter, self.body_filter, self.tokens):
                each.reset()
        body = measurement or self.measured(human, stamp_ns)
        translation = self.translation_filter(body.translation, dt_s)
        rotation = self.rotation_filter(body.rotation, dt_s)
        vertices, joints = self.body_filter(body.vertices, body.joints, dt_s)
        self.state = _Body(translation, rotation, vertices, joints)
        if measurement is None or self.token_state is None:
            self.token_state = self.tokens(human.tokens, human.token_confidence)
        self.last_update_ns = stamp_ns
        return self.state

    def measured(self, human: Human, stamp_ns: int, may_turn: bool = True) -> _Body:
        """`human`'s body, or its reflection in depth when the facing guard takes it as reflected (see `facing`:
        after `hold` seconds of those in a row, the measurement as it is, the orientation and body filters restarted
        from it, unless not `may_turn`)."""
        body = _Body.of(human)
        self.reflected = False
        dt_s = (stamp_ns - self.last_update_ns) / NS_PER_S
        reflection = None
        if self.facing is not None and self.state is not None and dt_s <= self.settings.reinit_gap:
            reflection = self.facing.nearer_reflection(body, self.state)
        if reflection is None:
            self.reflected_since_ns = None
            return body
        if self.reflected_since_ns is None:
            self.reflected_since_ns = stamp_ns
        if not may_turn or (stamp_ns - self.reflected_since_ns) / NS_PER_S < self.facing.settings.hold:
            self.reflected = True
            return reflection
        self.reflected_since_ns = None  # the person does face this way: the track turns
        self.rotation_filter.reset()
        self.body_filter.reset()
        return body

    def blended(self, human: Human, stamp_ns: int, weight: float) -> _Body:
        """`human`'s body moved `weight` of the way from the track's prediction (a measurement it trusts less, which
        does not turn the track: see `measured`)."""
        body = self.measured(human, stamp_ns, may_turn=False)
        predicted = self.predicted_translation(stamp_ns)
        step = rotation_log(self.state.rotation.T @ body.rotation)
        joints = None
        if body.joints is not None and self.state.joints is not None and body.joints.shape == self.state.joints.shape:
            joints = self.state.joints + weight * (body.joints - self.state.joints)
        vertices = body.vertices
        if vertices.shape == self.state.vertices.shape:
            vertices = self.state.vertices + weight * (vertices - self.state.vertices)
        return _Body(predicted + weight * (body.translation - predicted), self.state.rotation @ rotation_exp(
            weight * step), vertices, joints if joints is not None else body.joints)


class TemporalTracker:
    """The temporal stage (see the module docstring). settings: a `config.TemporalConfig`; max_persons and
    min_box_size: the persons section's budget per frame and smallest box (predicted boxes follow them too)."""

    def __init__(self, settings, max_persons: int = 8, min_box_size: float = 16.0, facing: FacingGuard | None = None):
        self.settings = settings
        self.facing = facing
        self.max_persons = int(max_persons)
        self.min_box_size = float(min_box_size)
        self.tracks: list[Track] = []
        self._ids = itertools.count(1)
        self.last_stamp_ns: int | None = None
        self._frame_stamp_ns: int | None = None  # the stamp `persons` prepared
        self._intrinsics: np.ndarray | None = None
        self._predicted: dict[int, str] = {}  # index among the persons returned -> track id

    @classmethod
    def from_config(cls, config, facing: FacingGuard | None = None) -> TemporalTracker:
        """From an `EstimatorConfig` (its temporal and persons sections); `facing`: the guard for the model's mesh
        (`facing.FacingGuard`), or None."""
        return cls(config.temporal, config.persons.max_persons, config.persons.min_box_size, facing)

    def reset(self) -> None:
        """Forget every track (ids keep counting, so an id is never given to two people)."""
        self.tracks = []
        self.last_stamp_ns = None
        self._frame_stamp_ns = None
        self._predicted = {}

    # --- phase 1: before cropping

    def persons(self, frame: Frame, detections: tuple[Detection, ...], skipped: Counter) -> tuple[Detection, ...]:
        self._begin_frame(frame.stamp_ns, skipped)
        self._intrinsics = None if frame.intrinsics is None else np.asarray(frame.intrinsics, dtype=np.float64)
        if len(detections) > self.max_persons:
            skipped["over_max_persons"] += len(detections) - self.max_persons
            detections = tuple(detections[: self.max_persons])
        stamp = frame.stamp_ns
        if not any(track.confirmed and track.misses < self.settings.predicted_frames for track in self.tracks):
            return tuple(detections)
        boxes = np.array([detection.box for detection in detections], dtype=np.float64).reshape(-1, 4)
        same_id = np.array([[bool(d.id) and d.id == track.upstream_id for d in detections] for track in self.tracks],
                           dtype=bool).reshape(len(self.tracks), len(detections))
        cost = association_cost(np.stack([track.predicted_box(stamp) for track in self.tracks]), boxes,
                                self.settings, same_id=same_id)
        taken = {row for row, _ in assign(cost)}
        persons = list(detections)
        for row, track in enumerate(self.tracks):
            if row in taken or not track.confirmed or track.misses >= self.settings.predicted_frames:
                continue
            box = track.predicted_box(stamp)
            visible = visible_box_size(box, frame.image_size)
            if visible is None or min(visible) < max(self.min_box_size, 1.0):
                continue
            if len(persons) >= self.max_persons:
                skipped["prediction_over_max_persons"] += 1
                continue
            self._predicted[len(persons)] = track.id
            persons.append(Detection(box, track.detection_score, "", ""))
        return tuple(persons)

    # --- phase 2: after placement

    def update(self, result: FrameResult, sources: Sequence[int] | None = None) -> FrameResult:
        skipped = Counter(result.skipped)
        stamp = result.stamp_ns
        if self._frame_stamp_ns != stamp:  # `persons` was not called for this frame: no predicted boxes
            self._begin_frame(stamp, skipped)
        sources = list(range(len(result.humans))) if sources is None else list(sources)
        predicted = {self._predicted[source]: human for human, source in zip(result.humans, sources, strict=True)
                     if source in self._predicted}
        detected = [human for human, source in zip(result.humans, sources, strict=True)
                    if source not in self._predicted]
        if len(detected) > self.max_persons:
            skipped["over_max_persons"] += len(detected) - self.max_persons
            detected = detected[: self.max_persons]
        published: list[Human] = []
        matched = self._assign(detected, stamp)
        for human, track in zip(detected, matched, strict=True):
            if track is None:
                track = self._start_track(human, stamp, skipped)
                if track is None:
                    continue
            else:
                track.detected(human, stamp)
            if track.confirmed:
                published.append(self._publish(track, human, stamp, human.box, human.score, valid=True))
            else:
                skipped["tentative_track"] += 1
        taken = {id(track) for track in matched if track is not None}
        for track in [track for track in self.tracks if id(track) not in taken and track.last_detection_ns != stamp]:
            track.missed()
            coast = self._coast(track, predicted.get(track.id), stamp, result.image_size)
            if coast is not None:
                published.append(coast)
        for track in self.tracks:
            if track.last_update_ns == stamp and track.reflected:
                skipped["facing_reflected"] += 1
        self._end_tracks(stamp)
        self._predicted = {}
        self._frame_stamp_ns = None
        result.humans = published
        result.skipped = dict(skipped)
        return result

    # --- the steps

    def _begin_frame(self, stamp_ns: int, skipped: Counter) -> None:
        if self.last_stamp_ns is not None and stamp_ns < self.last_stamp_ns:
            LOG.warning("stamp %d is %.3f s before the previous frame's (a looping bag or a clock reset): "
                        "%d tracks reset", stamp_ns, (self.last_stamp_ns - stamp_ns) / NS_PER_S, len(self.tracks))
            skipped["tracks_reset_backward_stamp"] += len(self.tracks)
            self.reset()
        self.last_stamp_ns = stamp_ns
        self._frame_stamp_ns = stamp_ns
        self._predicted = {}
        self._end_tracks(stamp_ns)

    def _assign(self, humans: list[Human], stamp: int) -> list[Track | None]:
        """The track of each human (None: none), by the Hungarian algorithm on the full cost."""
        matched: list[Track | None] = [None] * len(humans)
        if not humans or not self.tracks:
            return matched
        boxes = np.stack([np.asarray(human.box, dtype=np.float64) for human in humans])
        roots = np.stack([np.asarray(human.translation, dtype=np.float64) for human in humans])
        same_id = np.array([[bool(h.detection_id) and h.detection_id == track.upstream_id for h in humans]
                            for track in self.tracks], dtype=bool)
        cost = association_cost(np.stack([track.predicted_box(stamp) for track in self.tracks]), boxes,
                                self.settings, np.stack([track.predicted_translation(stamp) for track in self.tracks]),
                                roots, same_id)
        for row, column in assign(cost):
            matched[column] = self.tracks[row]
        return matched

    def _start_track(self, human: Human, stamp: int, skipped: Counter) -> Track | None:
        if len(self.tracks) >= self.settings.max_tracks:
            skipped["over_max_tracks"] += 1
            return None
        track = Track(str(next(self._ids)), human, stamp, self.settings, self.facing)
        self.tracks.append(track)
        return track

    def _coast(self, track: Track, human: Human | None, stamp: int, image_size) -> Human | None:
        """A missed confirmed track's human for this frame: from its predicted box's crop when that agrees with
        the prediction, else the prediction alone; None once `predicted_frames` are used up or the box left."""
        if not track.confirmed or track.misses > self.settings.predicted_frames:
            return None
        box = track.predicted_box(stamp)
        visible = visible_box_size(box, image_size)
        if visible is None or min(visible) < max(self.min_box_size, 1.0):
            return None
        score = track.detection_score * self.settings.predicted_score_scale
        if human is not None:
            distance = np.linalg.norm(np.asarray(human.translation) - track.predicted_translation(stamp))
            if distance <= self.settings.root_gate:
                measurement = track.blended(human, stamp, self.settings.predicted_measurement_weight)
                track.filter(human, stamp, measurement)
                return self._publish(track, human, stamp, box, score, valid=False)
        return self._predicted_human(track, stamp, box, score)

    def _end_tracks(self, stamp: int) -> None:
        settings = self.settings
        self.tracks = [track for track in self.tracks
                       if (track.confirmed or track.misses == 0)
                       and track.misses <= settings.max_misses
                       and (stamp - track.last_detection_ns) / NS_PER_S <= settings.max_age]

    # --- what is published

    def _publish(self, track: Track, human: Human, stamp: int, box, score: float, valid: bool) -> Human:
        tokens, confidence = track.token_state
        published = self._human(track, track.state, box, score, valid, human, tokens, confidence)
        track.published = published
        return published

    def _predicted_human(self, track: Track, stamp: int, box, score: float) -> Human | None:
        last = track.published
        if last is None:
            return None
        state = replace(track.state, translation=track.predicted_translation(stamp))
        predicted = self._human(track, state, box, score, False, last, last.tokens, last.token_confidence)
        return replace(predicted, keypoints=None)  # the last frame's keypoints do not describe this one

    def _human(self, track: Track, state: _Body, box, score: float, valid: bool, source: Human, tokens,
               confidence) -> Human:
        vertices = state.camera_points(state.vertices)
        joints = None if state.joints is None else state.camera_points(state.joints)
        return replace(
            source, id=track.id, score=float(np.clip(score, 0.0, 1.0)), box=np.asarray(box, dtype=np.float64),
            tokens=tokens, token_confidence=confidence, vertices=vertices, joints=joints,
            joints_2d=None if joints is None else self._project(joints, source.joints_2d),
            vertices_2d=self._project(vertices, source.vertices_2d), root_position=root_position(vertices, joints),
            root_rotation=state.rotation.copy(), translation=state.translation.copy(), valid=valid)

    def _project(self, points: np.ndarray, fallback) -> np.ndarray:
        """(N, 3) camera-frame points -> (N, 2) float32 pixels (NaN behind the camera)."""
        if self._intrinsics is None:
            return fallback
        projected = points @ self._intrinsics.T.astype(points.dtype)
        depth = projected[:, 2:3]
        with np.errstate(divide="ignore", invalid="ignore"):
            pixels = projected[:, :2] / depth
        pixels[depth[:, 0] <= 0] = np.nan
        return pixels.astype(np.float32, copy=False)

"""Where the built-in detector's landmark model puts its 33 landmarks on rendered free-body people, against the
rendered meshes: the data that defines the free body's pose landmarks (`body.pose_landmarks`) and measures the
landmark model's noise, which a model that reads its keypoints must be trained with.

- `observe_landmarks(seed, num_frames)`: random scenes (`synth.SceneGenerator`); for every person at least
  `min_height` pixels tall and mostly visible, the landmark model on a square region around the true box (what
  tracking gives it): `LandmarkObservations`, the rendered mesh beside the landmarks.
- `fit_landmark_weights(observations, prior)`: per landmark, non-negative weights over the `candidates` vertices
  nearest to the prior landmark (rest pose), summing to one, that best put the projected landmark on the model's,
  over every observation where the model sees it (visibility and presence at least 0.5, inside the image); errors
  in units of the person's box height, so near and far people count alike.
- `landmark_errors(observations, regressor)`: per landmark, the 2D offsets between the projected regressor
  landmarks and the model's, in box heights: their median distance and spread are the noise a keypoint-reading
  model sees.

Projected vertex combinations stand for the projection of the combined 3D point: the vertices around one landmark
lie within a few centimetres of each other, metres from the camera.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import nnls

from ..body.joints import JointRegressor
from ..detect import POSE_LANDMARK_GRAPH, DetectionRunner, PersonKeypoints
from ..detect.keypoints import keypoints_in_boxes
from ..hps.camera import project_points
from ..hps.keypoint_input import SEEN
from ..humans import POSE_LANDMARK_NAMES
from ..synth.scene import PersonTruth, SceneGenerator, SceneSettings, SyntheticFrame

MIN_HEIGHT = 100.0  # pixels: the people observed are at least this tall ...
MIN_VISIBLE = 0.5  # ... and this visible (`PersonTruth.visible_fraction`)
WILD_DISTANCE = 0.1  # box heights: a landmark this far from the truth is a wrong guess, not noise
SUM_TO_ONE_WEIGHT = 100.0  # how hard the fit holds the weights' sum at one (a row of the least-squares system)


@dataclass(frozen=True)
class LandmarkObservations:
    """N people: vertices (N, V, 3) camera frame, metres; intrinsics (N, 3, 3); boxes (N, 4) x, y, w, h pixels;
    image_sizes (N, 2) (H, W); landmarks (N, 33, 2) the model's, pixels; visibility, presence (N, 33);
    pose_scores (N,)."""

    vertices: np.ndarray
    intrinsics: np.ndarray
    boxes: np.ndarray
    image_sizes: np.ndarray
    landmarks: np.ndarray
    visibility: np.ndarray
    presence: np.ndarray
    pose_scores: np.ndarray

    def __len__(self) -> int:
        return len(self.vertices)

    def seen(self) -> np.ndarray:
        """(N, 33) bool: the person was found (pose score) and the model sees the landmark inside the image."""
        height, width = self.image_sizes[:, :1], self.image_sizes[:, 1:]
        inside = ((self.landmarks[..., 0] >= 0) & (self.landmarks[..., 0] <= width - 1)
                  & (self.landmarks[..., 1] >= 0) & (self.landmarks[..., 1] <= height - 1))
        return ((self.visibility >= SEEN) & (self.presence >= SEEN) & inside
                & (self.pose_scores[:, None] >= SEEN))

    def project(self, points: np.ndarray, people: np.ndarray | None = None) -> np.ndarray:
        """(n, P, 3) camera-frame points of each person (of `people`, default all) -> (n, P, 2) pixels."""
        return project_points(points, self.intrinsics if people is None else self.intrinsics[people])


def observe_landmarks(seed: int, num_frames: int, landmarker: DetectionRunner | None = None,
                      min_height: float = MIN_HEIGHT, min_visible: float = MIN_VISIBLE,
                      settings: SceneSettings | None = None) -> LandmarkObservations:
    """Render `num_frames` random scenes from `seed` and run the landmark model on their well-seen people."""
    rng = np.random.default_rng(seed)
    generator = SceneGenerator()
    landmarker = (landmarker or DetectionRunner(POSE_LANDMARK_GRAPH, "auto")).activate()
    records: dict[str, list] = {key: [] for key in LandmarkObservations.__dataclass_fields__}
    for _ in range(num_frames):
        frame = generator.random_frame(rng, settings or SceneSettings())
        for person, found in observed_people(frame, landmarker, min_height, min_visible):
            for key, value in (("vertices", person.vertices_camera), ("intrinsics", frame.camera.intrinsics),
                               ("boxes", person.box), ("image_sizes", frame.image.shape[:2]),
                               ("landmarks", found.keypoints[:, :2]), ("visibility", found.visibility),
                               ("presence", found.presence), ("pose_scores", found.score)):
                records[key].append(np.asarray(value, dtype=np.float64))
    return LandmarkObservations(**{key: np.stack(values) for key, values in records.items()})


def observed_people(frame: SyntheticFrame, landmarker: DetectionRunner, min_height: float = MIN_HEIGHT,
                    min_visible: float = MIN_VISIBLE) -> list[tuple[PersonTruth, PersonKeypoints]]:
    """The frame's people at least `min_height` pixels tall and `min_visible` visible, each with what the landmark
    model (active) makes of the square around the true box (`detect.keypoints.box_roi`)."""
    people = [person for person in frame.people
              if person.box[3] >= min_height and person.visible_fraction >= min_visible]
    if not people:
        return []
    found = keypoints_in_boxes(landmarker, frame.image, [person.box for person in people])
    return list(zip(people, found, strict=True))


def fit_landmark_weights(observations: LandmarkObservations, prior: JointRegressor, rest_vertices: np.ndarray,
                         candidates: int = 48, rounds: int = 4) -> JointRegressor:
    """The fitted (33, V) regressor (see the module docstring); a landmark that no observation sees keeps its
    prior row. The prior landmark itself is one of the candidates, so the fit keeps it where nothing does better;
    `rounds` of reweighting (each person's weight the inverse of its last distance, at least ROBUST_FLOOR box
    heights) fit the median rather than the mean, so that the landmark model's few wild guesses do not pull."""
    seen = observations.seen()
    prior_points = prior(np.asarray(rest_vertices, dtype=np.float64))
    prior_matrix = prior.matrix.astype(np.float64)
    matrix = prior_matrix.copy()
    for row in range(prior.num_joints):
        people = np.flatnonzero(seen[:, row])
        if len(people) == 0:
            continue
        nearest = np.argsort(np.linalg.norm(rest_vertices - prior_points[row], axis=1))[:candidates]
        columns = np.concatenate([observations.vertices[people][:, nearest],
                                  prior(observations.vertices[people])[:, row:row + 1]], axis=1)
        heights = observations.boxes[people, 3]
        pixels = observations.project(columns, people) / heights[:, None, None]  # (n, C + 1, 2)
        target = observations.landmarks[people, row] / heights[:, None]  # (n, 2)
        weights = _robust_fit(pixels, target, rounds)
        matrix[row] = weights[-1] * prior_matrix[row]
        matrix[row, nearest] += weights[:-1]
    return JointRegressor(matrix.astype(np.float32), prior.joint_names)


ROBUST_FLOOR = 0.005  # box heights: distances below this weigh like this in the reweighted fit


def _robust_fit(pixels: np.ndarray, target: np.ndarray, rounds: int) -> np.ndarray:
    """Non-negative weights (C,) summing to one with sum_c w_c pixels[:, c] close to target (n people)."""
    people, count, _ = pixels.shape
    person_weights = np.ones(people)
    for _ in range(rounds):
        scale = np.repeat(np.sqrt(person_weights), 2)[:, None]
        system = pixels.transpose(0, 2, 1).reshape(-1, count) * scale  # rows: x then y of each person
        weights, _ = nnls(np.vstack([system, np.full((1, count), SUM_TO_ONE_WEIGHT)]),
                          np.append(target.reshape(-1) * scale[:, 0], SUM_TO_ONE_WEIGHT))
        weights = weights / weights.sum()
        distances = np.linalg.norm(np.einsum("ncd,c->nd", pixels, weights) - target, axis=1)
        person_weights = 1.0 / np.maximum(distances, ROBUST_FLOOR)
    return weights


@dataclass(frozen=True)
class LandmarkErrors:
    """Per landmark (33,): how many observations see it and their share of all, the median distance, the share of
    distances over WILD_DISTANCE (the model's wild guesses: a limb swapped left for right, a hidden hand), the
    spread of the other offsets (standard deviation per axis, x and y pooled), and the x, y offsets' mean and
    standard deviation, between the regressor's projected landmark and the model's, in box heights."""

    seen: np.ndarray
    seen_share: np.ndarray
    median_distance: np.ndarray
    wild_share: np.ndarray
    inlier_sd: np.ndarray
    offset_mean: np.ndarray  # (33, 2)
    offset_std: np.ndarray  # (33, 2)

    def as_dict(self) -> dict:
        return {name: {"seen": int(self.seen[row]), "seen_share": round(float(self.seen_share[row]), 4),
                       "median_distance": round(float(self.median_distance[row]), 4),
                       "wild_share": round(float(self.wild_share[row]), 4),
                       "inlier_sd": round(float(self.inlier_sd[row]), 4),
                       "offset_mean": np.round(self.offset_mean[row], 4).tolist(),
                       "offset_std": np.round(self.offset_std[row], 4).tolist()}
                for row, name in enumerate(POSE_LANDMARK_NAMES)}


def landmark_errors(observations: LandmarkObservations, regressor: JointRegressor) -> LandmarkErrors:
    """See the module docstring; landmarks never seen get NaN."""
    seen = observations.seen()
    offsets = (observations.project(regressor(observations.vertices)) - observations.landmarks)
    offsets = offsets / observations.boxes[:, 3, None, None]
    count = len(POSE_LANDMARK_NAMES)
    median, wild, inlier = np.full(count, np.nan), np.full(count, np.nan), np.full(count, np.nan)
    mean, std = np.full((count, 2), np.nan), np.full((count, 2), np.nan)
    for row in range(count):
        rows = offsets[seen[:, row], row]
        if len(rows):
            distances = np.linalg.norm(rows, axis=1)
            median[row], wild[row] = np.median(distances), np.mean(distances > WILD_DISTANCE)
            inlier[row] = np.sqrt(np.mean(rows[distances <= WILD_DISTANCE] ** 2))
            mean[row], std[row] = rows.mean(axis=0), rows.std(axis=0)
    return LandmarkErrors(seen.sum(axis=0), seen.mean(axis=0), median, wild, inlier, mean, std)

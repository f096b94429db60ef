"""Training samples for a VQ-HPS that reads body keypoints, made without rendering: sampled free-body people, their
MediaPipe pose landmarks (`body.pose_landmarks`) seen through random cameras, with the landmark model's noise as
measured on renders (`train.landmark_calibration`, stored with the fitted landmarks).

A sample is what the estimator will give such a model, and what it must predict:

- `keypoints` (33, 3): each landmark in the person's crop (the square the image model would crop from the box:
  `hps.crop_geometry_from_boxes`), in normalised crop coordinates (`hps.crop_to_normalized`: the crop's edges at
  -1 and +1), and a visibility, 1 where the landmark model would see it and 0 where not (then x = y = 0);
- targets: the canonical mesh (no orientation, centred: the Mesh-VQ-VAE's input, hence the tokens), its rotation
  into the camera frame, and the weak-perspective crop camera [s, tx, ty] that best projects the rotated mesh onto
  the crop (`hps.fit_weak_perspective` of the mesh's projection), as for the image model.

The box is the visible part of the projected mesh. Noise (`KeypointNoise`, per landmark, in box heights): the
landmark model misses a landmark with its measured rate, makes a wild guess (anywhere in the box) with its measured
rate, and otherwise lands a Gaussian offset of its measured spread away. With probability `truncation`, the image
ends somewhere between the shoulders and the knees (`cut_range`, shares of the person's height from the top: robots
often see people from the waist up, portraits end at the chest): landmarks below are unseen and the box stops there.
A person counts as seen when at least `min_landmarks_in_view` landmarks lie in the view, as the estimator needs
(`model.min_keypoints`), so head-and-shoulders views are drawn too.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy.spatial.transform import Rotation

from ..body.joints import JointRegressor
from ..body.pose_landmarks import free_body_pose_landmarks, landmark_info
from ..errors import InputError
from ..hps.camera import fit_weak_perspective, project_points
from ..hps.crops import apply_affines, crop_geometry_from_boxes, crop_to_normalized
from ..humans import POSE_LANDMARK_NAMES
from ..synth.appearance import sample_betas
from ..synth.poses import sample_poses
from ..synth.scene import SceneGenerator

NUM_LANDMARKS = len(POSE_LANDMARK_NAMES)


@dataclass(frozen=True)
class KeypointNoise:
    """Per landmark (33,): the share of people on whom the landmark model sees it, the share of wild guesses among
    those, and the standard deviation of its other offsets (per axis, box heights)."""

    seen_share: np.ndarray
    wild_share: np.ndarray
    inlier_sd: np.ndarray

    @classmethod
    def measured(cls) -> KeypointNoise:
        """What `tools/fit_pose_landmarks.py` measured on renders and stored with the fitted landmarks."""
        noise = landmark_info()["noise"]
        return cls(*(np.asarray(noise[key], dtype=np.float64) for key in ("seen_share", "wild_share", "inlier_sd")))

    @classmethod
    def none(cls) -> KeypointNoise:
        """Every landmark seen exactly (for checks)."""
        return cls(np.ones(NUM_LANDMARKS), np.zeros(NUM_LANDMARKS), np.zeros(NUM_LANDMARKS))

    def __post_init__(self):
        for name in ("seen_share", "wild_share", "inlier_sd"):
            values = getattr(self, name)
            if values.shape != (NUM_LANDMARKS,) or not np.all(np.isfinite(values)) or np.any(values < 0):
                raise InputError(f"keypoint noise {name} must be {NUM_LANDMARKS} finite values >= 0, found {values}")


@dataclass(frozen=True)
class KeypointSampling:
    """The random people and cameras: image size (H, W), horizontal field of view (degrees), distance of the
    person from the camera (m), tilt of the body away from upright (degrees), truncation probability, where a cut
    falls (shares of the projected person's height, from the top), the landmarks a seen person shows at least."""

    image_size: tuple[int, int] = (480, 640)
    fov_deg: tuple[float, float] = (50.0, 90.0)
    distance_m: tuple[float, float] = (1.2, 8.0)
    tilt_deg: float = 15.0
    truncation: float = 0.35
    cut_range: tuple[float, float] = (0.2, 0.75)
    min_landmarks_in_view: int = 8
    noise: KeypointNoise = field(default_factory=KeypointNoise.measured)

    def __post_init__(self):
        if not (0 < self.fov_deg[0] <= self.fov_deg[1] < 180 and 0 < self.distance_m[0] <= self.distance_m[1]
                and 0.0 <= self.truncation <= 1.0 and self.tilt_deg >= 0
                and 0.0 < self.cut_range[0] <= self.cut_range[1] < 1.0
                and 1 <= self.min_landmarks_in_view <= NUM_LANDMARKS):
            raise InputError(f"unusable keypoint sampling settings: {self}")


@dataclass(frozen=True)
class KeypointSamples:
    """N samples (see the module docstring): keypoints (N, 33, 3); canonical_vertices (N, V, 3) float32 metres;
    rotation (N, 3, 3) canonical -> camera; crop_camera (N, 3); boxes (N, 4) x, y, w, h pixels; intrinsics (N, 3, 3);
    translation (N, 3) metres, the vertex centroid in the camera frame; truncated (N,) bool."""

    keypoints: np.ndarray
    canonical_vertices: np.ndarray
    rotation: np.ndarray
    crop_camera: np.ndarray
    boxes: np.ndarray
    intrinsics: np.ndarray
    translation: np.ndarray
    truncated: np.ndarray

    def __len__(self) -> int:
        return len(self.keypoints)

    @classmethod
    def concatenated(cls, parts: list[KeypointSamples]) -> KeypointSamples:
        """The samples of `parts` (at least one), in order."""
        return cls(*(np.concatenate([getattr(part, name) for part in parts]) for name in cls.__dataclass_fields__))


class KeypointSampler:
    """Draws `KeypointSamples` (one body model and landmark regressor, held for every call)."""

    def __init__(self, settings: KeypointSampling | None = None, landmarks: JointRegressor | None = None,
                 generator: SceneGenerator | None = None):
        self.settings = settings or KeypointSampling()
        self.generator = generator or SceneGenerator()
        self.landmarks = landmarks or free_body_pose_landmarks(num_vertices=self.generator.body.num_vertices)

    def sample(self, rng: np.random.Generator, count: int) -> KeypointSamples:
        """`count` samples; people who would not be seen (the box mostly outside the image) are drawn again."""
        parts, total = [], 0
        while total < count:
            part = self._draw(rng, count - total)
            parts.append(part)
            total += len(part)
        return KeypointSamples.concatenated(parts)  # each draw keeps at most what it was asked for

    # ------------------------------------------------------------------------------------------------ drawing

    def _draw(self, rng: np.random.Generator, count: int) -> KeypointSamples:
        vertices, _ = self.generator.pose_bodies(sample_betas(rng, count), sample_poses(rng, count).reshape(count, -1))
        canonical = vertices - vertices.mean(axis=1, keepdims=True)
        rotation = self._orientations(rng, count)
        intrinsics = self._intrinsics(rng, count)
        translation = self._positions(rng, count, intrinsics)
        camera_vertices = np.einsum("nij,nvj->nvi", rotation, canonical) + translation[:, None, :]
        pixels = project_points(camera_vertices, intrinsics)
        landmarks = project_points(self.landmarks(camera_vertices), intrinsics)
        cut = self._cuts(rng, pixels)
        boxes, usable = self._boxes(pixels, landmarks, cut)
        keep = np.flatnonzero(usable)
        geometry = crop_geometry_from_boxes(boxes[keep])
        keypoints = self._noisy_keypoints(rng, landmarks[keep], boxes[keep], cut[keep], geometry.crop_from_image)
        crop_points = crop_to_normalized(apply_affines(geometry.crop_from_image, pixels[keep]))
        rotated = camera_vertices[keep] - translation[keep, None, :]
        return KeypointSamples(keypoints, canonical[keep].astype(np.float32), rotation[keep],
                               fit_weak_perspective(rotated, crop_points), boxes[keep], intrinsics[keep],
                               translation[keep], np.isfinite(cut[keep]))

    def _orientations(self, rng: np.random.Generator, count: int) -> np.ndarray:
        """Bodies upright in the camera frame (y down), any heading, tilted a little."""
        upright = Rotation.from_rotvec([np.pi, 0.0, 0.0])  # the body's up (+y) to the camera's up (-y)
        heading = Rotation.from_euler("y", rng.uniform(-np.pi, np.pi, (count, 1)))
        tilt = Rotation.from_rotvec(rng.normal(0.0, np.radians(self.settings.tilt_deg) / 2, (count, 3)))
        return (tilt * upright * heading).as_matrix()

    def _intrinsics(self, rng: np.random.Generator, count: int) -> np.ndarray:
        height, width = self.settings.image_size
        fov = np.radians(rng.uniform(*self.settings.fov_deg, count))
        focal = (width / 2) / np.tan(fov / 2)
        intrinsics = np.zeros((count, 3, 3))
        intrinsics[:, 0, 0] = intrinsics[:, 1, 1] = focal
        intrinsics[:, 0, 2], intrinsics[:, 1, 2], intrinsics[:, 2, 2] = (width - 1) / 2, (height - 1) / 2, 1.0
        return intrinsics

    def _positions(self, rng: np.random.Generator, count: int, intrinsics: np.ndarray) -> np.ndarray:
        """Body centres at a random distance, anywhere in the picture (the body may leave it partly)."""
        height, width = self.settings.image_size
        depth = rng.uniform(*self.settings.distance_m, count)
        pixel = rng.uniform([0.1 * width, 0.2 * height], [0.9 * width, 0.8 * height], (count, 2))
        focal, centre = intrinsics[:, 0, 0], intrinsics[:, :2, 2]
        return np.concatenate([(pixel - centre) / focal[:, None] * depth[:, None], depth[:, None]], axis=1)

    def _cuts(self, rng: np.random.Generator, pixels: np.ndarray) -> np.ndarray:
        """(N,) the image row where a truncated view ends (`cut_range`), inf when not truncated."""
        top, bottom = pixels[..., 1].min(axis=1), pixels[..., 1].max(axis=1)
        truncated = rng.uniform(size=len(pixels)) < self.settings.truncation
        cut = top + rng.uniform(*self.settings.cut_range, len(pixels)) * (bottom - top)
        return np.where(truncated, cut, np.inf)

    def _boxes(self, pixels: np.ndarray, landmarks: np.ndarray, cut: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 4) boxes of the visible projected mesh, and which people are seen well enough (box over 40 px tall
        and at least `min_landmarks_in_view` landmarks inside the view)."""
        inside = self._in_view(pixels, cut)
        shown = np.where(inside[..., None], pixels, np.nan)
        with warnings.catch_warnings():  # a person entirely out of view has no box: NaN, and is not usable
            warnings.simplefilter("ignore", RuntimeWarning)
            low, high = np.nanmin(shown, axis=1), np.nanmax(shown, axis=1)
        boxes = np.concatenate([low, high - low], axis=1)
        enough = self._in_view(landmarks, cut).sum(axis=1) >= self.settings.min_landmarks_in_view
        usable = enough & np.isfinite(boxes).all(axis=1) & (boxes[:, 3] >= 40)
        return np.nan_to_num(boxes), usable

    def _in_view(self, points: np.ndarray, cut: np.ndarray) -> np.ndarray:
        """(N, K) which of the points (N, K, 2) pixels lie in the image above each person's cut."""
        height, width = self.settings.image_size
        bottom = np.minimum(cut, height - 1.0)[:, None]
        return ((points[..., 0] >= 0) & (points[..., 0] <= width - 1) & (points[..., 1] >= 0)
                & (points[..., 1] <= bottom))

    def _noisy_keypoints(self, rng: np.random.Generator, landmarks: np.ndarray, boxes: np.ndarray, cut: np.ndarray,
                         crop_from_image: np.ndarray) -> np.ndarray:
        noise = self.settings.noise
        count = len(landmarks)
        heights = boxes[:, 3, None, None]
        points = landmarks + rng.normal(size=landmarks.shape) * noise.inlier_sd[None, :, None] * heights
        wild = rng.uniform(size=(count, NUM_LANDMARKS)) < noise.wild_share
        anywhere = boxes[:, None, :2] + rng.uniform(size=(count, NUM_LANDMARKS, 2)) * boxes[:, None, 2:]
        points = np.where(wild[..., None], anywhere, points)
        seen = self._in_view(landmarks, cut) & (rng.uniform(size=(count, NUM_LANDMARKS)) < noise.seen_share)
        normalized = np.where(seen[..., None], crop_to_normalized(apply_affines(crop_from_image, points)), 0.0)
        return np.concatenate([normalized, seen[..., None].astype(np.float64)], axis=2).astype(np.float32)


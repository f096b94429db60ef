"""Training samples for the keypoint-reading VQ-HPS with the landmark model's own keypoints: rendered free-body
people (`synth.SceneGenerator`), the built-in detector's landmark model run on each well-seen person (the square
around the true box, as tracking gives it: `train.landmark_calibration.observed_people`), and the truth the
renderer knows.

`train.keypoint_data` draws keypoints from a noise model measured on such renders: each landmark missed, wild or
offset on its own. The landmark model's real errors are not independent: a whole limb can be misplaced, left and
right swapped, a hidden limb guessed. Samples made from its actual
output teach the network those errors too, at the price of rendering (about 0.1 s per frame on this CPU), so they
are mixed into the sampled data rather than replacing it.

The samples have `keypoint_data.KeypointSamples`' layout and meaning; the keypoints are built by the estimator's
own rule (`hps.keypoint_model_input` in the crop of the true box), and `truncated` says whether the image border
cuts the person's box.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from ..detect import POSE_LANDMARK_GRAPH, DetectionRunner, body_keypoints
from ..hps.camera import fit_weak_perspective, project_points
from ..hps.crops import apply_affines, crop_geometry_from_boxes, crop_to_normalized
from ..hps.keypoint_input import DEFAULT_MIN_KEYPOINTS, SEEN, enough_seen, keypoint_model_input
from ..synth.scene import SceneGenerator, SyntheticFrame
from .keypoint_data import NUM_LANDMARKS, KeypointSamples
from .landmark_calibration import observed_people

BORDER_PX = 1.0  # a box edge this close to the image border counts as cut by it


def rendered_keypoint_samples(seed: int, num_frames: int, landmarker: DetectionRunner | None = None,
                              generator: SceneGenerator | None = None,
                              min_keypoints: int = DEFAULT_MIN_KEYPOINTS) -> KeypointSamples:
    """The well-seen people of `num_frames` random scenes of `seed` (see the module docstring) that the estimator
    would read: the landmark model finds a body (pose score at least `SEEN`) and sees at least `min_keypoints`."""
    rng = np.random.default_rng(seed)
    generator = generator or SceneGenerator()
    landmarker = (landmarker or DetectionRunner(POSE_LANDMARK_GRAPH, "auto")).activate()
    parts = [samples for samples in (frame_samples(generator.random_frame(rng), landmarker, min_keypoints)
                                     for _ in range(num_frames)) if len(samples)]
    if not parts:
        return _no_samples(generator.body.num_vertices)
    return KeypointSamples.concatenated(parts)


def frame_samples(frame: SyntheticFrame, landmarker: DetectionRunner,
                  min_keypoints: int = DEFAULT_MIN_KEYPOINTS) -> KeypointSamples:
    """The samples of one rendered frame's well-seen people that the estimator would read (possibly none)."""
    image_size = frame.image.shape[:2]
    found = [(person, body_keypoints(result)) for person, result in observed_people(frame, landmarker)
             if result.score >= SEEN]
    readable = [(person, keypoints) for person, keypoints in found if enough_seen(keypoints, image_size, min_keypoints)]
    if not readable:
        return _no_samples(len(frame.people[0].canonical_vertices))
    people = [person for person, _ in readable]
    boxes = np.stack([person.box for person in people]).astype(np.float64)
    geometry = crop_geometry_from_boxes(boxes)
    keypoints = keypoint_model_input([keypoints for _, keypoints in readable], geometry, image_size)
    intrinsics = np.repeat(np.asarray(frame.camera.intrinsics, dtype=np.float64)[None], len(people), axis=0)
    vertices = np.stack([person.vertices_camera for person in people]).astype(np.float64)
    translation = np.stack([person.translation for person in people])
    crop_points = crop_to_normalized(apply_affines(geometry.crop_from_image, project_points(vertices, intrinsics)))
    height, width = image_size
    ends = boxes[:, :2] + boxes[:, 2:]
    cut = ((boxes[:, :2] <= BORDER_PX).any(axis=1)
           | (ends[:, 0] >= width - 1 - BORDER_PX) | (ends[:, 1] >= height - 1 - BORDER_PX))
    return KeypointSamples(
        keypoints=keypoints,
        canonical_vertices=np.stack([person.canonical_vertices for person in people]).astype(np.float32),
        rotation=Rotation.from_rotvec(np.stack([person.global_orient for person in people])).as_matrix(),
        crop_camera=fit_weak_perspective(vertices - translation[:, None, :], crop_points),
        boxes=boxes, intrinsics=intrinsics, translation=translation, truncated=cut)


def _no_samples(num_vertices: int) -> KeypointSamples:
    return KeypointSamples(np.zeros((0, NUM_LANDMARKS, 3), np.float32), np.zeros((0, num_vertices, 3), np.float32),
                           np.zeros((0, 3, 3)), np.zeros((0, 3)), np.zeros((0, 4)), np.zeros((0, 3, 3)),
                           np.zeros((0, 3)), np.zeros(0, bool))

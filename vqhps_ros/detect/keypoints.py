"""A person's body keypoints from the landmark model's outputs: mediapipe's post-processing, in image pixels.

Facts of mediapipe's pose landmark graph (`tensors_to_pose_landmarks_and_segmentation.pbtxt`,
`pose_landmarks_and_segmentation_inverse_projection.pbtxt`):

- Landmarks (39, 5): x, y, z in crop pixels (z on x's scale, negative towards the camera, 0 at the hips),
  visibility and presence logits (sigmoid). Landmarks 0-32 are the body (`POSE_LANDMARK_NAMES`), 33 and 34 the
  alignment points of the next ROI (hip centre, body-circle radius point), 35-38 unused.
- Refinement from heatmaps (RefineLandmarksFromHeatmapCalculator, kernel 7, min confidence 0.5): around the
  landmark's heatmap cell (64 x 64 over the crop; cell = int(x / 256 * 64), a landmark outside the heatmap is left
  alone), the sigmoid confidences of the 7 x 7 window (cut at the border) weight the cell indices; when the
  window's largest confidence reaches 0.5, x, y become weighted index / 64 of the crop (mediapipe's formula, which
  reads a cell's index, not its centre).
- Projection into the image through the ROI (LandmarkProjectionCalculator); z scales like x (z_px = z / 256 * ROI
  side). World landmarks (39, 3) are metres around the hips; they are turned by the ROI rotation in the image plane
  (WorldLandmarkProjectionCalculator).
- Pose presence: the probability that the crop shows a person; mediapipe keeps landmarks from 0.5 up.
- Segmentation (256, 256): logits over the crop (sigmoid gives the person probability); `segmentation_in_image`
  warps it into the image as mediapipe does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..humans import POSE_KEYPOINT_SET, POSE_LANDMARK_NAMES, BodyKeypoints
from .geometry import ROI_SCALE, Roi, apply_affine, box_of_points, clip_box, crop_roi, roi_from_alignment_points

NUM_BODY_LANDMARKS = len(POSE_LANDMARK_NAMES)
ALIGNMENT_LANDMARKS = (33, 34)
LANDMARK_INPUT_SIZE = 256
HEATMAP_KERNEL = 7
MIN_HEATMAP_CONFIDENCE = 0.5
# Box margins around the landmarks when there is no mask, as fractions of their extent: the landmarks stop at the
# eyes and ears, the heels and toes and the wrists, while a box should hold the whole body (skull, hair, shoes).
BOX_MARGIN_TOP = 0.12
BOX_MARGIN_SIDES = 0.08
BOX_MARGIN_BOTTOM = 0.03


@dataclass(frozen=True)
class PersonKeypoints:
    """One person found by the landmark model, in the source image's pixels (OpenCV pixel centres).

    keypoints: (33, 3) float32 x, y pixels, z relative depth on x's scale (negative: nearer than the hips).
    visibility, presence: (33,) float32 in [0, 1] (visible and not occluded; inside the image).
    world_keypoints: (33, 3) float32 metres, origin between the hips, mediapipe's world frame turned by the ROI.
    score: pose presence in [0, 1]. detection_score: the score of the detector candidate this person was found
    from (the last one, for a tracked person). roi: the crop the model saw. segmentation: (256, 256) float32
    person probability over the ROI crop (`segmentation_in_image` warps it into the image).
    alignment_points: (2, 2) the hip centre and body-circle radius point, which give the next frame's ROI.
    box: (4,) x, y, w, h, the body's box from the segmentation and the keypoints (`body_box`), clipped to the image.
    """

    keypoints: np.ndarray
    visibility: np.ndarray
    presence: np.ndarray
    world_keypoints: np.ndarray
    score: float
    detection_score: float
    roi: Roi
    segmentation: np.ndarray
    alignment_points: np.ndarray
    box: np.ndarray
    track_id: int = 0  # the same number while the person is tracked from frame to frame

    def next_roi(self) -> Roi:
        """Where to look for this person in the next frame (mediapipe's ROI from landmarks)."""
        return roi_from_alignment_points(self.alignment_points[0], self.alignment_points[1])


def body_keypoints(person: PersonKeypoints) -> BodyKeypoints:
    """What travels with the person through the estimator: the 2D keypoints, their visibility and the mask."""
    return BodyKeypoints(POSE_KEYPOINT_SET, person.keypoints[:, :2].copy(), person.visibility.copy(),
                         person.segmentation, person.roi.tensor_to_image(person.segmentation.shape[0]),
                         person.presence.copy())


def sigmoid(values: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(values, -80.0, 80.0)))


def refine_with_heatmaps(xy: np.ndarray, heatmaps: np.ndarray, input_size: int = LANDMARK_INPUT_SIZE,
                         kernel: int = HEATMAP_KERNEL, min_confidence: float = MIN_HEATMAP_CONFIDENCE) -> np.ndarray:
    """(L, 2) crop-pixel landmarks refined by (L, H, W) heatmap logits (see the module docstring). All landmarks
    at once: each one's window is cut from the heatmaps padded with logit -inf, i.e. confidence 0 (mediapipe's
    smaller window at the border)."""
    count, height, width = heatmaps.shape
    offset = (kernel - 1) // 2
    xy = np.asarray(xy, dtype=np.float64)
    columns = np.trunc(xy[:, 0] / input_size * width).astype(np.int64)
    rows = np.trunc(xy[:, 1] / input_size * height).astype(np.int64)
    inside = (columns >= 0) & (columns < width) & (rows >= 0) & (rows < height)
    columns, rows = np.where(inside, columns, 0), np.where(inside, rows, 0)
    padded = np.pad(heatmaps, ((0, 0), (offset, offset), (offset, offset)), constant_values=-np.inf)
    steps = np.arange(kernel)
    window_rows, window_columns = rows[:, None] + steps, columns[:, None] + steps  # padded indices, (L, kernel)
    logits = padded[np.arange(count)[:, None, None], window_rows[:, :, None], window_columns[:, None, :]]
    with np.errstate(over="ignore"):
        confidence = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))  # exactly 0 on the padding
    total = confidence.sum(axis=(1, 2))
    refine = inside & (confidence.max(axis=(1, 2)) >= min_confidence) & (total > 0)
    safe_total = np.where(total > 0, total, 1.0)
    mean_column = (confidence.sum(axis=1) * (window_columns - offset)).sum(axis=1) / safe_total
    mean_row = (confidence.sum(axis=2) * (window_rows - offset)).sum(axis=1) / safe_total
    refined = xy.copy()
    refined[refine, 0] = mean_column[refine] / width * input_size
    refined[refine, 1] = mean_row[refine] / height * input_size
    return refined


def person_keypoints(landmarks: np.ndarray, pose_presence: float, segmentation: np.ndarray, heatmaps: np.ndarray,
                     world_landmarks: np.ndarray, roi: Roi, image_size: tuple[int, int],
                     detection_score: float = 0.0, track_id: int = 0) -> PersonKeypoints:
    """One person from the landmark model's outputs for one crop (shapes as `networks.PoseLandmarkNet`)."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    xy = refine_with_heatmaps(landmarks[:, :2], np.asarray(heatmaps))
    to_image = roi.tensor_to_image(LANDMARK_INPUT_SIZE)
    image_xy = apply_affine(to_image, xy)
    z = landmarks[:, 2] / LANDMARK_INPUT_SIZE * roi.size
    body = slice(0, NUM_BODY_LANDMARKS)
    keypoints = np.concatenate([image_xy[body], z[body, None]], axis=1).astype(np.float32)
    presence = sigmoid(landmarks[body, 4]).astype(np.float32)
    probability = sigmoid(np.asarray(segmentation, dtype=np.float32))
    return PersonKeypoints(
        keypoints=keypoints,
        visibility=sigmoid(landmarks[body, 3]).astype(np.float32),
        presence=presence,
        world_keypoints=rotate_world(np.asarray(world_landmarks, dtype=np.float64)[body], roi.rotation),
        score=float(pose_presence),
        detection_score=float(detection_score),
        roi=roi,
        segmentation=probability,
        alignment_points=image_xy[list(ALIGNMENT_LANDMARKS)],
        box=body_box(keypoints, presence, probability, roi, image_size),
        track_id=track_id,
    )


def landmark_model_input(image: np.ndarray, rois: list[Roi]) -> np.ndarray:
    """(N, 3, 256, 256) float32 in [0, 1]: the landmark model's crops of `rois` in an RGB uint8 image."""
    crops = np.stack([crop_roi(image, roi, LANDMARK_INPUT_SIZE) for roi in rois])
    return crops.astype(np.float32).transpose(0, 3, 1, 2) / 255.0


def box_roi(box) -> Roi:
    """The landmark model's upright square around an (x, y, w, h) person box: ROI_SCALE times its longer side,
    centred on it (the margin mediapipe gives its ROIs)."""
    x, y, width, height = (float(value) for value in box)
    return Roi((x + width / 2.0, y + height / 2.0), ROI_SCALE * max(width, height))


def keypoints_in_boxes(landmarker, image: np.ndarray, boxes) -> list[PersonKeypoints]:
    """The landmark model (an active `DetectionRunner`) on the square around each person box, in one batch."""
    regions = [box_roi(box) for box in boxes]
    if not regions:
        return []
    outputs = landmarker.infer(landmark_model_input(image, regions))
    return [batch_person_keypoints(outputs, index, region, image.shape[:2]) for index, region in enumerate(regions)]


def batch_person_keypoints(outputs: dict[str, np.ndarray], index: int, roi: Roi, image_size: tuple[int, int],
                           detection_score: float = 0.0, track_id: int = 0) -> PersonKeypoints:
    """`person_keypoints` of row `index` of a landmark-model batch (`DetectionRunner.infer` outputs)."""
    return person_keypoints(outputs["landmarks"][index], float(outputs["pose_presence"][index]),
                            outputs["segmentation"][index], outputs["heatmaps"][index],
                            outputs["world_landmarks"][index], roi, image_size, detection_score, track_id)


def rotate_world(world: np.ndarray, rotation: float) -> np.ndarray:
    """World landmarks turned by the ROI rotation about z (x, y in the image plane), float32."""
    cos, sin = np.cos(rotation), np.sin(rotation)
    turned = world.copy()
    turned[:, 0] = cos * world[:, 0] - sin * world[:, 1]
    turned[:, 1] = sin * world[:, 0] + cos * world[:, 1]
    return turned.astype(np.float32)


def body_box(keypoints: np.ndarray, presence: np.ndarray, segmentation: np.ndarray, roi: Roi,
             image_size: tuple[int, int]) -> np.ndarray:
    """(4,) x, y, w, h of the person, clipped to the image: the bounds of the segmentation inside the image
    (probability 0.5 and up) united with those of the keypoints inside the image (presence 0.5 and up). The mask
    reaches the skull, hair, hands and shoes, which the keypoints stop short of; without a mask, the keypoints'
    bounds get margins. (Parts of the crop beyond the image repeat its border pixels, and the mask may follow
    them: only mask pixels inside the image count.)"""
    mask_points = segmentation_points(segmentation >= 0.5, roi, image_size)
    present = keypoints[presence >= 0.5, :2]
    if len(mask_points) == 0:
        return clip_box(box_with_margins(keypoints[:, :2] if len(present) == 0 else present), image_size)
    half_pixel = roi.size / segmentation.shape[0] / 2  # a mask pixel's half width, in image pixels
    low = np.minimum(mask_points.min(axis=0) - half_pixel, present.min(axis=0, initial=np.inf))
    high = np.maximum(mask_points.max(axis=0) + half_pixel, present.max(axis=0, initial=-np.inf))
    return clip_box(np.array([low[0], low[1], high[0] - low[0], high[1] - low[1]]), image_size)


def segmentation_points(mask: np.ndarray, roi: Roi, image_size: tuple[int, int]) -> np.ndarray:
    """(N, 2) image pixels of the mask's set pixels that fall inside the image."""
    rows, columns = np.nonzero(mask)
    points = apply_affine(roi.tensor_to_image(mask.shape[0]), np.stack([columns, rows], axis=1).astype(np.float64))
    height, width = image_size
    inside = (points >= -0.5).all(axis=1) & (points[:, 0] <= width - 0.5) & (points[:, 1] <= height - 0.5)
    return points[inside]


def box_with_margins(points: np.ndarray) -> np.ndarray:
    """The bounds of (N, 2) keypoints grown by margins for what lies beyond them (skull, hands, shoes)."""
    x, y, w, h = box_of_points(points)
    extent = max(w, h)
    x0, x1 = x - BOX_MARGIN_SIDES * extent, x + w + BOX_MARGIN_SIDES * extent
    y0, y1 = y - BOX_MARGIN_TOP * extent, y + h + BOX_MARGIN_BOTTOM * extent
    return np.array([x0, y0, x1 - x0, y1 - y0], dtype=np.float64)


def segmentation_in_image(person: PersonKeypoints, image_size: tuple[int, int]) -> np.ndarray:
    """(H, W) float32 person probability in the image (zero outside the ROI), as mediapipe warps the mask back."""
    return body_keypoints(person).mask_in_image(image_size)

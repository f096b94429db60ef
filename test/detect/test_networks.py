"""The PyTorch networks against LiteRT, the reference runtime of the .tflite files, on real and synthetic images.

Tolerances: keypoints (detector alignment points, landmarks) within 1e-3 of the input side in normalised units,
mediapipe's own landmark units; raw pixel outputs within 1e-2 px; probabilities within 1e-3 (the mask's 1e-2).
Float32 rounding alone moves outputs of these networks by a few 1e-3 px: LiteRT's XNNPACK and reference kernels
differ by 2.2e-3 px on the landmark model, and so does this PyTorch module computed in float64 from either.
"""

import numpy as np
import torch

from vqhps_ros.detect import (
    Roi,
    crop_roi,
    decode_detections,
    full_image_roi,
    ssd_anchor_centers,
)
from vqhps_ros.detect.anchors import sigmoid_scores
from vqhps_ros.detect.keypoints import sigmoid

KEYPOINT_TOLERANCE = 1e-3  # normalised input coordinates
PIXEL_TOLERANCE = 1e-2  # input pixels
PROBABILITY_TOLERANCE = 1e-3
MASK_TOLERANCE = 1e-2  # segmentation probability: a few pixels on the outline sit where the logit is ~0


def detector_input(image: np.ndarray) -> np.ndarray:
    """(1, 224, 224, 3) float32 in [-1, 1]: the letterboxed frame, NHWC as LiteRT takes it."""
    return (crop_roi(image, full_image_roi(image.shape[:2]), 224, border="zero").astype(np.float32) / 127.5 - 1)[None]


def landmark_input(image: np.ndarray, box: np.ndarray) -> np.ndarray:
    """(1, 256, 256, 3) float32 in [0, 1]: the square around a person box (x, y, w, h), 1.25 times its long side."""
    x, y, w, h = box
    roi = Roi((x + w / 2, y + h / 2), 1.25 * max(w, h), 0.0)
    return (crop_roi(image, roi, 256).astype(np.float32) / 255.0)[None]


def run_torch(module, nhwc: np.ndarray) -> list[np.ndarray]:
    with torch.inference_mode():
        return [output.numpy() for output in module(torch.from_numpy(nhwc).permute(0, 3, 1, 2))]


def test_detector_matches_litert(pose_detector, litert, photo_frames, sample_frames):
    anchors = ssd_anchor_centers()
    images = [frame.image for frame in photo_frames] + [sample_frames[index].image for index in (0, 50, 100, 149)]
    for image in images:
        batch = detector_input(image)
        reference = litert["detector"](batch)
        raw_boxes, raw_scores = run_torch(pose_detector, batch)
        np.testing.assert_allclose(raw_boxes, reference["Identity"], atol=PIXEL_TOLERANCE, rtol=0)
        np.testing.assert_allclose(raw_scores, reference["Identity_1"][..., 0], atol=PIXEL_TOLERANCE, rtol=0)
        np.testing.assert_allclose(raw_boxes / 224, reference["Identity"] / 224, atol=KEYPOINT_TOLERANCE, rtol=0)
        np.testing.assert_allclose(sigmoid_scores(raw_scores), sigmoid_scores(reference["Identity_1"]),
                                   atol=PROBABILITY_TOLERANCE, rtol=0)
        ours = decode_detections(raw_boxes[0], raw_scores[0], anchors)
        theirs = decode_detections(reference["Identity"][0], reference["Identity_1"][0], anchors)
        assert len(ours) == len(theirs)
        for mine, other in zip(ours, theirs, strict=True):
            np.testing.assert_allclose(mine.keypoints / 224, other.keypoints / 224, atol=KEYPOINT_TOLERANCE)


def person_boxes(photo_frames, sample_frames, sample_truth):
    """(image, box) pairs: the photos' recorded person boxes and the sample bag's true boxes of tall people."""
    pairs = [(frame.image, frame.detections[0].box) for frame in photo_frames]
    for index in (0, 50, 100, 149):
        rows = np.flatnonzero((sample_truth["frame_index"] == index) & (sample_truth["boxes"][:, 3] > 60)
                              & (sample_truth["visible_fraction"] > 0.5))
        pairs += [(sample_frames[index].image, sample_truth["boxes"][row]) for row in rows]
    return pairs


def test_landmark_model_matches_litert(pose_landmarker, litert, photo_frames, sample_frames, sample_truth):
    pairs = person_boxes(photo_frames, sample_frames, sample_truth)
    assert len(pairs) >= 10
    for image, box in pairs:
        batch = landmark_input(image, box)
        reference = litert["landmarker"](batch)
        landmarks, presence, segmentation, heatmaps, world = run_torch(pose_landmarker, batch)
        expected = reference["Identity"].reshape(1, 39, 5)
        np.testing.assert_allclose(landmarks[..., :3] / 256, expected[..., :3] / 256, atol=KEYPOINT_TOLERANCE, rtol=0)
        np.testing.assert_allclose(landmarks[..., :3], expected[..., :3], atol=PIXEL_TOLERANCE, rtol=0)
        np.testing.assert_allclose(sigmoid(landmarks[..., 3:]), sigmoid(expected[..., 3:]), atol=PROBABILITY_TOLERANCE)
        np.testing.assert_allclose(presence, reference["Identity_1"][:, 0], atol=PROBABILITY_TOLERANCE)
        np.testing.assert_allclose(world, reference["Identity_4"].reshape(1, 39, 3), atol=1e-3)  # metres
        np.testing.assert_allclose(heatmaps, reference["Identity_3"].transpose(0, 3, 1, 2), atol=PIXEL_TOLERANCE)
        np.testing.assert_allclose(sigmoid(segmentation), sigmoid(reference["Identity_2"][..., 0]),
                                   atol=MASK_TOLERANCE)

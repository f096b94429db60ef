"""An independent person mask: mediapipe's selfie segmentation network on a whole image.

The mask comes from a network of its own, neither the mesh estimator's nor the built-in detector's, so it can judge
how well rendered meshes cover the people in real images.
`SelfieSegmenter()(image)` returns, for an RGB uint8 image (H, W, 3), the probability (H, W) in [0, 1] that each
pixel shows a person.

Pre- and post-processing follow mediapipe's selfie segmentation CPU graph (selfie_segmentation_cpu.binarypb of the
0.10.21 wheel): its ImageToTensorCalculator stretches the whole image to 256 x 256 (keep_aspect_ratio: false, no
letterbox) with bilinear sampling into float values in [0, 1]; its TensorsToSegmentationCalculator applies no
activation (the network ends with a sigmoid) and resizes the 256 x 256 mask bilinearly to the image size.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from ..errors import InputError
from .networks import SELFIE_SEGMENTATION_SIZE, SelfieSegmentationNet, load_selfie_segmenter


def check_rgb_image(image) -> np.ndarray:
    """`image` if it is an RGB uint8 array (H, W, 3) with H, W >= 1, else InputError saying what was found."""
    if not isinstance(image, np.ndarray):
        raise InputError(f"expected an RGB image as a numpy uint8 array (H, W, 3), found {type(image).__name__}")
    if image.dtype != np.uint8:
        raise InputError(f"expected an RGB image of dtype uint8 (H, W, 3), found dtype {image.dtype}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise InputError(f"expected an RGB image of shape (H, W, 3), found shape {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise InputError(f"expected an RGB image of at least 1 x 1 pixels, found shape {image.shape}")
    return image


def segmentation_input(image: np.ndarray, size: int = SELFIE_SEGMENTATION_SIZE) -> np.ndarray:
    """(size, size, 3) float32 in [0, 1]: the whole image stretched to the square, as mediapipe's graph makes it.

    mediapipe maps the image's outer corners (0, 0) and (W, H) onto the tensor's (0, 0) and (size, size) and samples
    with OpenCV's bilinear warp, so tensor pixel (x, y) reads image point (x * W / size, y * H / size): a pure
    scale, warped here the same way (cv2.resize would sample at half-pixel centres instead, up to 0.75 px apart for
    a 640-pixel-wide image, which moves the mask visibly). The warp runs on the uint8 image, so values are rounded
    to integers before the division by 255, also as mediapipe does; OpenCV versions round that warp differently by
    one level on a few percent of the values, the only difference left from mediapipe's own masks
    (test/detect/test_person_mask.py).
    """
    height, width = image.shape[:2]
    tensor_to_image = np.array([[width / size, 0.0, 0.0], [0.0, height / size, 0.0]])
    warped = cv2.warpAffine(np.ascontiguousarray(image), tensor_to_image, (size, size),
                            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT,
                            borderValue=0)
    return warped.astype(np.float32) / 255.0


def mask_in_image(probability: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """The network's (size, size) probability resized to image_size (height, width), clipped to [0, 1].

    cv2.resize's bilinear interpolation is mediapipe's (TensorsToSegmentationCalculator resizes with OpenCV's
    default); interpolating probabilities keeps them in [0, 1] up to rounding, which the clip removes.
    """
    height, width = image_size
    resized = cv2.resize(probability.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    return np.clip(resized.reshape(height, width), 0.0, 1.0)


class SelfieSegmenter:
    """image (H, W, 3) RGB uint8 -> person probability (H, W) float32 in [0, 1], with the PyTorch network on CPU
    (PyTorch's thread setting applies). Calls leave the network as it is, so one instance serves many images."""

    def __init__(self, network: SelfieSegmentationNet | None = None, path: str | Path | None = None):
        self.network = network if network is not None else load_selfie_segmenter(path)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        image = check_rgb_image(image)
        batch = torch.from_numpy(segmentation_input(image)).permute(2, 0, 1)[None]
        with torch.inference_mode():
            probability = self.network(batch)[0].numpy()
        return mask_in_image(probability, image.shape[:2])

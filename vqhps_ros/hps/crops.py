"""Person boxes -> square 224x224 network crops, with the affine maps between crop and image.

Conventions (shared by every function here and by `vqhps_ros.hps.camera`):

* Images are H x W x 3 RGB, uint8 in [0, 255] or float in [0, 1]. Other layouts are converted by
  `as_rgb_float_image`: grayscale (H x W or H x W x 1) is repeated on the three channels and RGBA
  (H x W x 4) drops its alpha channel (the colour is used as is, not composited on a background).
* Pixel coordinates follow OpenCV: the centre of the pixel in column i and row j is the point (i, j), so
  pixel i covers [i - 0.5, i + 0.5]. Camera intrinsics from an OpenCV calibration use the same convention.
* A box is (x, y, w, h) in pixels, (x, y) being its top-left corner. Boxes from detectors that count pixel
  edges (pixel i covers [i, i + 1]) are off by half a pixel, which is negligible next to the box margin.
* The crop of a box is the square of side `rescale * max(w, h)` centred on the box centre. The official
  VQ-HPS preprocessing (`preprocess_data/emdb.py`) stores `scale = 1.2 * max(w, h) / 200`, and the SPIN-style
  crop (`vq_hps/utils/augmentations.py`: `get_transform`, `crop`) cuts a square of side `200 * scale` pixels
  around the centre, so the default rescale is 1.2 (`BOX_RESCALE`). 3DPW boxes come from keypoints instead
  (`vq_hps/utils/smooth_bbox.py`, VIBE's `scale = 150 / keypoint height`).
* The square maps onto the crop uniformly: the box centre lands on the crop centre ((S - 1) / 2, (S - 1) / 2)
  and the square's edges on the crop's outer pixel edges (-0.5 and S - 0.5). Normalised crop coordinates
  (`crop_to_normalized`) put those edges at -1 and +1, which is the frame the weak-perspective camera and the
  2D keypoints of the official code live in (`dataset_hmr.py`: `2 * kp / 224 - 1`).
* The official crop rounds the square's corners to whole pixels and resamples with `cv2.resize`, which shifts
  it by at most about one source pixel from the exact affine used here; no rotation is applied at inference.
* Parts of the square outside the image are padded with zeros (black) before the ImageNet normalisation, as
  the official crop does, so a padded pixel equals -mean / std after normalisation.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from vqhps_ros.errors import InputError

CROP_SIZE = 224
BOX_RESCALE = 1.2
SCALE_UNIT_PIXELS = 200.0  # SPIN's `scale` counts squares of 200 pixels
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)

_FLOAT_RANGE_SLACK = 1e-6  # tolerate rounding noise around [0, 1] in float images


@dataclass(frozen=True)
class CropGeometry:
    """Where N square crops sit in the image.

    centers: (N, 2) float64, box centres (x, y) in image pixels.
    sides: (N,) float64, side of each square in image pixels (SPIN's `200 * scale`).
    crop_from_image: (N, 2, 3) float64, maps image pixels (x, y, 1) to crop pixels.
    image_from_crop: (N, 2, 3) float64, the inverse map.
    crop_size: side of the crop in pixels (S).
    """

    centers: np.ndarray
    sides: np.ndarray
    crop_from_image: np.ndarray
    image_from_crop: np.ndarray
    crop_size: int

    def __len__(self) -> int:
        return len(self.sides)

    @property
    def scales(self) -> np.ndarray:
        """(N,) SPIN scale: side / 200."""
        return self.sides / SCALE_UNIT_PIXELS


@dataclass(frozen=True)
class PersonCrops:
    """Normalised crops and their geometry.

    images: (N, 3, S, S) float32, RGB, ImageNet-normalised; a numpy array from `crop_people_cv2`, a tensor on
        the requested device from `crop_people_torch`.
    geometry: the affine maps between crop and image pixels (numpy, float64).
    """

    images: np.ndarray | torch.Tensor
    geometry: CropGeometry

    @property
    def crop_from_image(self) -> np.ndarray:
        return self.geometry.crop_from_image

    @property
    def image_from_crop(self) -> np.ndarray:
        return self.geometry.image_from_crop


# ----------------------------------------------------------------------------------------------- geometry


def crop_geometry(centers, sides, crop_size: int = CROP_SIZE) -> CropGeometry:
    """Geometry of square crops of `sides` pixels (N,) centred on `centers` (N, 2) pixels."""
    centers = np.asarray(centers, dtype=np.float64).reshape(-1, 2)
    sides = np.asarray(sides, dtype=np.float64).reshape(-1)
    if len(centers) != len(sides):
        raise InputError(f"expected one side per centre, found {len(centers)} centres and {len(sides)} sides")
    if not (np.all(np.isfinite(centers)) and np.all(np.isfinite(sides)) and np.all(sides > 0)):
        raise InputError(f"expected finite centres and positive finite sides, found sides {sides.tolist()}")
    zoom = crop_size / sides  # crop pixels per image pixel
    half = (crop_size - 1) / 2.0  # the crop centre, between pixels S/2 - 1 and S/2
    crop_from_image = np.zeros((len(sides), 2, 3))
    crop_from_image[:, 0, 0] = zoom
    crop_from_image[:, 1, 1] = zoom
    crop_from_image[:, :, 2] = half - zoom[:, None] * centers
    return CropGeometry(centers, sides, crop_from_image, invert_affines(crop_from_image), int(crop_size))


def crop_geometry_from_boxes(boxes, rescale: float = BOX_RESCALE, crop_size: int = CROP_SIZE) -> CropGeometry:
    """Geometry of the crops of (N, 4) boxes (x, y, w, h) in pixels: side = rescale * max(w, h).

    The boxes are not checked against an image here; see `validate_boxes`.
    """
    boxes = _as_boxes(boxes)
    centers = boxes[:, :2] + boxes[:, 2:] / 2.0
    sides = rescale * np.max(boxes[:, 2:], axis=1)
    return crop_geometry(centers, sides, crop_size)


def crop_geometry_from_center_scale(centers, scales, crop_size: int = CROP_SIZE) -> CropGeometry:
    """Geometry from SPIN-style annotations: centre (N, 2) pixels and scale (N,), side = 200 * scale pixels."""
    return crop_geometry(centers, SCALE_UNIT_PIXELS * np.asarray(scales, dtype=np.float64), crop_size)


def invert_affines(affines: np.ndarray) -> np.ndarray:
    """(N, 2, 3) invertible affine maps -> (N, 2, 3) their inverses."""
    affines = np.asarray(affines, dtype=np.float64)
    linear_inverse = np.linalg.inv(affines[:, :, :2])
    offset = -np.einsum("nij,nj->ni", linear_inverse, affines[:, :, 2])
    return np.concatenate([linear_inverse, offset[:, :, None]], axis=2)


def apply_affines(affines: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map points (N, P, 2) with one (N, 2, 3) affine per row; returns (N, P, 2) float64."""
    affines = np.asarray(affines, dtype=np.float64)
    points = np.asarray(points, dtype=np.float64)
    return np.einsum("nij,npj->npi", affines[:, :, :2], points) + affines[:, None, :, 2]


def crop_to_normalized(points, crop_size: int = CROP_SIZE):
    """Crop pixels -> normalised crop coordinates: the crop's outer edges at -1 and +1 (numpy or torch)."""
    return (points - (crop_size - 1) / 2.0) / (crop_size / 2.0)


def normalized_to_crop(points, crop_size: int = CROP_SIZE):
    """Normalised crop coordinates in [-1, 1] -> crop pixels (inverse of `crop_to_normalized`)."""
    return points * (crop_size / 2.0) + (crop_size - 1) / 2.0


# -------------------------------------------------------------------------------------------------- boxes


def valid_box_mask(boxes, image_size: tuple[int, int]) -> np.ndarray:
    """(N,) bool: which (N, 4) boxes (x, y, w, h) can be cropped from an image of (height, width) pixels.

    A box is valid when its four numbers are finite, w > 0 and h > 0, and it overlaps the image (a box
    only partly inside is valid: the crop is zero-padded). Never raises on the values, so a real-time
    caller can drop bad detections with `boxes[valid_box_mask(boxes, image.shape[:2])]`.
    """
    return ~np.any(_box_faults(_as_boxes(boxes), image_size), axis=0)


def validate_boxes(boxes, image_size: tuple[int, int]) -> np.ndarray:
    """Return the boxes as (N, 4) float64, or raise InputError naming the first bad box and why."""
    boxes = _as_boxes(boxes)
    faults = _box_faults(boxes, image_size)
    bad = np.flatnonzero(np.any(faults, axis=0))
    if len(bad):
        index = int(bad[0])
        reasons = [reason for reason, fault in zip(_BOX_FAULT_REASONS, faults[:, index], strict=True) if fault]
        height, width = image_size
        raise InputError(
            f"box {index} of {len(boxes)} (x, y, w, h) = {boxes[index].tolist()} cannot be cropped from a "
            f"{height}x{width} image: expected {' and '.join(reasons)}"
        )
    return boxes


_BOX_FAULT_REASONS = (
    "finite numbers",
    "a positive width and height",
    "an overlap with the image",
)


def _box_faults(boxes: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """(3, N) bool: per reason of `_BOX_FAULT_REASONS`, which boxes fail it."""
    height, width = _as_image_size(image_size)
    with np.errstate(invalid="ignore"):  # NaN compares False; the finiteness row reports it
        finite = np.all(np.isfinite(boxes), axis=1)
        positive = (boxes[:, 2] > 0) & (boxes[:, 3] > 0)
        x, y, w, h = boxes.T
        overlaps = (x < width - 0.5) & (x + w > -0.5) & (y < height - 0.5) & (y + h > -0.5)
    return np.stack([~finite, finite & ~positive, finite & positive & ~overlaps])


def _as_boxes(boxes) -> np.ndarray:
    if isinstance(boxes, torch.Tensor):
        boxes = boxes.detach().cpu().numpy()
    try:
        boxes = np.asarray(boxes, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise InputError(f"expected boxes as numbers of shape (N, 4), found {type(boxes).__name__}") from error
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise InputError(f"expected boxes of shape (N, 4) as (x, y, w, h), found shape {boxes.shape}")
    return boxes


def _as_image_size(image_size) -> tuple[int, int]:
    if len(image_size) < 2:
        raise InputError(f"expected an image size (height, width), found {image_size}")
    return int(image_size[0]), int(image_size[1])


# -------------------------------------------------------------------------------------------------- images


def as_rgb_float_image(image: np.ndarray) -> np.ndarray:
    """Any accepted image -> H x W x 3 float32 RGB in [0, 1] (see the module docstring for the rules)."""
    if not isinstance(image, np.ndarray):
        raise InputError(f"expected the image as a numpy array, found {type(image).__name__}")
    _check_image_layout(tuple(image.shape), image.dtype)
    if image.ndim == 2:
        image = image[:, :, None]
    image = image[:, :, :3]
    if image.dtype == np.uint8:
        rgb = image.astype(np.float32) * np.float32(1.0 / 255.0)
    else:
        _check_float_range(float(np.min(image)), float(np.max(image)))
        rgb = image.astype(np.float32, copy=False)
    if rgb.shape[2] == 1:
        rgb = np.repeat(rgb, 3, axis=2)
    return np.ascontiguousarray(rgb)


def _check_image_layout(shape: tuple[int, ...], dtype) -> None:
    channels_ok = len(shape) == 2 or (len(shape) == 3 and shape[2] in (1, 3, 4))
    if not channels_ok:
        raise InputError(f"expected an image of shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), found {shape}")
    if shape[0] == 0 or shape[1] == 0:
        raise InputError(f"expected a non-empty image, found shape {shape}")
    if str(dtype) not in ("uint8", "float32", "float64", "torch.uint8", "torch.float32", "torch.float64"):
        raise InputError(f"expected an image of dtype uint8 (0-255) or float32/float64 (0-1), found {dtype}")


def _check_float_range(low: float, high: float) -> None:
    if not (low >= -_FLOAT_RANGE_SLACK and high <= 1.0 + _FLOAT_RANGE_SLACK):  # also False for NaN
        raise InputError(f"expected float image values in [0, 1], found values in [{low}, {high}]")


def _normalize_chw(crops_hwc: np.ndarray) -> np.ndarray:
    """(N, S, S, 3) float32 in [0, 1] -> (N, 3, S, S) ImageNet-normalised float32."""
    normalised = (crops_hwc - IMAGENET_MEAN) / IMAGENET_STD
    return np.ascontiguousarray(normalised.transpose(0, 3, 1, 2), dtype=np.float32)


# ------------------------------------------------------------------------------------------------ cropping


def warp_crops_cv2(image: np.ndarray, geometry: CropGeometry) -> np.ndarray:
    """Cut the crops of `geometry` from an image with cv2.warpAffine -> (N, 3, S, S) normalised float32.

    Bilinear sampling, zero padding outside the image. The image is converted to float first so that the
    crops are not rounded to 8 bits (the official crop is float as well).
    """
    rgb = as_rgb_float_image(image)
    size = geometry.crop_size
    crops = np.empty((len(geometry), size, size, 3), dtype=np.float32)
    for index, image_from_crop in enumerate(geometry.image_from_crop):
        crops[index] = cv2.warpAffine(
            rgb,
            image_from_crop,
            (size, size),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,  # the matrix maps crop -> image, as sampling needs
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(0.0, 0.0, 0.0),
        )
    return _normalize_chw(crops)


def crop_people_cv2(image: np.ndarray, boxes, rescale: float = BOX_RESCALE,
                    crop_size: int = CROP_SIZE) -> PersonCrops:
    """CPU crops of N people: image H x W x 3 RGB, boxes (N, 4) (x, y, w, h) pixels -> `PersonCrops`.

    Raises InputError for a bad image or a bad box (naming the box); filter boxes first with
    `valid_box_mask` to skip bad detections instead.
    """
    geometry = _checked_geometry(image, boxes, rescale, crop_size)
    return PersonCrops(warp_crops_cv2(image, geometry), geometry)


def warp_crops_torch(image: torch.Tensor | np.ndarray, geometry: CropGeometry,
                     device: torch.device | str | None = None) -> torch.Tensor:
    """The crops of `geometry` with grid_sample, on the image's device (or `device`) -> (N, 3, S, S).

    `image` is H x W x C (uint8 or float in [0, 1], same layouts as `as_rgb_float_image`), a tensor or a numpy
    array. Sampling points are the crop pixel centres mapped through `image_from_crop`; with
    align_corners=False grid_sample puts image pixel i at normalised (2 i + 1) / W - 1, the OpenCV pixel-centre
    convention, so the result matches `warp_crops_cv2` (bilinear, zeros outside).
    """
    rgb = _as_rgb_float_tensor(image, device)  # (1, 3, H, W)
    count, size = len(geometry), geometry.crop_size
    if count == 0:
        return torch.zeros((0, 3, size, size), dtype=torch.float32, device=rgb.device)
    grid = _sampling_grid(geometry, rgb.shape[2], rgb.shape[3], rgb.device)
    crops = F.grid_sample(rgb.expand(count, -1, -1, -1), grid, mode="bilinear", padding_mode="zeros",
                          align_corners=False)
    mean = torch.as_tensor(IMAGENET_MEAN, device=rgb.device).view(1, 3, 1, 1)
    std = torch.as_tensor(IMAGENET_STD, device=rgb.device).view(1, 3, 1, 1)
    return (crops - mean) / std


def crop_people_torch(image: torch.Tensor | np.ndarray, boxes, rescale: float = BOX_RESCALE,
                      crop_size: int = CROP_SIZE, device: torch.device | str | None = None) -> PersonCrops:
    """Same as `crop_people_cv2` with torch (GPU-capable): `images` is a tensor on the image's device."""
    geometry = _checked_geometry(image, boxes, rescale, crop_size)
    return PersonCrops(warp_crops_torch(image, geometry, device), geometry)


def _checked_geometry(image, boxes, rescale: float, crop_size: int) -> CropGeometry:
    """Check the image layout first (a bad image is reported as such, not as boxes outside it)."""
    if not isinstance(image, (np.ndarray, torch.Tensor)):
        raise InputError(f"expected the image as a numpy array or a tensor, found {type(image).__name__}")
    _check_image_layout(tuple(image.shape), image.dtype)
    if not (np.isfinite(rescale) and rescale > 0):
        raise InputError(f"expected a positive box rescale factor, found {rescale}")
    boxes = validate_boxes(boxes, tuple(image.shape[:2]))
    return crop_geometry_from_boxes(boxes, rescale, crop_size)


def _as_rgb_float_tensor(image: torch.Tensor | np.ndarray, device) -> torch.Tensor:
    """H x W x C image -> (1, 3, H, W) float32 in [0, 1] on `device` (default: the image's own)."""
    if isinstance(image, np.ndarray):
        image = torch.from_numpy(np.ascontiguousarray(image))
    if not isinstance(image, torch.Tensor):
        raise InputError(f"expected the image as a tensor or a numpy array, found {type(image).__name__}")
    _check_image_layout(tuple(image.shape), image.dtype)
    image = image.to(device) if device is not None else image
    if image.ndim == 2:
        image = image[:, :, None]
    image = image[:, :, :3]
    if image.dtype == torch.uint8:
        rgb = image.to(torch.float32) / 255.0
    else:
        low, high = torch.aminmax(image)
        _check_float_range(float(low), float(high))
        rgb = image.to(torch.float32)
    chw = rgb.permute(2, 0, 1).unsqueeze(0)  # (1, C, H, W) with C = 1 (grayscale) or 3
    return chw.expand(1, 3, -1, -1).contiguous()


def _sampling_grid(geometry: CropGeometry, height: int, width: int, device: torch.device) -> torch.Tensor:
    """(N, S, S, 2) grid_sample coordinates of every crop pixel centre (align_corners=False).

    The map crop pixel -> grid coordinate is affine: `image_from_crop` followed by x -> (2 x + 1) / W - 1.
    Only the (N, 2, 3) composed matrices travel to the device; the grid is built there.
    """
    pixel_to_grid = np.array([[2.0 / width, 0.0, 1.0 / width - 1.0], [0.0, 2.0 / height, 1.0 / height - 1.0]])
    crop_to_grid = np.einsum("ij,njk->nik", pixel_to_grid[:, :2], geometry.image_from_crop)
    crop_to_grid[:, :, 2] += pixel_to_grid[:, 2]
    theta = torch.from_numpy(crop_to_grid).to(device=device, dtype=torch.float32)
    steps = torch.arange(geometry.crop_size, dtype=torch.float32, device=device)
    rows, cols = torch.meshgrid(steps, steps, indexing="ij")
    crop_points = torch.stack([cols, rows, torch.ones_like(cols)], dim=-1)  # (S, S, 3): (u, v, 1)
    return torch.einsum("sti,nji->nstj", crop_points, theta)

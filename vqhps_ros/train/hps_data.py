"""The VQ-HPS training data: an annotated image folder, its validation, and the training augmentations.

Dataset folder: `annotations.npz` (loaded with allow_pickle=False) plus the image files it names.

| array | shape | meaning |
|---|---|---|
| `image_paths` | (M,) str | image file per sample, relative to the folder (PNG/JPEG, RGB on disk) |
| `boxes` | (M, 4) | person box x, y, w, h in pixels (OpenCV pixel centres, see `vqhps_ros.hps.crops`) |
| `vertices` | (M, V, 3) | canonical ground-truth mesh, metres: no global orientation, centred on its centroid |
| `vertices_camera` | (M, V, 3) | instead of `vertices`: the mesh in the camera frame; canonical = R^T (v - centroid) |
| `global_orient` | (M, 3) | axis-angle R of the body in the camera frame (OpenCV: x right, y down, z forward) |
| `keypoints_2d` | (M, 17, 3) | pixel x, y and confidence of the H36M-17 joints in `H36M_TO_J17` order |
| `intrinsics` | (M, 3, 3) | optional pinhole K; not used by the losses (kept for camera-frame evaluation) |
| `translation` | (M, 3) | optional camera-frame translation of the body, metres; idem |

Exactly one of `vertices` and `vertices_camera` must be given. Canonical meshes are re-centred on load. Keypoints
with confidence 0 may hold any coordinates (NaN included); they are ignored.

Augmentations (training only), drawn per sample from a generator seeded by (seed, epoch, index), so that the
data does not depend on the number of loader workers:

* horizontal flip: the crop is mirrored about its vertical centre line (the same as flipping the image,
  x -> W - 1 - x, with its box); the keypoints swap left and right; the global orientation becomes M R M
  (M Rz R M after a rotation) and the canonical mesh M v[mirror], with M = diag(-1, 1, 1) and `mirror` the
  vertex twin map of the template (`mirror_permutation`); its tokens are recomputed by the training loop;
* in-plane rotation of the crop about its centre by `rotation_degrees` (positive: the person turns
  counter-clockwise on screen). In the y-down pixel frame this maps a crop point p to c + Q (p - c) with
  Q = [[cos a, sin a], [-sin a, cos a]]; the weak-perspective camera projects X to s (X_xy + t) in crop
  coordinates centred on c, so the body rotated by Rz = [[Q, 0], [0, 1]] (R' = Rz R) projects exactly onto the
  rotated keypoints (the camera translation becomes Q t);
* scale jitter of the crop side and centre jitter (fractions of the side): both keep the projection model;
* colour: a per-channel gain in [1 - noise, 1 + noise] (SPIN's `pn`), clipped to [0, 1].

Keypoints that end outside the crop get confidence 0.
"""

from __future__ import annotations

import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from scipy.spatial import cKDTree

from ..body.joints import H36M_17_JOINT_NAMES, H36M_TO_J17
from ..errors import InputError
from ..hps.crops import (
    BOX_RESCALE,
    CROP_SIZE,
    IMAGENET_MEAN,
    IMAGENET_STD,
    CropGeometry,
    apply_affines,
    crop_geometry,
    crop_geometry_from_boxes,
    crop_to_normalized,
    invert_affines,
    valid_box_mask,
    warp_crops_cv2,
)
from ..hps.rotation import axis_angle_to_matrix_np
from .settings import NO_AUGMENTATION, AugmentationSettings

LOG = logging.getLogger(__name__)

ANNOTATION_FILE = "annotations.npz"
KEYPOINT_COUNT = 17
MIRROR = np.diag([-1.0, 1.0, 1.0])  # the camera-frame (and canonical-frame) reflection x -> -x


def _swap_side(name: str) -> str:
    for side, other in (("left_", "right_"), ("right_", "left_")):
        if name.startswith(side):
            return other + name.removeprefix(side)
    return name


J17_JOINT_NAMES = tuple(H36M_17_JOINT_NAMES[index] for index in H36M_TO_J17)
"""Names of the keypoint rows (the H36M-17 joints in `H36M_TO_J17` order)."""

J17_FLIP_PERMUTATION = tuple(J17_JOINT_NAMES.index(_swap_side(name)) for name in J17_JOINT_NAMES)
"""Row k of flipped keypoints is row J17_FLIP_PERMUTATION[k] of the original (left <-> right)."""


# ------------------------------------------------------------------------------------------------ annotations


@dataclass(frozen=True)
class HPSAnnotations:
    """A validated dataset folder (see the module docstring); M samples, meshes of V vertices.

    boxes (M, 4) float64 pixels; canonical_vertices (M, V, 3) float32 metres, centred; global_orient (M, 3)
    float64 axis-angle; keypoints_2d (M, 17, 3) float64 pixels + confidence; intrinsics (M, 3, 3) and
    translation (M, 3) float64 or None.
    """

    folder: Path
    image_paths: tuple[str, ...]
    boxes: np.ndarray
    canonical_vertices: np.ndarray
    global_orient: np.ndarray
    keypoints_2d: np.ndarray
    intrinsics: np.ndarray | None = None
    translation: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.image_paths)

    @property
    def num_vertices(self) -> int:
        return self.canonical_vertices.shape[1]

    def image_path(self, index: int) -> Path:
        return self.folder / self.image_paths[index]

    def rotation_matrices(self) -> np.ndarray:
        """(M, 3, 3) float64 global orientations."""
        return axis_angle_to_matrix_np(self.global_orient)


def load_hps_annotations(folder: str | Path, num_vertices: int | None = None) -> HPSAnnotations:
    """Read and validate `folder/annotations.npz`; every problem raises InputError naming the array or file.

    num_vertices: the vertex count the Mesh-VQ-VAE expects, checked when given.
    """
    folder = Path(folder)
    file = folder / ANNOTATION_FILE
    arrays = _read_archive(file)
    image_paths = _image_paths(arrays, file)
    count = len(image_paths)
    boxes = _real_array(arrays, "boxes", (count, 4), file)
    _check_finite(boxes, "boxes", file)
    if np.any(boxes[:, 2:] <= 0):
        bad = int(np.flatnonzero(np.any(boxes[:, 2:] <= 0, axis=1))[0])
        raise InputError(f"{file}: 'boxes' must have a positive width and height, found {boxes[bad].tolist()} "
                         f"at sample {bad}")
    global_orient = _real_array(arrays, "global_orient", (count, 3), file)
    _check_finite(global_orient, "global_orient", file)
    canonical = _canonical_vertices(arrays, global_orient, count, file)
    if num_vertices is not None and canonical.shape[1] != num_vertices:
        raise InputError(f"{file}: meshes of {canonical.shape[1]} vertices, but the Mesh-VQ-VAE expects "
                         f"{num_vertices} vertices")
    keypoints = _keypoints(arrays, count, file)
    intrinsics = _optional_array(arrays, "intrinsics", (count, 3, 3), file)
    translation = _optional_array(arrays, "translation", (count, 3), file)
    _check_images_exist(folder, image_paths, file)
    return HPSAnnotations(folder, image_paths, boxes, canonical, global_orient, keypoints, intrinsics, translation)


def _read_archive(file: Path) -> dict[str, np.ndarray]:
    if not file.is_file():
        raise InputError(f"expected the dataset annotations {file}, found no such file")
    arrays = {}
    try:
        with np.load(file, allow_pickle=False) as archive:
            for name in archive.files:
                try:
                    arrays[name] = archive[name]
                except ValueError as error:  # object arrays need pickle
                    raise InputError(f"{file}: array '{name}' is an object array; save strings and numbers as "
                                     "plain arrays (e.g. np.asarray(paths, dtype=str))") from error
    except InputError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:  # np.load reads a non-zip as a pickle
        raise InputError(f"{file}: expected an .npz archive, found an unreadable file") from error
    return arrays


def _require(arrays: dict, name: str, file: Path) -> np.ndarray:
    if name not in arrays:
        raise InputError(f"{file}: expected an array '{name}', found arrays {sorted(arrays)}")
    return arrays[name]


def _describe(array: np.ndarray) -> str:
    return f"shape {array.shape} {array.dtype}"


def _shape_text(shape: tuple[int | None, ...]) -> str:
    return "(" + ", ".join("V" if size is None else str(size) for size in shape) + ")"


def _real_array(arrays: dict, name: str, shape: tuple[int | None, ...], file: Path) -> np.ndarray:
    """The array `name` as float64 after checking its dtype (real numbers) and shape (None: any size)."""
    array = _require(arrays, name, file)
    matches = array.ndim == len(shape) and all(
        want is None or want == got for want, got in zip(shape, array.shape, strict=True)
    )
    if array.dtype.kind not in "fiu" or not matches:
        raise InputError(f"{file}: array '{name}' must be {_shape_text(shape)} real numbers (M = "
                         f"{shape[0]} samples, from 'image_paths'), found {_describe(array)}")
    return array.astype(np.float64)


def _optional_array(arrays: dict, name: str, shape: tuple[int, ...], file: Path) -> np.ndarray | None:
    if name not in arrays:
        return None
    array = _real_array(arrays, name, shape, file)
    _check_finite(array, name, file)
    return array


def _check_finite(array: np.ndarray, name: str, file: Path) -> None:
    if not np.all(np.isfinite(array)):
        bad = int(np.flatnonzero(~np.isfinite(array.reshape(len(array), -1)).all(axis=1))[0])
        raise InputError(f"{file}: array '{name}' must be finite, found NaN or inf at sample {bad}")


def _image_paths(arrays: dict, file: Path) -> tuple[str, ...]:
    paths = _require(arrays, "image_paths", file)
    if paths.ndim != 1 or paths.dtype.kind not in "US" or len(paths) == 0:
        raise InputError(f"{file}: array 'image_paths' must be (M,) strings with M >= 1, found {_describe(paths)}")
    return tuple(path.decode() if isinstance(path, bytes) else str(path) for path in paths.tolist())


def _canonical_vertices(arrays: dict, global_orient: np.ndarray, count: int, file: Path) -> np.ndarray:
    has_canonical, has_camera = "vertices" in arrays, "vertices_camera" in arrays
    if has_canonical == has_camera:
        found = "both" if has_canonical else "neither"
        raise InputError(f"{file}: expected exactly one of 'vertices' (canonical meshes) and 'vertices_camera' "
                         f"(camera-frame meshes), found {found}")
    name = "vertices" if has_canonical else "vertices_camera"
    vertices = _real_array(arrays, name, (count, None, 3), file)
    if vertices.shape[1] == 0:
        raise InputError(f"{file}: array '{name}' holds meshes without vertices, found {_describe(vertices)}")
    _check_finite(vertices, name, file)
    centred = vertices - vertices.mean(axis=1, keepdims=True)
    if has_camera:  # undo the global orientation: v_canonical = R^T (v - centroid)
        centred = np.einsum("mji,mvj->mvi", axis_angle_to_matrix_np(global_orient), centred)
    return centred.astype(np.float32)


def _keypoints(arrays: dict, count: int, file: Path) -> np.ndarray:
    keypoints = _real_array(arrays, "keypoints_2d", (count, KEYPOINT_COUNT, 3), file)
    confidence = keypoints[..., 2]
    if not np.all(np.isfinite(confidence) & (confidence >= 0)):
        raise InputError(f"{file}: array 'keypoints_2d' must have finite confidences >= 0 in [..., 2]")
    used = confidence > 0
    if not np.all(np.isfinite(keypoints[..., :2])[used]):
        raise InputError(f"{file}: array 'keypoints_2d' has NaN or inf coordinates for keypoints of confidence > 0")
    keypoints[..., :2] = np.where(used[..., None], keypoints[..., :2], 0.0)
    return keypoints


def _check_images_exist(folder: Path, image_paths: tuple[str, ...], file: Path) -> None:
    missing = [path for path in image_paths if not (folder / path).is_file()]
    if missing:
        raise InputError(f"{file}: image file {folder / missing[0]} does not exist "
                         f"({len(missing)} of {len(image_paths)} images missing)")


def read_rgb_image(path: Path) -> np.ndarray:
    """H x W x 3 uint8 RGB from a PNG/JPEG file."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise InputError(f"cannot decode the image {path} (expected a PNG or JPEG file)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


# ---------------------------------------------------------------------------------------------- mirror map


def mirror_permutation(template_vertices, tolerance: float = 0.005) -> np.ndarray | None:
    """(V, 3) template in its canonical frame (x = the body's left-right axis) -> (V,) int64 mirror twins.

    mirror[i] is the vertex nearest to vertex i reflected through the plane x = centroid x, so a flipped
    canonical mesh is M v[mirror]. The map is accepted when every reflected vertex lies within
    `tolerance` * (bounding-box diagonal) of its twin, and applying it twice brings every vertex back within
    that distance (an involution up to coincident vertices, e.g. duplicated seams). Otherwise the template is
    not mirror-symmetric: a warning says why and None is returned (flips must then be disabled).
    """
    vertices = np.asarray(template_vertices, dtype=np.float64)
    if vertices.ndim != 2 or vertices.shape[1] != 3 or len(vertices) == 0 or not np.all(np.isfinite(vertices)):
        raise InputError(f"expected a finite (V, 3) template mesh, found shape {vertices.shape}")
    vertices = vertices - vertices.mean(axis=0)
    limit = tolerance * float(np.linalg.norm(vertices.max(axis=0) - vertices.min(axis=0)))
    distances, mirror = cKDTree(vertices).query(vertices @ MIRROR)
    round_trip = np.linalg.norm(vertices[mirror[mirror]] - vertices, axis=1)
    if distances.max() > limit or round_trip.max() > limit:
        LOG.warning("the template is not mirror-symmetric in x (largest twin distance %.3g, round trip %.3g, "
                    "tolerance %.3g): horizontal flips are disabled", distances.max(), round_trip.max(), limit)
        return None
    return mirror.astype(np.int64)


# ---------------------------------------------------------------------------------------------- augmentation


@dataclass(frozen=True)
class Augmentation:
    """One sample's augmentation: flip, rotation (degrees, positive counter-clockwise on screen), crop side
    factor, crop centre shift (fractions of the side, x and y), RGB gains."""

    flip: bool = False
    rotation_degrees: float = 0.0
    scale: float = 1.0
    center_shift: tuple[float, float] = (0.0, 0.0)
    color_gain: tuple[float, float, float] = (1.0, 1.0, 1.0)


IDENTITY = Augmentation()


def draw_augmentation(rng: np.random.Generator, settings: AugmentationSettings, can_flip: bool = True) -> Augmentation:
    """A random `Augmentation` within `settings`; never a flip when `can_flip` is False."""
    flip = bool(can_flip and rng.uniform() < settings.flip_probability)
    rotate = rng.uniform() < settings.rotation_probability
    angle = float(rng.uniform(-settings.rotation_degrees, settings.rotation_degrees)) if rotate else 0.0
    scale = float(rng.uniform(1.0 - settings.scale_jitter, 1.0 + settings.scale_jitter))
    shift = rng.uniform(-settings.center_jitter, settings.center_jitter, size=2)
    gain = rng.uniform(1.0 - settings.color_noise, 1.0 + settings.color_noise, size=3)
    return Augmentation(flip, angle, scale, (float(shift[0]), float(shift[1])), tuple(float(g) for g in gain))


def crop_plane_transform(augmentation: Augmentation) -> np.ndarray:
    """(2, 2) linear map of crop points about the crop centre: rotation Q, then the mirror diag(-1, 1) if flipped.

    Q = [[cos a, sin a], [-sin a, cos a]] turns the picture counter-clockwise on screen (y points down).
    """
    angle = np.deg2rad(augmentation.rotation_degrees)
    cos, sin = np.cos(angle), np.sin(angle)
    linear = np.array([[cos, sin], [-sin, cos]])
    if augmentation.flip:
        linear = np.diag([-1.0, 1.0]) @ linear
    return linear


def camera_transform(augmentation: Augmentation) -> np.ndarray:
    """(3, 3) map of camera-frame points matching `crop_plane_transform` under weak perspective: [[L, 0], [0, 1]].

    For a flip it is M Rz, a reflection: the orientation then becomes M Rz R M (see `augment_orientation`).
    """
    transform = np.eye(3)
    transform[:2, :2] = crop_plane_transform(augmentation)
    return transform


def augmented_crop_affine(box, augmentation: Augmentation, rescale: float = BOX_RESCALE,
                          crop_size: int = CROP_SIZE) -> np.ndarray:
    """(2, 3) map image pixels -> augmented crop pixels for one (4,) box (x, y, w, h).

    The box's square crop (side rescale * max(w, h)) is jittered (centre, side), then rotated and mirrored
    about the crop centre c = ((S - 1) / 2, (S - 1) / 2): p -> c + L (p - c).
    """
    base = crop_geometry_from_boxes(np.asarray(box, dtype=np.float64)[None], rescale, crop_size)
    side = base.sides[0]
    center = base.centers[0] + np.asarray(augmentation.center_shift) * side
    jittered = crop_geometry(center[None], [side * augmentation.scale], crop_size).crop_from_image[0]
    linear = crop_plane_transform(augmentation)
    middle = np.full(2, (crop_size - 1) / 2.0)
    return np.concatenate([linear @ jittered[:, :2], (linear @ (jittered[:, 2] - middle) + middle)[:, None]], axis=1)


def augment_keypoints(keypoints, crop_from_image: np.ndarray, flip: bool, crop_size: int = CROP_SIZE) -> np.ndarray:
    """(17, 3) image pixels + confidence -> (17, 3) normalised crop coordinates + confidence.

    Keypoints outside the crop ([-1, 1]^2) get confidence 0; a flip also swaps left and right rows.
    """
    keypoints = np.asarray(keypoints, dtype=np.float64)
    crop_points = apply_affines(crop_from_image[None], keypoints[None, :, :2])[0]
    normalised = crop_to_normalized(crop_points, crop_size)
    inside = np.all(np.abs(normalised) <= 1.0, axis=1)
    result = np.concatenate([normalised, (keypoints[:, 2] * inside)[:, None]], axis=1)
    return result[list(J17_FLIP_PERMUTATION)] if flip else result


def augment_orientation(rotation: np.ndarray, augmentation: Augmentation) -> np.ndarray:
    """(3, 3) global orientation R -> Rz R, or M Rz R M when flipped (a proper rotation either way)."""
    rotated = camera_transform(augmentation) @ np.asarray(rotation, dtype=np.float64)
    return rotated @ MIRROR if augmentation.flip else rotated


def flip_canonical_mesh(vertices: np.ndarray, mirror: np.ndarray) -> np.ndarray:
    """(V, 3) canonical mesh -> its mirror image M v[mirror], re-centred (same dtype)."""
    flipped = vertices[mirror] * MIRROR.diagonal().astype(vertices.dtype)
    return flipped - flipped.mean(axis=0, keepdims=True)


def augmented_crop(image: np.ndarray, crop_from_image: np.ndarray, color_gain,
                   crop_size: int = CROP_SIZE) -> np.ndarray:
    """Warp one crop -> (3, S, S) float32 ImageNet-normalised, with per-channel gains applied to the RGB values."""
    affine = crop_from_image[None]
    geometry = CropGeometry(np.zeros((1, 2)), np.ones(1), affine, invert_affines(affine), crop_size)
    crop = warp_crops_cv2(image, geometry)[0]
    gain = np.asarray(color_gain, dtype=np.float32)
    if np.all(gain == 1.0):
        return crop
    mean, std = IMAGENET_MEAN[:, None, None], IMAGENET_STD[:, None, None]
    rgb = np.clip((crop * std + mean) * gain[:, None, None], 0.0, 1.0)
    return ((rgb - mean) / std).astype(np.float32)


def augment_sample(image: np.ndarray, box, keypoints, rotation, canonical_vertices, augmentation: Augmentation,
                   mirror: np.ndarray | None = None, rescale: float = BOX_RESCALE,
                   crop_size: int = CROP_SIZE) -> dict[str, np.ndarray]:
    """One training sample with `augmentation` applied consistently to every annotation.

    image H x W x 3 RGB; box (4,) pixels; keypoints (17, 3) pixels + confidence; rotation (3, 3); canonical
    vertices (V, 3). Returns "image" (3, S, S) float32 normalised, "keypoints" (17, 3) float32 normalised crop
    coordinates + confidence, "rotation" (3, 3) float32, "canonical_vertices" (V, 3) float32.
    """
    if augmentation.flip and mirror is None:
        raise InputError("a flipped sample needs the vertex mirror map (mirror_permutation of the template)")
    affine = augmented_crop_affine(box, augmentation, rescale, crop_size)
    vertices = np.asarray(canonical_vertices, dtype=np.float32)
    if augmentation.flip:
        vertices = flip_canonical_mesh(vertices, mirror)
    return {
        "image": augmented_crop(image, affine, augmentation.color_gain, crop_size),
        "keypoints": augment_keypoints(keypoints, affine, augmentation.flip, crop_size).astype(np.float32),
        "rotation": augment_orientation(rotation, augmentation).astype(np.float32),
        "canonical_vertices": np.ascontiguousarray(vertices, dtype=np.float32),
    }


# ------------------------------------------------------------------------------------------------- dataset


class HPSDataset(torch.utils.data.Dataset):
    """Samples of an `HPSAnnotations` folder as tensors (keys of `augment_sample`, plus "index").

    Augmentations are drawn from a generator seeded by (seed, epoch, index): call `set_epoch` before each
    epoch's loader is created (workers copy the dataset then), and any worker count gives the same data.
    """

    def __init__(self, annotations: HPSAnnotations, augmentation: AugmentationSettings = NO_AUGMENTATION,
                 mirror: np.ndarray | None = None, box_rescale: float = BOX_RESCALE, seed: int = 0,
                 crop_size: int = CROP_SIZE):
        if mirror is not None and np.shape(mirror) != (annotations.num_vertices,):
            raise InputError(f"the mirror map must be ({annotations.num_vertices},) for these meshes, "
                             f"found {np.shape(mirror)}")
        if augmentation.flip_probability > 0 and mirror is None:
            LOG.warning("horizontal flips are disabled: no vertex mirror map was given")
        self.annotations = annotations
        self.augmentation = augmentation
        self.mirror = mirror
        self.box_rescale = box_rescale
        self.seed = seed
        self.crop_size = crop_size
        self.epoch = 0
        self._rotations = annotations.rotation_matrices()

    def __len__(self) -> int:
        return len(self.annotations)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def augmentation_of(self, index: int) -> Augmentation:
        """The augmentation sample `index` gets in the current epoch."""
        if self.augmentation == NO_AUGMENTATION:
            return IDENTITY
        rng = np.random.default_rng((self.seed, self.epoch, index))
        return draw_augmentation(rng, self.augmentation, can_flip=self.mirror is not None)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        annotations = self.annotations
        path = annotations.image_path(index)
        image = read_rgb_image(path)
        box = annotations.boxes[index]
        if not valid_box_mask(box[None], image.shape[:2])[0]:
            raise InputError(f"sample {index}: box {box.tolist()} does not overlap its {image.shape[0]}x"
                             f"{image.shape[1]} image {path}")
        sample = augment_sample(image, box, annotations.keypoints_2d[index], self._rotations[index],
                                annotations.canonical_vertices[index], self.augmentation_of(index), self.mirror,
                                self.box_rescale, self.crop_size)
        item = {key: torch.from_numpy(value) for key, value in sample.items()}
        item["index"] = torch.tensor(index, dtype=torch.int64)
        return item

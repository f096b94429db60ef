"""Camera models: the weak-perspective crop camera of VQ-HPS and its conversion to a full-image translation.

Frames and units:

* Camera frame: OpenCV, x right, y down, z forward, metres. The official code projects with
  `s * (X[:, :2] + t)` straight into image-oriented crop coordinates (`vq_hps/utils/eval.py`:
  `orthographic_projection`; `dataset_hmr.py` normalises the 2D keypoints with y pointing down), so the mesh is
  expressed in a y-down camera frame.
* Weak-perspective camera [s, tx, ty] (official `pred_cam`, as in SPIN / CLIFF / 4DHumans): a mesh point X
  lands at x_n = s * (X_x + tx), y_n = s * (X_y + ty) in normalised crop coordinates, the crop edges being
  -1 and +1 (`vqhps_ros.hps.crops.crop_to_normalized`). s is dimensionless (metres -> half crop sides).
* Intrinsics K: 3 x 3 [[fx, 0, cx], [0, fy, cy], [0, 0, 1]] in pixels, OpenCV pixel-centre convention.

Every function accepts numpy arrays or torch tensors and returns the type of its main input (the camera or
the points); the other arguments are converted to it (dtype and device).
"""

from __future__ import annotations

import numpy as np
import torch

from vqhps_ros.errors import InputError


def weak_perspective_project(points, cameras):
    """Points (..., V, 3) metres, cameras (..., 3) [s, tx, ty] -> (..., V, 2) normalised crop coordinates."""
    points = _as_float(points)
    _check_last_dim(points, 3, "points")
    _check_last_dim(cameras, 3, "cameras")
    cameras = _like(cameras, points)
    scale = cameras[..., None, 0:1]
    shift = cameras[..., None, 1:3]
    return scale * (points[..., :2] + shift)


def fit_weak_perspective(points_3d, points_2d, weights=None):
    """Least-squares weak-perspective camera of N point sets -> (N, 3) [s, tx, ty].

    points_3d: (N, V, 3) metres in the camera-aligned mesh frame; points_2d: (N, V, 2) normalised crop
    coordinates; weights: optional (N, V) non-negative. Minimises sum w |s (X_xy + t) - x|^2, which is linear
    in (s, s tx, s ty) and has a closed form. Points with a non-finite coordinate get weight zero (so points
    behind the camera, projected to NaN, are skipped). A set with fewer than two usable points, or no spread,
    gives a NaN camera.
    """
    points_3d = _as_float(points_3d)
    _check_last_dim(points_3d, 3, "points_3d")
    _check_last_dim(points_2d, 2, "points_2d")
    points_2d = _like(points_2d, points_3d)
    if tuple(points_3d.shape[:-1]) != tuple(points_2d.shape[:-1]):
        raise InputError(f"expected matching point counts, found points_3d {tuple(points_3d.shape)} "
                         f"and points_2d {tuple(points_2d.shape)}")
    xp = _namespace(points_3d)
    usable = xp.isfinite(points_3d).all(-1) & xp.isfinite(points_2d).all(-1)
    weight = usable * (1.0 if weights is None else _like(weights, points_3d))
    source = xp.where(usable[..., None], points_3d[..., :2], 0.0)
    target = xp.where(usable[..., None], points_2d, 0.0)
    total = weight.sum(-1)[..., None]  # (N, 1)
    source_mean = (weight[..., None] * source).sum(-2) / total  # (N, 2)
    target_mean = (weight[..., None] * target).sum(-2) / total
    source_centred = source - source_mean[..., None, :]
    target_centred = target - target_mean[..., None, :]
    covariance = (weight[..., None] * source_centred * target_centred).sum((-2, -1))
    variance = (weight[..., None] * source_centred**2).sum((-2, -1))
    enough = (usable.sum(-1) >= 2) & (variance > 0)
    scale = xp.where(enough, covariance / xp.where(enough, variance, 1.0), float("nan"))
    shift = target_mean / scale[..., None] - source_mean
    return xp.stack([scale, shift[..., 0], shift[..., 1]], -1)


def cam_crop_to_full(cameras, box_centers, box_sides, intrinsics):
    """Crop camera [s, tx, ty] (N, 3) -> translation (N, 3) metres of the mesh in the full camera frame.

    box_centers: (N, 2) pixels, the crop centre in the image; box_sides: (N,) pixels, the side b of the
    square crop (`CropGeometry.sides`, i.e. SPIN's 200 * scale); intrinsics: (3, 3) or (N, 3, 3).

    CLIFF / 4DHumans `cam_crop_to_full`: a weak-perspective crop camera seen by a pinhole camera of focal f
    has depth tz = 2 f / (s b), and the crop centre's offset from the principal point (cx, cy) moves the mesh
    sideways by that offset times tz / f: tx_full = tx + 2 (cx_box - cx) / (s b), same for y. The result
    reprojects the mesh's flat (z = 0) part exactly onto its crop prediction.

    fx != fy: a single s cannot match both focal lengths, so the depth uses the geometric mean
    f = sqrt(fx fy) (sizes along x and y are then off by sqrt(fx / fy) and sqrt(fy / fx)), and the sideways
    terms are solved per axis so that the mesh origin (the vertex centroid of a VQ-HPS mesh) still projects
    exactly onto the pixel the crop camera puts it at: tx_full = (cx_box - cx + b s tx / 2) tz / fx, which is
    the formula above when fx = fy. Skew must be zero. Cameras with s <= 0 or a non-finite value give NaN rows
    (a network output, not a caller error).
    """
    cameras = _as_float(cameras)
    _check_last_dim(cameras, 3, "cameras")
    xp = _namespace(cameras)
    centers = _like(box_centers, cameras)
    sides = _like(box_sides, cameras)
    fx, fy, cx, cy = _intrinsic_terms(intrinsics, cameras)
    scale = cameras[..., 0]
    usable = (scale > 0) & xp.isfinite(cameras).all(-1)
    safe_scale = xp.where(usable, scale, 1.0)
    depth = 2.0 * (fx * fy) ** 0.5 / (safe_scale * sides)
    half_side = sides / 2.0
    # pixel offset of the mesh origin from the principal point, back-projected at the mesh depth
    tx = (centers[..., 0] - cx + half_side * safe_scale * cameras[..., 1]) * depth / fx
    ty = (centers[..., 1] - cy + half_side * safe_scale * cameras[..., 2]) * depth / fy
    translation = xp.stack([tx, ty, depth], -1)
    return xp.where(usable[..., None], translation, float("nan"))


def project_points(points, intrinsics):
    """Pinhole projection: points (..., V, 3) metres in the camera frame -> (..., V, 2) pixels.

    intrinsics: (3, 3), or (..., 3, 3) with the batch shape of `points`. Points with z <= 0 (on or behind the
    camera plane) have no image: they come out as NaN (no exception, no warning), so a caller can mask them
    with `isfinite`.
    """
    points = _as_float(points)
    _check_last_dim(points, 3, "points")
    xp = _namespace(points)
    matrix = _checked_intrinsics(intrinsics, points)
    homogeneous = points @ xp.swapaxes(matrix, -1, -2)  # batched K (..., 3, 3) pairs with points (..., V, 3)
    depth = points[..., 2:3]  # equals the homogeneous z: K's last row is (0, 0, 1)
    in_front = depth > 0
    pixels = homogeneous[..., :2] / xp.where(in_front, depth, 1.0)
    return xp.where(in_front, pixels, float("nan"))


def _intrinsic_terms(intrinsics, like):
    """fx, fy, cx, cy of zero-skew (3, 3) or (N, 3, 3) intrinsics, broadcastable against (N,) rows of `like`."""
    matrix = _checked_intrinsics(intrinsics, like)
    skew = _to_numpy(matrix)[..., 0, 1]
    if np.any(skew != 0):
        raise InputError(f"expected zero skew K[0, 1], found {skew.tolist()}")
    return matrix[..., 0, 0], matrix[..., 1, 1], matrix[..., 0, 2], matrix[..., 1, 2]


def _checked_intrinsics(intrinsics, like):
    """Intrinsics as the array type of `like`, after checking shape (3, 3) or (N, 3, 3) and values."""
    matrix = _like(intrinsics, like)
    shape = tuple(matrix.shape)
    if len(shape) not in (2, 3) or shape[-2:] != (3, 3):
        raise InputError(f"expected intrinsics of shape (3, 3) or (N, 3, 3), found {shape}")
    values = _to_numpy(matrix)
    focal = values[..., [0, 1], [0, 1]]
    if not (np.all(np.isfinite(values)) and np.all(focal > 0)):
        raise InputError(f"expected finite intrinsics with fx, fy > 0, found focal lengths {focal.tolist()}")
    if not np.all(values[..., 2, :] == np.array([0.0, 0.0, 1.0])):
        raise InputError(f"expected the intrinsics' last row to be (0, 0, 1), found {values[..., 2, :].tolist()}")
    return matrix


def _to_numpy(values) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().numpy().astype(np.float64)
    return np.asarray(values, dtype=np.float64)


def _check_last_dim(values, size: int, name: str) -> None:
    shape = tuple(np.shape(values)) if not isinstance(values, torch.Tensor) else tuple(values.shape)
    if len(shape) == 0 or shape[-1] != size:
        raise InputError(f"expected {name} with a last dimension of {size}, found shape {shape}")


class _TorchNamespace:
    """The few array functions used here, with numpy's spelling, for torch tensors."""

    isfinite = staticmethod(torch.isfinite)
    swapaxes = staticmethod(torch.swapaxes)

    @staticmethod
    def where(condition, values, other):
        return torch.where(condition, values, torch.as_tensor(other, dtype=values.dtype, device=values.device))

    @staticmethod
    def stack(arrays, axis):
        return torch.stack(arrays, dim=axis)


def _namespace(values):
    return _TorchNamespace if isinstance(values, torch.Tensor) else np


def _as_float(values):
    """Main inputs: tensors must be floating point already; anything else becomes a float numpy array."""
    if isinstance(values, torch.Tensor):
        if not values.is_floating_point():
            raise InputError(f"expected a floating-point tensor, found {values.dtype}")
        return values
    values = np.asarray(values)
    return values if values.dtype in (np.float32, np.float64) else values.astype(np.float64)


def _like(values, reference):
    """`values` as the array type of `reference`: a tensor on its device and dtype, or a float numpy array."""
    if isinstance(reference, torch.Tensor):
        return torch.as_tensor(values, dtype=reference.dtype, device=reference.device)
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=np.result_type(reference, np.float32))

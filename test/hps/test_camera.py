"""Cameras: weak perspective in the crop, its full-image translation, pinhole projection, a round trip."""

import numpy as np
import pytest
import torch

from vqhps_ros.errors import InputError
from vqhps_ros.hps.camera import (
    cam_crop_to_full,
    fit_weak_perspective,
    project_points,
    weak_perspective_project,
)
from vqhps_ros.hps.crops import apply_affines, crop_geometry_from_boxes, crop_to_normalized

INTRINSICS = np.array([[1000.0, 0.0, 640.0], [0.0, 1000.0, 360.0], [0.0, 0.0, 1.0]])  # 1280 x 720 image

# Weak perspective treats the whole body as lying at one depth; a 0.3 m deep body 2.5-6 m away is off by a
# few per mille (measured <= 0.3 % of the distance), so 1 % of the distance leaves margin without hiding a
# wrong formula (a missing principal-point term alone is off by 10-60 %).
ROUND_TRIP_TOLERANCE = 0.01

TRANSLATIONS = [
    (0.0, 0.0, 5.0),  # straight ahead
    (0.0, 0.0, 2.5),  # close
    (1.5, -0.5, 6.0),  # right, up, far
    (-2.0, 0.8, 4.0),  # left, down
    (2.5, 1.0, 3.5),  # near the bottom-right corner of the image
]


@pytest.fixture(scope="module")
def body_points() -> np.ndarray:
    """2000 points filling a 0.5 x 1.7 x 0.3 m box (a standing person), centred on their mean."""
    points = np.random.default_rng(0).uniform(-0.5, 0.5, size=(2000, 3)) * np.array([0.5, 1.7, 0.3])
    return points - points.mean(axis=0)


def _crop_camera_of(points: np.ndarray, translation: np.ndarray):
    """Image the body, crop its box, and fit the crop's weak-perspective camera, as a network would predict."""
    pixels = project_points(points[None] + translation, INTRINSICS)
    low, high = pixels[0].min(axis=0), pixels[0].max(axis=0)
    geometry = crop_geometry_from_boxes(np.concatenate([low, high - low])[None])
    in_crop = crop_to_normalized(apply_affines(geometry.crop_from_image, pixels))
    return fit_weak_perspective(points[None], in_crop), geometry


@pytest.mark.parametrize("translation", TRANSLATIONS)
def test_round_trip_recovers_the_translation(body_points, translation):
    translation = np.array(translation)
    camera, geometry = _crop_camera_of(body_points, translation)
    assert camera[0, 0] > 0
    recovered = cam_crop_to_full(camera, geometry.centers, geometry.sides, INTRINSICS)[0]
    error = np.abs(recovered - translation) / np.linalg.norm(translation)
    assert np.all(error < ROUND_TRIP_TOLERANCE), (recovered, translation)


def test_flat_points_reproject_exactly():
    """For points at one depth weak perspective is exact: the full translation reprojects them onto the crop."""
    rng = np.random.default_rng(2)
    flat = np.concatenate([rng.uniform(-0.5, 0.5, (50, 2)), np.zeros((50, 1))], axis=1)[None]
    cameras = np.array([[0.9, 0.1, -0.2]])
    centres, sides = np.array([[900.0, 250.0]]), np.array([300.0])
    translation = cam_crop_to_full(cameras, centres, sides, INTRINSICS)
    pixels = project_points(flat + translation[:, None], INTRINSICS)
    expected = centres[:, None] + sides[:, None, None] / 2 * weak_perspective_project(flat, cameras)
    np.testing.assert_allclose(pixels, expected, atol=1e-9)


def test_matches_the_cliff_formula():
    cameras = np.array([[0.8, 0.05, -0.1], [1.3, -0.2, 0.3]])
    centres, sides = np.array([[700.0, 300.0], [100.0, 500.0]]), np.array([250.0, 120.0])
    f, cx, cy = 1000.0, 640.0, 360.0
    s, tx, ty = cameras.T
    expected = np.stack([
        tx + 2 * (centres[:, 0] - cx) / (s * sides),
        ty + 2 * (centres[:, 1] - cy) / (s * sides),
        2 * f / (s * sides),
    ], axis=1)
    np.testing.assert_allclose(cam_crop_to_full(cameras, centres, sides, INTRINSICS), expected, rtol=1e-12)


def test_unequal_focal_lengths_keep_the_origin_on_its_pixel():
    """fx != fy: depth from sqrt(fx fy); the mesh origin still projects where the crop camera puts it."""
    intrinsics = np.array([[1200.0, 0.0, 640.0], [0.0, 900.0, 360.0], [0.0, 0.0, 1.0]])
    cameras = np.array([[0.7, 0.1, -0.05]])
    centres, sides = np.array([[400.0, 500.0]]), np.array([200.0])
    translation = cam_crop_to_full(cameras, centres, sides, intrinsics)
    assert translation[0, 2] == pytest.approx(2 * np.sqrt(1200.0 * 900.0) / (0.7 * 200.0))
    origin_in_crop = weak_perspective_project(np.zeros((1, 1, 3)), cameras)
    origin_pixel = centres[:, None] + sides[:, None, None] / 2 * origin_in_crop
    np.testing.assert_allclose(project_points(translation[:, None], intrinsics), origin_pixel, atol=1e-9)


def test_per_sample_intrinsics_and_torch_agree_with_numpy():
    cameras = np.array([[0.8, 0.05, -0.1], [1.3, -0.2, 0.3]])
    centres, sides = np.array([[700.0, 300.0], [100.0, 500.0]]), np.array([250.0, 120.0])
    batched = np.stack([INTRINSICS, INTRINSICS * np.array([[2.0], [2.0], [1.0]])])
    expected = cam_crop_to_full(cameras, centres, sides, batched)
    np.testing.assert_allclose(expected[0], cam_crop_to_full(cameras[:1], centres[:1], sides[:1], INTRINSICS)[0])
    as_torch = cam_crop_to_full(torch.from_numpy(cameras), centres, sides, batched)
    assert isinstance(as_torch, torch.Tensor) and as_torch.dtype == torch.float64
    np.testing.assert_allclose(as_torch.numpy(), expected, rtol=1e-12)
    points = np.random.default_rng(3).uniform(-1, 1, (2, 5, 3)) + np.array([0.0, 0.0, 4.0])
    np.testing.assert_allclose(project_points(torch.from_numpy(points), batched).numpy(),
                               project_points(points, batched), rtol=1e-12)


def test_non_positive_scale_gives_nan_rows():
    cameras = np.array([[0.0, 0.1, 0.1], [-1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [np.nan, 0.0, 0.0]])
    centres, sides = np.full((4, 2), 300.0), np.full(4, 200.0)
    translation = cam_crop_to_full(cameras, centres, sides, INTRINSICS)
    np.testing.assert_array_equal(np.isnan(translation).all(axis=1), [True, True, False, True])


def test_points_behind_the_camera_project_to_nan():
    points = np.array([[[0.0, 0.0, 2.0], [0.5, 0.5, 0.0], [0.1, -0.1, -3.0], [0.2, 0.4, 1.0]]])
    with np.errstate(all="raise"):  # no division warnings either
        pixels = project_points(points, INTRINSICS)
    assert pixels.shape == (1, 4, 2)
    np.testing.assert_array_equal(np.isnan(pixels).all(axis=-1), [[False, True, True, False]])
    np.testing.assert_allclose(pixels[0, 0], [640.0, 360.0])
    np.testing.assert_allclose(pixels[0, 3], [840.0, 760.0])
    as_torch = project_points(torch.from_numpy(points), INTRINSICS)
    np.testing.assert_array_equal(torch.isnan(as_torch).numpy(), np.isnan(pixels))


def test_fit_skips_non_finite_points_and_recovers_an_exact_camera():
    points = np.random.default_rng(4).uniform(-1, 1, (2, 30, 3))
    cameras = np.array([[0.9, 0.2, -0.3], [1.4, -0.1, 0.05]])
    projected = weak_perspective_project(points, cameras)
    projected[0, :5] = np.nan  # e.g. points behind the camera
    np.testing.assert_allclose(fit_weak_perspective(points, projected), cameras, atol=1e-12)
    as_torch = fit_weak_perspective(torch.from_numpy(points), torch.from_numpy(projected))
    np.testing.assert_allclose(as_torch.numpy(), cameras, atol=1e-12)
    reprojected = weak_perspective_project(torch.from_numpy(points), torch.from_numpy(cameras))
    np.testing.assert_allclose(reprojected.numpy()[1], projected[1], atol=1e-12)
    single = fit_weak_perspective(points[:1, :1], projected[:1, 5:6])
    assert np.isnan(single).all()


@pytest.mark.parametrize("intrinsics, message", [
    (np.eye(4), r"\(3, 3\)"),
    (np.diag([0.0, 1000.0, 1.0]), "fx, fy > 0"),
    (np.array([[1000.0, 5.0, 640.0], [0.0, 1000.0, 360.0], [0.0, 0.0, 1.0]]), "skew"),
])
def test_bad_intrinsics_raise(intrinsics, message):
    with pytest.raises(InputError, match=message):
        cam_crop_to_full(np.array([[1.0, 0.0, 0.0]]), np.zeros((1, 2)), np.ones(1), intrinsics)


def test_bad_shapes_raise():
    with pytest.raises(InputError, match="last dimension of 3"):
        project_points(np.zeros((1, 4, 2)), INTRINSICS)
    with pytest.raises(InputError, match="last dimension of 3"):
        cam_crop_to_full(np.zeros((1, 2)), np.zeros((1, 2)), np.ones(1), INTRINSICS)
    with pytest.raises(InputError, match="matching point counts"):
        fit_weak_perspective(np.zeros((1, 4, 3)), np.zeros((1, 5, 2)))

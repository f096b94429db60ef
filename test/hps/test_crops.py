"""Person crops: cv2 and torch agree, padding, the affine maps, image and box checks."""

import numpy as np
import pytest
import torch

from vqhps_ros.errors import InputError
from vqhps_ros.hps.crops import (
    BOX_RESCALE,
    CROP_SIZE,
    IMAGENET_MEAN,
    IMAGENET_STD,
    apply_affines,
    as_rgb_float_image,
    crop_geometry_from_boxes,
    crop_geometry_from_center_scale,
    crop_people_cv2,
    crop_people_torch,
    crop_to_normalized,
    normalized_to_crop,
    valid_box_mask,
    validate_boxes,
)

HEIGHT, WIDTH = 240, 320
PAD_VALUE = -IMAGENET_MEAN / IMAGENET_STD  # a zero (black) pixel after normalisation


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    """A smooth, non-symmetric uint8 RGB test image (every channel different)."""
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float64)
    channels = [
        128 + 100 * np.sin(cols / 17.0 + rows / 29.0),
        128 + 100 * np.cos(cols / 23.0 - rows / 13.0),
        255 * cols / WIDTH,
    ]
    return np.clip(np.stack(channels, axis=-1), 0, 255).astype(np.uint8)


BOXES = np.array([
    [60.0, 30.0, 80.0, 150.0],  # inside
    [250.0, 150.0, 120.0, 140.0],  # over the bottom-right corner
    [-40.0, -25.0, 90.0, 70.0],  # over the top-left corner
    [101.3, 47.9, 23.4, 51.7],  # small, fractional: upsampled
])


def test_cv2_and_torch_crops_agree(image):
    """Mean |cv2 - torch| over all normalised crop values; measured 2.8e-7 (max 4.9e-5)."""
    by_cv2 = crop_people_cv2(image, BOXES)
    by_torch = crop_people_torch(image, BOXES)
    assert by_cv2.images.shape == (4, 3, CROP_SIZE, CROP_SIZE) and by_cv2.images.dtype == np.float32
    assert by_torch.images.shape == (4, 3, CROP_SIZE, CROP_SIZE) and by_torch.images.dtype == torch.float32
    difference = np.abs(by_cv2.images - by_torch.images.numpy())
    assert difference.mean() < 1e-4
    assert difference.max() < 2e-3
    np.testing.assert_array_equal(by_cv2.crop_from_image, by_torch.crop_from_image)


def test_torch_crops_accept_tensor_images(image):
    from_numpy = crop_people_torch(image, BOXES[:2]).images
    from_tensor = crop_people_torch(torch.from_numpy(image), BOXES[:2]).images
    torch.testing.assert_close(from_numpy, from_tensor, rtol=0, atol=0)


def test_box_partly_outside_is_zero_padded(image):
    crops = crop_people_cv2(image, BOXES[2:3])
    torch_crops = crop_people_torch(image, BOXES[2:3]).images.numpy()
    # The square spans image x in [-54, 54) at zoom 224/108: crop column 20 sits at image x ~ -44, row 20 at
    # y ~ -44, both far outside; the bottom-right crop corner is inside the image.
    for images in (crops.images, torch_crops):
        np.testing.assert_allclose(images[0, :, 20, 20], PAD_VALUE, atol=1e-6)
        np.testing.assert_allclose(images[0, :, :100, 0], PAD_VALUE[:, None] * np.ones((1, 100)), atol=1e-6)
        assert np.all(np.abs(images[0, :, 200, 200] - PAD_VALUE) > 0.1)


def test_known_pixel_lands_where_the_affine_says():
    """At zoom 1 with an integer offset, a single bright pixel lands on exactly one crop pixel."""
    image = np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)
    source = np.array([150.0, 90.0])
    image[int(source[1]), int(source[0])] = 255
    box = np.array([[10.5, 5.5, 224.0, 150.0]])  # centre (122.5, 80.5), side 224: crop = image - (11, -31)
    target = apply_affines(crop_geometry_from_boxes(box, rescale=1.0).crop_from_image, source[None, None])[0, 0]
    np.testing.assert_allclose(target, [139.0, 121.0])
    for crop in (crop_people_cv2, crop_people_torch):
        crops = np.asarray(crop(image, box, rescale=1.0).images)
        lit = np.argwhere(np.abs(crops[0, 0] - PAD_VALUE[0]) > 1e-3)
        np.testing.assert_array_equal(lit, [[121, 139]])  # (row, column)
        # grid_sample's float32 grid puts the sample ~1e-5 pixel off, hence 1e-4 rather than exact
        assert crops[0, 0, 121, 139] == pytest.approx((1.0 - IMAGENET_MEAN[0]) / IMAGENET_STD[0], abs=1e-4)


def test_sub_pixel_positions_follow_the_affine():
    """An image whose channels encode x and y (bilinear is exact on linear ramps) shows where each crop pixel
    sampled from; it must be image_from_crop of that pixel (measured within 3e-5 pixel for both)."""
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float64)
    ramps = np.stack([cols / WIDTH, rows / HEIGHT, np.zeros_like(cols)], axis=-1)
    box = np.array([[100.0, 60.0, 37.3, 51.1]])  # zoom ~3.6, fractional offsets, fully inside
    for crop in (crop_people_cv2, crop_people_torch):
        crops = crop(ramps, box)
        decoded = np.asarray(crops.images[0, :2]) * IMAGENET_STD[:2, None, None] + IMAGENET_MEAN[:2, None, None]
        sampled = np.stack([decoded[0] * WIDTH, decoded[1] * HEIGHT], axis=-1)  # (S, S, 2) image x, y
        v, u = np.mgrid[0:CROP_SIZE, 0:CROP_SIZE].astype(np.float64)
        expected = apply_affines(crops.image_from_crop, np.stack([u, v], -1).reshape(1, -1, 2))
        error = np.abs(sampled.reshape(-1, 2) - expected[0])
        assert error.max() < 1e-3, crop.__name__


def test_geometry_puts_the_box_centre_at_the_crop_centre():
    geometry = crop_geometry_from_boxes(BOXES)
    centres = BOXES[:, :2] + BOXES[:, 2:] / 2
    np.testing.assert_allclose(geometry.centers, centres)
    np.testing.assert_allclose(geometry.sides, BOX_RESCALE * BOXES[:, 2:].max(axis=1))
    in_crop = apply_affines(geometry.crop_from_image, centres[:, None])[:, 0]
    np.testing.assert_allclose(in_crop, (CROP_SIZE - 1) / 2)
    np.testing.assert_allclose(crop_to_normalized(in_crop), 0.0, atol=1e-12)
    # the square's left/top edge (centre - side / 2) maps to the normalised crop edge -1
    corner = centres - geometry.sides[:, None] / 2
    np.testing.assert_allclose(crop_to_normalized(apply_affines(geometry.crop_from_image, corner[:, None])), -1.0)


def test_affine_round_trip():
    geometry = crop_geometry_from_boxes(BOXES)
    points = np.random.default_rng(1).uniform(-50, 400, size=(len(BOXES), 7, 2))
    there = apply_affines(geometry.crop_from_image, points)
    back = apply_affines(geometry.image_from_crop, there)
    np.testing.assert_allclose(back, points, atol=1e-9)
    np.testing.assert_allclose(normalized_to_crop(crop_to_normalized(there)), there, atol=1e-9)


def test_center_scale_matches_spin_side():
    geometry = crop_geometry_from_center_scale([[100.0, 80.0]], [1.5])
    assert geometry.sides[0] == pytest.approx(300.0)
    assert geometry.scales[0] == pytest.approx(1.5)


def test_image_conversion_rules():
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    rgb = as_rgb_float_image(gray)
    assert rgb.shape == (3, 4, 3) and rgb.dtype == np.float32
    np.testing.assert_allclose(rgb[..., 1], gray / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(as_rgb_float_image(gray[..., None]), rgb)
    rgba = np.concatenate([np.stack([gray] * 3, -1), np.full((3, 4, 1), 7, np.uint8)], axis=-1)
    np.testing.assert_array_equal(as_rgb_float_image(rgba), rgb)  # alpha dropped
    floats = np.full((3, 4, 3), 0.5, dtype=np.float64)
    np.testing.assert_array_equal(as_rgb_float_image(floats), np.float32(0.5))


def test_grayscale_and_float_images_crop_like_rgb(image):
    reference = crop_people_cv2(image, BOXES[:1]).images
    as_float = crop_people_torch(image.astype(np.float32) / 255.0, BOXES[:1]).images.numpy()
    np.testing.assert_allclose(as_float, reference, atol=1e-4)
    gray = image[..., 0]
    gray_crop = crop_people_cv2(gray, BOXES[:1]).images
    red_crop = reference[:, 0] * IMAGENET_STD[0] + IMAGENET_MEAN[0]
    np.testing.assert_allclose(gray_crop[:, 1] * IMAGENET_STD[1] + IMAGENET_MEAN[1], red_crop, atol=1e-5)


@pytest.mark.parametrize("bad_image, expected", [
    (np.zeros((10, 10, 3), dtype=np.uint16), "dtype"),
    (np.zeros((10, 10, 3), dtype=np.int64), "dtype"),
    (np.zeros((10, 10, 2), dtype=np.uint8), "shape"),
    (np.zeros((2, 10, 10, 3), dtype=np.uint8), "shape"),
    (np.zeros((0, 10, 3), dtype=np.uint8), "non-empty"),
    (np.full((10, 10, 3), 255.0, dtype=np.float32), r"\[0, 1\]"),
    (np.full((10, 10, 3), np.nan, dtype=np.float32), r"\[0, 1\]"),
])
def test_bad_images_raise(bad_image, expected):
    box = np.array([[1.0, 1.0, 5.0, 5.0]])
    for crop in (crop_people_cv2, crop_people_torch):
        with pytest.raises(InputError, match=expected):
            crop(bad_image, box)


@pytest.mark.parametrize("bad_box, reason", [
    ([10.0, 10.0, 0.0, 20.0], "positive width and height"),
    ([10.0, 10.0, 20.0, -5.0], "positive width and height"),
    ([np.nan, 10.0, 20.0, 20.0], "finite"),
    ([10.0, 10.0, np.inf, 20.0], "finite"),
    ([WIDTH + 5.0, 10.0, 20.0, 20.0], "overlap"),
    ([-50.0, -50.0, 20.0, 20.0], "overlap"),
])
def test_bad_boxes_raise_naming_the_box(image, bad_box, reason):
    boxes = np.array([BOXES[0], bad_box])
    for crop in (crop_people_cv2, crop_people_torch):
        with pytest.raises(InputError, match=rf"box 1 of 2 .*{reason}"):
            crop(image, boxes)


def test_valid_box_mask_flags_bad_boxes_without_raising():
    boxes = np.array([
        BOXES[0],
        [10.0, 10.0, 0.0, 20.0],
        [np.nan, 0.0, 1.0, 1.0],
        [WIDTH + 1.0, 0.0, 10.0, 10.0],
        BOXES[2],
    ])
    np.testing.assert_array_equal(valid_box_mask(boxes, (HEIGHT, WIDTH)), [True, False, False, False, True])
    np.testing.assert_array_equal(validate_boxes(boxes[[0, 4]], (HEIGHT, WIDTH)), boxes[[0, 4]])


def test_box_array_shape_is_checked(image):
    with pytest.raises(InputError, match=r"\(N, 4\)"):
        crop_people_cv2(image, np.zeros((2, 3)))


def test_no_boxes_give_empty_batches(image):
    empty = np.zeros((0, 4))
    assert crop_people_cv2(image, empty).images.shape == (0, 3, CROP_SIZE, CROP_SIZE)
    assert crop_people_torch(image, empty).images.shape == (0, 3, CROP_SIZE, CROP_SIZE)
    assert valid_box_mask(empty, (HEIGHT, WIDTH)).shape == (0,)

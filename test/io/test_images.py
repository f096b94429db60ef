"""ROS image decoding: every raw encoding, row padding, byte order, compressed images, errors, real recorded bags."""

import array
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from vqhps_ros.errors import InputError
from vqhps_ros.io import SUPPORTED_ENCODINGS, decode_compressed_image, decode_image, decode_raw_image

HEIGHT, WIDTH = 48, 64


def smooth_rgb(height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """Gradients and a slow wave: smooth enough that 4:2:2 chroma sharing and JPEG lose little."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    channels = (255 * x / (width - 1), 255 * y / (height - 1), 127.5 + 127 * np.sin(x / 12 + y / 9))
    return np.rint(np.stack(channels, axis=-1)).astype(np.uint8)


SOURCE = smooth_rgb()
GRAY = cv2.cvtColor(SOURCE, cv2.COLOR_RGB2GRAY)
GRAY_AS_RGB = np.repeat(GRAY[..., None], 3, axis=2)


def to_bt601_video_range(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """RGB -> Y (H, W), U and V (H, W / 2): BT.601, Y in 16..235, chroma averaged over horizontal pixel pairs."""
    r, g, b = np.moveaxis(rgb.astype(np.float64), -1, 0)
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    u = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    v = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255

    def pair_mean(plane):
        return (plane[:, 0::2] + plane[:, 1::2]) / 2

    return tuple(np.clip(np.rint(plane), 0, 255).astype(np.uint8) for plane in (y, pair_mean(u), pair_mean(v)))


def packed_422(rgb: np.ndarray, order: str) -> np.ndarray:
    """(H, 2 W) bytes in the given order of one pixel pair, "UYVY" or "YUYV"."""
    y, u, v = to_bt601_video_range(rgb)
    planes = {"Y0": y[:, 0::2], "Y1": y[:, 1::2], "U": u, "V": v}
    names = ["U", "Y0", "V", "Y1"] if order == "UYVY" else ["Y0", "U", "Y1", "V"]
    return np.stack([planes[name] for name in names], axis=-1).reshape(rgb.shape[0], -1)


def full_range_16(pixels: np.ndarray) -> np.ndarray:
    """uint8 -> uint16 whose high byte is the pixel, as from a full-range camera; the low byte differs from the
    high one, so that the two byte orders give different bytes."""
    return pixels.astype(np.uint16) * 256 + (255 - pixels)


def sixteen_bit(pixels: np.ndarray, big_endian: bool = False) -> np.ndarray:
    """uint8 pixels -> (H, row bytes) of their `full_range_16` values in the given byte order."""
    values = full_range_16(pixels).astype(">u2" if big_endian else "<u2")
    return values.view(np.uint8).reshape(pixels.shape[0], -1)


def bytes_of(pixels: np.ndarray) -> np.ndarray:
    return pixels.reshape(pixels.shape[0], -1)


# encoding -> (function of big_endian giving (H, row bytes) of SOURCE so encoded, the expected RGB, exact or not)
ENCODED = {
    "rgb8": (lambda big: bytes_of(SOURCE), SOURCE, True),
    "bgr8": (lambda big: bytes_of(cv2.cvtColor(SOURCE, cv2.COLOR_RGB2BGR)), SOURCE, True),
    "rgba8": (lambda big: bytes_of(cv2.cvtColor(SOURCE, cv2.COLOR_RGB2RGBA)), SOURCE, True),
    "bgra8": (lambda big: bytes_of(cv2.cvtColor(SOURCE, cv2.COLOR_RGB2BGRA)), SOURCE, True),
    "rgb16": (lambda big: sixteen_bit(SOURCE, big), SOURCE, True),
    "bgr16": (lambda big: sixteen_bit(cv2.cvtColor(SOURCE, cv2.COLOR_RGB2BGR), big), SOURCE, True),
    "rgba16": (lambda big: sixteen_bit(cv2.cvtColor(SOURCE, cv2.COLOR_RGB2RGBA), big), SOURCE, True),
    "bgra16": (lambda big: sixteen_bit(cv2.cvtColor(SOURCE, cv2.COLOR_RGB2BGRA), big), SOURCE, True),
    "mono8": (lambda big: GRAY, GRAY_AS_RGB, True),
    "mono16": (lambda big: sixteen_bit(GRAY, big), GRAY_AS_RGB, True),
    "8UC1": (lambda big: GRAY, GRAY_AS_RGB, True),
    "8UC3": (lambda big: bytes_of(SOURCE), SOURCE, True),
    "16UC1": (lambda big: sixteen_bit(GRAY, big), GRAY_AS_RGB, True),
    "uyvy": (lambda big: packed_422(SOURCE, "UYVY"), SOURCE, False),
    "yuv422": (lambda big: packed_422(SOURCE, "UYVY"), SOURCE, False),
    "yuyv": (lambda big: packed_422(SOURCE, "YUYV"), SOURCE, False),
    "yuv422_yuy2": (lambda big: packed_422(SOURCE, "YUYV"), SOURCE, False),
}
SIXTEEN_BIT = ("rgb16", "bgr16", "rgba16", "bgra16", "mono16", "16UC1")


def raw_message(encoding: str, rows: np.ndarray, big_endian: bool = False, padding: int = 0, seed: int = 0):
    """A sensor_msgs/Image look-alike; `padding` bytes of random garbage end every row."""
    garbage = np.random.default_rng(seed).integers(0, 256, (rows.shape[0], padding), dtype=np.uint8)
    padded = np.concatenate([rows, garbage], axis=1)
    return SimpleNamespace(height=rows.shape[0], width=WIDTH, encoding=encoding, is_bigendian=int(big_endian),
                           step=padded.shape[1], data=padded.tobytes())


def encoded_message(encoding: str, big_endian: bool = False, padding: int = 0):
    make_rows, expected, exact = ENCODED[encoding]
    return raw_message(encoding, make_rows(big_endian), big_endian, padding), expected, exact


def assert_matches(decoded: np.ndarray, expected: np.ndarray, exact: bool):
    assert decoded.shape == expected.shape and decoded.dtype == np.uint8
    if exact:
        np.testing.assert_array_equal(decoded, expected)
    else:
        error = np.abs(decoded.astype(np.int16) - expected)
        assert error.mean() < 3 and error.max() <= 16, (error.mean(), error.max())  # a wrong byte order: > 50


def test_the_encodings_of_ros_image_encodings_hpp_are_all_supported_and_tested():
    required = {"rgb8", "bgr8", "rgba8", "bgra8", "mono8", "mono16", "8UC1", "8UC3", "16UC1",
                "yuv422", "yuv422_yuy2", "uyvy", "yuyv"}
    assert required <= set(SUPPORTED_ENCODINGS)
    assert set(ENCODED) == set(SUPPORTED_ENCODINGS) and len(SUPPORTED_ENCODINGS) == len(set(SUPPORTED_ENCODINGS))


@pytest.mark.parametrize("encoding", SUPPORTED_ENCODINGS)
def test_every_encoding_decodes_to_the_source_image(encoding):
    message, expected, exact = encoded_message(encoding)
    assert_matches(decode_raw_image(message), expected, exact)


@pytest.mark.parametrize("encoding", SUPPORTED_ENCODINGS)
def test_row_padding_with_garbage_changes_nothing(encoding):
    unpadded = decode_raw_image(encoded_message(encoding)[0])
    for padding in (1, 7, 64):  # odd paddings misalign 16-bit rows
        np.testing.assert_array_equal(decode_raw_image(encoded_message(encoding, padding=padding)[0]), unpadded)


@pytest.mark.parametrize("encoding", SIXTEEN_BIT)
@pytest.mark.parametrize("padding", [0, 3])
def test_big_and_little_endian_16_bit_give_the_same_image(encoding, padding):
    little, expected, _ = encoded_message(encoding, big_endian=False, padding=padding)
    big, _, _ = encoded_message(encoding, big_endian=True, padding=padding)
    assert little.data != big.data
    np.testing.assert_array_equal(decode_raw_image(big), expected)
    np.testing.assert_array_equal(decode_raw_image(little), expected)


@pytest.mark.parametrize("encoding", ["mono16", "16UC1"])
def test_16_bit_mono_shifts_the_frames_highest_bit_to_bit_7(encoding):
    gradient = np.linspace(0, 1, HEIGHT * WIDTH).reshape(HEIGHT, WIDTH)

    def decoded(values):
        rows = values.astype("<u2").view(np.uint8).reshape(HEIGHT, -1)
        return decode_raw_image(raw_message(encoding, rows))[..., 0]

    twelve_bit = np.rint(4095 * gradient).astype(np.uint16)  # a 12-bit sensor in the low bits: >> 4, not black
    np.testing.assert_array_equal(decoded(twelve_bit), twelve_bit >> 4)
    assert decoded(twelve_bit).max() == 255
    full_range = np.rint(65535 * gradient).astype(np.uint16)
    np.testing.assert_array_equal(decoded(full_range), full_range >> 8)
    small = np.full((HEIGHT, WIDTH), 200, np.uint16)  # fits in 8 bits: unchanged
    np.testing.assert_array_equal(decoded(small), small)
    np.testing.assert_array_equal(decoded(np.zeros((HEIGHT, WIDTH), np.uint16)), 0)


@pytest.mark.parametrize("container", [bytes, bytearray, lambda raw: array.array("B", raw),
                                       lambda raw: np.frombuffer(raw, np.uint8), lambda raw: list(raw)],
                         ids=["bytes", "bytearray", "array", "numpy", "list"])
def test_message_data_may_be_any_byte_container(container):
    message, expected, _ = encoded_message("bgr8", padding=5)
    message.data = container(message.data)
    np.testing.assert_array_equal(decode_raw_image(message), expected)


def test_decoded_images_are_writable_and_do_not_share_the_message_buffer():
    message, expected, _ = encoded_message("rgb8")
    message.data = np.frombuffer(message.data, np.uint8)  # read-only, like a deserialised message
    decoded = decode_raw_image(message)
    assert decoded.flags.writeable and decoded.flags.c_contiguous
    assert not np.shares_memory(decoded, message.data)


def test_messages_without_is_bigendian_read_as_little_endian():
    message, expected, _ = encoded_message("mono16")
    del message.is_bigendian
    np.testing.assert_array_equal(decode_raw_image(message), expected)


def bad_raw(encoding, width, height, step, size):
    return SimpleNamespace(encoding=encoding, width=width, height=height, step=step, is_bigendian=0,
                           data=bytes(size))


@pytest.mark.parametrize("message, expected", [
    (bad_raw("bayer_rggb8", 4, 2, 4, 8),
     r"unsupported image encoding 'bayer_rggb8' \(4x2, step 4, 8 bytes\); supported: rgb8, bgr8"),
    (bad_raw("RGB8", 4, 2, 12, 24), r"unsupported image encoding 'RGB8' \(4x2, step 12, 24 bytes\)"),
    (bad_raw("rgb8", 5, 4, 15, 30),
     r"rgb8 image 5x4 needs 4 rows of at least 15 bytes, found step 15 and 30 bytes \(expected step x height = 60\)"),
    (bad_raw("mono16", 5, 4, 8, 40), r"mono16 image 5x4 needs rows of at least 10 bytes, found step 8 \(40 bytes\)"),
    (bad_raw("uyvy", 5, 2, 10, 20), r"uyvy image 5x2 has an odd width; YUV 4:2:2 .* must be even"),
    (bad_raw("yuv422_yuy2", 3, 2, 6, 12), r"yuv422_yuy2 image 3x2 has an odd width"),
    (bad_raw("rgb8", 0, 4, 0, 0), r"rgb8 image 0x4 has no pixels \(step 0, 0 bytes\)"),
    (SimpleNamespace(encoding="rgb8", width=1, height=1, step=3, data=None),
     r"image data must be bytes or byte values, found NoneType"),
], ids=["unknown", "wrong case", "too few bytes", "step below row", "odd uyvy", "odd yuyv", "empty", "no data"])
def test_bad_raw_images_say_what_was_expected_and_found(message, expected):
    with pytest.raises(InputError, match=expected):
        decode_image(message)


def encoded_file(extension: str, pixels: np.ndarray, *params) -> bytes:
    ok, encoded = cv2.imencode(extension, pixels, list(params))
    assert ok
    return encoded.tobytes()


def compressed(data: bytes, format: str = "jpeg"):
    return SimpleNamespace(format=format, data=np.frombuffer(data, np.uint8))


BGR = cv2.cvtColor(SOURCE, cv2.COLOR_RGB2BGR)


@pytest.mark.parametrize("file, expected, exact", [
    (encoded_file(".jpg", BGR, cv2.IMWRITE_JPEG_QUALITY, 95), SOURCE, False),
    (encoded_file(".png", BGR), SOURCE, True),
    (encoded_file(".png", cv2.cvtColor(SOURCE, cv2.COLOR_RGB2BGRA)), SOURCE, True),
    (encoded_file(".png", GRAY), GRAY_AS_RGB, True),
    (encoded_file(".jpg", GRAY), GRAY_AS_RGB, False),
    (encoded_file(".png", full_range_16(BGR)), SOURCE, True),
    (encoded_file(".png", full_range_16(GRAY)), GRAY_AS_RGB, True),
], ids=["jpeg", "png", "png with alpha", "gray png", "gray jpeg", "16-bit png", "16-bit gray png"])
def test_compressed_images_become_8_bit_rgb(file, expected, exact):
    assert_matches(decode_compressed_image(compressed(file, "png")), expected, exact)


def test_the_format_string_does_not_change_decoding():
    jpeg = encoded_file(".jpg", BGR)
    decoded = [decode_image(compressed(jpeg, name)) for name in ("jpeg", "rgb8; jpeg compressed bgr8", "png", "")]
    for other in decoded[1:]:
        np.testing.assert_array_equal(other, decoded[0])


@pytest.mark.parametrize("message, expected", [
    (compressed(b"not a jpeg", "rgb8; jpeg compressed bgr8"),
     r"compressed image \(format 'rgb8; jpeg compressed bgr8', 10 bytes\) does not decode; expected .* JPEG or PNG"),
    (compressed(b"", "png"), r"compressed image \(format 'png', 0 bytes\) does not decode"),
    (compressed(encoded_file(".jpg", BGR)[:100]), r"\(format 'jpeg', 100 bytes\) does not decode"),
    (compressed(encoded_file(".tiff", SOURCE.astype(np.float32)), "tiff"),
     r"decodes to 64x48 with 3 channel\(s\) of float32; expected 1, 3 or 4 channels of uint8 or uint16"),
    (SimpleNamespace(data=b"\xff\xd8"), r"expected a sensor_msgs Image \(with `encoding`\) or CompressedImage"),
], ids=["garbage", "empty", "truncated", "float tiff", "neither type"])
def test_bad_compressed_images_say_what_was_expected_and_found(message, expected):
    with pytest.raises(InputError, match=expected):
        decode_image(message)


def test_decode_image_dispatches_on_the_message_fields():
    raw, expected, _ = encoded_message("bgra8")
    np.testing.assert_array_equal(decode_image(raw), expected)
    png = compressed(encoded_file(".png", BGR), "png")
    np.testing.assert_array_equal(decode_image(png), decode_compressed_image(png))


def first_message(bag, msgtype: str):
    from rosbags.highlevel import AnyReader

    with AnyReader([bag]) as reader:
        connection = next(c for c in reader.connections if c.msgtype == msgtype)
        _, _, raw = next(reader.messages(connections=[connection]))
        return reader.deserialize(raw, connection.msgtype)


def test_rgb8_image_recorded_by_ros2_decodes(shared_bags):
    message = first_message(shared_bags / "ros2_jazzy_photos_mcap", "sensor_msgs/msg/Image")
    assert message.encoding == "rgb8" and (message.height, message.width) == (240, 320)
    decoded = decode_image(message)
    assert decoded.shape == (240, 320, 3) and decoded.dtype == np.uint8
    rows = np.asarray(message.data).reshape(240, message.step)[:, : 320 * 3]
    np.testing.assert_array_equal(decoded, rows.reshape(240, 320, 3))
    assert decoded.std() > 10  # a photograph, not a blank frame


def test_jpeg_compressed_image_recorded_by_ros2_decodes(shared_bags):
    message = first_message(shared_bags / "ros2_jazzy_photos_sqlite3", "sensor_msgs/msg/CompressedImage")
    assert message.format == "jpg"  # what this recorder wrote; decoding does not read it
    decoded = decode_image(message)
    assert decoded.shape == (480, 640, 3) and decoded.dtype == np.uint8
    by_opencv = cv2.cvtColor(cv2.imdecode(np.asarray(message.data), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(decoded, by_opencv)

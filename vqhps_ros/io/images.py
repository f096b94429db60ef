"""ROS image messages -> H x W x 3 uint8 RGB arrays: the one decoder of sensor_msgs/Image and CompressedImage.

Raw encodings carry the names of sensor_msgs/image_encodings.hpp (ROS 2 Jazzy), including the deprecated ones that
drivers still send ("yuv422" for "uyvy", "yuv422_yuy2" for "yuyv"). Messages are duck-typed: rosbags dataclasses
and rclpy messages both work, and `data` may be bytes, an array.array, a numpy array or a list of ints.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import InputError


@dataclass(frozen=True)
class _Layout:
    """How a raw encoding stores one pixel."""

    channels: int  # values per pixel; packed YUV 4:2:2 has two (a luma and one of the pair's two chroma values)
    bytes_per_value: int  # 1 or 2
    to_rgb: int | None  # cv2.cvtColor code applied once the values are 8-bit; None when they already are RGB
    pairs_share_chroma: bool = False  # YUV 4:2:2: two neighbouring pixels share U and V, so the width must be even

    @property
    def bytes_per_pixel(self) -> int:
        return self.channels * self.bytes_per_value


_UYVY = _Layout(2, 1, cv2.COLOR_YUV2RGB_UYVY, pairs_share_chroma=True)  # bytes U0 Y0 V0 Y1
_YUYV = _Layout(2, 1, cv2.COLOR_YUV2RGB_YUY2, pairs_share_chroma=True)  # bytes Y0 U0 Y1 V0

_LAYOUTS = {
    "rgb8": _Layout(3, 1, None),
    "bgr8": _Layout(3, 1, cv2.COLOR_BGR2RGB),
    "rgba8": _Layout(4, 1, cv2.COLOR_RGBA2RGB),
    "bgra8": _Layout(4, 1, cv2.COLOR_BGRA2RGB),
    "rgb16": _Layout(3, 2, None),
    "bgr16": _Layout(3, 2, cv2.COLOR_BGR2RGB),
    "rgba16": _Layout(4, 2, cv2.COLOR_RGBA2RGB),
    "bgra16": _Layout(4, 2, cv2.COLOR_BGRA2RGB),
    "mono8": _Layout(1, 1, cv2.COLOR_GRAY2RGB),
    "mono16": _Layout(1, 2, cv2.COLOR_GRAY2RGB),
    "8UC1": _Layout(1, 1, cv2.COLOR_GRAY2RGB),
    "8UC3": _Layout(3, 1, None),  # an OpenCV type name says nothing of channel order; taken as RGB
    "16UC1": _Layout(1, 2, cv2.COLOR_GRAY2RGB),  # read like mono16 (often depth in mm: only good for display)
    # OpenCV decodes 4:2:2 as BT.601 video range (Y 16..235), what V4L2 cameras send by default.
    "uyvy": _UYVY,
    "yuv422": _UYVY,
    "yuyv": _YUYV,
    "yuv422_yuy2": _YUYV,
}
SUPPORTED_ENCODINGS: tuple[str, ...] = tuple(_LAYOUTS)

# cv2.imdecode gives gray, BGR or BGRA whatever the file was
_DECODED_TO_RGB = {1: cv2.COLOR_GRAY2RGB, 3: cv2.COLOR_BGR2RGB, 4: cv2.COLOR_BGRA2RGB}


def decode_image(message) -> np.ndarray:
    """sensor_msgs/Image or CompressedImage -> H x W x 3 uint8 RGB; a `format` field marks a CompressedImage."""
    if hasattr(message, "format"):
        return decode_compressed_image(message)
    if hasattr(message, "encoding"):
        return decode_raw_image(message)
    raise InputError(
        f"expected a sensor_msgs Image (with `encoding`) or CompressedImage (with `format`), "
        f"found {type(message).__name__} without either"
    )


def decode_raw_image(message) -> np.ndarray:
    """sensor_msgs/Image -> new H x W x 3 uint8 RGB array, for every encoding of SUPPORTED_ENCODINGS.

    Row padding (`step` beyond width x bytes per pixel) is skipped; 16-bit values are big-endian when
    `is_bigendian` is set and become 8-bit by `_to_8bit`. Anything unreadable raises InputError.
    """
    encoding = str(message.encoding)
    height, width, step = int(message.height), int(message.width), int(message.step)
    data = _byte_array(message.data)
    layout = _LAYOUTS.get(encoding)
    if layout is None:
        raise InputError(
            f"unsupported image encoding {encoding!r} ({width}x{height}, step {step}, {data.size} bytes); "
            f"supported: {', '.join(SUPPORTED_ENCODINGS)}"
        )
    _check_raw_size(layout, encoding, height, width, step, data.size)
    rows = data[: step * height].reshape(height, step)[:, : width * layout.bytes_per_pixel]
    values = _values(rows, layout.bytes_per_value, big_endian=bool(getattr(message, "is_bigendian", False)))
    return _to_rgb(values.reshape(height, width, layout.channels), layout.to_rgb)


def decode_compressed_image(message) -> np.ndarray:
    """sensor_msgs/CompressedImage -> new H x W x 3 uint8 RGB array: JPEG, PNG or anything cv2.imdecode reads.

    The bytes' own header decides how they decode. `format` ("jpeg", "png", "rgb8; jpeg compressed bgr8", ...) is
    only quoted in error messages: publishers fill it inconsistently, and whatever it claims, imdecode returns gray,
    BGR or BGRA. Grayscale becomes RGB, alpha is dropped, 16-bit PNGs become 8-bit by `_to_8bit`. A
    compressedDepth image (a rosbag header before the PNG) does not decode.
    """
    data = _byte_array(message.data)
    described = f"compressed image (format {message.format!r}, {data.size} bytes)"
    # UNCHANGED keeps 16-bit depth and gray/alpha channels, so that they convert here by this module's rules
    image = _imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise InputError(f"{described} does not decode; expected bytes cv2.imdecode reads, such as JPEG or PNG")
    channels = 1 if image.ndim == 2 else image.shape[2]
    if image.dtype not in (np.uint8, np.uint16) or channels not in _DECODED_TO_RGB:
        raise InputError(
            f"{described} decodes to {image.shape[1]}x{image.shape[0]} with {channels} channel(s) of {image.dtype}; "
            f"expected 1, 3 or 4 channels of uint8 or uint16"
        )
    return _to_rgb(image, _DECODED_TO_RGB[channels])


def camera_matrix(camera_info) -> np.ndarray:
    """sensor_msgs/CameraInfo -> (3, 3) K; a zero focal length (an uncalibrated camera) is an error."""
    matrix = np.array(camera_info.k, dtype=np.float64).reshape(3, 3)  # a copy: message buffers are read-only
    if matrix[0, 0] <= 0 or matrix[1, 1] <= 0:
        raise InputError(f"camera_info has no calibration (K = {matrix.reshape(-1).tolist()})")
    return matrix


def _to_8bit(values: np.ndarray) -> np.ndarray:
    """uint8 or uint16 values -> uint8: 16-bit values are shifted right until the frame's maximum fits in 8 bits.

    Why not a fixed `>> 8`: many mono16 cameras put 10- or 12-bit samples in the low bits, which `>> 8` turns nearly
    black, while others use all 16 bits (there the rule is `>> 8`). Why not a division by the maximum: one hot pixel
    would set the brightness of every frame; a shift only changes it, by a factor of two, when the maximum crosses a
    power of two. An all-zero frame stays zero.
    """
    if values.dtype == np.uint8:
        return values
    shift = max(int(values.max()).bit_length() - 8, 0)
    return (values >> shift).astype(np.uint8)


def _to_rgb(pixels: np.ndarray, conversion: int | None) -> np.ndarray:
    pixels = _to_8bit(pixels)
    if conversion is None:
        return np.array(pixels, order="C")  # a copy: the caller owns it, writable, not tied to the message buffer
    return cv2.cvtColor(pixels, conversion)


def _values(rows: np.ndarray, bytes_per_value: int, big_endian: bool) -> np.ndarray:
    """(H, row bytes) uint8 -> (H, values per row) of the encoding's value type."""
    if bytes_per_value == 1:
        return rows
    # Padded rows are not contiguous, and numpy < 1.23 reinterprets only contiguous arrays: copy those first.
    return np.ascontiguousarray(rows).view(">u2" if big_endian else "<u2")


def _byte_array(data) -> np.ndarray:
    """Message bytes as a flat uint8 array, sharing memory with the message where its buffer allows."""
    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    try:
        return np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)
    except TypeError:  # not a buffer: a list of ints, e.g. a message built by hand
        try:
            return np.asarray(data, dtype=np.uint8).reshape(-1)
        except (TypeError, ValueError, OverflowError) as error:
            raise InputError(f"image data must be bytes or byte values, found {type(data).__name__}") from error


def _check_raw_size(layout: _Layout, encoding: str, height: int, width: int, step: int, size: int) -> None:
    image = f"{encoding} image {width}x{height}"
    row_bytes = width * layout.bytes_per_pixel
    if height <= 0 or width <= 0:
        raise InputError(f"{image} has no pixels (step {step}, {size} bytes)")
    if layout.pairs_share_chroma and width % 2:
        raise InputError(f"{image} has an odd width; YUV 4:2:2 shares chroma between pixel pairs, so it must be even")
    if step < row_bytes:
        raise InputError(f"{image} needs rows of at least {row_bytes} bytes, found step {step} ({size} bytes)")
    if size < step * height:
        raise InputError(
            f"{image} needs {height} rows of at least {row_bytes} bytes, found step {step} and {size} bytes "
            f"(expected step x height = {step * height})"
        )


def _imdecode(data: np.ndarray, flags: int) -> np.ndarray | None:
    if data.size == 0:
        return None
    try:
        return cv2.imdecode(data, flags)
    except cv2.error:  # some malformed files raise instead of returning None
        return None

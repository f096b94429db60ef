"""ROS image messages -> RGB arrays (sensor_msgs/Image and sensor_msgs/CompressedImage)."""

from __future__ import annotations

import cv2
import numpy as np

from ..errors import InputError

# encoding -> (channels, dtype, conversion to RGB or None)
RAW_ENCODINGS = {
    "rgb8": (3, np.uint8, None),
    "bgr8": (3, np.uint8, cv2.COLOR_BGR2RGB),
    "rgba8": (4, np.uint8, cv2.COLOR_RGBA2RGB),
    "bgra8": (4, np.uint8, cv2.COLOR_BGRA2RGB),
    "mono8": (1, np.uint8, cv2.COLOR_GRAY2RGB),
    "8UC1": (1, np.uint8, cv2.COLOR_GRAY2RGB),
    "8UC3": (3, np.uint8, None),
}


def decode_raw_image(message) -> np.ndarray:
    """sensor_msgs/Image -> H x W x 3 uint8 RGB (8-bit encodings of RAW_ENCODINGS; 8UC3 is taken as RGB)."""
    if message.encoding not in RAW_ENCODINGS:
        raise InputError(f"unsupported image encoding {message.encoding!r}; supported: {sorted(RAW_ENCODINGS)}")
    channels, dtype, conversion = RAW_ENCODINGS[message.encoding]
    height, width, step = int(message.height), int(message.width), int(message.step)
    data = np.frombuffer(bytes(message.data), dtype=dtype)
    row_bytes = width * channels
    if step < row_bytes or data.size < step * height:
        raise InputError(
            f"image {width}x{height} {message.encoding} needs {height} rows of at least {row_bytes} bytes, "
            f"found step {step} and {data.size} bytes"
        )
    rows = data[: step * height].reshape(height, step)[:, :row_bytes].reshape(height, width, channels)
    if conversion is None:
        return np.ascontiguousarray(rows)
    return cv2.cvtColor(rows, conversion)


def decode_compressed_image(message) -> np.ndarray:
    """sensor_msgs/CompressedImage (JPEG / PNG) -> H x W x 3 uint8 RGB."""
    data = np.frombuffer(bytes(message.data), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise InputError(f"compressed image (format {message.format!r}, {data.size} bytes) does not decode")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)  # imdecode returns BGR whatever the format string says


def camera_matrix(camera_info) -> np.ndarray:
    """sensor_msgs/CameraInfo -> (3, 3) K; a zero focal length (an uncalibrated camera) is an error."""
    matrix = np.array(camera_info.k, dtype=np.float64).reshape(3, 3)  # a copy: message buffers are read-only
    if matrix[0, 0] <= 0 or matrix[1, 1] <= 0:
        raise InputError(f"camera_info has no calibration (K = {matrix.reshape(-1).tolist()})")
    return matrix

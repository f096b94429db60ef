"""Reading the .tflite files: the graphs mediapipe ships, folded constants, and the errors of bad files."""

import numpy as np
import pytest
import torch

from vqhps_ros.detect import POSE_DETECTOR_FILE, POSE_LANDMARK_FILE, load_pose_detector
from vqhps_ros.detect.graph_module import DepthToSpace, tf_same_padding
from vqhps_ros.detect.networks import verified_bytes
from vqhps_ros.detect.tflite_reader import parse_tflite, read_tflite
from vqhps_ros.errors import CheckpointError

pytest.importorskip("tflite", reason="reading .tflite files needs the `tflite` package")


def test_the_detector_graph_is_read_with_its_sparse_weights_densified():
    graph = read_tflite(POSE_DETECTOR_FILE.path)
    kinds = {operation.kind for operation in graph.operations}
    assert kinds == {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "PAD", "RESHAPE", "DEPTH_TO_SPACE", "RESIZE_BILINEAR",
                     "CONCATENATION"}  # DENSIFY and DEQUANTIZE were folded into constants
    assert graph.output_names() == ["Identity", "Identity_1"]
    weights = [graph.constants[op.inputs[1]] for op in graph.operations if op.kind == "CONV_2D"]
    assert all(weight.dtype == np.float32 for weight in weights)
    sparse_zeros = max(float((weight == 0).mean()) for weight in weights)
    assert sparse_zeros > 0.3  # pruned layers: their zeros came back from the sparse format


def test_the_landmark_graph_has_five_outputs():
    graph = read_tflite(POSE_LANDMARK_FILE.path)
    shapes = [graph.tensors[index].shape for index in graph.outputs]
    assert shapes == [(1, 195), (1, 1), (1, 256, 256, 1), (1, 64, 64, 39), (1, 117)]


def test_bad_files_are_refused(tmp_path):
    with pytest.raises(CheckpointError, match="TFL3"):
        parse_tflite(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="does not exist"):
        read_tflite(tmp_path / "missing.tflite")
    changed = tmp_path / "pose_detection.tflite"
    changed.write_bytes(POSE_DETECTOR_FILE.path.read_bytes()[:-1] + b"\x01")
    with pytest.raises(CheckpointError, match="expected mediapipe 0.10.21's pose_detection.tflite"):
        verified_bytes(POSE_DETECTOR_FILE, changed)
    with pytest.raises(CheckpointError, match="expected"):
        load_pose_detector(changed)


def test_tensorflow_same_padding_puts_the_odd_pixel_after():
    assert tf_same_padding(128, 3, 2) == (0, 1)
    assert tf_same_padding(127, 3, 2) == (1, 1)
    assert tf_same_padding(64, 3, 1) == (1, 1)
    assert tf_same_padding(64, 5, 2) == (1, 2)


def test_depth_to_space_is_tensorflows():
    """TensorFlow: output[y * 2 + dy, x * 2 + dx, c] = input[y, x, (dy * 2 + dx) * C + c] (NHWC)."""
    rng = np.random.default_rng(0)
    nhwc = rng.standard_normal((2, 3, 4, 8)).astype(np.float32)  # C = 8 / 4 = 2
    expected = np.zeros((2, 6, 8, 2), np.float32)
    for dy in range(2):
        for dx in range(2):
            expected[:, dy::2, dx::2, :] = nhwc[..., (dy * 2 + dx) * 2:(dy * 2 + dx) * 2 + 2]
    found = DepthToSpace(2, (1, 3, 4, 8))(torch.from_numpy(nhwc).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    np.testing.assert_array_equal(found, expected)

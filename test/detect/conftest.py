"""Fixtures of the detection tests: the networks, LiteRT references, and frames of the real and synthetic bags.

LiteRT (`ai-edge-litert`) is a test-only reference: tests that need it skip with a reason where it is absent.
"""

import numpy as np
import pytest
import torch

from vqhps_ros.data import sample_bag_path
from vqhps_ros.detect import POSE_DETECTOR_FILE, POSE_LANDMARK_FILE, load_pose_detector, load_pose_landmarker
from vqhps_ros.io.bag import read_frames

PHOTO_FRAMES = (0, 10, 20)  # one frame per photograph: Grace Hopper, Eileen Collins, the cameraman


@pytest.fixture(scope="session")
def pose_detector():
    return load_pose_detector()


@pytest.fixture(scope="session")
def pose_landmarker():
    return load_pose_landmarker()


@pytest.fixture(scope="session")
def litert():
    """A function: network file -> run(NHWC float32 batch of one) -> the interpreter's outputs by name."""
    interpreter_module = pytest.importorskip("ai_edge_litert.interpreter",
                                             reason="LiteRT (pip install ai-edge-litert) is the parity reference")

    def load(network):
        interpreter = interpreter_module.Interpreter(model_path=str(network.path), num_threads=1)
        interpreter.allocate_tensors()
        (source,) = interpreter.get_input_details()

        def run(batch: np.ndarray) -> dict[str, np.ndarray]:
            interpreter.set_tensor(source["index"], batch)
            interpreter.invoke()
            return {detail["name"]: interpreter.get_tensor(detail["index"]).copy()
                    for detail in interpreter.get_output_details()}

        return run

    return {"detector": load(POSE_DETECTOR_FILE), "landmarker": load(POSE_LANDMARK_FILE)}


@pytest.fixture(scope="session")
def photo_frames(shared_bags):
    """The three real photographs, one frame each, from the compressed (640 x 480) recorded bag."""
    frames = list(read_frames(shared_bags / "ros2_jazzy_photos_sqlite3"))
    return [frames[index] for index in PHOTO_FRAMES]


@pytest.fixture(scope="session")
def sample_frames():
    """All 150 frames of the shipped synthetic sample bag."""
    return list(read_frames(sample_bag_path()))


@pytest.fixture(scope="session")
def sample_truth():
    with np.load(sample_bag_path() / "ground_truth.npz") as truth:
        return {key: truth[key] for key in truth.files}


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """One PyTorch thread (batches of one or a few crops; on a busy 2-core machine threads wait on each other)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)

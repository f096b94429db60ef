"""mediapipe's pose detector, full pose landmark model and selfie segmenter as PyTorch modules, weights read from
the .tflite files.

They take NCHW float32 RGB batches and return the raw network outputs, renamed and laid out for PyTorch (the
exported ONNX graphs of the first two are these modules, see `signatures`):

PoseDetectorNet: image (B, 3, 224, 224) in [-1, 1] (a letterboxed frame, zero border = -1) ->
    raw_boxes (B, 2254, 12) anchor-relative input pixels, raw_scores (B, 2254) logits (`anchors` decodes them).
PoseLandmarkNet: crop (B, 3, 256, 256) in [0, 1] (a person's ROI, `geometry.crop_roi`) ->
    landmarks (B, 39, 5) x, y, z in crop pixels, visibility and presence logits (33 body points, 2 alignment
    points, 4 unused); pose_presence (B,) probability that the crop shows a person; segmentation (B, 256, 256)
    logits; heatmaps (B, 39, 64, 64) logits; world_landmarks (B, 39, 3) metres, hip-centred.
SelfieSegmentationNet: image (B, 3, 256, 256) in [0, 1] (a whole frame stretched to the square, `person_mask`) ->
    person probability (B, 256, 256).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError
from .graph_module import TFLiteGraphModule
from .tflite_reader import parse_tflite

ASSETS_DIR = Path(__file__).resolve().parent / "assets"


@dataclass(frozen=True)
class NetworkFile:
    """A shipped .tflite file: its name, size and sha256 (of the mediapipe 0.10.21 wheel's file)."""

    filename: str
    wheel_path: str  # where the mediapipe wheel holds it
    size: int
    sha256: str

    @property
    def path(self) -> Path:
        return ASSETS_DIR / self.filename


POSE_DETECTOR_FILE = NetworkFile("pose_detection.tflite", "mediapipe/modules/pose_detection/pose_detection.tflite",
                                 2_959_046, "9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c")
POSE_LANDMARK_FILE = NetworkFile("pose_landmark_full.tflite",
                                 "mediapipe/modules/pose_landmark/pose_landmark_full.tflite",
                                 6_440_512, "e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f")
# The general (square) model; the wheel's selfie_segmentation_landscape.tflite is its 256 x 144 variant.
SELFIE_SEGMENTATION_FILE = NetworkFile("selfie_segmentation.tflite",
                                       "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite",
                                       249_505, "9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c")

DETECTOR_INPUT_SIZE = 224
LANDMARK_INPUT_SIZE = 256
NUM_ANCHORS = 2254
NUM_LANDMARKS = 39  # the model's outputs: 33 body landmarks, 2 alignment points, 4 unused
NUM_BODY_LANDMARKS = 33
HEATMAP_SIZE = 64
SEGMENTATION_SIZE = 256
SELFIE_SEGMENTATION_SIZE = 256  # input and output side


def verified_bytes(network: NetworkFile, path: str | Path | None = None) -> bytes:
    """The file's bytes after checking its size and sha256 (CheckpointError naming what was found)."""
    path = Path(path) if path is not None else network.path
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: reinstall vqhps_ros or run tools/build_detector_assets.py")
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if len(data) != network.size or digest != network.sha256:
        raise CheckpointError(f"{path}: expected mediapipe 0.10.21's {network.filename} ({network.size} bytes, "
                              f"sha256 {network.sha256}), found {len(data)} bytes, sha256 {digest}")
    return data


class PoseDetectorNet(nn.Module):
    """image (B, 3, 224, 224) in [-1, 1] -> (raw_boxes (B, 2254, 12), raw_scores (B, 2254))."""

    def __init__(self, graph_module: TFLiteGraphModule):
        super().__init__()
        self.graph = graph_module

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raw_boxes, raw_scores = self.graph(image)
        return raw_boxes, raw_scores.reshape(-1, NUM_ANCHORS)


class PoseLandmarkNet(nn.Module):
    """crop (B, 3, 256, 256) in [0, 1] -> (landmarks, pose_presence, segmentation, heatmaps, world_landmarks)."""

    def __init__(self, graph_module: TFLiteGraphModule):
        super().__init__()
        self.graph = graph_module

    def forward(self, crop: torch.Tensor) -> tuple[torch.Tensor, ...]:
        landmarks, pose_flag, segmentation, heatmaps, world = self.graph(crop)
        return (landmarks.reshape(-1, NUM_LANDMARKS, 5), pose_flag.reshape(-1),
                segmentation.reshape(-1, SEGMENTATION_SIZE, SEGMENTATION_SIZE), heatmaps,
                world.reshape(-1, NUM_LANDMARKS, 3))


class SelfieSegmentationNet(nn.Module):
    """image (B, 3, 256, 256) in [0, 1] -> person probability (B, 256, 256) (the file's last operation is a
    sigmoid)."""

    def __init__(self, graph_module: TFLiteGraphModule):
        super().__init__()
        self.graph = graph_module

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        (probability,) = self.graph(image)
        return probability.reshape(-1, SELFIE_SEGMENTATION_SIZE, SELFIE_SEGMENTATION_SIZE)


def load_pose_detector(path: str | Path | None = None) -> PoseDetectorNet:
    """The pose detector (eval mode, CPU) from the shipped file, or from `path` (checked against the same hash)."""
    return PoseDetectorNet(_graph_module(POSE_DETECTOR_FILE, path)).eval()


def load_pose_landmarker(path: str | Path | None = None) -> PoseLandmarkNet:
    """The full pose landmark model (eval mode, CPU) from the shipped file, or from `path`."""
    return PoseLandmarkNet(_graph_module(POSE_LANDMARK_FILE, path)).eval()


def load_selfie_segmenter(path: str | Path | None = None) -> SelfieSegmentationNet:
    """The general selfie segmentation model (eval mode, CPU) from the shipped file, or from `path`."""
    return SelfieSegmentationNet(_graph_module(SELFIE_SEGMENTATION_FILE, path)).eval()


def _graph_module(network: NetworkFile, path: str | Path | None) -> TFLiteGraphModule:
    data = verified_bytes(network, path)
    try:
        return TFLiteGraphModule(parse_tflite(data))
    except CheckpointError as error:
        raise CheckpointError(f"{path or network.path}: {error}") from error


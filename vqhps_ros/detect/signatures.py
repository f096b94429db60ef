"""The inputs and outputs of the two exported detection graphs: one definition for the exporter and the runners.

The batch axis is the only dynamic one (as for every graph of the package, `runtime.signatures`): the detector
takes a batch of frames, the landmark model a batch of person crops.
"""

from __future__ import annotations

from ..runtime.signatures import BATCH, GraphSignature, TensorSpec

POSE_DETECTOR_GRAPH = "pose_detector"
POSE_LANDMARK_GRAPH = "pose_landmarker"
GRAPHS = (POSE_DETECTOR_GRAPH, POSE_LANDMARK_GRAPH)

# Metadata keys of the detection graphs (generic ones, such as the graph kind and the content hash, are in onnx_meta).
TFLITE_SOURCE_KEY = "vqhps_ros.detect.source"  # JSON: the .tflite file's name, size and sha256
INPUT_RANGE_KEY = "vqhps_ros.detect.input_range"  # JSON [low, high]: what pixel values 0 and 255 become

NUM_ANCHORS = 2254
NUM_LANDMARKS = 39


def pose_detector_signature() -> GraphSignature:
    """image (batch, 3, 224, 224) float32 RGB in [-1, 1] -> raw_boxes (batch, 2254, 12), raw_scores (batch, 2254)."""
    return GraphSignature(
        inputs=(TensorSpec("image", "float32", (BATCH, 3, 224, 224)),),
        outputs=(TensorSpec("raw_boxes", "float32", (BATCH, NUM_ANCHORS, 12)),
                 TensorSpec("raw_scores", "float32", (BATCH, NUM_ANCHORS))),
    )


def pose_landmark_signature() -> GraphSignature:
    """crop (batch, 3, 256, 256) float32 RGB in [0, 1] -> landmarks (batch, 39, 5), pose_presence (batch,),
    segmentation (batch, 256, 256), heatmaps (batch, 39, 64, 64), world_landmarks (batch, 39, 3)."""
    return GraphSignature(
        inputs=(TensorSpec("crop", "float32", (BATCH, 3, 256, 256)),),
        outputs=(TensorSpec("landmarks", "float32", (BATCH, NUM_LANDMARKS, 5)),
                 TensorSpec("pose_presence", "float32", (BATCH,)),
                 TensorSpec("segmentation", "float32", (BATCH, 256, 256)),
                 TensorSpec("heatmaps", "float32", (BATCH, NUM_LANDMARKS, 64, 64)),
                 TensorSpec("world_landmarks", "float32", (BATCH, NUM_LANDMARKS, 3))),
    )


def graph_signature(graph: str) -> GraphSignature:
    if graph == POSE_DETECTOR_GRAPH:
        return pose_detector_signature()
    if graph == POSE_LANDMARK_GRAPH:
        return pose_landmark_signature()
    raise ValueError(f"unknown detection graph {graph!r}; known: {GRAPHS}")

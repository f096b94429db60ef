"""Person detection and body keypoints: mediapipe's pose detector and full pose landmark model as PyTorch modules.

The networks' weights are read from the .tflite files shipped in `assets/` (mediapipe 0.10.21, Apache-2.0);
`tools/build_detector_assets.py` rebuilds them from the wheel. They run on ONNX Runtime or PyTorch
(`DetectionRunner`), exported through the package's ONNX path. `BuiltinPersonDetector` is the person source built
on them (multi-person detection, keypoints, tracking by keypoints); see docs/detect.md. `SelfieSegmenter`
(mediapipe's selfie segmentation network, PyTorch) gives an independent person mask of a whole image, to check
rendered meshes against.

Importing this package needs neither `tflite` (imported when a .tflite file is read) nor ONNX Runtime.
"""

from .anchors import RawDetection, decode_detections, scored_candidates, ssd_anchor_centers, weighted_nms
from .evaluation import BoxCounts, counted_people, frame_counts, match_boxes
from .export import cached_graph_path, default_graph_cache_dir, export_detection_graph
from .geometry import Roi, crop_roi, full_image_roi, roi_from_alignment_points, zoom_tiles
from .keypoints import (
    POSE_KEYPOINT_SET,
    POSE_LANDMARK_NAMES,
    PersonKeypoints,
    body_keypoints,
    person_keypoints,
    segmentation_in_image,
)
from .networks import (
    POSE_DETECTOR_FILE,
    POSE_LANDMARK_FILE,
    SELFIE_SEGMENTATION_FILE,
    PoseDetectorNet,
    PoseLandmarkNet,
    SelfieSegmentationNet,
    load_pose_detector,
    load_pose_landmarker,
    load_selfie_segmenter,
)
from .person_detector import BuiltinPersonDetector, DetectorSettings
from .person_mask import SelfieSegmenter
from .runner import DetectionRunner
from .signatures import POSE_DETECTOR_GRAPH, POSE_LANDMARK_GRAPH, pose_detector_signature, pose_landmark_signature

__all__ = [
    "POSE_DETECTOR_FILE",
    "POSE_DETECTOR_GRAPH",
    "POSE_KEYPOINT_SET",
    "POSE_LANDMARK_FILE",
    "POSE_LANDMARK_GRAPH",
    "POSE_LANDMARK_NAMES",
    "SELFIE_SEGMENTATION_FILE",
    "BoxCounts",
    "BuiltinPersonDetector",
    "DetectionRunner",
    "DetectorSettings",
    "PersonKeypoints",
    "PoseDetectorNet",
    "PoseLandmarkNet",
    "RawDetection",
    "Roi",
    "SelfieSegmentationNet",
    "SelfieSegmenter",
    "body_keypoints",
    "cached_graph_path",
    "counted_people",
    "crop_roi",
    "decode_detections",
    "default_graph_cache_dir",
    "export_detection_graph",
    "frame_counts",
    "full_image_roi",
    "load_pose_detector",
    "load_pose_landmarker",
    "load_selfie_segmenter",
    "match_boxes",
    "person_keypoints",
    "pose_detector_signature",
    "pose_landmark_signature",
    "roi_from_alignment_points",
    "scored_candidates",
    "segmentation_in_image",
    "ssd_anchor_centers",
    "weighted_nms",
    "zoom_tiles",
]

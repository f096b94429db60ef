"""The plain data the pipeline passes around: camera frames and detections in, humans and the mesh topology out.

Frames follow ROS: the camera's optical frame (REP-103: x right, y down, z forward), metres, stamps in integer
nanoseconds of the source image's header. Nothing here imports torch or ROS, so message builders, the node and
the tests all share these types.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

H36M_17_JOINT_SET = "h36m_17"

# H36M-17 bones (parent, child) in the H36M_17 joint order (pelvis first): the skeleton drawn in RViz.
H36M_17_BONES = (
    (0, 1), (1, 2), (2, 3), (0, 4), (4, 5), (5, 6), (0, 7), (7, 8), (8, 9), (9, 10),
    (8, 11), (11, 12), (12, 13), (8, 14), (14, 15), (15, 16),
)  # fmt: skip


# MediaPipe's 33 pose landmarks, in its order: what the built-in detector's keypoints and the free body's pose
# landmarks (`body.pose_landmarks`) follow. "left" is the person's left.
POSE_KEYPOINT_SET = "mediapipe_pose_33"  # the name HumanMesh.keypoint_set and MeshTopology.keypoint_set give them
POSE_LANDMARK_NAMES = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye", "right_eye_outer",
    "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_pinky", "right_pinky", "left_index", "right_index",
    "left_thumb", "right_thumb", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    "left_heel", "right_heel", "left_foot_index", "right_foot_index",
)  # fmt: skip
# Limbs between them, for drawing (indices into POSE_LANDMARK_NAMES): arms, shoulders and hips, torso sides, legs.
POSE_LANDMARK_BONES = (
    (11, 13), (13, 15), (12, 14), (14, 16), (11, 12), (23, 24), (11, 23), (12, 24),
    (23, 25), (25, 27), (24, 26), (26, 28), (27, 31), (28, 32),
)  # fmt: skip


@dataclass(frozen=True)
class BodyKeypoints:
    """A person's 2D body keypoints and person mask, as a keypoint person source (the built-in detector) saw them.

    The mask is a square probability image over a rotated square region of the image (the crop the keypoint
    model saw); `mask_in_image` warps it into the image. Later stages (alignment) read both.
    """

    keypoint_set: str  # names the keypoints' definition and order (e.g. "mediapipe_pose_33")
    points: np.ndarray  # (K, 2) float32 pixels in the source image (OpenCV pixel centres)
    visibility: np.ndarray  # (K,) float32 in [0, 1]: seen and not occluded
    mask: np.ndarray | None = None  # (M, M) float32 person probability, None when the source has no mask
    mask_to_image: np.ndarray | None = None  # (2, 3) affine map from mask pixels (u, v, 1) to image pixels
    presence: np.ndarray | None = None  # (K,) float32 in [0, 1]: inside the image; None when the source has none

    def mask_in_image(self, image_size: tuple[int, int]) -> np.ndarray | None:
        """(H, W) float32 person probability in the image (0 outside the mask's region); None without a mask."""
        if self.mask is None or self.mask_to_image is None:
            return None
        import cv2  # only mask users pay for OpenCV's import

        height, width = image_size
        return cv2.warpAffine(self.mask, np.asarray(self.mask_to_image, dtype=np.float64), (width, height),
                              flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


@dataclass(frozen=True)
class Detection:
    """One person box from a detector (`vision_msgs/Detection2D`) or another person source."""

    box: np.ndarray  # (4,) float64 x, y, w, h pixels, (x, y) the top-left corner
    score: float = 1.0  # detector confidence in [0, 1]
    class_id: str = ""  # the detector's class ("person", "0", ...; "" when unknown)
    id: str = ""  # an upstream tracker's id ("" when none)
    keypoints: BodyKeypoints | None = None  # from a keypoint person source; None for plain boxes


@dataclass(frozen=True)
class Frame:
    """One camera image with what was paired with it.

    detections: None when no detection source is configured (or its messages timed out), a tuple (possibly
    empty) when a detector spoke for this image.
    """

    image: np.ndarray  # H x W x 3 uint8 RGB
    stamp_ns: int  # the image header's stamp
    frame_id: str  # the image header's frame (an optical frame)
    intrinsics: np.ndarray | None  # (3, 3) K, None when no camera_info and no fallback
    detections: tuple[Detection, ...] | None = None

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) pixels."""
        return int(self.image.shape[0]), int(self.image.shape[1])


@dataclass
class Human:
    """One person in one frame, in the frame's optical frame (metres) and image (pixels).

    vertices_2d is kept for overlays (it is not published). `valid` is False only for a person a later stage
    chose to keep while flagging it (e.g. a track coasting without a detection); persons with unusable network
    outputs are dropped, never returned.
    """

    id: str  # track id (ROS4HRI-style body id); a per-frame index until a tracker assigns ids
    score: float  # detection score x mean token confidence, in [0, 1]
    box: np.ndarray  # (4,) x, y, w, h pixels in the source image
    tokens: np.ndarray  # (T,) int64 Mesh-VQ-VAE codebook indices
    token_confidence: np.ndarray  # (T,) float32 softmax probability of each token
    vertices: np.ndarray  # (V, 3) float32 metres
    joints: np.ndarray | None  # (J, 3) float32 metres, in the topology's joint order
    joints_2d: np.ndarray | None  # (J, 2) float32 pixels (NaN for a joint behind the camera)
    vertices_2d: np.ndarray  # (V, 2) float32 pixels
    root_position: np.ndarray  # (3,) float64 metres: `root_position(vertices, joints)`
    root_rotation: np.ndarray  # (3, 3) float64 body orientation: canonical mesh frame -> optical frame
    crop_camera: np.ndarray  # (3,) float64 weak-perspective [s, tx, ty] of the crop
    translation: np.ndarray  # (3,) float64 metres: where the canonical mesh's origin (vertex centroid) lands
    valid: bool = True
    detection_id: str = ""  # the upstream detection's id, if it had one
    keypoints: BodyKeypoints | None = None  # this frame's body keypoints and mask, when the person source gave them
    refined: bool = False  # the mesh was moved by the alignment refinement (`vqhps_ros.refine`), not as regressed


def root_position(vertices: np.ndarray, joints: np.ndarray | None) -> np.ndarray:
    """(3,) float64 a person's root: the pelvis (first joint), or the mesh centroid for models without joints."""
    root = joints[0] if joints is not None else vertices.mean(axis=0)
    return np.asarray(root, dtype=np.float64)


@dataclass(frozen=True)
class MeshTopology:
    """What is static about a model's output: published once (transient local), read from the graph metadata."""

    topology_id: str  # names the mesh (e.g. "free_body_1229"); the same id means the same vertices and faces
    num_vertices: int
    faces: np.ndarray  # (F, 3) int64 vertex indices, counter-clockwise seen from outside
    joint_set: str  # e.g. "h36m_17"; "" when the model has no joint regressor
    joint_names: tuple[str, ...]
    num_tokens: int
    codebook_size: int
    keypoint_set: str = ""  # the person source's 2D keypoint set ("" when it gives none)
    keypoint_names: tuple[str, ...] = ()

    @property
    def bones(self) -> tuple[tuple[int, int], ...]:
        """(parent, child) joint pairs for skeleton drawing; empty for joint sets without a known skeleton."""
        return H36M_17_BONES if self.joint_set == H36M_17_JOINT_SET else ()


@dataclass
class FrameResult:
    """What the estimator made of one frame."""

    stamp_ns: int
    frame_id: str
    image_size: tuple[int, int]  # (height, width)
    humans: list[Human]
    timings_ms: dict[str, float] = field(default_factory=dict)  # stage -> milliseconds
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count (persons or the frame)

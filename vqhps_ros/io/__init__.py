"""Images, camera info and detections in and out of ROS messages and bags (rosbags, numpy, cv2; no rclpy)."""

from .assembler import AssembledFrame, CameraInfo, FrameAssembler, detections_from_message, stamp_ns
from .bag import BagTopics, assembled_frames, open_bag, read_frames, select_topics
from .images import SUPPORTED_ENCODINGS, camera_matrix, decode_compressed_image, decode_image, decode_raw_image
from .messages import (
    MessageTypes,
    PublishedMarkers,
    RclpyTypes,
    RosbagsTypes,
    find_msg_dir,
    header,
    human_mesh,
    human_mesh_array,
    markers,
    mesh_topology,
    message_definitions,
    quaternion_from_matrix,
    rclpy_types,
    region_of_interest,
    rosbags_types,
    track_color,
    transforms,
)

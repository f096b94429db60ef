"""Images, camera info and detections in and out of ROS messages and bags (rosbags, numpy, cv2; no rclpy)."""

from .bag import CameraFrame, detection_boxes, read_frames
from .images import camera_matrix, decode_compressed_image, decode_raw_image

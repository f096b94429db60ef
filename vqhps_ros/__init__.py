"""vqhps_ros: real-time human mesh recovery (VQ-HPS) for ROS 2 robots.

Importing the package pulls in no optional dependency (ROS, TensorRT, ONNX Runtime); each subpackage
imports what it needs when it is used.
"""

__version__ = "0.1.0"

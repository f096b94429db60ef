"""vqhps_ros: real-time human mesh recovery (VQ-HPS) for ROS 2 robots.

Importing the package pulls in no optional dependency (ROS, TensorRT, ONNX Runtime), and not even torch: the names
below are imported when first used, so `vqhps-ros --help` and the configuration stay light.
"""

import importlib

__version__ = "0.1.0"

_LAZY_NAMES = {
    "Estimator": "vqhps_ros.estimator",
    "EstimatorConfig": "vqhps_ros.config",
    "load_config": "vqhps_ros.config",
    "Frame": "vqhps_ros.humans",
    "FrameResult": "vqhps_ros.humans",
    "Human": "vqhps_ros.humans",
    "MeshTopology": "vqhps_ros.humans",
}

__all__ = ["__version__", *_LAZY_NAMES]


def __getattr__(name: str):
    if name in _LAZY_NAMES:
        return getattr(importlib.import_module(_LAZY_NAMES[name]), name)
    raise AttributeError(f"module 'vqhps_ros' has no attribute {name!r}")

"""Training loops: the Mesh-VQ-VAE tokenizer (`mesh_vq`) and the VQ-HPS regressor (`hps`, `hps_data`); the
landmark model measured on renders (`landmark_calibration`), keypoint training samples made without rendering
(`keypoint_data`), the training and measure of a VQ-HPS that reads those keypoints (`keypoint_hps`), the
alignment refinement's displacement network and its synthetic pairs (`displacement`, `displacement_data`), and the
loop the keypoint and displacement trainings share (`budgeted`).

The settings (`settings`) import no torch, and neither does this package: its names are loaded on first use
(PEP 562), so `vqhps-ros` can build its options from the settings without importing the training stack.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .hps import build_hps_model, run_train_hps, train_hps
    from .mesh_vq import load_meshes, train_mesh_vq
    from .settings import AugmentationSettings, HPSTrainConfig, MeshVQTrainConfig

_EXPORTS = {
    "AugmentationSettings": "settings",
    "HPSTrainConfig": "settings",
    "MeshVQTrainConfig": "settings",
    "build_hps_model": "hps",
    "run_train_hps": "hps",
    "train_hps": "hps",
    "load_meshes": "mesh_vq",
    "train_mesh_vq": "mesh_vq",
}
_SUBMODULES = ("budgeted", "displacement", "displacement_data", "hps", "hps_data", "keypoint_data",
               "keypoint_heatmaps", "keypoint_hps", "landmark_calibration",
               "mesh_vq", "settings")

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _SUBMODULES:  # `import vqhps_ros.train` then `vqhps_ros.train.hps`, as when this file imported it
        return importlib.import_module(f".{name}", __name__)
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS) | set(_SUBMODULES))

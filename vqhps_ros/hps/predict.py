"""From an image, person boxes and camera intrinsics to human meshes in the camera frame, in three steps:

    crop_people(image, boxes)             -> PersonCrops (normalised 224x224 crops + where they sit in the image)
    network or Engine.infer(crops.images) -> per-crop outputs (tokens, rotation, crop camera, canonical/rotated mesh)
    place_people(outputs, geometry, K)    -> PersonMesh per person (metric mesh and joints in the camera frame)

The estimator runs the middle step through an inference engine (TensorRT, ONNX Runtime or PyTorch);
`predict_people` is the same three steps with a PyTorch model, for scripts and notebooks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .camera import cam_crop_to_full, project_points
from .crops import BOX_RESCALE, CropGeometry, PersonCrops, crop_people_cv2, crop_people_torch
from .model import VQHPS


@dataclass(frozen=True)
class PersonMesh:
    """One person, in the camera's optical frame (x right, y down, z forward; metres).

    A crop camera with a non-positive scale has no metric placement: its translation, vertices, joints and 2D
    points are NaN (see `is_placed`).
    """

    box: np.ndarray  # (4,) x, y, w, h pixels, as given
    vertices: np.ndarray  # (V, 3) float32 camera frame
    joints: np.ndarray | None  # (J, 3) float32 camera frame, in the model's joint order
    translation: np.ndarray  # (3,) position of the canonical mesh's origin (its vertex centroid in training)
    rotation: np.ndarray  # (3, 3) global orientation (canonical mesh -> camera)
    tokens: np.ndarray  # (T,) int64 codebook indices
    token_confidence: np.ndarray  # (T,) softmax probability of each chosen token
    crop_camera: np.ndarray  # (3,) weak-perspective [s, tx, ty] in the crop
    vertices_2d: np.ndarray  # (V, 2) pixels, the mesh projected with K (NaN behind the camera)
    joints_2d: np.ndarray | None = None  # (J, 2) pixels (NaN behind the camera)

    @property
    def is_placed(self) -> bool:
        """True when every 3D output is finite and the whole mesh lies in front of the camera."""
        finite = np.isfinite(self.vertices).all() and np.isfinite(self.translation).all()
        finite = finite and (self.joints is None or np.isfinite(self.joints).all())
        return bool(finite and np.all(self.vertices[:, 2] > 0))


def crop_people(image: np.ndarray | torch.Tensor, boxes, rescale: float = BOX_RESCALE,
                device: torch.device | str | None = None) -> PersonCrops:
    """Square crops of (N, 4) x, y, w, h boxes: cv2 on the CPU (numpy crops), torch on another device (tensors
    already there). Raises InputError for a bad image or box; `crops.valid_box_mask` screens boxes first."""
    device = torch.device(device or "cpu")
    if device.type == "cpu":
        return crop_people_cv2(_as_numpy_image(image), boxes, rescale)
    return crop_people_torch(image, boxes, rescale, device=device)


def place_people(outputs, geometry: CropGeometry, intrinsics, boxes) -> list[PersonMesh]:
    """Per-crop network outputs -> people placed in the camera frame, one per crop, in order.

    outputs: any object with `indices`, `token_confidence`, `rotmat`, `cam`, `verts` and `joints` (None or an
    array) holding N rows, as numpy arrays (an engine's EngineOutput) or tensors (the PyTorch model's HPSOutput).
    Each crop camera is turned into a metric translation with the full-perspective conversion of CLIFF / 4DHumans
    (`camera.cam_crop_to_full`), so the mesh projects where the person is.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    cameras = _numpy(outputs.cam).astype(np.float64)
    translations = cam_crop_to_full(cameras, geometry.centers, geometry.sides, intrinsics)
    vertices = _numpy(outputs.verts).astype(np.float32) + translations[:, None, :].astype(np.float32)
    joints = None
    if outputs.joints is not None:
        joints = _numpy(outputs.joints).astype(np.float32) + translations[:, None, :].astype(np.float32)
    vertices_2d = project_points(vertices.astype(np.float64), intrinsics).astype(np.float32)
    joints_2d = None if joints is None else project_points(joints.astype(np.float64), intrinsics).astype(np.float32)
    rotations = _numpy(outputs.rotmat).astype(np.float64)
    tokens = _numpy(outputs.indices).astype(np.int64)
    confidences = _numpy(outputs.token_confidence).astype(np.float32)
    return [
        PersonMesh(
            box=boxes[index],
            vertices=vertices[index],
            joints=None if joints is None else joints[index],
            translation=translations[index],
            rotation=rotations[index],
            tokens=tokens[index],
            token_confidence=confidences[index],
            crop_camera=cameras[index],
            vertices_2d=vertices_2d[index],
            joints_2d=None if joints_2d is None else joints_2d[index],
        )
        for index in range(len(boxes))
    ]


@torch.no_grad()
def predict_people(model: VQHPS, image: np.ndarray, boxes, intrinsics, rescale: float = BOX_RESCALE
                   ) -> list[PersonMesh]:
    """image: H x W x 3 RGB (uint8, or float in [0, 1]); boxes: (N, 4) x, y, w, h pixels; intrinsics: (3, 3) K.

    `crop_people`, the model, `place_people`. Each crop is estimated independently of the others. Raises
    InputError for a bad image or box; use `crops.valid_box_mask` first to drop bad detections instead.
    """
    parameter = next(model.parameters())
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if len(boxes) == 0:
        return []
    crops = crop_people(image, boxes, rescale, parameter.device)
    batch = torch.as_tensor(crops.images).to(device=parameter.device, dtype=parameter.dtype)
    return place_people(model(batch), crops.geometry, intrinsics, boxes)


def _numpy(values) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.detach().float().cpu().numpy() if values.is_floating_point() else values.cpu().numpy()
    return np.asarray(values)


def _as_numpy_image(image) -> np.ndarray:
    return image.cpu().numpy() if isinstance(image, torch.Tensor) else image

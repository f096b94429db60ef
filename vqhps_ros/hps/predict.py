"""One call from an image, person boxes and camera intrinsics to human meshes in the camera frame."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .camera import cam_crop_to_full, project_points
from .crops import BOX_RESCALE, crop_people_cv2, crop_people_torch
from .model import VQHPS


@dataclass(frozen=True)
class PersonMesh:
    """One person, in the camera's optical frame (x right, y down, z forward; metres)."""

    box: np.ndarray  # (4,) x, y, w, h pixels, as given
    vertices: np.ndarray  # (V, 3) camera frame
    joints: np.ndarray | None  # (J, 3) camera frame, in the model's joint order
    translation: np.ndarray  # (3,) position of the canonical mesh's origin (its vertex centroid in training)
    rotation: np.ndarray  # (3, 3) global orientation (canonical mesh -> camera)
    tokens: np.ndarray  # (T,) int64 codebook indices
    token_confidence: np.ndarray  # (T,) softmax probability of each chosen token
    crop_camera: np.ndarray  # (3,) weak-perspective [s, tx, ty] in the crop
    vertices_2d: np.ndarray  # (V, 2) pixels, the mesh projected with K


@torch.no_grad()
def predict_people(model: VQHPS, image: np.ndarray, boxes, intrinsics, rescale: float = BOX_RESCALE
                   ) -> list[PersonMesh]:
    """image: H x W x 3 RGB (uint8, or float in [0, 1]); boxes: (N, 4) x, y, w, h pixels; intrinsics: (3, 3) K.

    Crops each box (SPIN-style square of `rescale * max(w, h)`), runs the model on the batch, and places each
    mesh with the full-perspective conversion of its crop camera (CLIFF / 4DHumans), so it projects where the
    person is. Each crop is estimated independently of the others. Raises InputError for a bad image or box;
    use `crops.valid_box_mask` first to drop bad detections instead.
    """
    device = next(model.parameters()).device
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if len(boxes) == 0:
        return []
    if device.type == "cpu":
        crops = crop_people_cv2(image, boxes, rescale)
        batch = torch.from_numpy(crops.images)
    else:
        crops = crop_people_torch(image, boxes, rescale, device=device)
        batch = crops.images
    output = model(batch.to(device=device, dtype=next(model.parameters()).dtype))
    cameras = output.cam.float().cpu().numpy().astype(np.float64)
    translations = cam_crop_to_full(cameras, crops.geometry.centers, crops.geometry.sides, intrinsics)
    vertices = output.verts.float().cpu().numpy() + translations[:, None, :]
    joints = None if output.joints is None else output.joints.float().cpu().numpy() + translations[:, None, :]
    projected = project_points(vertices, intrinsics)
    return [
        PersonMesh(
            box=boxes[index],
            vertices=vertices[index].astype(np.float32),
            joints=None if joints is None else joints[index].astype(np.float32),
            translation=translations[index],
            rotation=output.rotmat[index].float().cpu().numpy(),
            tokens=output.indices[index].cpu().numpy(),
            token_confidence=output.token_confidence[index].cpu().numpy(),
            crop_camera=cameras[index],
            vertices_2d=projected[index],
        )
        for index in range(len(boxes))
    ]

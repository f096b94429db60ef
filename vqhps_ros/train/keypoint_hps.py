"""Training and measuring a VQ-HPS that reads body keypoints (`hps.KeypointMeshRegressor` in a `VQHPS`).

Data (`keypoint_dataset`): `train.keypoint_data.KeypointSampler` samples (no rendering), their canonical meshes
tokenised by the model's frozen Mesh-VQ-VAE. Loss per batch, as the image model's official recipe without the
reprojection term (the crop camera is supervised directly, the keypoints being its input):

    CE(logits, tokens) + rotation_weight * MSE(rotation matrix) + camera_weight * L1(crop camera)

`evaluate_on_renders`: rendered free-body people (`synth.SceneGenerator`, seeds of one's choice), the built-in
detector's landmark model on each well-seen person (ROI around the true box, as tracking gives it), its keypoints
normalised into the crop of the true box, the model's mesh against the rendered one: the official MPJPE,
PA-MPJPE, PVE and PA-PVE (`metrics.evaluate_meshes`, millimetres), beside an image model on the same crops.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..hps.crops import crop_geometry_from_boxes, crop_people_cv2
from ..hps.keypoint_input import keypoint_model_input
from ..hps.keypoint_regressor import KeypointMeshRegressor, KeypointRegressorConfig
from ..hps.model import VQHPS
from ..hps.rotation import rotation_6d_to_matrix
from ..hps.transformer import TransformerDims
from ..metrics import evaluate_meshes
from .budgeted import train_in_budget
from .keypoint_data import KeypointSampler, KeypointSamples
from .settings import BudgetSchedule


def new_keypoint_model(base: VQHPS, width: int = 128) -> VQHPS:
    """An untrained keypoint-reading VQ-HPS of transformer width `width` (4 heads, 2 encoder layers, 1 decoder
    layer) that decodes with `base`'s Mesh-VQ-VAE and publishes `base`'s joints and faces."""
    dims = TransformerDims(model_dim=width, nhead=4, feedforward_dim=2 * width, num_enc_layers=2, num_dec_layers=1,
                           dropout=0.1)
    regressor = KeypointMeshRegressor(KeypointRegressorConfig(dims, hidden=2 * width))
    return VQHPS(regressor, base.mesh_vqvae, base.pose_init, base.joint_regressor, base.joint_names, base.faces)


def keypoint_dataset(sampler: KeypointSampler, model: VQHPS, count: int, seed: int, chunk: int = 512
                     ) -> dict[str, torch.Tensor]:
    """`count` samples with their tokens: keypoints, tokens, rotation, crop_camera (tensors, CPU)."""
    rng = np.random.default_rng(seed)
    parts = [tokenised(sampler.sample(rng, min(chunk, count - start)), model) for start in range(0, count, chunk)]
    return joined(parts)


def tokenised(samples: KeypointSamples, model: VQHPS, chunk: int = 512) -> dict[str, torch.Tensor]:
    """The training tensors of `samples`: their keypoints, rotation and crop camera, and the tokens of their
    canonical meshes by the model's frozen Mesh-VQ-VAE."""
    with torch.no_grad():
        tokens = [model.mesh_vqvae.encode(torch.from_numpy(samples.canonical_vertices[start:start + chunk]).float())
                  for start in range(0, len(samples), chunk)]
    return {"keypoints": torch.from_numpy(samples.keypoints), "tokens": torch.cat(tokens),
            "rotation": torch.from_numpy(samples.rotation).float(),
            "crop_camera": torch.from_numpy(samples.crop_camera).float()}


def joined(parts: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Training tensors of several sources in one set."""
    return {name: torch.cat([part[name] for part in parts]) for name in parts[0]}


@dataclass(frozen=True)
class KeypointTraining(BudgetSchedule):
    """Optimiser settings; the learning-rate schedule over `steps` or `minutes` is `settings.BudgetSchedule`'s."""

    steps: int = 6000
    batch_size: int = 256
    learning_rate: float = 3e-4
    weight_decay: float = 1e-3
    rotation_weight: float = 1.0
    camera_weight: float = 1.0
    seed: int = 0
    log_every: int = 500
    minutes: float | None = None
    warmup: float = 0.05


def train_keypoint_hps(model: VQHPS, data: dict[str, torch.Tensor], settings: KeypointTraining = KeypointTraining()
                       ) -> list[dict]:  # noqa: B008 (frozen)
    """Train the regressor in place (the Mesh-VQ-VAE stays frozen); returns the logged losses."""
    generator = torch.Generator().manual_seed(settings.seed)
    regressor = model.regressor
    optimizer = torch.optim.AdamW(regressor.parameters(), lr=0.0, weight_decay=settings.weight_decay)
    pose_init = model.pose_init.expand(settings.batch_size, -1)
    count = len(data["tokens"])

    def step_losses():
        batch = torch.randint(count, (settings.batch_size,), generator=generator)
        logits, rot6d, cam = regressor(data["keypoints"][batch], pose_init)
        token_loss = F.cross_entropy(logits.flatten(0, 1), data["tokens"][batch].flatten())
        rotation_loss = F.mse_loss(rotation_6d_to_matrix(rot6d), data["rotation"][batch])
        camera_loss = F.l1_loss(cam, data["crop_camera"][batch])
        loss = token_loss + settings.rotation_weight * rotation_loss + settings.camera_weight * camera_loss
        return loss, {"tokens": token_loss, "rotation": rotation_loss, "camera": camera_loss}

    regressor.train()
    history = train_in_budget(optimizer, settings, step_losses, "keypoint VQ-HPS")
    regressor.eval()
    return history


def evaluate_on_renders(model: VQHPS, seed: int, num_frames: int, image_model: VQHPS | None = None,
                        landmarker=None) -> dict:
    """See the module docstring: per model, the mean errors in mm over the rendered people, and their count."""
    from ..detect import POSE_LANDMARK_GRAPH, DetectionRunner, body_keypoints
    from ..synth.scene import SceneGenerator
    from .landmark_calibration import observed_people

    rng = np.random.default_rng(seed)
    generator = SceneGenerator()
    landmarker = (landmarker or DetectionRunner(POSE_LANDMARK_GRAPH, "auto")).activate()
    predicted: dict[str, list] = {"keypoint model": [], "image model": []}
    truth = []
    for _ in range(num_frames):
        frame = generator.random_frame(rng)
        observed = observed_people(frame, landmarker)
        if not observed:
            continue
        boxes = np.stack([person.box for person, _ in observed])
        geometry = crop_geometry_from_boxes(boxes)
        inputs = keypoint_model_input([body_keypoints(found) for _, found in observed], geometry,
                                      frame.image.shape[:2])
        with torch.no_grad():
            predicted["keypoint model"].append(model(torch.tensor(inputs, dtype=torch.float32)).verts)
            if image_model is not None:
                images = crop_people_cv2(frame.image, boxes).images
                predicted["image model"].append(image_model(torch.from_numpy(images)).verts)
        truth += [person.vertices_camera for person, _ in observed]
    gt = np.stack(truth).astype(np.float64)
    report = {"people": len(gt)}
    for name, parts in predicted.items():
        if parts:
            errors = evaluate_meshes(torch.cat(parts).numpy().astype(np.float64), gt, model.joint_regressor.numpy())
            report[name] = {key: round(float(values.mean()), 1) for key, values in errors.items()}
    return report

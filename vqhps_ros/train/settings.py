"""The training and evaluation settings, apart from the loops that use them: stdlib only, no torch or numpy.

`vqhps-ros` builds one `--option` per field of `HPSTrainConfig` and `MeshVQTrainConfig` when it builds its parser,
so `vqhps-ros --help` reads this module and nothing heavy. `hps`, `hps_data` and `mesh_vq` re-export what they
used to define (`from vqhps_ros.train.hps import HPSTrainConfig` keeps working).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import InputError

if TYPE_CHECKING:
    import torch

EVALUATION_BATCH_SIZE = 16  # `evaluate_model_file` (`vqhps-ros evaluate`): crops per forward pass
MESH_VQ_EVALUATION_BATCH_SIZE = 64  # `vqhps-ros evaluate-mesh-vq`: meshes per forward pass of `mesh_vq.validate`


@dataclass(frozen=True)
class AugmentationSettings:
    """Ranges and probabilities of the training augmentations (see the `hps_data` module docstring).

    rotation_degrees: the angle is uniform in [-rotation_degrees, rotation_degrees], applied with
    `rotation_probability` (SPIN rotates 40 % of the samples). scale_jitter: the crop side is multiplied by a
    factor uniform in [1 - s, 1 + s]. center_jitter: the crop centre moves by up to this fraction of its side
    along x and y. color_noise: per-channel gains uniform in [1 - n, 1 + n].
    """

    flip_probability: float = 0.5
    rotation_probability: float = 0.4
    rotation_degrees: float = 30.0
    scale_jitter: float = 0.25
    center_jitter: float = 0.05
    color_noise: float = 0.4

    def __post_init__(self):
        for name in ("flip_probability", "rotation_probability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise InputError(f"{name} must be a probability in [0, 1], found {getattr(self, name)}")
        for name in ("scale_jitter", "color_noise"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise InputError(f"{name} must be in [0, 1), found {getattr(self, name)}")
        for name in ("rotation_degrees", "center_jitter"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0.0):
                raise InputError(f"{name} must be finite and >= 0, found {getattr(self, name)}")


NO_AUGMENTATION = AugmentationSettings(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


@dataclass(frozen=True)
class HPSTrainConfig:
    """Training settings (each one is a `vqhps-ros train-hps --option`). Official values where upstream has one."""

    epochs: int = 200
    batch_size: int = 32
    lr: float = 1e-4
    weight_decay: float = 1e-3
    lr_step_epochs: int = 100
    lr_gamma: float = 0.1
    token_weight: float = 1.0
    rotation_weight: float = 1.0
    reprojection_weight: float = 1.0
    vertex_weight: float = 0.0  # not upstream's: trains through a soft-decoded mesh (see the `hps` module docstring)
    heatmap_weight: float = 0.0  # not upstream's: auxiliary keypoint heatmaps on the pose backbone's features
    box_rescale: float = 1.2
    # Not upstream's: the first N feature blocks of both (mobilenet_v2) backbones keep their starting weights and
    # BatchNorm statistics, for ImageNet trunks fine-tuned on a CPU (see `backbones.frozen_prefix`).
    frozen_backbone_blocks: int = 0
    # The augmentation defaults are AugmentationSettings' own (flat here: each field is a command-line option).
    flip_probability: float = AugmentationSettings.flip_probability
    rotation_probability: float = AugmentationSettings.rotation_probability
    rotation_degrees: float = AugmentationSettings.rotation_degrees
    scale_jitter: float = AugmentationSettings.scale_jitter
    center_jitter: float = AugmentationSettings.center_jitter
    color_noise: float = AugmentationSettings.color_noise
    mirror_tolerance: float = 0.005  # of the template's bounding-box diagonal
    validate_every: int = 1  # epochs
    num_workers: int = 2
    device: str = "auto"  # "auto": CUDA when available, else the CPU
    seed: int = 0

    def __post_init__(self):
        for name in ("epochs", "batch_size", "lr_step_epochs", "validate_every"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be >= 1, found {getattr(self, name)}")
        if self.frozen_backbone_blocks < 0:
            raise InputError(f"frozen_backbone_blocks must be >= 0, found {self.frozen_backbone_blocks}")
        if self.num_workers < 0:
            raise InputError(f"num_workers must be >= 0, found {self.num_workers}")
        for name in ("lr", "box_rescale", "mirror_tolerance"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                raise InputError(f"{name} must be a positive number, found {getattr(self, name)}")
        for name in ("weight_decay", "lr_gamma", "token_weight", "rotation_weight", "reprojection_weight",
                     "vertex_weight", "heatmap_weight"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise InputError(f"{name} must be a number >= 0, found {getattr(self, name)}")
        self.augmentation()  # checks the augmentation ranges

    def augmentation(self) -> AugmentationSettings:
        return AugmentationSettings(self.flip_probability, self.rotation_probability, self.rotation_degrees,
                                    self.scale_jitter, self.center_jitter, self.color_noise)

    def torch_device(self) -> torch.device:
        """The `torch.device` that `device` names (torch is imported here, when training starts)."""
        import torch  # noqa: F811 (the TYPE_CHECKING import above is for the annotation only)

        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        try:
            return torch.device(self.device)
        except RuntimeError as error:
            raise InputError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', found {self.device!r}") from error


@dataclass(frozen=True)
class MeshVQTrainConfig:
    """Mesh-VQ-VAE training settings (each one is a `vqhps-ros train-mesh-vq --option`)."""

    steps: int = 100_000
    batch_size: int = 16
    lr: float = 5e-5
    validate_every: int = 500
    validation_meshes: int = 800  # upstream validates on 50 batches of 16
    save_every: int = 2_000
    seed: int = 0
    # Beyond the official recipe, against codebook collapse in short trainings (0 turns each off): codes start on
    # encoder latents of training meshes, and codes whose EMA usage falls below the threshold restart on latents.
    data_init_codebook: int = 1
    dead_code_threshold: float = 0.05


class BudgetSchedule:
    """The learning-rate schedule of a training run over `steps` steps or `minutes` (whichever ends first), for
    settings dataclasses with the fields `steps`, `learning_rate`, `minutes` (None: no time budget) and `warmup`:
    linear warm-up over the first `warmup` of the run, then a cosine to zero. Progress is the larger of the step
    count over `steps` and the time spent over `minutes`, so a run given a time budget ends its schedule (and stops)
    within it."""

    def progress(self, step: int, seconds: float) -> float:
        by_time = 0.0 if self.minutes is None else seconds / (60.0 * self.minutes)
        return max(step / self.steps, by_time)

    def learning_rate_at(self, progress: float) -> float:
        if progress < self.warmup:
            return self.learning_rate * (progress / self.warmup)
        return 0.5 * self.learning_rate * (1.0 + math.cos(math.pi * min(1.0, (progress - self.warmup)
                                                                        / (1.0 - self.warmup))))

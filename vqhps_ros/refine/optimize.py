"""Refining one person's mesh against 2D targets in the image, within a time budget.

What moves: the root translation, a rotation applied on top of the regressed one (axis-angle, starting at zero) and,
with `body=True`, the body through the Mesh-VQ-VAE's continuous latent (B, T, D), starting at the codebook rows of
the regressed tokens and decoded by the frozen decoder. The latent is the space chosen for the body because it is
the one the regressor predicts in: every latent decodes to a mesh of this topology, staying near the regressed
latent keeps the body plausible, and no body-model fit of the decoded mesh is needed (the free body or SMPL
parameters are not what the network outputs).

What is minimised: a robust reprojection error (Geman-McClure in pixels, scale `robust_px`) between 2D targets and
the projection of points that are fixed linear combinations of the mesh's vertices (a (P, V) matrix: the vertices
themselves for dense targets, the 33 pose landmarks of `body.pose_landmarks` for sparse keypoint targets), weighted
per target; plus `latent_weight` times the squared distance of the latent to the regressed one (per element) and
`translation_weight` times the squared change of translation (metres), which keep the result near the regression
where the targets say little. Adam, `learning_rate`, at most `iterations` steps, stopping at the deadline.

The result keeps the regressed mesh when the targets are too few (`min_targets`) or when the refined reprojection
error is not lower than the regressed one (a diverging or useless refinement): `RefineResult.status` says which.
The published tokens stay the regressor's (the refined latent is not re-quantised).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import InputError

REFINED, TOO_FEW_TARGETS, NOT_IMPROVED = "refined", "too_few_targets", "not_improved"


@dataclass(frozen=True)
class RefineSettings:
    iterations: int = 20
    budget_ms: float = 30.0  # per person
    learning_rate: float = 0.05
    body: bool = True  # also move the body's latent, not only its root
    robust_px: float = 20.0
    latent_weight: float = 0.001  # per latent element (the reprojection term is at most 1 per target)
    translation_weight: float = 1.0  # per squared metre
    min_targets: int = 6

    def __post_init__(self):
        if self.iterations < 1 or self.budget_ms <= 0 or self.learning_rate <= 0 or self.robust_px <= 0:
            raise InputError(f"invalid refinement settings {self}: iterations >= 1 and positive budget, learning "
                             "rate and robust scale needed")


@dataclass(frozen=True)
class PersonState:
    """A placed person: canonical latent (T, D) of the regressed tokens, rotation (3, 3) canonical -> camera,
    translation (3,) metres (where the canonical mesh's origin lands)."""

    latent: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray


@dataclass(frozen=True)
class RefineResult:
    vertices: np.ndarray  # (V, 3) float32 camera frame: refined, or the regressed mesh when not refined
    state: PersonState
    status: str  # REFINED, TOO_FEW_TARGETS or NOT_IMPROVED
    error_before_px: float  # mean reprojection error of the weighted targets, regressed mesh
    error_after_px: float  # the same for the returned mesh
    iterations: int
    milliseconds: float


class MeshRefiner:
    """Refines people decoded by `mesh_vqvae` (frozen; see the module docstring)."""

    def __init__(self, mesh_vqvae, settings: RefineSettings | None = None):
        self.mesh_vqvae = mesh_vqvae.eval()
        for parameter in self.mesh_vqvae.parameters():
            parameter.requires_grad_(False)
        self.settings = settings or RefineSettings()

    def initial_state(self, tokens: np.ndarray, rotation: np.ndarray, translation: np.ndarray) -> PersonState:
        with torch.no_grad():
            latent = self.mesh_vqvae.vq_vae.lookup(torch.as_tensor(tokens, dtype=torch.int64)[None])[0]
        return PersonState(latent.float().numpy(), np.asarray(rotation, np.float64),
                           np.asarray(translation, np.float64))

    def refine(self, state: PersonState, targets: np.ndarray, weights: np.ndarray, target_matrix: np.ndarray,
               intrinsics, prior: PersonState | None = None) -> RefineResult:
        """targets (P, 2) pixels, weights (P,) >= 0 (0: no target), target_matrix (P, V): which combination of
        vertices each target is. `state` is where the optimisation starts (a track's last refined state warm-starts
        it), `prior` the regressed state it is held near (default: `state`)."""
        started = time.perf_counter()
        prior = prior or state
        matrix, goal, weight, camera = self._tensors(targets, weights, target_matrix, intrinsics)
        with torch.no_grad():
            regressed = self._vertices(*self._variables(prior), torch.as_tensor(prior.rotation, dtype=torch.float64))
        error_before = self._pixel_error(regressed, matrix, goal, weight, camera)
        if int((weights > 0).sum()) < self.settings.min_targets:
            return self._kept(regressed, prior, TOO_FEW_TARGETS, error_before, started)
        latent, axis_angle, translation = self._variables(state)
        prior_latent, prior_translation = (torch.as_tensor(prior.latent, dtype=torch.float32),
                                           torch.as_tensor(prior.translation, dtype=torch.float64))
        variables = [axis_angle, translation] + ([latent] if self.settings.body else [])
        for tensor in variables:
            tensor.requires_grad_(True)
        optimizer = torch.optim.Adam(variables, lr=self.settings.learning_rate)
        base_rotation = torch.as_tensor(state.rotation, dtype=torch.float64)
        deadline = started + self.settings.budget_ms / 1000.0
        iterations = 0
        while iterations < self.settings.iterations and time.perf_counter() < deadline:
            vertices = self._vertices(latent, axis_angle, translation, base_rotation)
            loss = (self._robust_reprojection(vertices, matrix, goal, weight, camera)
                    + self.settings.latent_weight * ((latent - prior_latent) ** 2).sum()
                    + self.settings.translation_weight * ((translation - prior_translation) ** 2).sum())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            iterations += 1
        with torch.no_grad():
            vertices = self._vertices(latent, axis_angle, translation, base_rotation)
            error_after = self._pixel_error(vertices, matrix, goal, weight, camera)
            rotation = rotation_from_vector(axis_angle) @ base_rotation
        if not error_after < error_before:
            return self._kept(regressed, prior, NOT_IMPROVED, error_before, started, iterations)
        refined = PersonState(latent.detach().numpy().copy(), rotation.numpy(), translation.detach().numpy().copy())
        return RefineResult(vertices.float().numpy(), refined, REFINED, error_before, error_after, iterations,
                            1000 * (time.perf_counter() - started))

    # ------------------------------------------------------------------------------------------------ internals

    def _variables(self, state: PersonState):
        return (torch.tensor(state.latent, dtype=torch.float32), torch.zeros(3, dtype=torch.float64),
                torch.tensor(state.translation, dtype=torch.float64))

    def _vertices(self, latent, axis_angle, translation, base_rotation) -> torch.Tensor:
        canonical = self.mesh_vqvae.decode_latent(latent[None])[0].double()
        return canonical @ (rotation_from_vector(axis_angle) @ base_rotation).T + translation

    def _tensors(self, targets, weights, target_matrix, intrinsics):
        targets, weights = np.asarray(targets, np.float64), np.asarray(weights, np.float64)
        matrix = np.asarray(target_matrix, np.float64)
        count = len(targets)
        if targets.shape != (count, 2) or weights.shape != (count,) or matrix.shape != (count,
                                                                                        self.mesh_vqvae.num_vertices):
            raise InputError(f"expected targets (P, 2), weights (P,) and a (P, {self.mesh_vqvae.num_vertices}) "
                             f"target matrix, found {targets.shape}, {weights.shape}, {matrix.shape}")
        usable = np.isfinite(targets).all(axis=1) & np.isfinite(weights) & (weights > 0)
        return (torch.from_numpy(matrix), torch.from_numpy(np.where(usable[:, None], targets, 0.0)),
                torch.from_numpy(np.where(usable, weights, 0.0)), torch.as_tensor(intrinsics, dtype=torch.float64))

    def _projected(self, vertices, matrix, camera) -> torch.Tensor:
        points = matrix @ vertices
        pixels = points @ camera.T
        return pixels[:, :2] / pixels[:, 2:].clamp(min=1e-3)

    def _robust_reprojection(self, vertices, matrix, goal, weight, camera) -> torch.Tensor:
        squared = ((self._projected(vertices, matrix, camera) - goal) ** 2).sum(dim=1) / self.settings.robust_px ** 2
        return (weight * squared / (1.0 + squared)).sum() / weight.sum().clamp(min=1e-9)

    def _pixel_error(self, vertices, matrix, goal, weight, camera) -> float:
        with torch.no_grad():
            distance = (self._projected(vertices, matrix, camera) - goal).norm(dim=1)
            return float((weight * distance).sum() / weight.sum().clamp(min=1e-9))

    def _kept(self, regressed, prior, status, error, started, iterations=0) -> RefineResult:
        return RefineResult(regressed.float().numpy(), prior, status, error, error, iterations,
                            1000 * (time.perf_counter() - started))


def rotation_from_vector(vector: torch.Tensor) -> torch.Tensor:
    """(3,) axis * angle -> (3, 3), as the exponential of its skew matrix: smooth at zero, where the refinement's
    rotation starts (Rodrigues' formula divides by the angle there)."""
    x, y, z = vector.unbind()
    zero = torch.zeros_like(x)
    skew = torch.stack((zero, -z, y, z, zero, -x, -y, x, zero)).reshape(3, 3)
    return torch.linalg.matrix_exp(skew)

"""Refining one person's mesh against 2D targets in the image, within a time budget.

What moves: the root translation, a rotation applied on top of the regressed one (axis-angle, starting at zero) and,
with `body=True`, the body through the Mesh-VQ-VAE's continuous latent (B, T, D), starting at the codebook rows of
the regressed tokens and decoded by the frozen decoder. The latent is the space chosen for the body because it is
the one the regressor predicts in: every latent decodes to a mesh of this topology, staying near the regressed
latent keeps the body plausible, and no body-model fit of the decoded mesh is needed (the free body or SMPL
parameters are not what the network outputs).

A person's body can start from a mesh that is not exactly the decoded latent (the temporal stage's filtered mesh):
the state then carries `body_offset`, that mesh minus the decoded latent, and the body is decoded latent + offset:
the refinement moves the published mesh by what the latent's change moves it, and with no change returns it as is.

What is minimised: a robust reprojection error (Geman-McClure in pixels, scale `robust_px`) between 2D targets and
the projection of points on the mesh, weighted per target. The points are vertices (a (P,) index array: dense
targets) or fixed linear combinations of the vertices (a (P, V) matrix: the 33 pose landmarks of
`body.pose_landmarks` for sparse keypoint targets). Priors: `latent_weight` times the squared distance of the latent
to the regressed one (per element) and `translation_weight` times the squared change of translation (metres), which
keep the result near the regression where the targets say little, and `temporal_weight` times the squared distance
of the latent to the track's previous refined one (smoothness over frames). Adam, `learning_rate` (smaller for
people nearer than those it was tuned on: `step_scale`), at most `iterations` steps, stopping at the deadline. The
result is the iterate of lowest objective, not the last, as Adam's last step can overshoot. On the tuning sequences
(seed 1, `both`, ten steps) keeping the best iterate took the rate then used, 0.05, from 7.54 to 7.39 px (people
refined: 88 -> 92 %); with it the default rate is 0.025 (7.04 px, PVE 93.7 mm; 0.015: 7.12, 0.035: 7.06, 0.08:
8.02).

The result keeps the regressed mesh when the targets are too few (`min_targets`) or when the refined reprojection
error is not lower than the regressed one (a diverging or useless refinement): `RefineResult.status` says which.
The published tokens stay the regressor's (the refined latent is not re-quantised).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

import numpy as np
import torch

from ..errors import InputError

REFINED, TOO_FEW_TARGETS, NOT_IMPROVED = "refined", "too_few_targets", "not_improved"
# The rate was tuned on people covering 90 to 190 pixels per metre (5th to 95th percentile: 5.6 to 2.6 m away at a
# focal length of 500 px); nearer people take smaller steps (`step_scale`).
NEAREST_TUNED_PIXELS_PER_METRE = 200.0
MIN_DEPTH_M = 0.1


@dataclass(frozen=True)
class RefineSettings:
    iterations: int = 10  # as the configuration's default
    budget_ms: float = 30.0  # per person
    learning_rate: float = 0.025
    body: bool = True  # also move the body's latent, not only its root
    robust_px: float = 20.0
    latent_weight: float = 0.001  # per latent element (the reprojection term is at most 1 per target)
    translation_weight: float = 1.0  # per squared metre
    temporal_weight: float = 0.001  # per latent element, towards the previous frame's refined latent
    min_targets: int = 6

    def __post_init__(self):
        if self.iterations < 1 or self.budget_ms <= 0 or self.learning_rate <= 0 or self.robust_px <= 0:
            raise InputError(f"invalid refinement settings {self}: iterations >= 1 and positive budget, learning "
                             "rate and robust scale needed")


@dataclass(frozen=True)
class PersonState:
    """A placed person: canonical latent (T, D) of the regressed tokens, rotation (3, 3) canonical -> camera,
    translation (3,) metres (where the canonical mesh's origin lands), body_offset (V, 3) canonical frame or None
    (see the module docstring)."""

    latent: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    body_offset: np.ndarray | None = None


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
        # the optimisation runs where the decoder is; placement in float64 on the CPU, float32 on a GPU (a Jetson's
        # float64 is many times slower; float32 resolves far under a millimetre at a few metres)
        self.device = next(self.mesh_vqvae.parameters()).device
        self.real = torch.float64 if self.device.type == "cpu" else torch.float32

    def _tensor(self, values, dtype=None) -> torch.Tensor:
        return torch.as_tensor(np.asarray(values), dtype=dtype or self.real, device=self.device)

    def initial_state(self, tokens: np.ndarray, rotation: np.ndarray, translation: np.ndarray,
                      vertices: np.ndarray | None = None) -> PersonState:
        """The state of a regressed person; `vertices` (V, 3) camera frame: the mesh to start from when it is not
        the decoded tokens (a filtered one), kept as the state's body offset."""
        rotation, translation = np.asarray(rotation, np.float64), np.asarray(translation, np.float64)
        with torch.no_grad():
            latent = self.mesh_vqvae.vq_vae.lookup(self._tensor(tokens, torch.int64)[None])[0]
            offset = None
            if vertices is not None:
                body = (np.asarray(vertices, np.float64) - translation) @ rotation
                decoded = self.mesh_vqvae.decode_latent(latent[None])[0].double().cpu().numpy()
                offset = (body - decoded).astype(np.float32)
        return PersonState(latent.float().cpu().numpy(), rotation, translation, offset)

    def refine(self, state: PersonState, targets: np.ndarray, weights: np.ndarray, target_points: np.ndarray,
               intrinsics, prior: PersonState | None = None, previous: PersonState | None = None,
               budget_ms: float | None = None) -> RefineResult:
        """targets (P, 2) pixels, weights (P,) >= 0 (0: no target), target_points: which point of the mesh each
        target is, (P,) vertex indices or a (P, V) matrix of vertex weights. `state` is where the optimisation
        starts (the regressed state, or a track's last refined latent to warm-start it), `prior` the regressed state
        it is held near (default: `state`; its body offset is the one used), `previous` the track's last refined
        state (the temporal prior).
        `budget_ms` overrides the settings' budget (what is left of a frame's)."""
        started = time.perf_counter()
        prior = prior or state
        matrix, goal, weight, camera = self._tensors(targets, weights, target_points, intrinsics)
        offset = None if prior.body_offset is None else self._tensor(prior.body_offset)
        with torch.no_grad():
            latent, axis_angle, translation = self._variables(prior)
            prior_body = self._body(latent, offset)
            regressed = _placed(prior_body, axis_angle, translation, self._tensor(prior.rotation))
        error_before = self._pixel_error(regressed, matrix, goal, weight, camera)
        if int((weights > 0).sum()) < self.settings.min_targets:
            return self._kept(regressed, prior, TOO_FEW_TARGETS, error_before, started)
        latent, axis_angle, translation = self._variables(state if self.settings.body else replace(state,
                                                                                                 latent=prior.latent))
        prior_latent, prior_translation = self._tensor(prior.latent, torch.float32), self._tensor(prior.translation)
        previous_latent = None if previous is None else self._tensor(previous.latent, torch.float32)
        variables = [axis_angle, translation] + ([latent] if self.settings.body else [])
        for tensor in variables:
            tensor.requires_grad_(True)
        optimizer = torch.optim.Adam(variables, lr=self.settings.learning_rate * step_scale(intrinsics,
                                                                                        prior.translation))
        base_rotation = self._tensor(state.rotation)
        fixed_body = None if self.settings.body else prior_body  # without the body, only the placement moves
        deadline = started + (self.settings.budget_ms if budget_ms is None else budget_ms) / 1000.0
        iterations = 0
        best = _BestIterate()

        def objective(vertices) -> torch.Tensor:
            loss = (self._robust_reprojection(vertices, matrix, goal, weight, camera)
                    + self.settings.latent_weight * ((latent - prior_latent) ** 2).sum()
                    + self.settings.translation_weight * ((translation - prior_translation) ** 2).sum())
            if previous_latent is not None:
                loss = loss + self.settings.temporal_weight * ((latent - previous_latent) ** 2).sum()
            return loss

        while iterations < self.settings.iterations and time.perf_counter() < deadline:
            body = fixed_body if fixed_body is not None else self._body(latent, offset)
            vertices = _placed(body, axis_angle, translation, base_rotation)
            loss = objective(vertices)
            best.offer(loss, vertices, latent, axis_angle, translation)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            iterations += 1
        with torch.no_grad():
            body = fixed_body if fixed_body is not None else self._body(latent, offset)
            vertices = _placed(body, axis_angle, translation, base_rotation)
            best.offer(objective(vertices), vertices, latent, axis_angle, translation)
            vertices, latent, axis_angle, translation = best.tensors
            error_after = self._pixel_error(vertices, matrix, goal, weight, camera)
            rotation = rotation_from_vector(axis_angle) @ base_rotation
        if not error_after < error_before:
            return self._kept(regressed, prior, NOT_IMPROVED, error_before, started, iterations)
        refined = PersonState(latent.detach().cpu().numpy().copy(), rotation.double().cpu().numpy(),
                              translation.detach().double().cpu().numpy().copy(), prior.body_offset)
        return RefineResult(vertices.float().cpu().numpy(), refined, REFINED, error_before, error_after, iterations,
                            1000 * (time.perf_counter() - started))

    # ------------------------------------------------------------------------------------------------ internals

    def _variables(self, state: PersonState):
        return (self._tensor(state.latent, torch.float32).clone(), torch.zeros(3, dtype=self.real, device=self.device),
                self._tensor(state.translation).clone())

    def _body(self, latent, offset=None) -> torch.Tensor:
        """(V, 3) canonical body of a latent (plus the state's body offset), in the placement's precision."""
        canonical = self.mesh_vqvae.decode_latent(latent[None])[0].to(self.real)
        return canonical if offset is None else canonical + offset

    def _tensors(self, targets, weights, target_points, intrinsics):
        targets, weights = np.asarray(targets, np.float64), np.asarray(weights, np.float64)
        count, num_vertices = len(targets), self.mesh_vqvae.num_vertices
        points = np.asarray(target_points)
        indices = points.ndim == 1 and points.dtype.kind in "iu"
        if indices and len(points) and not (0 <= points.min() and points.max() < num_vertices):
            raise InputError(f"target vertex indices must lie in [0, {num_vertices}), found [{points.min()}, "
                             f"{points.max()}]")
        shape_ok = points.shape == ((count,) if indices else (count, num_vertices))
        if targets.shape != (count, 2) or weights.shape != (count,) or not shape_ok:
            raise InputError(f"expected targets (P, 2), weights (P,) and (P,) vertex indices or a (P, {num_vertices}) "
                             f"target matrix, found {targets.shape}, {weights.shape}, {points.shape}")
        usable = np.isfinite(targets).all(axis=1) & np.isfinite(weights) & (weights > 0)
        points = self._tensor(points, torch.int64) if indices else self._tensor(points)
        return (points, self._tensor(np.where(usable[:, None], targets, 0.0)),
                self._tensor(np.where(usable, weights, 0.0)), self._tensor(intrinsics))

    def _projected(self, vertices, matrix, camera) -> torch.Tensor:
        points = vertices[matrix] if matrix.ndim == 1 else matrix @ vertices
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
        return RefineResult(regressed.float().cpu().numpy(), prior, status, error, error, iterations,
                            1000 * (time.perf_counter() - started))


def step_scale(intrinsics, translation) -> float:
    """The factor on `learning_rate` for a person: 1 while a metre covers at most NEAREST_TUNED_PIXELS_PER_METRE
    pixels there (focal / depth), nearer that number divided by the pixels a metre covers. A step moves the mesh by
    so many metres, so with the tuned rate a close-up (the real photographs' people cover 470 px per metre at the
    median, up to 950) was thrown tens of pixels off its targets in one step and kept its regressed mesh."""
    camera = np.asarray(intrinsics, np.float64)
    pixels_per_metre = 0.5 * (camera[0, 0] + camera[1, 1]) / max(float(translation[2]), MIN_DEPTH_M)
    return min(1.0, NEAREST_TUNED_PIXELS_PER_METRE / pixels_per_metre)


class _BestIterate:
    """The optimisation's iterate of lowest objective so far: copies of its tensors (vertices and variables). The
    first iterate offered is always kept, and a non-finite objective counts as infinite, so there is always one to
    return and a diverged step never replaces a finite one."""

    def __init__(self):
        self.objective = math.inf
        self.tensors: tuple[torch.Tensor, ...] = ()

    def offer(self, objective: torch.Tensor, *tensors: torch.Tensor) -> None:
        value = float(objective.detach())  # a plain read: float() of a tensor that needs grad warns every step
        value = value if math.isfinite(value) else math.inf
        if not self.tensors or value < self.objective:
            self.objective = value
            self.tensors = tuple(tensor.detach().clone() for tensor in tensors)


def _placed(body: torch.Tensor, axis_angle: torch.Tensor, translation: torch.Tensor,
            base_rotation: torch.Tensor) -> torch.Tensor:
    return body @ (rotation_from_vector(axis_angle) @ base_rotation).T + translation


def rotation_from_vector(vector: torch.Tensor) -> torch.Tensor:
    """(3,) axis * angle -> (3, 3), as the exponential of its skew matrix: smooth at zero, where the refinement's
    rotation starts (Rodrigues' formula divides by the angle there)."""
    x, y, z = vector.unbind()
    zero = torch.zeros_like(x)
    skew = torch.stack((zero, -z, y, z, zero, -x, -y, x, zero)).reshape(3, 3)
    return torch.linalg.matrix_exp(skew)

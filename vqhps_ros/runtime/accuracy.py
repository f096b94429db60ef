"""What a reduced precision costs: a candidate engine's outputs against the fp32 reference on the same crops.

Measured per person, then summarised over the crops:

* token agreement: the fraction of the T codebook indices equal to the reference's;
* vertex error: Euclidean distance (mm) between corresponding vertices of the posed meshes (`verts`, rotation
  included), mean over vertices and persons, plus the 95th percentile and the maximum of the per-person means;
  the same for the canonical meshes (tokens only), and the angle between the two global rotations (degrees);
* the share of persons whose tokens all agree, and their vertex error: a flipped token replaces a whole region of
  the mesh, so the mean vertex error mixes rare large jumps (token flips) with the small continuous error;
* pose difference after alignment: PA-MPJPE (joints, when the graph outputs them) or PA-PVE (vertices) of the
  candidate's canonical mesh aligned onto the reference's, mm;
* with ground-truth canonical meshes of the same topology: the official PA-MPJPE (with the model's joint regressor)
  or PA-PVE of reference and candidate against the truth, and the change.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..errors import InputError
from ..metrics import MM_PER_METRE, pa_mpjpe
from .base import EngineOutput


@dataclass(frozen=True)
class PrecisionCost:
    persons: int
    token_agreement: float  # fraction in [0, 1]
    vertex_error_mm: float  # mean over persons of the mean per-vertex distance of `verts`
    vertex_error_p95_mm: float  # 95th percentile of the per-person means
    vertex_error_max_mm: float  # largest per-person mean
    canonical_vertex_error_mm: float  # as vertex_error_mm on `verts_canonical`: the tokens' share of the error
    rotation_error_deg: float  # mean angle of rotmat_candidate @ rotmat_reference^T
    persons_all_tokens_equal: float  # fraction of persons without a single flipped token
    vertex_error_all_tokens_equal_mm: float | None  # vertex_error_mm over those persons (None when there are none)
    aligned_metric: str  # "PA-MPJPE" (joints) or "PA-PVE" (vertices)
    aligned_to_reference_mm: float  # the candidate aligned onto the reference, mean over persons
    reference_to_truth_mm: float | None = None  # the official metric against the ground truth
    candidate_to_truth_mm: float | None = None

    @property
    def truth_change_mm(self) -> float | None:
        if self.reference_to_truth_mm is None or self.candidate_to_truth_mm is None:
            return None
        return self.candidate_to_truth_mm - self.reference_to_truth_mm

    def to_dict(self) -> dict:
        return {**asdict(self), "truth_change_mm": self.truth_change_mm}


def measure_precision_cost(reference: EngineOutput, candidate: EngineOutput,
                           truth_vertices: np.ndarray | None = None,
                           joint_regressor: np.ndarray | None = None) -> PrecisionCost:
    """Compare two engines' outputs on the same crops (see the module docstring).

    truth_vertices: (N, V, 3) canonical ground-truth meshes (metres), or None. joint_regressor: (J, V) matrix for
    PA-MPJPE against the truth (default: none, PA-PVE is used).
    """
    persons = len(reference.indices)
    if persons == 0 or len(candidate.indices) != persons or reference.verts.shape != candidate.verts.shape:
        raise InputError(f"expected two non-empty outputs of the same persons, found {len(reference.indices)} and "
                         f"{len(candidate.indices)} persons")
    per_person = np.linalg.norm(candidate.verts - reference.verts, axis=-1).mean(axis=1) * MM_PER_METRE
    aligned_metric, aligned = _aligned_error(reference, candidate)
    same_tokens = np.all(candidate.indices == reference.indices, axis=1)
    cost = dict(
        persons=persons,
        token_agreement=float(np.mean(candidate.indices == reference.indices)),
        vertex_error_mm=float(per_person.mean()),
        vertex_error_p95_mm=float(np.percentile(per_person, 95)),
        vertex_error_max_mm=float(per_person.max()),
        canonical_vertex_error_mm=float(_mean_distance_mm(candidate.verts_canonical, reference.verts_canonical)),
        rotation_error_deg=float(rotation_angle_deg(candidate.rotmat, reference.rotmat).mean()),
        persons_all_tokens_equal=float(same_tokens.mean()),
        vertex_error_all_tokens_equal_mm=float(per_person[same_tokens].mean()) if same_tokens.any() else None,
        aligned_metric=aligned_metric,
        aligned_to_reference_mm=aligned,
    )
    if truth_vertices is not None and np.shape(truth_vertices)[1:] == reference.verts_canonical.shape[1:]:
        cost["reference_to_truth_mm"] = _error_to_truth(reference.verts_canonical, truth_vertices, joint_regressor)
        cost["candidate_to_truth_mm"] = _error_to_truth(candidate.verts_canonical, truth_vertices, joint_regressor)
    return PrecisionCost(**cost)


def _mean_distance_mm(points: np.ndarray, reference: np.ndarray) -> float:
    return float(np.linalg.norm(points - reference, axis=-1).mean() * MM_PER_METRE)


def rotation_angle_deg(rotations: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """(N, 3, 3) twice -> (N,) angle in degrees of each relative rotation R R_ref^T."""
    relative = np.asarray(rotations, dtype=np.float64) @ np.swapaxes(np.asarray(reference, dtype=np.float64), 1, 2)
    cosine = (np.trace(relative, axis1=1, axis2=2) - 1.0) / 2.0
    # atan2 of sine and cosine: arccos alone turns float32 rounding of near-identical rotations into ~0.01 degrees.
    axis = np.stack([relative[:, 2, 1] - relative[:, 1, 2], relative[:, 0, 2] - relative[:, 2, 0],
                     relative[:, 1, 0] - relative[:, 0, 1]], axis=1)
    return np.degrees(np.arctan2(np.linalg.norm(axis, axis=1) / 2.0, cosine))


def _aligned_error(reference: EngineOutput, candidate: EngineOutput) -> tuple[str, float]:
    if reference.joints is not None and candidate.joints is not None:
        return "PA-MPJPE", float(pa_mpjpe(candidate.joints, reference.joints).mean())
    return "PA-PVE", float(pa_mpjpe(candidate.verts_canonical, reference.verts_canonical).mean())


def _error_to_truth(predicted: np.ndarray, truth: np.ndarray, joint_regressor: np.ndarray | None) -> float:
    predicted = predicted - predicted.mean(axis=1, keepdims=True)
    truth = np.asarray(truth, dtype=np.float64)
    truth = truth - truth.mean(axis=1, keepdims=True)
    if joint_regressor is not None:
        regressor = np.asarray(joint_regressor, dtype=np.float64)
        return float(pa_mpjpe(regressor @ predicted, regressor @ truth).mean())
    return float(pa_mpjpe(predicted, truth).mean())

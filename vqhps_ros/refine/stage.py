"""`AlignmentRefinement`: the estimator's optional last stage. Each person's mesh is moved to where the image says it
is, within a time budget per frame, and the refined mesh replaces the regressed one (`Human.refined`).

Per frame, after the temporal stage:

1. which vertices of each person the camera sees, the people hiding each other (`renderings.visible_vertices`);
2. per person, in budget order (the frame's budget is shared out among the people still to refine), 2D targets:
   - `dense`: the person's crop and the rendering of the current mesh in it (colour from the track's texture) through
     the displacement network; each visible vertex's target is its projection plus the displacement there, weighted
     by the network's confidence (below `min_confidence`: no target), at most `max_targets` of them;
   - `sparse`: the body keypoints the person source found (the landmark model's), at the mesh's pose landmarks
     (`body.pose_landmarks`), weighted by visibility;
   - `both` (the default: it measures better than either alone, `benchmarks/refine.py`): the two sets, each
     carrying half of the weight, or the one that has any (no confident displacement: the keypoints alone; a
     signal dropped this way is not counted, as the person is still refined);
3. `MeshRefiner` from the published mesh (the temporal stage's, kept exactly when nothing improves), held near the
   track's last refined latent (temporal prior) and, with `warm_start`, starting from it (off by default: on the
   tuning sequences starting from the regressed latent gave 1-2 mm less PVE for the same 2D fit);
4. the track's texture learns from the frame at the refined mesh (`texture.VertexTexture`; only with tracking, as
   per-frame ids would mix people).

What is not refined is counted in the frame's `skipped` (the person is still published, with its regressed mesh):
`refine_too_few_targets` (mostly outside the image, hidden, or nothing trustworthy), `refine_not_improved` (the
optimisation did not lower the reprojection error: wrong keypoints, an inconsistent field), `refine_over_budget` (the
frame's budget was spent), `refine_no_keypoints` (sparse signal, person without keypoints), `refine_diverged_field`
(dense signal: most confident displacements longer than a quarter of the crop, which the network never learnt).

The published tokens stay the regressor's: the refined latent is not re-quantised. The tokens remain what the network
classified (with their confidences), and the refined body is in the vertices, joints and root pose.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, replace

import numpy as np
import torch

from ..errors import InputError
from ..hps.camera import project_points
from ..hps.crops import apply_affines, crop_geometry_from_boxes
from ..hps.keypoint_input import is_pose_keypoint_set, seen_keypoints
from ..humans import Frame, FrameResult, Human, root_position
from .displacement import CROP_SIZE, DisplacementNet, image_crop, network_input, sample_field
from .optimize import REFINED, MeshRefiner, PersonState, RefineSettings
from .renderings import facing_camera, render_in_crop, visible_vertices
from .texture import VertexTexture

DENSE, SPARSE, BOTH = "dense", "sparse", "both"
SIGNALS = (DENSE, SPARSE, BOTH)
FORGET_AFTER_NS = 2_000_000_000  # a track unseen this long has ended (the tracker never reuses an id)
# Displacements longer than this (crop pixels, a quarter of the crop) are not targets: the network was trained on
# meshes at most about a tenth of the crop off. When most confident ones are that long, the field has diverged.
MAX_DISPLACEMENT = CROP_SIZE / 4
DIVERGED_SHARE = 0.5


@dataclass(frozen=True)
class StageSettings:
    signal: str = BOTH
    texture: bool = True
    budget_ms: float = 60.0  # per frame
    min_confidence: float = 0.5
    max_targets: int = 300
    warm_start: bool = False  # from the track's last refined latent (measured worse in 3D)

    def __post_init__(self):
        if self.signal not in SIGNALS or self.budget_ms <= 0 or self.max_targets < 1:
            raise InputError(f"invalid refinement stage settings {self}: signal one of {SIGNALS}, a positive "
                             "budget and max_targets >= 1 needed")


@dataclass
class _TrackMemory:
    texture: VertexTexture
    last: PersonState | None = None
    seen_ns: int = 0


class AlignmentRefinement:
    """mesh_vqvae: the model's (frozen) Mesh-VQ-VAE; faces (F, 3); joint_regressor (J, V) or None; net: the
    displacement network (dense signal); pose_landmarks (33, V) (sparse signal); tracked: ids are track ids."""

    def __init__(self, mesh_vqvae, faces: np.ndarray, joint_regressor: np.ndarray | None,
                 settings: StageSettings = StageSettings(), refine_settings: RefineSettings | None = None,
                 net: DisplacementNet | None = None, pose_landmarks: np.ndarray | None = None, tracked: bool = True):
        if settings.signal in (DENSE, BOTH) and net is None:
            raise InputError("the dense refinement signal needs the displacement network")
        if settings.signal in (SPARSE, BOTH) and pose_landmarks is None:
            raise InputError("the sparse refinement signal needs the mesh's pose landmarks (33 x V)")
        self.settings = settings
        self.refiner = MeshRefiner(mesh_vqvae, refine_settings)
        self.faces = np.asarray(faces, dtype=np.int64)
        self.joint_regressor = None if joint_regressor is None else np.asarray(joint_regressor, np.float64)
        self.net = None if net is None else net.eval().to(self.refiner.device)
        self.pose_landmarks = pose_landmarks
        self.tracked = tracked
        self.tracks: dict[str, _TrackMemory] = {}

    def reset(self) -> None:
        self.tracks.clear()

    def update(self, frame: Frame, result: FrameResult) -> FrameResult:
        """Refine the frame's humans (see the module docstring); counts go to result.skipped."""
        started = time.perf_counter()
        skipped = Counter(result.skipped)
        self._forget(result.stamp_ns)
        memories = [self._memory(human, result.stamp_ns) for human in result.humans]
        meshes = [human.vertices for human in result.humans]
        visible = [None] * len(meshes)  # only dense targets and the texture ask which vertices are seen
        if meshes and self.settings.signal != SPARSE:
            visible = visible_vertices(meshes, self.faces, frame.intrinsics, frame.image_size)
        refined = []
        for index, (human, seen, memory) in enumerate(zip(result.humans, visible, memories, strict=True)):
            share_ms = (self.settings.budget_ms - 1000 * (time.perf_counter() - started)) / (len(result.humans) - index)
            refined.append(self._refine_person(frame, human, seen, memory, time.perf_counter() + share_ms / 1000,
                                               skipped))
        result.humans = refined
        result.skipped = dict(skipped)
        return result

    # ------------------------------------------------------------------------------------------------ a person

    def _refine_person(self, frame: Frame, human: Human, seen: np.ndarray | None, memory: _TrackMemory | None,
                       deadline: float, skipped: Counter) -> Human:
        """The refined human, or `human` itself (the reason counted); `deadline`: perf_counter seconds."""
        if time.perf_counter() >= deadline:
            skipped["refine_over_budget"] += 1
            return human
        targets = self._targets(frame, human, seen, memory, skipped)
        if targets is None:
            return human
        budget_ms = 1000 * (deadline - time.perf_counter())
        if budget_ms <= 0:  # the targets took this person's share
            skipped["refine_over_budget"] += 1
            self._learn_texture(frame, human, seen, memory)
            return human
        goal, weights, points = targets
        prior = self.refiner.initial_state(human.tokens, human.root_rotation, human.translation, human.vertices)
        previous = memory.last if memory else None
        start = prior if previous is None or not self.settings.warm_start else replace(prior, latent=previous.latent)
        outcome = self.refiner.refine(start, goal, weights, points, frame.intrinsics, prior=prior, previous=previous,
                                      budget_ms=budget_ms)
        if outcome.status != REFINED:
            skipped[f"refine_{outcome.status}"] += 1
            self._learn_texture(frame, human, seen, memory)
            return human
        if memory:
            memory.last = outcome.state
        published = self._human(human, outcome.vertices, outcome.state, frame.intrinsics)
        self._learn_texture(frame, published, seen, memory)
        return published

    def _targets(self, frame, human, seen, memory, skipped):
        """(targets (P, 2) pixels, weights (P,), vertex indices (P,) or a point matrix (P, V)), or None (counted)."""
        signal = self.settings.signal
        if signal == SPARSE:
            return self._sparse_targets(frame, human, skipped)
        if signal == DENSE:
            return self._dense_targets(frame, human, seen, memory, skipped)
        dropped = Counter()  # why a signal has no targets: counted only when the person has none of either
        dense = self._dense_targets(frame, human, seen, memory, dropped)
        sparse = self._sparse_targets(frame, human, dropped)
        if dense is None and sparse is None:
            skipped.update(dropped)
            return None
        if dense is None or sparse is None:
            return dense or sparse
        return _combined(dense, sparse, len(human.vertices))

    def _sparse_targets(self, frame, human, skipped):
        keypoints = human.keypoints
        if keypoints is None or not is_pose_keypoint_set(keypoints):
            skipped["refine_no_keypoints"] += 1
            return None
        weights = np.where(seen_keypoints(keypoints, frame.image_size), keypoints.visibility, 0.0)
        return keypoints.points.astype(np.float64), weights.astype(np.float64), self.pose_landmarks

    def _dense_targets(self, frame, human, seen, memory, skipped):
        geometry = crop_geometry_from_boxes(np.asarray(human.box, np.float64)[None], crop_size=CROP_SIZE)
        crop_from_image = geometry.crop_from_image[0]
        colours = None
        if memory is not None and self.settings.texture:
            colours = memory.texture.rendering_colours()
        rendering = render_in_crop(human.vertices, self.faces, frame.intrinsics, crop_from_image, CROP_SIZE, colours)
        inputs = network_input(image_crop(frame.image, crop_from_image), rendering)
        with torch.no_grad():
            flow, logits = self.net(torch.from_numpy(inputs)[None].to(self.refiner.device))
        field = np.concatenate([flow[0].cpu().numpy(), torch.sigmoid(logits[0]).cpu().numpy()])
        indices = np.flatnonzero(seen)
        pixels = project_points(np.asarray(human.vertices, np.float64)[indices][None], frame.intrinsics)[0]
        in_crop = apply_affines(crop_from_image[None], pixels[None])[0]
        values = sample_field(field, in_crop)
        confidence = values[:, 2]
        confident = confidence >= self.settings.min_confidence
        plausible = np.linalg.norm(values[:, :2], axis=1) <= MAX_DISPLACEMENT
        if confident.any() and (confident & ~plausible).sum() > DIVERGED_SHARE * confident.sum():
            skipped["refine_diverged_field"] += 1
            return None
        keep = np.flatnonzero(confident & plausible)
        if len(keep) > self.settings.max_targets:  # the most confident ones
            keep = keep[np.argsort(-confidence[keep], kind="stable")[: self.settings.max_targets]]
        targets = apply_affines(geometry.image_from_crop, (in_crop[keep] + values[keep, :2])[None])[0]
        return targets, confidence[keep], indices[keep]

    # ---------------------------------------------------------------------------------------------- bookkeeping

    def _human(self, human: Human, vertices: np.ndarray, state: PersonState, intrinsics) -> Human:
        vertices = vertices.astype(np.float32)
        joints = None
        if self.joint_regressor is not None:
            joints = (self.joint_regressor @ vertices.astype(np.float64)).astype(np.float32)
        return replace(human, vertices=vertices, joints=joints, vertices_2d=_pixels(vertices, intrinsics),
                       joints_2d=None if joints is None else _pixels(joints, intrinsics),
                       root_position=root_position(vertices, joints), root_rotation=state.rotation,
                       translation=state.translation, refined=True)

    def _memory(self, human: Human, stamp_ns: int) -> _TrackMemory | None:
        if not self.tracked:
            return None
        memory = self.tracks.get(human.id)
        if memory is None:
            memory = self.tracks[human.id] = _TrackMemory(VertexTexture(len(human.vertices)))
        memory.seen_ns = stamp_ns
        return memory

    def _learn_texture(self, frame: Frame, human: Human, seen: np.ndarray, memory: _TrackMemory | None) -> None:
        if memory is None or not self.settings.texture or self.settings.signal == SPARSE:
            return
        memory.texture.update(frame.image, human.vertices_2d, seen, facing_camera(human.vertices, self.faces))

    def _forget(self, stamp_ns: int) -> None:
        for track_id in [key for key, memory in self.tracks.items()
                         if not 0 <= stamp_ns - memory.seen_ns <= FORGET_AFTER_NS]:
            del self.tracks[track_id]


def _combined(dense, sparse, num_vertices: int):
    """Dense vertex targets and sparse landmark targets as one set, each signal carrying half of the total weight
    (the 33 keypoints would otherwise weigh a tenth of a few hundred vertices). A signal without weight (no confident
    displacement, as on many real images, or no keypoint seen) leaves the other alone, which scaling would zero."""
    (dense_goal, dense_weights, indices), (sparse_goal, sparse_weights, landmarks) = dense, sparse
    if not dense_weights.sum() > 0:
        return sparse
    if not sparse_weights.sum() > 0:
        return dense
    rows = np.zeros((len(indices), num_vertices))
    rows[np.arange(len(indices)), indices] = 1.0
    scale = dense_weights.sum() / max(sparse_weights.sum(), 1e-9)
    return (np.concatenate([dense_goal, sparse_goal]), np.concatenate([dense_weights, scale * sparse_weights]),
            np.concatenate([rows, np.asarray(landmarks, np.float64)]))


def _pixels(points: np.ndarray, intrinsics) -> np.ndarray:
    return project_points(points.astype(np.float64)[None], intrinsics)[0].astype(np.float32)

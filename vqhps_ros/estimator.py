"""`Estimator`: one camera frame in, the humans in it out. The only place that wires the stages:

    person source (detections | built-in detector | both | full frame)   -> boxes (and body keypoints)
    temporal stage: persons (tracks' predicted boxes for missed people)  -> boxes to crop
    model inputs: crop_people, or body keypoints in the crops            -> (N, 3, 224, 224) or (N, 33, 3)
    engine.infer (TensorRT | ONNX Runtime | PyTorch), one call           -> tokens, rotation, crop camera, meshes
      (keypoint models: each person and its mirror image, averaged: `hps.MirrorAverage`)
    place_people (camera intrinsics)                                     -> meshes and joints in the camera frame
    keypoint placement (`hps.KeypointPlacement`, persons with keypoints) -> meshes moved, turned onto keypoints
    temporal stage: update (`temporal.TemporalTracker`, or none)         -> track ids, filtered meshes, stable tokens
    alignment refinement (`refine.AlignmentRefinement`, optional)       -> meshes fitted to the image (`refined`)

The node and the bag replay are thin shells around it. What the network reads follows the engine's graph input
(`model_inputs`: crops for image models, keypoints for keypoint models; a person whose keypoints cannot be read is
skipped and counted). A person whose outputs cannot be placed (non-positive camera scale, non-finite values, mesh
behind the camera) is dropped and counted, never published.
"""

from __future__ import annotations

import functools
import logging
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Protocol

import numpy as np

from .errors import CheckpointError, InputError
from .hps.keypoint_placement import KeypointPlacement, PlacementSettings
from .hps.mirror_average import MirrorAverage, mirrored_names, vertex_mirror
from .hps.predict import PersonMesh, place_people
from .humans import (
    POSE_KEYPOINT_SET,
    POSE_LANDMARK_NAMES,
    Detection,
    Frame,
    FrameResult,
    Human,
    MeshTopology,
    root_position,
)
from .model_inputs import CropInputs, KeypointInputs
from .persons import DetectionFilter, PersonSource, person_source_from_config
from .runtime.signatures import KEYPOINTS
from .temporal import FacingGuard, FacingSettings, TemporalTracker

logger = logging.getLogger(__name__)

STAGES = ("persons", "crop", "engine", "place", "temporal", "refine")


class TemporalStage(Protocol):
    """Called twice per frame, in stamp order: `persons` before cropping, `update` after placement."""

    def persons(self, frame: Frame, detections: tuple[Detection, ...], skipped: Counter) -> tuple[Detection, ...]:
        """The persons to crop: the person source's `detections` (possibly bounded), then any boxes the stage adds
        (tracked people the detections missed); what is left out is counted in `skipped`."""
        ...

    def update(self, result: FrameResult, sources: Sequence[int]) -> FrameResult:
        """Assign track ids, smooth, and return the frame's result. sources[i]: the index, among what `persons`
        returned, of the box of result.humans[i]. result.skipped already holds the frame's counts."""
        ...


class PassThrough:
    """No temporal processing: each human keeps its per-frame id."""

    def persons(self, frame: Frame, detections: tuple[Detection, ...], skipped: Counter) -> tuple[Detection, ...]:
        return detections

    def update(self, result: FrameResult, sources: Sequence[int] = ()) -> FrameResult:
        return result


class Estimator:
    """engine: an active runtime Engine; topology: its meshes' MeshTopology (both from `runtime.load_engine`).

    `Estimator.from_config(config)` loads the configured model and person source; the constructor takes parts
    for tests and for other person sources or temporal stages. `inputs`: what builds the network's input
    (`model_inputs.CropInputs` or `KeypointInputs`; default: as the engine's graph reads, keypoints without a
    landmark model). `placement`: `hps.KeypointPlacement`, moving each mesh onto its person's keypoints, or None.
    `refinement`: the alignment refinement (`refine.AlignmentRefinement`) or None. `mirror`: `hps.MirrorAverage`
    (keypoint engines), averaging each person's estimate with its mirror image's, or None.
    `close()` releases the engine, the source and the inputs' network.
    """

    def __init__(self, engine, topology: MeshTopology, person_source: PersonSource | None = None,
                 temporal: TemporalStage | None = None, config=None, inputs: CropInputs | KeypointInputs | None = None,
                 refinement=None, placement: KeypointPlacement | None = None, mirror: MirrorAverage | None = None):
        self.engine = engine
        self.reads_keypoints = reads_keypoints(engine)
        self.topology = topology
        self.person_source = person_source or DetectionFilter()
        self.temporal = temporal or PassThrough()
        self.config = config
        self.inputs = inputs or (KeypointInputs() if self.reads_keypoints else CropInputs())
        self.refinement = refinement
        self.placement = placement
        self.mirror = mirror

    @classmethod
    def from_config(cls, config) -> Estimator:
        from .runtime.loading import load_engine

        loaded = load_engine(config.model)
        try:
            refinement = alignment_refinement_from_config(config, loaded) if config.refine.enabled else None
            person_source = person_source_from_config(config)
        except BaseException:
            loaded.engine.deactivate()
            raise
        temporal = PassThrough()
        if config.temporal.enabled:
            temporal = TemporalTracker.from_config(config, facing_guard_from_config(config, loaded.topology))
        keypoint_model = reads_keypoints(loaded.engine)
        inputs = keypoint_inputs_from_config(config, person_source) if keypoint_model else CropInputs()
        topology = with_keypoint_set(loaded.topology, config.persons.source, keypoint_model)
        placement = keypoint_placement_from_config(config, topology)
        mirror = mirror_average_from_config(config, loaded.topology) if keypoint_model else None
        return cls(loaded.engine, topology, person_source, temporal, config, inputs, refinement, placement, mirror)

    @property
    def description(self):
        """What runs: backend, device, precision (`runtime.EngineDescription`)."""
        return self.engine.description

    def warm_up(self) -> None:
        """One inference of every network on blank input, so the first camera frame does not pay for lazy
        initialisation (memory arenas, kernel choices)."""
        (graph_input,) = self.engine.input_metadata
        self.engine.infer(np.zeros((1, *graph_input.shape[1:]), dtype=np.float32))
        self.inputs.warm_up()
        if hasattr(self.person_source, "warm_up"):  # sources with networks
            self.person_source.warm_up()

    def close(self) -> None:
        try:
            self.person_source.close()
            self.inputs.close()
        finally:
            self.engine.deactivate()

    def __enter__(self) -> Estimator:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def process(self, frame: Frame) -> FrameResult:
        """Every person of `frame` through the engine in one call; see the module docstring."""
        result = FrameResult(frame.stamp_ns, frame.frame_id, frame.image_size, [])
        skipped: Counter[str] = Counter()
        if frame.intrinsics is None:
            raise InputError("a frame needs intrinsics (the assembler resolves camera_info or the fallback)")
        with _timed(result, "persons"):
            detections = self.person_source.persons(frame, skipped)
        with _timed(result, "temporal"):
            detections = self.temporal.persons(frame, detections, skipped)
        sources: list[int] = []
        if detections:
            with _timed(result, "crop"):
                inputs = self.inputs.prepare(frame, detections, skipped)
            if inputs.detections:
                with _timed(result, "engine"):
                    output = (self.engine.infer(inputs.batch) if self.mirror is None
                              else self.mirror.infer(self.engine, inputs.batch))
                with _timed(result, "place"):
                    people = place_people(output, inputs.geometry, frame.intrinsics, inputs.boxes)
                    if self.placement is not None:
                        keypoints = [detection.keypoints for detection in inputs.detections]
                        people = self.placement.place(people, keypoints, frame.intrinsics, frame.image_size)
                    result.humans, sources = placed_humans(people, inputs.detections, skipped, inputs.indices)
        result.skipped = dict(skipped)
        with _timed(result, "temporal"):
            result = self.temporal.update(result, sources)
        if self.refinement is not None and result.humans:
            with _timed(result, "refine"):
                result = self.refinement.update(frame, result)
        return result


def placed_humans(people: list[PersonMesh], detections: tuple[Detection, ...], skipped: Counter,
                  indices: Sequence[int] | None = None) -> tuple[list[Human], list[int]]:
    """Humans of the people that could be placed, and the index of each one's detection (`indices[i]`: the index
    of detections[i] among the frame's persons; default its position); the others are counted by reason."""
    humans, sources = [], []
    indices = range(len(detections)) if indices is None else indices
    for index, person, detection in zip(indices, people, detections, strict=True):
        reason = unplaced_reason(person)
        if reason:
            skipped[reason] += 1
            continue
        humans.append(to_human(person, detection, str(index)))
        sources.append(index)
    return humans, sources


def unplaced_reason(person: PersonMesh) -> str:
    """Why a person cannot be published ("" when it can)."""
    if not person.crop_camera[0] > 0:
        return "nonpositive_camera_scale"
    finite = [person.vertices, person.translation, person.rotation, person.token_confidence, person.crop_camera]
    if person.joints is not None:
        finite.append(person.joints)
    if not all(np.isfinite(values).all() for values in finite):
        return "non_finite_output"
    if not person.is_placed:
        return "mesh_behind_camera"
    return ""


def to_human(person: PersonMesh, detection: Detection, frame_index: str) -> Human:
    return Human(
        id=detection.id or frame_index,
        score=float(detection.score * person.token_confidence.mean()),
        box=np.asarray(person.box, dtype=np.float64),
        tokens=person.tokens,
        token_confidence=person.token_confidence,
        vertices=person.vertices,
        joints=person.joints,
        joints_2d=person.joints_2d,
        vertices_2d=person.vertices_2d,
        root_position=root_position(person.vertices, person.joints),
        root_rotation=person.rotation,
        crop_camera=person.crop_camera,
        translation=person.translation,
        detection_id=detection.id,
        keypoints=detection.keypoints,
    )


def reads_keypoints(engine) -> bool:
    """Whether the engine's graph reads body keypoints (else image crops)."""
    return engine.input_metadata[0].name == KEYPOINTS


def keypoint_inputs_from_config(config, person_source=None) -> KeypointInputs:
    """Keypoint inputs with the built-in detector's landmark model (configured as in section `detector`) for the
    persons that come without keypoints: the person source's own, when it runs the built-in detector (one network
    in memory, warmed up once), else one of their own."""
    from .detect import POSE_LANDMARK_GRAPH, BuiltinPersonDetector, DetectionRunner

    builtin = person_source if isinstance(person_source, BuiltinPersonDetector) else getattr(person_source, "builtin",
                                                                                             None)
    if isinstance(builtin, BuiltinPersonDetector):
        return KeypointInputs(builtin.landmarker, config.model.min_keypoints)
    detector = config.detector
    landmarker = DetectionRunner(POSE_LANDMARK_GRAPH, detector.backend, threads=config.model.threads or None,
                                 cache_dir=detector.graph_cache_dir or None, max_batch=config.persons.max_persons,
                                 engine_cache_dir=config.model.engine_cache_dir or None)
    return KeypointInputs(landmarker, config.model.min_keypoints)


def keypoint_placement_from_config(config, topology: MeshTopology) -> KeypointPlacement | None:
    """`model.place_on_keypoints`: the placement when persons may carry keypoints and the mesh has the pose
    landmarks (the free body's); otherwise None, said once in the log."""
    if not config.model.place_on_keypoints or not topology.keypoint_set:
        return None
    landmarks, missing = pose_landmarks_of(topology.num_vertices)
    if landmarks is None:
        logger.info("model.place_on_keypoints: off for the mesh %r, which has no pose landmarks (%s)",
                    topology.topology_id, missing)
        return None
    return KeypointPlacement(landmarks, PlacementSettings(orient=config.model.orient_on_keypoints))


def mirror_average_from_config(config, topology: MeshTopology) -> MirrorAverage | None:
    """`model.mirror_average` for a keypoint model: the averaging when its mesh is the free body's (whose rest
    shape is mirror-symmetric); otherwise None, said once in the log."""
    if not config.model.mirror_average:
        return None
    mirror = free_body_mirror(topology, "model.mirror_average")
    return None if mirror is None else MirrorAverage(mirror[0], mirrored_names(POSE_LANDMARK_NAMES), mirror[1])


def facing_guard_from_config(config, topology: MeshTopology) -> FacingGuard | None:
    """`temporal.facing_guard`: the guard when the mesh is the free body's; otherwise None, said once in the log."""
    settings = config.temporal
    if not settings.facing_guard:
        return None
    mirror = free_body_mirror(topology, "temporal.facing_guard")
    return None if mirror is None else FacingGuard(*mirror, FacingSettings(settings.facing_min_change,
                                                                           settings.facing_hold))


def free_body_mirror(topology: MeshTopology, key: str) -> tuple[np.ndarray, np.ndarray | None] | None:
    """(each vertex's mirror twin (V,), each joint's left/right partner (J,) or None without named joints) when the
    topology is the free body's (whose rest shape is mirror-symmetric); otherwise None, said in the log for the
    setting `key`."""
    twins = _free_body_vertex_twins()
    if topology.num_vertices != len(twins):
        logger.info("%s: off for the mesh %r (%d vertices), which is not the free body's (%d)", key,
                    topology.topology_id, topology.num_vertices, len(twins))
        return None
    return twins, mirrored_names(topology.joint_names) if topology.joint_names else None


@functools.cache
def _free_body_vertex_twins() -> np.ndarray:
    """(V,) the free body's vertex twins, read-only: read from its file once per process, as mirror averaging and the
    facing guard both ask at start-up."""
    from .body import load_free_body_data

    twins = vertex_mirror(load_free_body_data().v_template)
    twins.setflags(write=False)
    return twins


def alignment_refinement_from_config(config, loaded):
    """The alignment refinement of section `refine` for the loaded model (`runtime.LoadedModel`): it needs the model
    file, whose Mesh-VQ-VAE decoder and joint regressor it runs in PyTorch: the module `load_engine` read (an engine
    that runs it in PyTorch copies it before it changes its device or precision)."""
    from .config import ConfigError
    from .models import bundled_displacement_net_path
    from .refine import AlignmentRefinement, RefineSettings, StageSettings, load_displacement_net

    settings = config.refine
    if loaded.model is None:  # a graph carries no PyTorch module
        raise ConfigError(f"refine.enabled needs a model file (.pt), whose Mesh-VQ-VAE decoder the refinement runs "
                          f"in PyTorch; model.path is the graph {loaded.source}")
    model = loaded.model.to(_torch_device(config.model.device))
    net = landmarks = None
    if settings.signal in ("dense", "both"):
        net = load_displacement_net(settings.displacement_net or bundled_displacement_net_path())
    if settings.signal in ("sparse", "both"):
        landmarks, missing = pose_landmarks_of(model.num_vertices)
        if landmarks is None:
            raise ConfigError(f"refine.signal sparse or both needs the pose landmarks of the mesh, defined for the "
                              f"free body only; this model's mesh is {loaded.topology.topology_id!r} ({missing})")
    regressor = None if model.joint_regressor is None else model.joint_regressor.double().cpu().numpy()
    refine_settings = RefineSettings(iterations=settings.iterations, budget_ms=settings.budget_ms,
                                     learning_rate=settings.learning_rate, body=settings.body,
                                     robust_px=settings.robust_px, latent_weight=settings.latent_weight,
                                     translation_weight=settings.translation_weight,
                                     temporal_weight=settings.temporal_weight)
    stage = StageSettings(signal=settings.signal, texture=settings.texture, budget_ms=settings.budget_ms,
                          min_confidence=settings.min_confidence, max_targets=settings.max_targets,
                          warm_start=settings.warm_start)
    return AlignmentRefinement(model.mesh_vqvae, loaded.topology.faces, regressor, stage, refine_settings, net,
                               landmarks, tracked=config.temporal.enabled)


def _torch_device(configured: str):
    """`model.device` for the refinement's PyTorch work: "" = CUDA when present, else the CPU."""
    import torch

    return torch.device(configured or ("cuda" if torch.cuda.is_available() else "cpu"))


def pose_landmarks_of(num_vertices: int) -> tuple[np.ndarray | None, str]:
    """(33, V) the pose landmarks of meshes of `num_vertices` vertices (defined for the free body only), or None
    and why not."""
    from .body import free_body_pose_landmarks

    try:
        return free_body_pose_landmarks(num_vertices=num_vertices).matrix, ""
    except CheckpointError as error:
        return None, str(error)


def with_keypoint_set(topology: MeshTopology, source: str, reads_keypoints: bool = False) -> MeshTopology:
    """The topology naming the 2D keypoints the persons of `source` (a `persons.source` value) may carry: those
    of a keypoint source, or of every person when the model reads keypoints."""
    if source not in ("builtin", "both", "auto") and not reads_keypoints:
        return topology
    return replace(topology, keypoint_set=POSE_KEYPOINT_SET, keypoint_names=POSE_LANDMARK_NAMES)


@contextmanager
def _timed(result: FrameResult, stage: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        result.timings_ms[stage] = result.timings_ms.get(stage, 0.0) + 1000 * (time.perf_counter() - started)

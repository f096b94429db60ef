"""One typed configuration schema shared by the ROS 2 node, the bag replay CLI and the tests.

The schema is a tree of frozen dataclasses: `EstimatorConfig` holds one section per stage (`inputs`, `model`,
`persons`, `detector`, `camera`, `temporal`, `outputs`), and each section holds leaves. A leaf's default is its
dataclass default, and its documentation (description, unit, range or choices) lives in the field's metadata, so the
node's parameter declarations (`parameter_specs`), the shipped `config/estimator.yaml` and the validation messages
all read one source.

Leaves have ROS 2 parameter types only: bool, int, float, str, and lists of str or float (stored as tuples so the
config stays immutable and hashable; `to_dict` and `flatten` give lists). None and empty lists are never defaults,
since ROS cannot type them. Ints are accepted for floats and widened; nothing else is converted.

A config object that exists is valid: every section checks its leaves in `__post_init__`, so `EstimatorConfig()`,
`dataclasses.replace(...)`, `from_dict` and `load_config` all raise `ConfigError` on a bad value, listing every
problem at once, each naming the dotted key, the value found and what is allowed.

Importing this module needs only the standard library; PyYAML is imported by the functions that read YAML.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, get_type_hints

from vqhps_ros.errors import InputError

ROS_PARAMETERS = "ros__parameters"
# hps.TOKEN_DECODINGS, the default first, named here without torch: for `model.token_decoding` and the command line
TOKEN_DECODING_CHOICES = ("expected", "argmax")


class ConfigError(InputError):
    """The configuration is invalid. `problems` holds one line per problem; the message lists them all."""

    def __init__(self, problems: Sequence[str] | str, source: str = ""):
        self.problems = (problems,) if isinstance(problems, str) else tuple(problems)
        self.source = source
        super().__init__(_describe_problems(self.problems, source))

    def __reduce__(self):  # keep problems and source through pickling (multiprocessing, logging handlers)
        return type(self), (self.problems, self.source)


def _describe_problems(problems: tuple[str, ...], source: str) -> str:
    where = f" ({source})" if source else ""
    if len(problems) == 1:
        return f"invalid configuration{where}: {problems[0]}"
    return f"{len(problems)} problems in the configuration{where}:\n" + "\n".join(f"  - {p}" for p in problems)


@dataclass(frozen=True)
class _Rule:
    """A check beyond type, range and choices. `allowed` replaces the generated text of what is allowed;
    `reason` is appended to the message of a refused value."""

    accepts: Callable[[Any], bool]
    allowed: str
    reason: str = ""


def _setting(default, description: str, unit: str = "", *, min=None, max=None, choices=(), length=None,
             rule: _Rule | None = None):
    """A leaf field: its default and its documentation, read back by `parameter_specs`."""
    metadata = dict(description=description, unit=unit, min=min, max=max, choices=tuple(choices), length=length,
                    rule=rule)
    return field(default=default, metadata=metadata)


_TOPIC = re.compile(r"(~/|/)?[A-Za-z_]\w*(/[A-Za-z_]\w*)*", re.ASCII)
_FRAME_PREFIX = re.compile(r"[A-Za-z_][\w/]*", re.ASCII)
_DEVICE = re.compile(r"|cpu|cuda(:\d+)?")

_TOPIC_RULE = _Rule(lambda name: _TOPIC.fullmatch(name) is not None,
                    'a ROS topic name such as "~/humans" (in the node\'s namespace) or "/humans"')


class _Section:
    """Checks and normalises a section's leaves when it is built (dataclass `__post_init__`)."""

    def __post_init__(self):
        problems = []
        for leaf in _section_leaves(type(self)):
            value, problem = _check_value(leaf, getattr(self, leaf.key))
            if problem:
                problems.append(problem)
            else:  # frozen: store the normalised value (float, tuple) once, before anyone reads it
                object.__setattr__(self, leaf.key, value)
        if problems:
            raise ConfigError(problems)


@dataclass(frozen=True)
class InputsConfig(_Section):
    """What the ROS node subscribes to (its topics are `image`, `image/compressed`, `camera_info` and `detections`,
    renamed by remapping; the launch file does it). The bag replay reads topics from the bag instead."""

    compressed: bool = _setting(False, "Subscribe to image/compressed (sensor_msgs/CompressedImage, as "
                                       "image_transport names it) instead of image (sensor_msgs/Image).")
    use_detections: bool = _setting(True, "Subscribe to detections (vision_msgs/Detection2DArray) and pair them "
                                          "with images by stamp; false: no external detections.")
    qos: str = _setting("sensor_data", "QoS of the subscriptions: sensor_data (best effort, keep last) or reliable. "
                                       "A publisher that cannot serve it is reported with what to change.",
                        choices=("sensor_data", "reliable"))
    queue_depth: int = _setting(5, "History depth of the subscriptions.", "messages", min=1, max=100)
    camera_info_warn_after: float = _setting(5.0, "Warn when images come without camera_info for this long.",
                                             "seconds", min=0.0, max=3600.0)


@dataclass(frozen=True)
class ModelConfig(_Section):
    """The mesh network and the engine that runs it (`vqhps_ros.runtime.create_engine`)."""

    path: str = _setting("", 'Model file: a VQ-HPS model file (.pt, PyTorch backend), an exported graph (.onnx, '
                             'every backend) or a bundled model (bundled:keypoints, bundled:image); "" = the '
                             'bundled default model (bundled:keypoints, reads body keypoints).')
    backend: str = _setting("auto", "Inference backend. auto: TensorRT when CUDA and tensorrt are present, else "
                                    "ONNX Runtime, else PyTorch; the choice is logged.",
                            choices=("auto", "tensorrt", "onnxruntime", "pytorch"))
    precision: str = _setting("", 'Inference precision; "" = the backend\'s default (TensorRT fp16, ONNX Runtime '
                                  "the graph's own, PyTorch fp32).",
                              choices=("", "fp32", "fp16", "bf16", "int8"))
    engine_cache_dir: str = _setting("", 'Folder of built TensorRT engines; "" = the default cache '
                                         "($XDG_CACHE_HOME/vqhps_ros/engines).")
    max_persons: int = _setting(8, "Largest batch of persons one engine call takes (the TensorRT optimisation "
                                   "profile); more persons in a frame take several calls.",
                                "persons", min=1, max=64)
    device: str = _setting("", 'Device of the PyTorch backend: "" = CUDA when present, else CPU.',
                           rule=_Rule(lambda device: _DEVICE.fullmatch(device) is not None,
                                      '"" (automatic), "cpu", "cuda" or "cuda:N"'))
    threads: int = _setting(0, "CPU threads of ONNX Runtime and PyTorch; 0 = the library's default.", "threads",
                            min=0, max=256)
    min_keypoints: int = _setting(8, "Models that read body keypoints: persons with fewer seen keypoints are "
                                     "skipped (counted as too_few_keypoints).", "keypoints", min=1, max=33)
    place_on_keypoints: bool = _setting(True, "Move each mesh so that its pose landmarks project onto the person's "
                                              "2D body keypoints (persons that carry them, meshes of the free "
                                              "body); false: the network's crop camera alone places it.")
    orient_on_keypoints: bool = _setting(True, "With place_on_keypoints: also turn each mesh about its centre to "
                                               "fit its keypoints (its pose kept); false: the network's orientation "
                                               "is kept.")
    mirror_average: bool = _setting(True, "Models that read body keypoints (free body): also read each person's "
                                          "mirror image and average the two meshes (one more engine row per "
                                          "person); false: one reading.")
    token_decoding: str = _setting("expected", "How the mesh is decoded from the token probabilities. expected: "
                                               "each token's probability-weighted codebook row (a hesitant token "
                                               "gives a mesh between its codes); argmax: the most probable code, "
                                               "as the official implementation. Model files (.pt) only: an "
                                               "exported graph (.onnx) decodes as it was exported.",
                                   choices=TOKEN_DECODING_CHOICES)


@dataclass(frozen=True)
class PersonsConfig(_Section):
    """Where the persons of a frame come from (`vqhps_ros.persons`), which detections are people, and what a frame
    without detections gives."""

    source: str = _setting("auto", "Person source. detections: the detections topic (vision_msgs/Detection2DArray); "
                                   "builtin: the built-in detector (section detector); both: the two, merged by "
                                   "box overlap; auto: the detections of frames that have them, the built-in "
                                   "detector for the others; full_frame: the whole image as one person.",
                           choices=("auto", "detections", "builtin", "both", "full_frame"))
    class_ids: tuple[str, ...] = _setting(
        ("person", "0"), 'Detection classes that are people (vision_msgs class ids, as strings); "*" = every class. '
                         '"0" is the person class of COCO-80 (YOLO).',
        rule=_Rule(lambda ids: len(ids) > 0 and all(id_.strip() for id_ in ids),
                   'a non-empty list of non-empty class ids (strings; "*" = every class)'))
    min_score: float = _setting(0.3, "Detections with a lower score are ignored.", min=0.0, max=1.0)
    min_box_size: float = _setting(16.0, "Detections whose box has a shorter smaller side are ignored.", "pixels",
                                   min=0.0)
    max_persons: int = _setting(8, "Persons per frame; the best-scoring ones are kept.", "persons", min=1, max=64)
    detection_timeout: float = _setting(0.2, "How long an image waits for its detections before "
                                             "without_detections applies.", "seconds", min=0.0, max=10.0)
    without_detections: str = _setting("skip", "With source detections: what a frame with no detection source, or "
                                               "whose detections timed out, gives. skip: no persons; full_frame: "
                                               "the whole image as one person box.",
                                       choices=("skip", "full_frame"))


@dataclass(frozen=True)
class DetectorConfig(_Section):
    """The built-in person detector (`vqhps_ros.detect`: mediapipe's pose detector and landmark model), used by
    persons.source builtin, both and auto. People found once are followed by their keypoints."""

    backend: str = _setting("auto", "Backend of the detector networks. auto: TensorRT when CUDA and tensorrt are "
                                    "present, else ONNX Runtime (CUDA provider when present), else PyTorch.",
                            choices=("auto", "tensorrt", "onnxruntime", "pytorch"))
    graph_cache_dir: str = _setting("", 'Folder of the exported detector graphs; "" = the default cache '
                                        "($XDG_CACHE_HOME/vqhps_ros/detect).")
    max_persons: int = _setting(4, "Landmark model runs per frame (tracked people first): the most people the "
                                   "detector returns; persons.max_persons also bounds it.", "persons", min=1, max=64)
    min_detection_score: float = _setting(0.5, "Detector candidates from this score up get a landmark run.",
                                          min=0.0, max=1.0)
    min_pose_score: float = _setting(0.5, "Pose presence (landmark model) a candidate needs to be a person.",
                                     min=0.0, max=1.0)
    tracking: bool = _setting(True, "Follow people from frame to frame by their keypoints (the detector then runs "
                                    "only every detect_every frames or when a person is lost).")
    detect_every: int = _setting(5, "While every person is tracked, the detector still runs every this many frames "
                                    "to find newcomers (1 = every frame).", "frames", min=1, max=1000)
    zoom_grid: int = _setting(2, "The detector also looks at zoom_grid x zoom_grid zoomed tiles, for small people "
                                 "(1 = none).", min=1, max=4)
    tiles_per_run: int = _setting(1, "Zoomed tiles per detector run, taken in turn (0 = none).", min=0, max=16)
    merge_iou: float = _setting(0.5, "persons.source both: an external box and a built-in person overlapping this "
                                     "much (intersection over union) are one person.", min=0.0, max=1.0)


@dataclass(frozen=True)
class CameraConfig(_Section):
    """Where the intrinsics K of an image come from."""

    camera_info_max_age: float = _setting(5.0, "The latest camera_info is used for an image if it is at most this "
                                               "old (stamp difference).", "seconds", min=0.0, max=3600.0)
    fallback_intrinsics: tuple[float, ...] = _setting(
        (0.0, 0.0, 0.0, 0.0), "Intrinsics [fx, fy, cx, cy] used when no usable camera_info is available; "
                              "[0, 0, 0, 0] = none.",
        "pixels", length=4,
        rule=_Rule(lambda k: all(value == 0 for value in k) or (k[0] > 0 and k[1] > 0),
                   "a list of 4 numbers [fx, fy, cx, cy] in pixels with fx > 0 and fy > 0, or [0, 0, 0, 0] (none)"))
    fallback_horizontal_fov_deg: float = _setting(
        0.0, "Horizontal field of view that builds K from the image size when neither camera_info nor "
             "fallback_intrinsics are available; 0 = none (such frames are skipped).",
        "degrees", min=0.0, max=179.0,
        rule=_Rule(lambda fov: fov == 0 or 1 <= fov <= 179, "0 (none) or a number from 1 to 179 degrees"))


@dataclass(frozen=True)
class TemporalConfig(_Section):
    """Tracking, smoothing and token stability across frames (`vqhps_ros.temporal`). Causal: no frame of latency.
    Times are message stamps (seconds), never frame counts, except where a key says frames."""

    enabled: bool = _setting(True, "Temporal stage: stable track ids, predicted boxes for missed persons, One-Euro "
                                   "filters, token hysteresis. false: every frame on its own (ids are per-frame "
                                   "indices or the detections' ids).")
    max_tracks: int = _setting(16, "Most tracks kept at once (tentative, confirmed and missed); further persons get "
                                   "no track and are not published.", "tracks", min=1, max=256)
    confirm_hits: int = _setting(2, "A new track is published once it was matched in this many consecutive "
                                    "frames.", "frames", min=1, max=30)
    max_misses: int = _setting(8, "A confirmed track ends after this many consecutive frames without a detection.",
                               "frames", min=0, max=1000)
    max_age: float = _setting(1.0, "A track also ends when its last detection is older than this (stamps).",
                              "seconds", min=0.0, max=3600.0)
    min_iou: float = _setting(0.2, "A person can join a track only if its box overlaps the track's predicted box "
                                   "at least this much (intersection over union).", min=0.0, max=1.0)
    root_gate: float = _setting(1.5, "A person can join a track only if its root (mesh centre) is at most this far "
                                     "from the track's predicted root.", "metres", min=0.01, max=100.0)
    iou_weight: float = _setting(1.0, "Weight of 1 - IoU (track's predicted box vs person's box) in the assignment "
                                      "cost.", min=0.0, max=100.0)
    root_weight: float = _setting(1.0, "Weight of the root distance over root_gate (capped at 1) in the "
                                       "assignment cost.", min=0.0, max=100.0)
    motion_smoothing: float = _setting(0.2, "Weight of the newest measurement in the velocity estimates of a "
                                            "track's box and root (constant-velocity prediction); 0 = no motion.",
                                       min=0.0, max=1.0)
    trust_detection_ids: bool = _setting(True, "Use the ids of an upstream tracker (Detection2D.id) as a hint: a "
                                               "person whose id is the track's last one is cheaper to assign to it. "
                                               "Ids that change every frame only lose the hint.")
    detection_id_bonus: float = _setting(0.3, "Cost taken off when trust_detection_ids and the ids agree.",
                                         min=0.0, max=10.0)
    predicted_frames: int = _setting(8, "When the detections miss a confirmed person, their box is predicted and "
                                        "cropped for at most this many consecutive frames; 0 = never. Such persons "
                                        "are published with valid false (drawn half transparent) and their "
                                        "confidence scaled by predicted_score_scale.",
                                     "frames", min=0, max=100)
    predicted_score_scale: float = _setting(0.5, "Confidence factor of a person published from a predicted box.",
                                            min=0.0, max=1.0)
    predicted_measurement_weight: float = _setting(0.5, "Trust in the network's output on a predicted box: the "
                                                        "measurement is moved this far from the track's prediction "
                                                        "towards the network's output before filtering.",
                                                   min=0.0, max=1.0)
    reinit_gap: float = _setting(0.5, "A track updated after a gap longer than this restarts its filters from the "
                                      "new measurement (no extrapolation).", "seconds", min=0.0, max=3600.0)
    filter_order: int = _setting(2, "Low-pass sections of the translation and body filters: 1 = the One-Euro filter "
                                    "(Casiez et al. 2012); 2 = a second section with the same adaptive cutoff "
                                    "(less jitter at the same lag).", min=1, max=2)
    translation_min_cutoff: float = _setting(1.0, "One-Euro filter of the root translation: cutoff at rest.", "Hz",
                                             min=0.001, max=1000.0)
    translation_beta: float = _setting(4.0, "One-Euro filter of the root translation: cutoff increase per m/s of "
                                            "speed (per axis).", "1/m", min=0.0, max=1000.0)
    translation_derivative_cutoff: float = _setting(0.3, "One-Euro filter of the root translation: cutoff of the "
                                                         "speed estimate.", "Hz", min=0.001, max=1000.0)
    rotation_min_cutoff: float = _setting(3.0, "One-Euro filter of the body orientation on SO(3): cutoff at rest.",
                                          "Hz", min=0.001, max=1000.0)
    rotation_beta: float = _setting(4.0, "One-Euro filter of the body orientation: cutoff increase per rad/s of "
                                         "angular speed.", "1/rad", min=0.0, max=1000.0)
    rotation_derivative_cutoff: float = _setting(1.0, "One-Euro filter of the body orientation: cutoff of the "
                                                      "angular speed estimate.", "Hz", min=0.001, max=1000.0)
    body_min_cutoff: float = _setting(4.0, "One-Euro filter of the body (vertices and joints in the body frame, one "
                                           "cutoff): cutoff at rest.", "Hz", min=0.001, max=1000.0)
    body_beta: float = _setting(2.0, "One-Euro filter of the body: cutoff increase per m/s of mean joint speed.",
                                "1/m", min=0.0, max=1000.0)
    body_derivative_cutoff: float = _setting(0.5, "One-Euro filter of the body: cutoff of the speed estimate.",
                                             "Hz", min=0.001, max=1000.0)
    token_hold_frames: int = _setting(4, "A published token changes once a new token has been the argmax this many "
                                         "consecutive frames (1 = at once).", "frames", min=1, max=30)
    token_switch_confidence: float = _setting(0.9, "A published token also changes at once when the new argmax "
                                                   "token's probability is at least this.", min=0.0, max=1.0)
    facing_guard: bool = _setting(True, "Keep each track's facing: a person's body reflected in depth (seen from the "
                                        "back but read as seen from the front, left and right swapped) is taken as "
                                        "that reflection, until the image insists for facing_hold seconds. Needs the "
                                        "free body's mesh.")
    facing_min_change: float = _setting(0.1, "The facing guard looks at a measurement only when its vertices lie "
                                             "this far from the track's on average (translation left out).",
                                        "metres", min=0.001, max=10.0)
    facing_hold: float = _setting(1.0, "A track turns to the reflected facing once its measurements were reflections "
                                       "this long in a row.", "seconds", min=0.0, max=3600.0)


@dataclass(frozen=True)
class RefineConfig(_Section):
    """Alignment refinement (`vqhps_ros.refine`): each person's mesh moved to fit the image within a time budget per
    frame; the refined mesh replaces the regressed one (HumanMesh.refined). Needs a model file (.pt): its Mesh-VQ-VAE
    decoder runs in PyTorch for the optimisation, on `model.device`."""

    enabled: bool = _setting(False, "Refine each person's mesh against the image after the temporal stage.")
    signal: str = _setting("both", "What the mesh is fitted to: dense = displacements between a rendering of the "
                                     "mesh and the image (the displacement network), at every visible vertex; sparse = "
                                     "the body keypoints of the built-in detector's landmark model (needs the free "
                                     "body's mesh); both = the two, each with half of the weight.",
                           choices=("dense", "sparse", "both"))
    texture: bool = _setting(True, "Learn a colour per vertex for each track and render the mesh with it (dense "
                                   "signal; needs the temporal stage).")
    body: bool = _setting(True, "Also move the body (its Mesh-VQ-VAE latent), not only its position and "
                                "orientation.")
    iterations: int = _setting(10, "Most optimisation steps per person.", "steps", min=1, max=1000)
    warm_start: bool = _setting(False, "Start each person's optimisation from its track's last refined latent "
                                       "instead of the regressed one.")
    budget_ms: float = _setting(60.0, "Time budget of the stage per frame, shared among its people; people left "
                                      "when it is spent keep their regressed mesh (counted).", "ms", min=1.0,
                                max=10000.0)
    learning_rate: float = _setting(0.025, "Adam step size of the optimisation; people nearer than 200 pixels per "
                                           "metre (focal / depth) take proportionally smaller steps.", min=1e-5,
                                    max=10.0)
    robust_px: float = _setting(20.0, "Scale of the robust (Geman-McClure) reprojection error.", "pixels", min=0.1,
                                max=1000.0)
    latent_weight: float = _setting(0.001, "Weight of the prior that keeps the latent near the regressed one, per "
                                           "latent element.", min=0.0, max=100.0)
    temporal_weight: float = _setting(0.001, "Weight of the prior that keeps the latent near the track's last "
                                             "refined one, per latent element.", min=0.0, max=100.0)
    translation_weight: float = _setting(1.0, "Weight of the prior that keeps the position near the regressed "
                                              "one.", "1/m^2", min=0.0, max=1e6)
    min_confidence: float = _setting(0.5, "Dense targets whose displacement confidence is below this are not "
                                          "used.", min=0.0, max=1.0)
    max_targets: int = _setting(300, "Most dense targets per person (the most confident visible vertices).",
                                "vertices", min=6, max=100000)
    displacement_net: str = _setting("", "Displacement network file; empty = the bundled one.")


@dataclass(frozen=True)
class OutputsConfig(_Section):
    """What the node publishes, and where."""

    humans_topic: str = _setting("~/humans", "Topic of the vqhps_ros/HumanMeshArray messages.", rule=_TOPIC_RULE)
    markers_topic: str = _setting("~/markers", "Topic of the RViz visualization_msgs/MarkerArray.", rule=_TOPIC_RULE)
    topology_topic: str = _setting("~/mesh_topology", "Transient-local topic of the vqhps_ros/MeshTopology (faces "
                                                      "and joint names), published once.", rule=_TOPIC_RULE)
    marker_rate_hz: float = _setting(10.0, "Highest rate of marker updates; 0 = an update for every frame.", "Hz",
                                     min=0.0, max=1000.0)
    mesh_markers: bool = _setting(True, "Publish each person's mesh as a TRIANGLE_LIST marker.")
    skeleton_markers: bool = _setting(True, "Publish each person's joints and bones as markers.")
    publish_tf: bool = _setting(True, "Publish a TF frame per person at its root joint.")
    body_frame_prefix: str = _setting(
        "body_", "TF frame of person <id> is this prefix + id (REP-155 style: body_<id>).",
        rule=_Rule(lambda prefix: _FRAME_PREFIX.fullmatch(prefix) is not None,
                   'a TF frame name prefix: letters, digits, "_" and "/", not starting with "/" or a digit'))
    publish_vertices: bool = _setting(True, "false leaves HumanMesh.vertices empty to save bandwidth (tokens and "
                                            "joints are still sent).")


@dataclass(frozen=True)
class EstimatorConfig:
    """The whole configuration: `EstimatorConfig()` is the defaults."""

    inputs: InputsConfig = field(default_factory=InputsConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    persons: PersonsConfig = field(default_factory=PersonsConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    camera: CameraConfig = field(default_factory=CameraConfig)
    temporal: TemporalConfig = field(default_factory=TemporalConfig)
    refine: RefineConfig = field(default_factory=RefineConfig)
    outputs: OutputsConfig = field(default_factory=OutputsConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Nested plain dict {section: {key: value}}; lists for list leaves."""
        return {name: {leaf.key: _plain(getattr(section, leaf.key)) for leaf in _section_leaves(type(section))}
                for name, section in self._sections()}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str = "") -> EstimatorConfig:
        """A config from nested {section: {key: value}} and/or dotted {"section.key": value} entries (what the ROS
        node reads back from its parameters). Missing keys keep their defaults; every problem is reported at once."""
        if not isinstance(values, Mapping):
            raise ConfigError([f"expected a mapping of sections, found {_show(values)} ({_kind(values)})"], source)
        problems: list[str] = []
        return _build(_flatten_document(values, problems), problems, source)

    def _sections(self):
        return [(section.name, getattr(self, section.name)) for section in dataclasses.fields(self)]


@dataclass(frozen=True)
class ParameterSpec:
    """One leaf of the schema, as the ROS node declares it."""

    name: str  # dotted: "persons.min_score"
    type: str  # ROS parameter type: bool, integer, double, string, string_array, double_array
    default: Any  # tuples for the array types (rclpy declares lists and tuples alike)
    description: str
    unit: str  # "" when the value has none
    min: int | float | None  # numbers (each item of a double_array); None: unbounded
    max: int | float | None
    choices: tuple[str, ...]  # strings: the only values allowed; () = any that `allowed` describes
    length: int | None  # lists: the exact number of items; None = any
    allowed: str  # what validation accepts, in words (the text of the error messages)


class _Leaf(NamedTuple):
    section: str
    key: str
    spec: ParameterSpec
    rule: _Rule | None


_ROS_TYPES = {bool: "bool", int: "integer", float: "double", str: "string",
              tuple[str, ...]: "string_array", tuple[float, ...]: "double_array"}


def parameter_specs() -> list[ParameterSpec]:
    """Every leaf in schema order, with its dotted name, ROS type, default and documentation."""
    return [leaf.spec for leaf in _leaves()]


def flatten(config: EstimatorConfig) -> dict[str, Any]:
    """{"section.key": value} in schema order, lists for list leaves (the ROS node's parameter names)."""
    return {f"{section}.{key}": value for section, keys in config.to_dict().items() for key, value in keys.items()}


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> EstimatorConfig:
    """Read a YAML configuration and apply "KEY=VALUE" overrides (dotted keys, YAML values).

    The file is a ROS 2 parameter file with one node entry (`<node name or /**>: {ros__parameters: {...}}`, node
    names may be nested in namespaces) or the bare nested mapping; an empty file gives the defaults. Override values
    are YAML, except that string leaves read plain text: `persons.class_ids=[person,0]` gives two strings.
    """
    overrides = (overrides,) if isinstance(overrides, str) else tuple(overrides)
    document = {} if path is None else _read_document(Path(path))
    problems: list[str] = []
    flat = _flatten_document(document, problems)
    for override in overrides:
        flat.update(_flatten_document(_parse_override(override, problems), problems))
    return _build(flat, problems, _source_label(path, overrides))


# --- the schema, read from the dataclasses ---

@functools.cache
def _section_classes() -> dict[str, type]:
    return dict(get_type_hints(EstimatorConfig).items())


@functools.cache
def _leaves() -> tuple[_Leaf, ...]:
    return tuple(_leaf(section, item) for section, cls in _section_classes().items()
                 for item in dataclasses.fields(cls))


@functools.cache
def _leaves_by_name() -> dict[str, _Leaf]:
    return {leaf.spec.name: leaf for leaf in _leaves()}


def _section_leaves(cls: type) -> list[_Leaf]:
    return [leaf for leaf in _leaves() if _section_classes()[leaf.section] is cls]


def _leaf(section: str, item: dataclasses.Field) -> _Leaf:
    meta = item.metadata
    ros_type = _ROS_TYPES[get_type_hints(_section_classes()[section])[item.name]]
    allowed = _allowed_text(ros_type, meta["unit"], meta["min"], meta["max"], meta["choices"], meta["length"],
                            meta["rule"])
    spec = ParameterSpec(f"{section}.{item.name}", ros_type, item.default, meta["description"],
                         meta["unit"], meta["min"], meta["max"], meta["choices"], meta["length"], allowed)
    return _Leaf(section, item.name, spec, meta["rule"])


def _allowed_text(ros_type, unit, low, high, choices, length, rule) -> str:
    if rule is not None:
        return rule.allowed
    if choices:
        return "one of " + ", ".join(repr(choice) for choice in choices)
    unit_text = f" {unit}" if unit else ""
    if ros_type in ("integer", "double"):
        noun = "an integer" if ros_type == "integer" else "a number"
        if high is None:
            return f"{noun} >= {low:g}{unit_text}"
        return f"{noun} from {low:g} to {high:g}{unit_text}"
    if ros_type in ("string_array", "double_array"):
        count = f"{length} " if length else ""
        return f"a list of {count}{'strings' if ros_type == 'string_array' else 'numbers'}{unit_text}"
    return "true or false" if ros_type == "bool" else "a string"


# --- validation ---

_WRONG_TYPE = object()


def _check_value(leaf: _Leaf, value) -> tuple[Any, str | None]:
    """(the value as stored, None), or (the value, the problem) when it is not allowed."""
    spec = leaf.spec
    stored = _as_type(spec.type, value)
    if stored is _WRONG_TYPE:
        return value, _problem(spec, value, _type_hint(spec.type, value))
    if spec.length is not None and len(stored) != spec.length:
        return value, _problem(spec, value, f" ({len(stored)} items)")
    if not _within_range(spec, stored) or (spec.choices and stored not in spec.choices):
        return value, _problem(spec, value)
    if leaf.rule is not None and not leaf.rule.accepts(stored):
        return value, _problem(spec, value, leaf.rule.reason)
    return stored, None


def _problem(spec: ParameterSpec, value, hint: str = "") -> str:
    return f"{spec.name}: expected {spec.allowed}, found {_show(value)}{hint}"


def _as_type(ros_type: str, value):
    """The value in the stored form of `ros_type` (ints widened to floats, lists to tuples), or _WRONG_TYPE."""
    if ros_type == "bool":
        return value if isinstance(value, bool) else _WRONG_TYPE
    if ros_type == "integer":
        return value if isinstance(value, int) and not isinstance(value, bool) else _WRONG_TYPE
    if ros_type == "double":
        return float(value) if _is_number(value) else _WRONG_TYPE
    if ros_type == "string":
        return value if isinstance(value, str) else _WRONG_TYPE
    if not _is_list(value):
        return _WRONG_TYPE
    items = tuple(_as_type(ros_type.removesuffix("_array"), item) for item in value)
    return _WRONG_TYPE if any(item is _WRONG_TYPE for item in items) else items


def _within_range(spec: ParameterSpec, value) -> bool:
    if spec.type not in ("integer", "double", "double_array"):
        return True
    numbers = value if spec.type == "double_array" else (value,)
    return all(math.isfinite(number) and (spec.min is None or number >= spec.min)
               and (spec.max is None or number <= spec.max) for number in numbers)


def _type_hint(ros_type: str, value) -> str:
    """Why a value has the wrong type, e.g. ' (a string)'; says to quote numbers given for strings."""
    if ros_type.endswith("_array") and _is_list(value):
        item_type = ros_type.removesuffix("_array")
        for index, item in enumerate(value):
            if _as_type(item_type, item) is _WRONG_TYPE:
                return f" (item {index} is {_kind(item)}{_quote_hint(item_type, item)})"
    return f" ({_kind(value)}{_quote_hint(ros_type, value)})"


def _quote_hint(ros_type: str, value) -> str:
    if ros_type == "string" and isinstance(value, (bool, int, float)):
        return f"; quote it in YAML to make it a string: \"{_show(value)}\""
    return ""


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_list(value) -> bool:
    # rclpy hands double arrays back as array.array, a Sequence too
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def _kind(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a mapping"
    return "a list" if _is_list(value) else type(value).__name__


def _show(value) -> str:
    """A value as the user wrote it in YAML, shortened to one readable line."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif value is None:
        text = "null"
    elif _is_list(value):
        text = "[" + ", ".join(_show(item) for item in value) + "]"
    else:
        text = repr(value)
    return text if len(text) <= 100 else text[:97] + "..."


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


# --- building a config from flat entries ---

def _flatten_document(document: Mapping, problems: list[str], prefix: str = "") -> dict[str, Any]:
    """{"section.key": value} of a nested document. Only sections are descended into, so a mapping given for a leaf
    stays a (wrong) value; a section may be null (all its keys commented out)."""
    flat: dict[str, Any] = {}
    for key, value in document.items():
        name = f"{prefix}{key}"
        if not prefix and name in _section_classes() and (value is None or isinstance(value, Mapping)):
            entries = _flatten_document(value or {}, problems, f"{name}.")
        else:
            entries = {name: value}
        for entry in entries:
            if entry in flat:
                problems.append(f"{entry}: given twice (nested and as a dotted key)")
        flat.update(entries)
    return flat


def _build(flat: Mapping[str, Any], problems: list[str], source: str) -> EstimatorConfig:
    problems.extend(_unknown_key_problem(name, value) for name, value in flat.items()
                    if name not in _leaves_by_name())
    sections = {}
    for section, cls in _section_classes().items():
        values = {leaf.key: flat[leaf.spec.name] for leaf in _section_leaves(cls) if leaf.spec.name in flat}
        try:
            sections[section] = cls(**values)
        except ConfigError as error:
            problems.extend(error.problems)
    if problems:
        raise ConfigError(problems, source)
    return EstimatorConfig(**sections)


def _unknown_key_problem(name: str, value) -> str:
    if name in _section_classes():
        keys = ", ".join(leaf.key for leaf in _section_leaves(_section_classes()[name]))
        return f"{name}: expected a mapping of the section's keys ({keys}), found {_show(value)}"
    names = list(_leaves_by_name())
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    if not close:  # the right key in the wrong section, or without its section
        close = [known for known in names if known.rsplit(".", 1)[1] == name.rsplit(".", 1)[-1]]
    if close:
        return f"{name}: unknown key (found {_show(value)}); did you mean {close[0]}?"
    return f"{name}: unknown key (found {_show(value)}); the sections are {', '.join(_section_classes())}"


# --- reading files and overrides ---

def _import_yaml():
    try:
        import yaml
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError("reading a YAML configuration needs PyYAML: pip install pyyaml "
                                  "(ROS: the python3-yaml package)") from error
    return yaml


def _read_document(path: Path) -> Mapping:
    """The parameter mapping of a YAML file (unwrapped from its ROS 2 node entry)."""
    yaml = _import_yaml()
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"the configuration file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read the configuration file {path}: {error}") from error
    except yaml.YAMLError as error:
        raise ConfigError(f"the configuration file {path} is not valid YAML: {error}") from error
    if document is None:
        return {}
    if not isinstance(document, Mapping):
        raise ConfigError(f"the configuration file {path} must hold a mapping (a ROS 2 parameter file "
                          f"'<node>: {{{ROS_PARAMETERS}: ...}}' or the sections themselves), found {_kind(document)}")
    return _unwrap_ros_parameters(document, path)


def _unwrap_ros_parameters(document: Mapping, path: Path) -> Mapping:
    """The parameters of a ROS 2 parameter file's one node entry, or the document itself when it has none."""
    if not _holds_ros_parameters(document):
        return document
    node, names = document, []
    while ROS_PARAMETERS not in node:
        if len(node) != 1:
            where = f"under {'/'.join(names)}" if names else "at the top level"
            entries = ", ".join(repr(str(key)) for key in node)
            raise ConfigError(f"the configuration file {path} must hold one node entry with {ROS_PARAMETERS}; "
                              f"found {len(node)} entries {where}: {entries}")
        name, node = next(iter(node.items()))
        names.append(str(name))
    others = [repr(str(key)) for key in node if key != ROS_PARAMETERS]
    if others:
        raise ConfigError(f"the configuration file {path}: node {'/'.join(names) or '(top level)'} holds "
                          f"{', '.join(others)} beside {ROS_PARAMETERS}; only {ROS_PARAMETERS} is read")
    parameters = node[ROS_PARAMETERS]
    if parameters is not None and not isinstance(parameters, Mapping):
        raise ConfigError(f"the configuration file {path}: {ROS_PARAMETERS} must be a mapping, "
                          f"found {_kind(parameters)}")
    return parameters or {}


def _holds_ros_parameters(mapping: Mapping) -> bool:
    return any(key == ROS_PARAMETERS or (isinstance(value, Mapping) and _holds_ros_parameters(value))
               for key, value in mapping.items())


def _parse_override(text: str, problems: list[str]) -> dict[str, Any]:
    """{dotted key: value} of one "KEY=VALUE" override; {} and a problem when it is malformed."""
    key, equals, raw = str(text).partition("=")
    key, raw = key.strip(), raw.strip()
    if not equals or not key:
        problems.append(f"override {text!r}: expected KEY=VALUE with a dotted key, e.g. temporal.enabled=false")
        return {}
    leaf = _leaves_by_name().get(key)
    as_text = leaf is not None and leaf.spec.type in ("string", "string_array")
    yaml = _import_yaml()
    try:
        # BaseLoader resolves no scalar types: a class id 0 or a device name stays the text that was typed
        value = yaml.load(raw, Loader=yaml.BaseLoader if as_text else yaml.SafeLoader)
    except yaml.YAMLError as error:
        detail = str(error).splitlines()[0]
        problems.append(f"override {text!r}: {raw!r} is not a YAML value ({detail}); quote text that starts "
                        'with "*", "&" or "!", e.g. ["*"]')
        return {}
    return {key: "" if value is None and as_text else value}


def _source_label(path: str | Path | None, overrides: tuple[str, ...]) -> str:
    parts = ([str(path)] if path is not None else []) + (["overrides"] if overrides else [])
    return " + ".join(parts)

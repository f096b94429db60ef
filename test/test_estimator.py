"""The estimator: the seam (crop -> engine -> place), one engine call per frame, dropped persons, backends alike."""

from collections import Counter
from dataclasses import replace

import numpy as np
import pytest
import torch
from small_model import build_small_model

from vqhps_ros.config import load_config
from vqhps_ros.data import sample_bag_path
from vqhps_ros.errors import InputError
from vqhps_ros.estimator import Estimator, to_human, unplaced_reason
from vqhps_ros.hps import crop_people, place_people, predict_people
from vqhps_ros.humans import Detection, Frame
from vqhps_ros.io import read_frames
from vqhps_ros.persons import DetectionFilter
from vqhps_ros.runtime import EngineOutput, TorchEngine
from vqhps_ros.runtime.export import model_topology

K = np.array([[500.0, 0, 320], [0, 520.0, 240], [0, 0, 1]])
BOXES = np.array([[100, 60, 120, 300], [380, 120, 90, 200]], dtype=np.float64)


@pytest.fixture(scope="module")
def model():
    return build_small_model()


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)


def frame_with(image, boxes, ids=("7", ""), scores=(0.9, 0.8)) -> Frame:
    detections = tuple(Detection(np.asarray(box, float), score, "person", id_)
                       for box, id_, score in zip(boxes, ids, scores, strict=True))
    return Frame(image, 1_700_000_000_123_000_000, "camera_optical_frame", K, detections)


class CountingEngine:
    """Wraps an engine and records the batch of every call."""

    def __init__(self, engine):
        self.engine, self.batches = engine, []

    def infer(self, crops):
        self.batches.append(len(crops))
        return self.engine.infer(crops)

    @property
    def description(self):
        return self.engine.description

    @property
    def input_metadata(self):
        return self.engine.input_metadata

    def deactivate(self):
        self.engine.deactivate()


class ScriptedEngine:
    """Returns the outputs of a real engine with chosen crop cameras (to make unusable persons)."""

    def __init__(self, engine, cameras):
        self.engine, self.cameras = engine, np.asarray(cameras, dtype=np.float32)

    def infer(self, crops):
        return self.engine.infer(crops)._replace(cam=self.cameras[: len(crops)])

    @property
    def input_metadata(self):
        return self.engine.input_metadata


def test_crop_engine_place_equals_predict_people(model, image):
    crops = crop_people(image, BOXES)
    with TorchEngine(model) as engine:
        people = place_people(engine.infer(crops.images), crops.geometry, K, BOXES)
    expected = predict_people(model, image, BOXES, K)
    for person, reference in zip(people, expected, strict=True):
        np.testing.assert_array_equal(person.tokens, reference.tokens)
        np.testing.assert_allclose(person.vertices, reference.vertices, atol=1e-5)
        np.testing.assert_allclose(person.joints_2d, reference.joints_2d, atol=1e-3)


def test_place_people_accepts_torch_outputs_and_numpy_outputs_alike(model, image):
    crops = crop_people(image, BOXES)
    with torch.no_grad():
        torch_output = model(torch.from_numpy(crops.images))
    numpy_output = EngineOutput(*(None if t is None else t.numpy() for t in (
        torch_output.indices, torch_output.token_confidence, torch_output.rotmat, torch_output.cam,
        torch_output.verts_canonical, torch_output.verts, torch_output.joints)))
    from_torch = place_people(torch_output, crops.geometry, K, BOXES)
    from_numpy = place_people(numpy_output, crops.geometry, K, BOXES)
    for a, b in zip(from_torch, from_numpy, strict=True):
        np.testing.assert_array_equal(a.vertices, b.vertices)


def test_all_persons_of_a_frame_go_through_one_engine_call(model, image):
    with TorchEngine(model, max_persons=8) as engine:
        counting = CountingEngine(engine)
        estimator = Estimator(counting, model_topology(model))
        result = estimator.process(frame_with(image, BOXES))
    assert counting.batches == [2]
    assert [human.id for human in result.humans] == ["7", "1"]  # the detection's id, else the frame index
    assert set(result.timings_ms) == {"persons", "crop", "engine", "place", "temporal"}
    assert result.stamp_ns == 1_700_000_000_123_000_000 and result.frame_id == "camera_optical_frame"


def test_humans_are_placed_in_the_camera_frame(model, image):
    with TorchEngine(model) as engine:
        result = Estimator(engine, model_topology(model)).process(frame_with(image, BOXES))
    for human, box in zip(result.humans, BOXES, strict=True):
        np.testing.assert_array_equal(human.box, box)
        np.testing.assert_allclose(human.root_position, human.joints[0], atol=1e-6)  # pelvis: the first joint
        projected = human.joints @ K.T
        np.testing.assert_allclose(human.joints_2d, projected[:, :2] / projected[:, 2:], rtol=1e-4)
        assert 0 < human.score <= 0.9  # detection score x mean token confidence
        assert np.all(human.vertices[:, 2] > 0) and human.valid


def test_unusable_persons_are_dropped_and_counted(model, image):
    boxes = np.array([[100, 60, 120, 300], [380, 120, 90, 200], [200, 100, 100, 200]], dtype=np.float64)
    cameras = [[-0.5, 0.0, 0.0], [np.nan, 0.1, 0.1], [0.9, 0.0, 0.0]]
    with TorchEngine(model) as engine:
        estimator = Estimator(ScriptedEngine(engine, cameras), model_topology(model))
        result = estimator.process(frame_with(image, boxes, ("a", "b", "c"), (0.9, 0.9, 0.9)))
    assert [human.id for human in result.humans] == ["c"]
    assert result.skipped == {"nonpositive_camera_scale": 2}  # NaN is not > 0 either
    assert all(np.isfinite(human.vertices).all() for human in result.humans)


def test_a_person_behind_the_camera_is_not_published(model, image):
    crops = crop_people(image, BOXES[:1])
    with TorchEngine(model) as engine:
        person = place_people(engine.infer(crops.images), crops.geometry, K, BOXES[:1])[0]
    behind = type(person)(**{**person.__dict__, "vertices": person.vertices * np.array([1, 1, -1], np.float32)})
    assert unplaced_reason(person) == ""
    assert unplaced_reason(behind) == "mesh_behind_camera"
    assert to_human(person, Detection(BOXES[0], 0.5), "0").id == "0"


def test_frames_without_persons_skip_the_engine(model, image):
    with TorchEngine(model) as engine:
        counting = CountingEngine(engine)
        estimator = Estimator(counting, model_topology(model), DetectionFilter(without_detections="skip"))
        no_detector = estimator.process(Frame(image, 1, "cam", K, None))
        nobody = estimator.process(Frame(image, 2, "cam", K, ()))
    assert counting.batches == [] and no_detector.humans == [] and nobody.humans == []
    assert no_detector.skipped == {"frame_without_detections": 1} and nobody.skipped == {}


def test_a_frame_needs_intrinsics(model, image):
    with TorchEngine(model) as engine:
        with pytest.raises(InputError, match="intrinsics"):
            Estimator(engine, model_topology(model)).process(Frame(image, 1, "cam", None, ()))


@pytest.mark.slow
def test_bundled_model_gives_equal_results_through_onnxruntime_and_pytorch(tmp_path):
    frames = [frame for index, frame in enumerate(read_frames(sample_bag_path())) if index % 15 == 0]
    results = {}
    for backend in ("onnxruntime", "pytorch"):
        # per frame: the frames are a second apart, and the comparison is of the network's outputs
        config = load_config(overrides=[f"model.backend={backend}", f"model.engine_cache_dir={tmp_path}",
                                        "temporal.enabled=false"])
        with Estimator.from_config(config) as estimator:
            assert estimator.description.backend == backend
            results[backend] = [estimator.process(frame) for frame in frames]
    persons = 0
    for onnx_result, torch_result in zip(results["onnxruntime"], results["pytorch"], strict=True):
        assert [h.id for h in onnx_result.humans] == [h.id for h in torch_result.humans]
        for a, b in zip(onnx_result.humans, torch_result.humans, strict=True):
            persons += 1
            assert np.mean(a.tokens == b.tokens) >= 0.98
            np.testing.assert_allclose(a.joints, b.joints, atol=2e-3)  # metres
    assert persons >= 10


def test_skipped_counter_is_per_frame(model, image):
    source = DetectionFilter(min_score=0.85)
    skipped = Counter()
    kept = source.persons(frame_with(image, BOXES), skipped)
    assert len(kept) == 1 and skipped == {"low_score": 1}


@pytest.mark.slow
def test_the_builtin_detector_finds_the_people_of_real_photos_and_their_keypoints_reach_the_messages(
        tmp_path, shared_bags):
    from vqhps_ros.detect import POSE_KEYPOINT_SET, POSE_LANDMARK_NAMES
    from vqhps_ros.io import messages

    frames = list(read_frames(shared_bags / "ros2_jazzy_photos_sqlite3"))[:12]  # Grace Hopper, then Eileen Collins
    frames = [replace(frame, detections=None) for frame in frames]  # as from a camera without a detector
    config = load_config(overrides=["persons.source=auto", "temporal.enabled=false", "model.threads=1",
                                    f"model.engine_cache_dir={tmp_path}", f"detector.graph_cache_dir={tmp_path}"])
    types = messages.rosbags_types()
    with Estimator.from_config(config) as estimator:
        topology = estimator.topology
        assert (topology.keypoint_set, topology.keypoint_names) == (POSE_KEYPOINT_SET, POSE_LANDMARK_NAMES)
        results = [estimator.process(frame) for frame in frames]
        source = estimator.person_source.builtin
    assert source.detector_runs < len(frames)  # tracked by keypoints between detector runs
    for frame, result in zip(frames, results, strict=True):
        (human,) = result.humans  # each photo shows one person
        keypoints = human.keypoints
        assert keypoints.keypoint_set == POSE_KEYPOINT_SET and keypoints.points.shape == (33, 2)
        x, y, w, h = human.box
        height, width = frame.image_size
        in_box = ((keypoints.points >= [x, y]) & (keypoints.points <= [x + w, y + h])).all(axis=1)
        in_image = ((keypoints.points >= 0) & (keypoints.points <= [width - 1, height - 1])).all(axis=1)
        seen = (keypoints.visibility > 0.5) & in_image  # the model also places keypoints beyond the image
        assert seen.sum() >= 10 and in_box[seen].all()  # the crop's box holds the seen keypoints
        mask = keypoints.mask_in_image(frame.image_size)
        assert mask.shape == frame.image_size and mask[int(y):int(y + h), int(x):int(x + w)].mean() > 0.3
        (message,) = messages.human_mesh_array(types, result, topology).humans
        assert message.keypoint_set == POSE_KEYPOINT_SET
        np.testing.assert_array_equal(message.keypoints_2d.reshape(33, 3)[:, :2], keypoints.points)


@pytest.mark.slow
def test_meshes_placed_on_their_keypoints_land_closer_to_the_people_of_real_photos(tmp_path, shared_bags):
    from vqhps_ros.body import free_body_pose_landmarks
    from vqhps_ros.hps.rotation import matrix_to_axis_angle_np
    from vqhps_ros.image_metrics import landmark_hits

    frames = list(read_frames(shared_bags / "ros2_jazzy_photos_sqlite3"))[::10]  # one frame of each photograph
    frames = [replace(frame, detections=None) for frame in frames]
    landmarks = free_body_pose_landmarks().matrix
    pck, shapes = {}, {}
    for placed in (False, True):
        # one reading per person, so that only the placement differs between the two runs
        config = load_config(overrides=["persons.source=builtin", "temporal.enabled=false", "model.threads=1",
                                        "model.mirror_average=false", f"model.place_on_keypoints={str(placed).lower()}",
                                        f"model.engine_cache_dir={tmp_path}", f"detector.graph_cache_dir={tmp_path}"])
        with Estimator.from_config(config) as estimator:
            assert (estimator.placement is not None) == placed
            humans = [(frame, human) for frame in frames for human in estimator.process(frame).humans]
        hits = np.array([landmark_hits(human, landmarks, frame.intrinsics, frame.image_size)
                         for frame, human in humans])
        pck[placed] = hits[:, 0].sum() / hits[:, 1].sum()
        shapes[placed] = [((human.vertices - human.translation) @ human.root_rotation, human.root_rotation)
                          for _, human in humans]  # the canonical mesh, and its orientation
    assert pck[True] > pck[False] + 0.1
    for (network, network_rotation), (moved, rotation) in zip(shapes[False], shapes[True], strict=True):
        np.testing.assert_allclose(moved, network, atol=1e-4)  # moved and turned, not reshaped
        assert 0.0 < np.degrees(np.linalg.norm(matrix_to_axis_angle_np(rotation @ network_rotation.T))) < 60


def test_the_keypoint_placement_needs_keypoints_and_a_mesh_with_pose_landmarks():
    from vqhps_ros.estimator import keypoint_placement_from_config
    from vqhps_ros.humans import POSE_KEYPOINT_SET, POSE_LANDMARK_NAMES, MeshTopology

    free_body = MeshTopology("free_body_1229", 1229, np.zeros((1, 3), np.int64), "h36m_17", (), 54, 512,
                             POSE_KEYPOINT_SET, POSE_LANDMARK_NAMES)
    assert keypoint_placement_from_config(load_config(), free_body).landmarks.shape == (33, 1229)
    assert keypoint_placement_from_config(load_config(), free_body).settings.orient
    unturned = keypoint_placement_from_config(load_config(overrides=["model.orient_on_keypoints=false"]), free_body)
    assert not unturned.settings.orient
    assert keypoint_placement_from_config(load_config(overrides=["model.place_on_keypoints=false"]), free_body) is None
    assert keypoint_placement_from_config(load_config(), replace(free_body, keypoint_set="")) is None
    smpl = replace(free_body, topology_id="smpl_6890", num_vertices=6890)
    assert keypoint_placement_from_config(load_config(), smpl) is None  # no pose landmarks defined on it


@pytest.mark.parametrize("signal", ["dense", "both"])
def test_the_refinement_stage_refines_the_published_people_and_flags_them(tmp_path, signal):
    from vqhps_ros.io import messages

    frames = list(read_frames(sample_bag_path()))[:10]
    config = load_config(overrides=["refine.enabled=true", f"refine.signal={signal}",
                                    "refine.budget_ms=5000", "model.threads=1", f"model.engine_cache_dir={tmp_path}"])
    with Estimator.from_config(config) as estimator:
        assert estimator.refinement is not None and estimator.refinement.tracked
        results = [estimator.process(frame) for frame in frames]
    humans = [human for result in results for human in result.humans]
    assert len(humans) >= 6 and sum(human.refined for human in humans) >= len(humans) // 2
    assert all("refine" in result.timings_ms for result in results if result.humans)
    published = next(result for result in results if any(human.refined for human in result.humans))
    flags = [message.refined for message in messages.human_mesh_array(messages.rosbags_types(), published,
                                                                      estimator.topology).humans]
    assert flags == [human.refined for human in published.humans] and any(flags)


def test_the_refinement_uses_the_model_the_engine_was_loaded_from(tmp_path, monkeypatch):
    import vqhps_ros.hps as hps

    reads = Counter()
    read_model = hps.load_model

    def counted(path, *args, **kwargs):
        reads[str(path)] += 1
        return read_model(path, *args, **kwargs)

    monkeypatch.setattr(hps, "load_model", counted)
    config = load_config(overrides=["refine.enabled=true", "refine.signal=sparse", "model.threads=1",
                                    f"model.engine_cache_dir={tmp_path}"])
    with Estimator.from_config(config) as estimator:
        assert estimator.refinement is not None
    assert list(reads.values()) == [1]  # the model file is read once, not again for the refinement


def test_the_refinement_needs_the_model_file(tmp_path):
    from vqhps_ros.config import ConfigError
    from vqhps_ros.models import load_image_model
    from vqhps_ros.runtime import export_vqhps

    graph = export_vqhps(load_image_model(), tmp_path / "image.onnx", max_persons=2)
    config = load_config(overrides=["refine.enabled=true", f"model.path={graph}", "model.backend=onnxruntime"])
    with pytest.raises(ConfigError, match=r"refine.enabled needs a model file \(.pt\)"):
        Estimator.from_config(config)


def test_the_keypoint_model_shares_the_builtin_detectors_landmark_network(tmp_path):
    config = load_config(overrides=["model.threads=1", f"model.engine_cache_dir={tmp_path}",
                                    f"detector.graph_cache_dir={tmp_path}"])  # defaults: keypoint model, auto source
    with Estimator.from_config(config) as estimator:
        assert estimator.reads_keypoints
        assert estimator.inputs.landmarker is estimator.person_source.builtin.landmarker
    detections_only = load_config(overrides=["persons.source=detections", "model.threads=1",
                                             f"model.engine_cache_dir={tmp_path}"])
    with Estimator.from_config(detections_only) as estimator:
        assert estimator.inputs.landmarker is not None  # its own, for the boxes of the detections


def test_mirror_averaging_is_for_the_free_body_and_can_be_turned_off():
    from vqhps_ros.estimator import mirror_average_from_config
    from vqhps_ros.humans import POSE_KEYPOINT_SET, POSE_LANDMARK_NAMES, MeshTopology

    free_body = MeshTopology("free_body_1229", 1229, np.zeros((1, 3), np.int64), "h36m_17", ("pelvis", "left_hip",
                             "right_hip"), 54, 512, POSE_KEYPOINT_SET, POSE_LANDMARK_NAMES)
    mirror = mirror_average_from_config(load_config(), free_body)
    assert mirror.vertex_twins.shape == (1229,) and list(mirror.joint_partners) == [0, 2, 1]
    assert mirror_average_from_config(load_config(overrides=["model.mirror_average=false"]), free_body) is None
    smpl = replace(free_body, topology_id="smpl_6890", num_vertices=6890)
    assert mirror_average_from_config(load_config(), smpl) is None


def test_the_facing_guard_is_for_the_free_body_and_can_be_turned_off():
    from vqhps_ros.estimator import facing_guard_from_config
    from vqhps_ros.humans import MeshTopology

    free_body = MeshTopology("free_body_1229", 1229, np.zeros((1, 3), np.int64), "h36m_17", ("pelvis", "left_hip",
                             "right_hip"), 54, 512)
    guard = facing_guard_from_config(load_config(overrides=["temporal.facing_hold=0.5"]), free_body)
    assert guard.vertex_twins.shape == (1229,) and list(guard.joint_partners) == [0, 2, 1]
    assert guard.settings.hold == 0.5 and guard.settings.min_change == 0.1
    assert facing_guard_from_config(load_config(overrides=["temporal.facing_guard=false"]), free_body) is None
    smpl = replace(free_body, topology_id="smpl_6890", num_vertices=6890)
    assert facing_guard_from_config(load_config(), smpl) is None


def symmetric_person(image_size=(480, 640)) -> Detection:
    """A person seen from the front whose keypoints are exactly mirror-symmetric about the box's centre line."""
    from vqhps_ros.body import free_body_pose_landmarks, load_free_body_data
    from vqhps_ros.hps.mirror_average import mirrored_names
    from vqhps_ros.humans import POSE_KEYPOINT_SET, POSE_LANDMARK_NAMES, BodyKeypoints

    landmarks = free_body_pose_landmarks()(np.asarray(load_free_body_data().v_template, np.float64))
    partners = mirrored_names(POSE_LANDMARK_NAMES)
    upright = landmarks[:, :2] * [1.0, -1.0]  # image y points down
    symmetric = 0.5 * (upright + upright[partners] * [-1.0, 1.0])
    centre_x = image_size[1] / 2
    pixels = symmetric * 200.0 + [centre_x, 240.0]
    low, high = pixels.min(axis=0) - 20, pixels.max(axis=0) + 20
    low[0], high[0] = 2 * centre_x - high[0], high[0]  # the box centred on the centre line too
    keypoints = BodyKeypoints(POSE_KEYPOINT_SET, pixels.astype(np.float32), np.ones(33, np.float32))
    return Detection(np.concatenate([low, high - low]), 0.9, "person", "1", keypoints=keypoints)


def test_a_mirror_symmetric_person_gets_a_mirror_symmetric_mesh_from_the_averaged_readings():
    from vqhps_ros.estimator import mirror_average_from_config
    from vqhps_ros.hps import load_model
    from vqhps_ros.models import KEYPOINT_MODEL

    model = load_model(KEYPOINT_MODEL)
    frame = Frame(np.zeros((480, 640, 3), np.uint8), 1, "camera", K, (symmetric_person(),))
    asymmetry = {}
    with TorchEngine(model) as engine:
        topology = model_topology(model)
        mirror = mirror_average_from_config(load_config(), topology)
        for averaged in (False, True):
            estimator = Estimator(engine, topology, mirror=mirror if averaged else None)
            (human,) = estimator.process(frame).humans
            canonical = (human.vertices - human.translation) @ human.root_rotation
            asymmetry[averaged] = np.abs(canonical[mirror.vertex_twins] * [-1, 1, 1] - canonical).max()
    assert asymmetry[True] < 1e-4 < 0.01 < asymmetry[False]

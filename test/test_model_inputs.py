"""What the network reads: crops for image models; for keypoint models the persons' keypoints, found by the
landmark model for boxes that come without them, and persons whose keypoints cannot be read skipped and counted."""

from collections import Counter

import numpy as np
import pytest
import torch

from vqhps_ros.detect import POSE_LANDMARK_GRAPH, DetectionRunner
from vqhps_ros.estimator import Estimator
from vqhps_ros.hps import KeypointMeshRegressor, KeypointRegressorConfig, TransformerDims
from vqhps_ros.hps.model import VQHPS
from vqhps_ros.humans import POSE_KEYPOINT_SET, BodyKeypoints, Detection, Frame
from vqhps_ros.model_inputs import CropInputs, KeypointInputs
from vqhps_ros.models import load_image_model
from vqhps_ros.runtime import TorchEngine
from vqhps_ros.runtime.export import model_topology
from vqhps_ros.synth.scene import SceneGenerator

SMALL = KeypointRegressorConfig(TransformerDims(model_dim=32, nhead=4, feedforward_dim=64, dropout=0.0), hidden=64)


@pytest.fixture(scope="module")
def keypoint_model():
    demo = load_image_model()
    torch.manual_seed(0)  # after loading: the random regressor must not depend on how the image model is built
    return VQHPS(KeypointMeshRegressor(SMALL), demo.mesh_vqvae, demo.pose_init, demo.joint_regressor,
                 demo.joint_names, demo.faces).eval()


@pytest.fixture(scope="module")
def rendered():
    """A rendered frame (seed 3: one person, 332 pixels tall, 83 % visible) and its best-seen person."""
    frame = SceneGenerator().random_frame(np.random.default_rng(3))
    person = max(frame.people, key=lambda truth: truth.box[3] * truth.visible_fraction)
    assert person.box[3] > 150 and person.visible_fraction > 0.8
    return Frame(frame.image, 1, "camera", frame.camera.intrinsics), person


@pytest.fixture(scope="module")
def landmarker():
    with DetectionRunner(POSE_LANDMARK_GRAPH, "onnxruntime") as runner:
        yield runner


def keypoints_at(points, visibility) -> BodyKeypoints:
    return BodyKeypoints(POSE_KEYPOINT_SET, np.asarray(points, np.float32), np.asarray(visibility, np.float32))


def test_persons_without_readable_keypoints_are_skipped_and_counted(rendered):
    frame, person = rendered
    box = np.asarray(person.box, dtype=np.float64)
    inside = np.tile(box[:2] + box[2:] / 2, (33, 1))
    few_seen = np.zeros(33)
    few_seen[:5] = 1.0
    coco = BodyKeypoints("coco_17", np.zeros((17, 2), np.float32), np.ones(17, np.float32))
    persons = (Detection(box, keypoints=coco), Detection(box, keypoints=keypoints_at(inside, np.ones(33))),
               Detection(box, keypoints=keypoints_at(inside, few_seen)), Detection(box))
    skipped = Counter()
    inputs = KeypointInputs(landmarker=None, min_keypoints=8).prepare(frame, persons, skipped)
    assert skipped == {"foreign_keypoint_set": 1, "too_few_keypoints": 2}
    assert inputs.indices == (1,) and inputs.batch.shape == (1, 33, 3)
    assert inputs.detections[0] is persons[1] and inputs.boxes.shape == (1, 4)
    none_readable = KeypointInputs().prepare(frame, persons[2:], Counter())
    assert none_readable.indices == () and none_readable.batch.shape == (0, 33, 3)
    assert none_readable.boxes.shape == (0, 4)


def test_the_landmark_model_reads_boxes_that_come_without_keypoints(rendered, landmarker):
    frame, person = rendered
    height, width = frame.image_size
    empty_corner = np.array([0.0, 0.0, 40.0, 40.0])  # too small and bare for a body
    assert not np.any([_overlaps(empty_corner, person.box)])
    persons = (Detection(np.asarray(person.box, float), 0.9, "person", "7"), Detection(empty_corner, 0.5))
    skipped = Counter()
    inputs = KeypointInputs(landmarker).prepare(frame, persons, skipped)
    assert inputs.indices == (0,) and skipped == {"too_few_keypoints": 1}
    found = inputs.detections[0]
    assert found.id == "7" and found.keypoints.keypoint_set == POSE_KEYPOINT_SET
    seen = inputs.batch[0, :, 2] == 1
    assert seen.sum() >= 20  # a well-seen rendered person
    assert np.abs(inputs.batch[0, seen, :2]).max() <= 1.0  # seen keypoints lie in the person's crop
    assert 0 <= found.keypoints.points[seen, 0].min() and found.keypoints.points[seen, 0].max() < width
    assert found.keypoints.points[seen, 1].max() < height


def test_crop_inputs_keep_every_person(rendered):
    frame, person = rendered
    persons = (Detection(np.asarray(person.box, float)), Detection(np.array([10.0, 10.0, 50.0, 90.0])))
    inputs = CropInputs().prepare(frame, persons, Counter())
    assert inputs.batch.shape == (2, 3, 224, 224) and inputs.indices == (0, 1)


def test_the_estimator_feeds_a_keypoint_model_and_publishes_the_keypoints(rendered, landmarker, keypoint_model):
    frame, person = rendered
    box = np.asarray(person.box, dtype=np.float64)
    persons = (Detection(np.array([0.0, 0.0, 40.0, 40.0]), 0.5, "person"), Detection(box, 0.9, "person", "7"))
    with TorchEngine(keypoint_model) as engine:
        estimator = Estimator(engine, model_topology(keypoint_model), inputs=KeypointInputs(landmarker))
        assert estimator.reads_keypoints
        estimator.warm_up()
        result = estimator.process(Frame(frame.image, 1, "camera", frame.intrinsics, persons))
    assert result.skipped == {"too_few_keypoints": 1}
    assert len(result.humans) <= 1  # the untrained model may not place its person
    for human in result.humans:
        assert human.id == "7" and human.keypoints.keypoint_set == POSE_KEYPOINT_SET
    assert "crop" in result.timings_ms


def _overlaps(a, b) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def test_a_person_cut_by_the_image_border_is_read_from_the_keypoints_inside(rendered, landmarker):
    frame, person = rendered
    x, y, width, height = person.box
    cut_row = int(y + 0.55 * height)  # the image ends at the person's hips, as a robot sees people close by
    cut = Frame(np.ascontiguousarray(frame.image[:cut_row]), 1, "camera", frame.intrinsics)
    box = np.array([x, y, width, cut_row - y])
    skipped = Counter()
    inputs = KeypointInputs(landmarker).prepare(cut, (Detection(box, 0.9, "person"),), skipped)
    assert inputs.indices == (0,) and not skipped
    seen = inputs.batch[0, :, 2] == 1
    assert seen[:13].sum() >= 8  # face and shoulders
    assert not seen[25:].any()  # knees, ankles and feet lie below the image
    points = inputs.detections[0].keypoints.points
    assert np.all(points[seen, 1] < cut_row)

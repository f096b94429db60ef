"""`replay_bag` end to end: bags recorded with many settings through the small model into an output bag, read
back with rosbags' AnyReader and checked against the input bag and the estimator run directly on its frames."""

import json
import os
import re
import shutil
from dataclasses import replace
from itertools import islice
from pathlib import Path

import numpy as np
import pytest
from bags import (
    BagSpec,
    FrameSpec,
    frame_specs,
    intrinsics_of,
    person_boxes,
    read_bag,
    stamp_of,
    write_bag,
)
from meshes import icosphere
from small_model import SMALL_JOINTS, build_small_model

from vqhps_ros.cli import main as cli_main
from vqhps_ros.config import load_config
from vqhps_ros.data import sample_bag_path
from vqhps_ros.errors import InputError
from vqhps_ros.estimator import Estimator
from vqhps_ros.hps import save_model
from vqhps_ros.humans import FrameResult
from vqhps_ros.io import FrameAssembler, read_frames
from vqhps_ros.io.assembler import intrinsics_from_fov
from vqhps_ros.replay import ReplayOptions, replay_bag

HUMANS, MARKERS, TOPOLOGY, TF = ("/vqhps_estimator/humans", "/vqhps_estimator/markers",
                                 "/vqhps_estimator/mesh_topology", "/tf")
OUTPUT_TYPES = {HUMANS: "vqhps_ros/msg/HumanMeshArray", MARKERS: "visualization_msgs/msg/MarkerArray",
                TOPOLOGY: "vqhps_ros/msg/MeshTopology", TF: "tf2_msgs/msg/TFMessage"}
STAGES = ("decode", "crop", "engine", "place", "build", "write")
FACES = icosphere(2)[1]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    """The small test model with the faces of its 162-vertex template, so that it has a full MeshTopology."""
    path = tmp_path_factory.mktemp("model") / "small_model.pt"
    save_model(build_small_model(), path)
    return path


@pytest.fixture(scope="module")
def configure(model_file):
    """configure(*overrides): the configuration of the small model on the PyTorch backend, one thread, frame by
    frame, persons from the bag's detections only (the replay's own counts; the temporal stage has its test below
    and in test/temporal, the built-in detector in test/test_persons.py)."""
    def make(*overrides):
        return load_config(overrides=[f"model.path={model_file}", "model.backend=pytorch", "model.threads=1",
                                      "temporal.enabled=false", "persons.source=detections", *overrides])
    return make


def replay(bag, out, config, **options):
    return replay_bag(bag, out, config, ReplayOptions(progress=False, **options))


def estimate(bag, config, max_frames: int | None = None) -> dict[int, FrameResult]:
    """The estimator's FrameResult per stamp, run directly on the bag's frames (what the replay must write)."""
    with Estimator.from_config(config) as estimator:
        assembler = FrameAssembler.from_config(config, expect_detections=True)
        frames = islice(read_frames(bag, assembler=assembler), max_frames)
        return {frame.stamp_ns: estimator.process(frame) for frame in frames}


def input_images(bag, topic: str) -> dict[int, str]:
    """stamp -> frame_id of the input bag's image messages."""
    return {stamp(message.header): message.header.frame_id for message in read_bag(bag).messages(topic)}


def stamp(header) -> int:
    return header.stamp.sec * 10**9 + header.stamp.nanosec


def check_output(out: Path, images: dict[int, str], expected: dict[int, FrameResult]):
    """The output bag: its four topics and types, the topology once, one HumanMeshArray per processed frame at
    an input image's stamp and frame with the estimator's humans, a TF frame body_<id> per human. Returns it."""
    contents = read_bag(out)
    assert {topic: contents.msgtypes[topic] for topic in OUTPUT_TYPES} == OUTPUT_TYPES
    (topology,) = contents.messages(TOPOLOGY)
    np.testing.assert_array_equal(topology.faces, FACES.reshape(-1))
    assert (topology.num_vertices, tuple(topology.joint_names), topology.num_tokens, topology.codebook_size) == (
        162, SMALL_JOINTS, 6, 32)
    arrays = contents.records[HUMANS]
    assert [stamp(record.message.header) for record in arrays] == sorted(expected)
    for record in arrays:
        array, when = record.message, stamp(record.message.header)
        assert record.log_time == when and when in images
        assert array.header.frame_id == images[when]
        humans = expected[when].humans
        assert [human.id for human in array.humans] == [human.id for human in humans]
        for message, human in zip(array.humans, humans, strict=True):
            # float32 meshes metres away: ONNX Runtime and PyTorch may differ in the last bits (2e-6 relative)
            np.testing.assert_allclose(message.vertices.reshape(-1, 3), human.vertices, rtol=1e-5, atol=1e-5)
            assert message.topology_id == topology.topology_id
    with_humans = {when for when, result in expected.items() if result.humans}
    transforms = contents.messages(TF)
    assert sorted(stamp(message.transforms[0].header) for message in transforms) == sorted(with_humans)
    for message in transforms:
        when = stamp(message.transforms[0].header)
        assert [t.child_frame_id for t in message.transforms] == [f"body_{h.id}" for h in expected[when].humans]
        assert {t.header.frame_id for t in message.transforms} == {images[when]}
    markers = contents.messages(MARKERS)
    assert 0 < len(markers) <= len(arrays)
    assert {m.header.frame_id for array in markers for m in array.markers} <= set(images.values())
    return contents


def check_summary(summary: dict, frames_read: int, frames_processed: int, humans: int, skipped: dict):
    assert set(summary) == {"input", "output", "engine", "frames_read", "frames_processed", "humans",
                            "humans_per_frame", "skipped", "latency", "wall_s", "bag_span_s", "real_time_factor"}
    assert (summary["frames_read"], summary["frames_processed"], summary["humans"]) == (
        frames_read, frames_processed, humans)
    assert summary["skipped"] == skipped
    if frames_processed:
        assert set(STAGES) <= set(summary["latency"])
        for stage in STAGES:
            assert 0 <= summary["latency"][stage]["p50_ms"] <= summary["latency"][stage]["p95_ms"]
    assert summary["engine"].startswith("pytorch")


def projected(joints: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
    """(J, 3) optical-frame points -> (J, 2) pixels through the pinhole K."""
    pixels = joints @ intrinsics.T
    return pixels[:, :2] / pixels[:, 2:]


# --------------------------------------------------------------------------------- recorder settings


RECORDINGS = {
    "mcap zstd file": BagSpec(compression="file"),
    "mcap zstd message": BagSpec(compression="message"),
    "sqlite3": BagSpec(storage="sqlite3"),
    "sqlite3 zstd message jpeg": BagSpec(storage="sqlite3", compression="message", encoding="jpeg"),
    "raw mono8": BagSpec(encoding="mono8"),
    "raw bgr8": BagSpec(encoding="bgr8"),
    "front camera topics": BagSpec(image_topic="/front/image", camera_info_topic="/front/camera_info",
                                   detections_topic="/front/people", frame_id="front_camera_optical_frame"),
}


@pytest.mark.parametrize("recording", RECORDINGS)
def test_bags_of_every_recorder_setting_replay_into_the_estimators_meshes(tmp_path, configure, recording):
    spec = RECORDINGS[recording]
    written = frame_specs(9)  # 0, 1, 2, 0, 1, 2, ... persons
    bag = write_bag(tmp_path / "in", written, spec)
    config = configure()
    summary = replay(bag, tmp_path / "out", config)
    expected = estimate(bag, config)
    check_summary(summary, 9, 9, 9, {})
    assert [len(expected[frame.stamp_ns].humans) for frame in written] == [0, 1, 2] * 3  # every box placed
    check_output(tmp_path / "out", input_images(bag, spec.image_topic), expected)


@pytest.mark.slow
def test_the_first_frames_of_the_sample_bag_replay_every_detected_person(tmp_path, configure):
    config = configure()
    summary = replay(sample_bag_path(), tmp_path / "out", config, max_frames=20)
    expected = estimate(sample_bag_path(), config, max_frames=20)
    with np.load(sample_bag_path() / "ground_truth.npz") as truth:
        first_stamps = sorted(set(truth["stamp_ns"].tolist()))[:20]
        detected = {when: int(((truth["stamp_ns"] == when) & truth["detected"]).sum()) for when in first_stamps}
    assert sorted(expected) == first_stamps
    humans = sum(len(result.humans) for result in expected.values())
    check_summary(summary, 20, 20, humans, {})
    assert humans == sum(detected.values())  # every detected person of the first 20 frames has a mesh
    contents = check_output(tmp_path / "out", input_images(sample_bag_path(), "/camera/image_raw/compressed"),
                            expected)
    bodies = {t.child_frame_id for message in contents.messages(TF) for t in message.transforms}
    assert bodies <= {"body_1", "body_2", "body_3"}  # the sample bag's track ids
    assert summary["bag_span_s"] == round((first_stamps[-1] - first_stamps[0]) / 1e9, 2)


def test_the_temporal_stage_replays_as_the_estimator_runs_it(tmp_path, configure):
    # one person in every frame: a track confirmed in the second frame, published under one id from then on
    size = (120, 160)
    written = [FrameSpec(stamp_of(index), size, person_boxes(size, 1)) for index in range(8)]
    bag = write_bag(tmp_path / "in", written)
    # the small test model's roots jump about: only the boxes decide here
    config = configure("temporal.enabled=true", "temporal.confirm_hits=2", "temporal.root_gate=100.0")
    summary = replay(bag, tmp_path / "out", config)
    expected = estimate(bag, config)
    counts = [len(expected[frame.stamp_ns].humans) for frame in written]
    assert counts == [0] + [1] * 7 and summary["skipped"] == {"tentative_track": 1}
    assert len({human.id for result in expected.values() for human in result.humans}) == 1
    assert all(human.valid for result in expected.values() for human in result.humans)
    contents = check_output(tmp_path / "out", input_images(bag, "/camera/image_raw"), expected)
    track = expected[written[-1].stamp_ns].humans[0].id
    assert {t.child_frame_id for message in contents.messages(TF) for t in message.transforms} == {f"body_{track}"}


@pytest.mark.slow
@pytest.mark.parametrize("name, topic", [("ros2_jazzy_photos_mcap", "/camera/image_raw"),
                                         ("ros2_jazzy_photos_sqlite3", "/camera/image_raw/compressed")])
def test_bags_recorded_by_ros2_replay_one_person_per_frame(tmp_path, configure, shared_bags, name, topic):
    config = configure()
    summary = replay(shared_bags / name, tmp_path / "out", config)
    expected = estimate(shared_bags / name, config)
    check_summary(summary, 30, 30, 30, {})
    contents = check_output(tmp_path / "out", input_images(shared_bags / name, topic), expected)
    assert all([t.child_frame_id for t in message.transforms] == ["body_1"] for message in contents.messages(TF))
    assert {array.header.frame_id for array in contents.messages(HUMANS)} == {"camera_color_optical_frame"}


# ------------------------------------------------------------------------------------------ bad frames


def test_a_bag_without_camera_info_is_skipped_frame_by_frame_and_says_why(tmp_path, configure):
    bag = write_bag(tmp_path / "in", frame_specs(6), BagSpec(camera_info_topic=None))
    summary = replay(bag, tmp_path / "out", configure())
    check_summary(summary, 6, 0, 0, {"no_camera_info": 6})
    contents = read_bag(tmp_path / "out")
    assert set(contents.msgtypes) == set(OUTPUT_TYPES)  # an empty but well-formed output bag
    assert all(not contents.records[topic] for topic in OUTPUT_TYPES)


def test_a_bag_without_camera_info_replays_with_a_fallback_field_of_view(tmp_path, configure, model_file, capsys):
    written = frame_specs(6)
    bag = write_bag(tmp_path / "in", written, BagSpec(camera_info_topic=None))
    out = tmp_path / "out"
    overrides = [f"model.path={model_file}", "model.backend=pytorch", "model.threads=1", "temporal.enabled=false",
                 "camera.fallback_horizontal_fov_deg=60"]
    assert cli_main(["replay", str(bag), "--out", str(out), "--no-progress",
                     *[argument for override in overrides for argument in ("--set", override)]]) == 0
    summary = json.loads((tmp_path / "out.summary.json").read_text())
    check_summary(summary, 6, 6, 6, {})
    assert f"output bag: {out}" in capsys.readouterr().out
    expected = estimate(bag, configure("camera.fallback_horizontal_fov_deg=60"))
    contents = check_output(out, input_images(bag, "/camera/image_raw"), expected)
    # the joints project through K of a 60 degree horizontal field of view of the 160 x 120 image
    intrinsics = intrinsics_from_fov(written[0].size, 60.0)
    for array in contents.messages(HUMANS):
        for human in array.humans:
            joints = human.joints.reshape(-1, 3)
            np.testing.assert_allclose(human.joints_2d.reshape(-1, 2), projected(joints, intrinsics), atol=1e-2)


def test_an_undecodable_image_is_skipped_and_the_replay_goes_on(tmp_path, configure):
    written = frame_specs(9)
    written[4] = replace(written[4], damage="undecodable")  # its detections still come
    bag = write_bag(tmp_path / "in", written, BagSpec(encoding="jpeg"))
    config = configure()
    summary = replay(bag, tmp_path / "out", config)
    check_summary(summary, 9, 8, 8, {"image_undecodable": 1})
    expected = estimate(bag, config)
    assert written[4].stamp_ns not in expected and len(expected) == 8
    check_output(tmp_path / "out", input_images(bag, "/camera/image_raw"), expected)


@pytest.mark.parametrize("fallback, humans", [("skip", 0), ("full_frame", 1)])
def test_a_frame_whose_detections_never_came_takes_the_configured_fallback(tmp_path, configure, fallback, humans):
    written = frame_specs(6)
    written[1] = replace(written[1], boxes=None)  # the detector skipped this image
    bag = write_bag(tmp_path / "in", written)
    config = configure(f"persons.without_detections={fallback}")
    summary = replay(bag, tmp_path / "out", config)
    skipped = {"detections_timeout": 1} | ({"frame_without_detections": 1} if fallback == "skip" else {})
    check_summary(summary, 6, 6, 0 + humans + 2 + 0 + 1 + 2, skipped)
    contents = check_output(tmp_path / "out", input_images(bag, "/camera/image_raw"), estimate(bag, config))
    (late,) = [array for array in contents.messages(HUMANS) if stamp(array.header) == written[1].stamp_ns]
    boxes = [(human.roi.x_offset, human.roi.y_offset, human.roi.width, human.roi.height) for human in late.humans]
    assert boxes == [(0, 0, 160, 120)] * humans  # full_frame: the whole image is the person's box


def test_an_image_size_change_is_counted_and_each_size_uses_its_own_camera_info(tmp_path, configure):
    written = frame_specs(4, size=(120, 160)) + frame_specs(4, size=(240, 320), first=4)
    bag = write_bag(tmp_path / "in", written)
    config = configure()
    summary = replay(bag, tmp_path / "out", config)
    humans = sum(len(frame.boxes) for frame in written)
    check_summary(summary, 8, 8, humans, {"image_size_changed": 1})
    contents = check_output(tmp_path / "out", input_images(bag, "/camera/image_raw"), estimate(bag, config))
    sizes = {frame.stamp_ns: frame.size for frame in written}
    for array in contents.messages(HUMANS):
        size = sizes[stamp(array.header)]
        for human in array.humans:
            assert human.roi.x_offset + human.roi.width <= size[1] and human.roi.y_offset + human.roi.height <= size[0]
            np.testing.assert_allclose(human.joints_2d.reshape(-1, 2),
                                       projected(human.joints.reshape(-1, 3), intrinsics_of(size)), atol=1e-2)


# --------------------------------------------------------------------------------------------- outputs


def test_copy_inputs_adds_the_input_topics_byte_for_byte(tmp_path, configure, shared_bags):
    bag = shared_bags / "ros2_jazzy_photos_sqlite3"
    replay(bag, tmp_path / "out", configure(), copy_inputs=True)
    source, output = read_bag(bag), read_bag(tmp_path / "out")
    inputs = {"/camera/image_raw/compressed", "/camera/camera_info", "/camera/detections"}
    assert set(output.msgtypes) == set(OUTPUT_TYPES) | inputs
    for topic in inputs:
        assert output.msgtypes[topic] == source.msgtypes[topic]
        assert [(r.log_time, r.raw) for r in output.records[topic]] == [(r.log_time, r.raw)
                                                                        for r in source.records[topic]]
        assert len(output.records[topic]) == 30
    # the copied definitions deserialise: the vision_msgs boxes read back from the output alone
    assert output.messages("/camera/detections")[0].detections[0].results[0].hypothesis.class_id == "person"


def test_without_copy_inputs_only_the_outputs_are_written(tmp_path, configure):
    bag = write_bag(tmp_path / "in", frame_specs(3))
    replay(bag, tmp_path / "out", configure())
    assert set(read_bag(tmp_path / "out").msgtypes) == set(OUTPUT_TYPES)


def test_an_existing_output_is_never_overwritten(tmp_path, configure):
    bag = write_bag(tmp_path / "in", frame_specs(3))
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match=f"output {out} already exists"):
        replay(bag, out, configure())
    assert os.listdir(out) == ["keep.txt"] and (out / "keep.txt").read_text() == "mine"


def test_markers_follow_the_configured_rate(tmp_path, configure):
    bag = write_bag(tmp_path / "in", frame_specs(9))  # 15 frames per second
    replay(bag, tmp_path / "every", configure("outputs.marker_rate_hz=0"))
    replay(bag, tmp_path / "five", configure("outputs.marker_rate_hz=5"))
    assert len(read_bag(tmp_path / "every").messages(MARKERS)) == 9
    assert len(read_bag(tmp_path / "five").messages(MARKERS)) == 3  # frames 0, 3 and 6 (0.2 s apart)


# ----------------------------------------------------------------------------------------------- errors


def test_a_truncated_input_mcap_is_an_input_error_and_leaves_no_output(tmp_path, configure):
    bag = tmp_path / "truncated"
    shutil.copytree(sample_bag_path(), bag)
    data = bag / "sample_bag.mcap"
    os.chmod(data, 0o644)
    os.truncate(data, data.stat().st_size // 2)
    with pytest.raises(InputError, match="truncated or corrupt"):
        replay(bag, tmp_path / "out", configure())
    assert not (tmp_path / "out").exists()  # the input could not be opened: no output was started


def test_a_corrupt_message_mid_bag_stops_the_replay_and_keeps_a_readable_output(tmp_path, configure):
    written = frame_specs(8)
    written[5] = FrameSpec(written[5].stamp_ns, boxes=person_boxes(written[5].size, 1), damage="garbled")
    bag = write_bag(tmp_path / "in", written)
    config = configure()
    with pytest.raises(InputError, match=r"input bag .* is truncated or corrupt \(read 5 frames\).*"
                                         r"the output bag .* holds the frames before it and is closed"):
        replay(bag, tmp_path / "out", config)
    contents = read_bag(tmp_path / "out")
    assert [stamp(array.header) for array in contents.messages(HUMANS)] == [f.stamp_ns for f in written[:5]]
    assert sum(len(array.humans) for array in contents.messages(HUMANS)) == 0 + 1 + 2 + 0 + 1
    assert len(contents.messages(TOPOLOGY)) == 1


def test_a_missing_topic_lists_the_topics_and_writes_nothing(tmp_path, configure):
    bag = write_bag(tmp_path / "in", frame_specs(3), BagSpec(image_topic="/front/image"))
    listed = ("the bag has: /camera/camera_info (sensor_msgs/msg/CameraInfo), /camera/detections "
              "(vision_msgs/msg/Detection2DArray), /front/image (sensor_msgs/msg/Image)")
    with pytest.raises(InputError, match=r"topic '/camera/image_raw'.*none matches; " + re.escape(listed)):
        replay(bag, tmp_path / "out", configure(), image_topic="/camera/image_raw")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_an_exported_graph_replays_like_the_model_file(tmp_path, configure, model_file):
    pytest.importorskip("onnxruntime")
    from vqhps_ros.hps import load_model
    from vqhps_ros.runtime import export_vqhps

    model = load_model(model_file)
    model.set_token_decoding(configure().model.token_decoding)  # a graph decodes as it was exported
    graph = export_vqhps(model, tmp_path / "small.onnx", max_persons=4)
    bag = write_bag(tmp_path / "in", frame_specs(6))
    onnx_config = load_config(overrides=[f"model.path={graph}", "model.backend=onnxruntime", "model.threads=1",
                                         "temporal.enabled=false", "persons.source=detections"])
    summary = replay(bag, tmp_path / "onnx", onnx_config)
    assert summary["engine"].startswith("onnxruntime") and summary["humans"] == 6
    # the graph's metadata gives the same topology, and the meshes match the PyTorch model's
    check_output(tmp_path / "onnx", input_images(bag, "/camera/image_raw"), estimate(bag, configure()))

"""The estimator node under `ros2 launch`, fed bags through real rclpy publishers: its messages, markers, TF,
diagnostics, latched topology, drops when busy, and a clean SIGINT shutdown.

One node serves the whole module (started once: a launch costs seconds); the tests run in file order and play
the bags with rising stamps (sample bag frames 0-134, then the recorded sqlite3 bag).
"""

from __future__ import annotations

import math

import pytest

pytestmark = [pytest.mark.ros, pytest.mark.slow]

NODE = "vqhps_estimator"
FRAME_ID = "camera_color_optical_frame"
JOINTS, VERTICES, TOKENS = 17, 1229, 54  # the bundled model: h36m_17 joints, the free body's vertices, 54 tokens
STATUS_NAME = f"{NODE}: estimator"
WARM_UP_FRAMES = 3


@pytest.fixture(scope="module")
def estimator(launch_estimator, ros, rh, sample_frames):
    launch = launch_estimator(NODE)  # autostart: launch configures and activates it
    launch.wait_for_log(rf"\[{NODE}\]: active: ", timeout=240)
    # The first frame pays for what is loaded lazily (seconds in a fresh venv), and frames coming meanwhile are
    # dropped: a few frames first, so the tests see the node's steady state.
    warm_up = ros.inbox(rh.message_class("vqhps_ros/msg/HumanMeshArray"), f"/{NODE}/humans")
    try:
        assert rh.wait_until(lambda: warm_up.subscription.get_publisher_count() > 0, 10)
        player = rh.Player(ros, "best_effort")
        player.play(sample_frames[:WARM_UP_FRAMES], 15.0)
        player.close()
        assert warm_up.wait_for(lambda ms: ms, timeout=120), rh.tail(launch.log())
    finally:
        warm_up.close()
    yield launch
    launch.stop()


@pytest.fixture(scope="module")
def humans(ros, rh, estimator):
    inbox = ros.inbox(rh.message_class("vqhps_ros/msg/HumanMeshArray"), f"/{NODE}/humans", rh.qos("reliable", 200))
    assert rh.wait_until(lambda: inbox.subscription.get_publisher_count() > 0, 10), "humans not matched"
    yield inbox
    inbox.close()


@pytest.fixture(scope="module")
def tf(ros, rh, estimator):
    from tf2_msgs.msg import TFMessage

    inbox = ros.inbox(TFMessage, "/tf", rh.qos("reliable", 200))
    assert rh.wait_until(lambda: inbox.subscription.get_publisher_count() > 0, 10), "/tf not matched"
    yield inbox
    inbox.close()


@pytest.fixture(scope="module")
def diagnostics(ros, rh, estimator):
    from diagnostic_msgs.msg import DiagnosticArray

    inbox = ros.inbox(DiagnosticArray, "/diagnostics", rh.qos("reliable", 100))
    yield inbox
    inbox.close()


@pytest.fixture(scope="module")
def published(rh):
    """Every image stamp this module published."""
    return set()


def play(ros, rh, frames, reliability: str, published: set, rate_hz: float = 15.0) -> list[int]:
    player = rh.Player(ros, reliability)
    try:
        stamps = player.play(frames, rate_hz)
    finally:
        player.close()
    published.update(stamps)
    return stamps


def estimator_statuses(messages) -> list:
    return [status for array in messages for status in array.status if status.name == STATUS_NAME]


def values_of(status) -> dict[str, str]:
    return {item.key: item.value for item in status.values}


def check_humans(rh, message, published: set) -> None:
    """One HumanMeshArray as the message definitions promise it."""
    assert message.header.frame_id == FRAME_ID
    assert rh.stamp_ns(message.header.stamp) in published, "the stamp is not a published image's stamp"
    for human in message.humans:
        assert human.id, "a person without an id"
        assert len(human.joints) == JOINTS * 3 and len(human.joints_2d) == JOINTS * 2
        assert len(human.vertices) == VERTICES * 3
        assert len(human.tokens) == TOKENS and len(human.token_confidence) == TOKENS
        assert human.joint_set and human.topology_id
        assert 0.0 <= human.confidence <= 1.0
        assert all(0.0 <= value <= 1.0 for value in human.token_confidence)
        assert all(math.isfinite(value) for value in human.vertices) and all(map(math.isfinite, human.joints))
        # metres in the optical frame: in front of the camera (z forward), within a room
        depths = human.vertices[2::3]
        assert 0.2 < sum(depths) / len(depths) < 30.0
        assert human.root_pose.position.z > 0.2
        assert human.roi.width > 0 and human.roi.height > 0


def test_sample_bag_through_best_effort_publishers_gives_humans_and_tf(ros, rh, estimator, humans, tf,
                                                                       sample_frames, published):
    frames = sample_frames[WARM_UP_FRAMES:30]  # 1.8 s, people "1" and (from frame 25 on) "2"
    detection_ids = {frame.stamp_ns: {d.id for t, m in frame.messages if t == rh.DETECTIONS_TOPIC
                                      for d in m.detections} for frame in frames}
    stamps = play(ros, rh, frames, "best_effort", published)
    got = humans.wait_for(lambda ms: len([m for m in ms if rh.stamp_ns(m.header.stamp) in detection_ids]) >= 5,
                          timeout=60)
    assert got, f"too few HumanMeshArray within 60 s: {len(humans.snapshot())}"
    messages = [m for m in humans.snapshot() if rh.stamp_ns(m.header.stamp) in detection_ids]
    assert len({rh.stamp_ns(m.header.stamp) for m in messages}) == len(messages), "a frame was published twice"
    for message in messages:
        check_humans(rh, message, set(stamps))
        assert {h.id for h in message.humans} == detection_ids[rh.stamp_ns(message.header.stamp)]

    # TF: body_<id> under the image's frame, at the image's stamp, at the person's root position
    roots = {(rh.stamp_ns(m.header.stamp), h.id): h.root_pose.position for m in messages for h in m.humans}
    assert tf.wait_for(lambda ms: any((rh.stamp_ns(t.header.stamp), t.child_frame_id.removeprefix("body_")) in roots
                                      for m in ms for t in m.transforms), timeout=10)
    transforms = [t for m in tf.snapshot() for t in m.transforms if rh.stamp_ns(t.header.stamp) in detection_ids]
    assert transforms
    for transform in transforms:
        assert transform.header.frame_id == FRAME_ID
        stamp, person = rh.stamp_ns(transform.header.stamp), transform.child_frame_id.removeprefix("body_")
        assert transform.child_frame_id.startswith("body_") and person in detection_ids[stamp]
        root = roots.get((stamp, person))
        if root is not None:
            translation = transform.transform.translation
            assert math.isclose(translation.x, root.x, abs_tol=1e-6)
            assert math.isclose(translation.z, root.z, abs_tol=1e-6)
        rotation = transform.transform.rotation
        assert math.isclose(rotation.x**2 + rotation.y**2 + rotation.z**2 + rotation.w**2, 1.0, abs_tol=1e-5)

    # and tf2 resolves them (the buffer a TransformListener fills)
    from rclpy.time import Time
    from tf2_ros import Buffer

    buffer = Buffer()
    for transform in transforms:
        buffer.set_transform(transform, "test")
    latest = transforms[-1]
    looked_up = buffer.lookup_transform(FRAME_ID, latest.child_frame_id, Time.from_msg(latest.header.stamp))
    assert looked_up.transform.translation.z == pytest.approx(latest.transform.translation.z)


def test_markers_update_in_place_and_are_deleted_when_people_leave(ros, rh, estimator, humans, sample_frames,
                                                                   published):
    from visualization_msgs.msg import Marker, MarkerArray

    people, nobody = sample_frames[30:75], [rh.without_people(f) for f in sample_frames[75:90]]
    nobody_stamps = {f.stamp_ns for f in nobody}
    markers = ros.inbox(MarkerArray, f"/{NODE}/markers", rh.qos("reliable", 200))
    try:
        assert rh.wait_until(lambda: markers.subscription.get_publisher_count() > 0, 10)
        play(ros, rh, people + nobody, "best_effort", published)
        deleted = markers.wait_for(lambda arrays: any(m.action == Marker.DELETE and rh.stamp_ns(m.header.stamp)
                                                      in nobody_stamps for a in arrays for m in a.markers), 60)
        assert deleted, "no DELETE marker after everyone left"
        arrays = markers.snapshot()
    finally:
        markers.close()

    # in place: a person keeps one marker id in every namespace across updates
    shown = [a for a in arrays if any(m.action == Marker.ADD for m in a.markers)]
    assert len(shown) >= 3
    number_of: dict[str, int] = {}
    updates: dict[str, int] = {}
    for array in shown:
        labels = {m.text: m.id for m in array.markers if m.ns == "label" and m.action == Marker.ADD}
        assert labels, "an update without labels"
        for person, number in labels.items():
            assert number_of.setdefault(person, number) == number, f"person {person} moved to another marker id"
            updates[person] = updates.get(person, 0) + 1
        keys = {(m.ns, m.id) for m in array.markers if m.action == Marker.ADD}
        assert keys == {(ns, n) for n in labels.values() for ns in ("mesh", "skeleton", "label")}
        for marker in array.markers:
            assert marker.header.frame_id == FRAME_ID and rh.stamp_ns(marker.header.stamp) in published
            if marker.ns == "mesh" and marker.action == Marker.ADD:
                assert marker.type == Marker.TRIANGLE_LIST and len(marker.points) % 3 == 0 and marker.points
    assert max(updates.values()) >= 3, f"too few updates of one person: {updates}"

    # gone: the first array after the last update deletes exactly what that update showed, and adds nothing
    last = max(i for i, a in enumerate(arrays) if any(m.action == Marker.ADD for m in a.markers))
    assert last + 1 < len(arrays)
    removal = arrays[last + 1]
    assert all(m.action == Marker.DELETE for m in removal.markers)
    assert {(m.ns, m.id) for m in removal.markers} == {(m.ns, m.id) for m in arrays[last].markers
                                                        if m.action == Marker.ADD}
    assert all(not a.markers for a in arrays[last + 2:])
    # and the frames without people still give (empty) HumanMeshArrays (sent before the markers, but on another
    # topic: they may arrive after them)
    assert humans.wait_for(lambda ms: any(rh.stamp_ns(m.header.stamp) in nobody_stamps for m in ms), 10)
    empty = [m for m in humans.snapshot() if rh.stamp_ns(m.header.stamp) in nobody_stamps]
    assert empty and all(not m.humans for m in empty)


def test_frames_faster_than_inference_are_dropped_and_counted(ros, rh, estimator, humans, diagnostics,
                                                             sample_frames, published):
    frames = sample_frames[90:135]  # two or three people per frame, at 4x the camera's rate

    def idle(arrays):  # the node's counts once it has finished what came before: two reports alike
        values = [values_of(s) for s in estimator_statuses(arrays)][-2:]
        same = ("images_received", "frames_processed", "frames_dropped_busy")
        return len(values) == 2 and all(values[0][key] == values[1][key] for key in same) and values[1]

    before = diagnostics.wait_for(idle, timeout=10)
    assert before, "the node's counts did not settle"
    stamps = set(play(ros, rh, frames, "best_effort", published, rate_hz=60.0))

    def dropped(arrays):
        values = [values_of(s) for s in estimator_statuses(arrays)]
        return [v for v in values if int(v["frames_dropped_busy"]) > int(before["frames_dropped_busy"])]

    assert diagnostics.wait_for(dropped, timeout=10), f"frames_dropped_busy did not grow from {before}"
    assert estimator.alive()
    assert ros.lifecycle_state(f"/{NODE}") == "active"
    processed = [m for m in humans.snapshot() if rh.stamp_ns(m.header.stamp) in stamps]
    assert 0 < len(processed) < len(frames)


def test_recorded_jpeg_bag_through_reliable_publishers(ros, rh, estimator, humans, photo_frames, published):
    frames = photo_frames["sqlite3"]  # 640x480 jpeg of three photographs, one person box each, recorded by rosbag2
    stamps = set(play(ros, rh, frames, "reliable", published))
    assert humans.wait_for(lambda ms: len([m for m in ms if rh.stamp_ns(m.header.stamp) in stamps]) >= 5, 60)
    messages = [m for m in humans.snapshot() if rh.stamp_ns(m.header.stamp) in stamps]
    for message in messages:
        check_humans(rh, message, stamps)
        assert len(message.humans) == 1
        roi = message.humans[0].roi
        assert roi.x_offset + roi.width <= 640 and roi.y_offset + roi.height <= 480


def test_topology_reaches_a_subscriber_that_joins_late(ros, rh, estimator, humans):
    inbox = ros.inbox(rh.message_class("vqhps_ros/msg/MeshTopology"), f"/{NODE}/mesh_topology", rh.qos("latched", 1))
    try:
        assert inbox.wait_for(lambda ms: ms, timeout=10), "no MeshTopology for a late transient-local subscriber"
        topology = inbox.snapshot()[0]
    finally:
        inbox.close()
    assert topology.num_vertices == VERTICES and len(topology.joint_names) == JOINTS
    assert topology.num_tokens == TOKENS and topology.codebook_size > 0
    assert len(topology.faces) % 3 == 0 and len(topology.faces) > 0 and max(topology.faces) < VERTICES
    people = [h for m in humans.snapshot() for h in m.humans]
    assert {h.topology_id for h in people} == {topology.topology_id}
    assert {h.joint_set for h in people} == {topology.joint_set}
    assert max(max(h.tokens) for h in people) < topology.codebook_size


def test_diagnostics_report_the_estimator(ros, rh, estimator, diagnostics):
    assert diagnostics.wait_for(lambda ms: estimator_statuses(ms), timeout=5)
    status = estimator_statuses(diagnostics.snapshot())[-1]
    values = values_of(status)
    assert values["backend"] == "onnxruntime" and values["device"] == "cpu"
    assert int(values["frames_processed"]) > 0 and int(values["images_received"]) >= int(values["frames_processed"])
    assert int(values["frames_dropped_busy"]) > 0  # from the 60 Hz test
    assert float(values["processing_rate_hz"]) >= 0.0
    latencies = {key: float(value) for key, value in values.items() if key.startswith("latency_")}
    assert latencies and all(value >= 0.0 for value in latencies.values())
    assert any(key.endswith("_p50_ms") for key in latencies) and any(key.endswith("_p95_ms") for key in latencies)
    assert status.hardware_id.startswith("onnxruntime") and status.message


def test_sigint_shuts_the_node_down_cleanly(estimator):
    returncode = estimator.stop()
    log = estimator.log()
    assert returncode == 0, log[-3000:]
    assert estimator.stop_seconds < 10.0
    assert "process has finished cleanly" in log and "process has died" not in log

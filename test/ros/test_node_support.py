"""What the node needs besides rclpy, tested without ROS: the newest-frame slot, diagnostics numbers, QoS advice,
the parameter descriptors' data, and the shared per-frame outputs."""

import threading
import time

import numpy as np

from vqhps_ros.config import EstimatorConfig, parameter_specs
from vqhps_ros.humans import FrameResult, Human, MeshTopology
from vqhps_ros.io import messages
from vqhps_ros.io.outputs import HUMANS, MARKERS, TF, TOPOLOGY, FrameOutputs
from vqhps_ros.ros.latest_frame import LatestFrameSlot
from vqhps_ros.ros.node_stats import NodeStats
from vqhps_ros.ros.qos_advice import incompatible_qos_advice


def test_the_newest_frame_wins_and_replaced_ones_are_counted():
    slot = LatestFrameSlot()
    for frame in range(5):
        slot.put(frame)
    assert slot.take(timeout=0.1) == 4
    assert slot.dropped == 4 and slot.accepted == 5
    assert slot.take(timeout=0.01) is None  # nothing new: the worker waits


def test_take_blocks_until_a_frame_comes_and_close_wakes_the_worker():
    slot, taken = LatestFrameSlot(), []
    worker = threading.Thread(target=lambda: taken.extend([slot.take(), slot.take()]))
    worker.start()
    time.sleep(0.05)
    slot.put("frame")
    time.sleep(0.05)
    slot.close()
    worker.join(timeout=2)
    assert not worker.is_alive() and taken == ["frame", None]


def test_diagnostics_report_rates_latencies_drops_and_skips():
    stats = NodeStats(now_s=0.0)
    for index in range(11):
        stats.image_received(index * 0.1)
        stats.frame_processed(index * 0.1, {"engine": 20.0 + index, "crop": 2.0}, humans=2,
                              skipped={"low_score": 1} if index == 3 else {})
    values = dict(stats.diagnostic_values(dropped=3, engine={"backend": "onnxruntime"}))
    assert values["frames_processed"] == "11" and values["frames_dropped_busy"] == "3"
    assert float(values["processing_rate_hz"]) == 10.0
    assert values["latency_engine_p50_ms"] == "25.00" and values["skipped_low_score"] == "1"
    assert values["backend"] == "onnxruntime" and values["persons_last_frame"] == "2"
    assert stats.level(now_s=1.1, dropped=3)[0] == 0


def test_diagnostics_warn_when_images_come_but_nothing_is_processed():
    stats = NodeStats(now_s=0.0)
    assert stats.level(now_s=1.0, dropped=0) == (1, "no images received")
    stats.image_received(9.0)
    level, message = stats.level(now_s=10.0, dropped=0)
    assert level == 1 and "no frame was processed for 10.0 s" in message
    stats.frame_failed("EngineError")
    stats.frame_processed(10.0, {}, 0, {})
    assert stats.level(now_s=10.5, dropped=0) == (1, "1 frames failed (see skipped_*)")


def test_latency_window_is_bounded():
    stats = NodeStats(now_s=0.0)
    for index in range(1000):
        stats.frame_processed(index * 0.01, {"engine": float(index)}, 1, {})
    assert stats.latency_ms("engine", 0) == 900.0  # only the last 100 frames count


def test_qos_advice_says_what_to_change():
    text = incompatible_qos_advice("/camera/image_raw", "QoSPolicyKind.RELIABILITY", "reliable")
    assert "best-effort" in text and "inputs.qos=sensor_data" in text and "/camera/image_raw" in text
    assert "ros2 topic info -v /camera/depth" in incompatible_qos_advice("/camera/depth", "DEADLINE", "sensor_data")


def test_every_parameter_has_a_description_and_numbers_have_ranges():
    for spec in parameter_specs():
        assert spec.description and spec.allowed, spec.name
        if spec.type in ("integer", "double") and spec.name != "persons.min_box_size":
            assert spec.min is not None and spec.max is not None, spec.name
    assert {spec.name.split(".")[0] for spec in parameter_specs()} == set(EstimatorConfig().to_dict())


def _human(track_id: str, z: float) -> Human:
    vertices = np.array([[0, 0, z], [0.1, 0, z], [0, 0.1, z]], np.float32)
    return Human(id=track_id, score=0.9, box=np.array([10.0, 10, 50, 100]), tokens=np.array([1, 2]),
                 token_confidence=np.array([0.5, 0.5], np.float32), vertices=vertices, joints=None,
                 joints_2d=None, vertices_2d=np.zeros((3, 2)), root_position=vertices.mean(0).astype(float),
                 root_rotation=np.eye(3), crop_camera=np.array([1.0, 0, 0]), translation=vertices.mean(0))


def test_frame_outputs_send_the_topology_first_and_limit_the_marker_rate():
    topology = MeshTopology("tri", 3, np.array([[0, 1, 2]]), "", (), 2, 8)
    config = EstimatorConfig.from_dict({"outputs.marker_rate_hz": 5.0})
    outputs = FrameOutputs(messages.rosbags_types(), config.outputs, topology)
    kinds = []
    for index in range(6):  # 15 Hz stamps: markers every 200 ms at most
        result = FrameResult(1_000_000_000 + index * 66_666_667, "cam", (480, 640), [_human("a", 2.0)])
        kinds.append([kind for kind, _ in outputs.messages(result)])
    assert kinds[0] == [TOPOLOGY, HUMANS, MARKERS, TF]
    assert [MARKERS in frame for frame in kinds] == [True, False, False, True, False, False]
    assert all(HUMANS in frame and TF in frame for frame in kinds) and all(TOPOLOGY not in f for f in kinds[1:])
    latched = FrameOutputs(messages.rosbags_types(), config.outputs, topology, send_topology=False)
    first = latched.messages(FrameResult(5, "cam", (480, 640), []))
    assert [kind for kind, _ in first] == [HUMANS, MARKERS]  # nobody in the frame: no TF


def test_in_turn_builds_each_message_when_the_previous_one_was_taken(monkeypatch):
    topology = MeshTopology("tri", 3, np.array([[0, 1, 2]]), "", (), 2, 8)
    outputs = FrameOutputs(messages.rosbags_types(), EstimatorConfig().outputs, topology)
    built = []
    real_markers = messages.markers
    monkeypatch.setattr(messages, "markers", lambda *args, **kwargs: built.append(MARKERS) or real_markers(
        *args, **kwargs))
    frames = outputs.in_turn(FrameResult(5, "cam", (480, 640), []))
    assert [next(frames)[0], next(frames)[0]] == [TOPOLOGY, HUMANS] and built == []  # humans out, markers not built
    assert next(frames)[0] == MARKERS and built == [MARKERS]

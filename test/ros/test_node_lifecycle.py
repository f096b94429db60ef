"""The estimator's life cycle under `ros2 launch ... autostart:=false`: it waits unconfigured; a bad backend fails
configure and the node stays alive to be fixed; configure (through `ros2 lifecycle set`), activate, deactivate and
cleanup (through the lifecycle services) make its subscriptions and outputs come and go. Raw sensor_msgs/Image
input, from the mcap bag recorded by rosbag2. One node for the module; the tests run in file order.
"""

from __future__ import annotations

import subprocess

import pytest

pytestmark = [pytest.mark.ros, pytest.mark.slow]

NODE = "vqhps_lifecycle"
FQN = f"/{NODE}"
HUMANS_TOPIC = f"{FQN}/humans"
IMAGE_TOPIC = "/camera/image_raw"  # raw images (compressed:=false)


@pytest.fixture(scope="module")
def lifecycle_node(launch_estimator, ros):
    launch = launch_estimator(NODE, autostart="false", compressed="false")
    launch.wait_for_log(r"process started with pid", timeout=60)
    yield launch
    launch.stop()


@pytest.fixture(scope="module")
def humans(ros, rh, lifecycle_node):
    inbox = ros.inbox(rh.message_class("vqhps_ros/msg/HumanMeshArray"), HUMANS_TOPIC, rh.qos("reliable", 100))
    yield inbox
    inbox.close()


@pytest.fixture(scope="module")
def diagnostics(ros, rh, lifecycle_node):
    from diagnostic_msgs.msg import DiagnosticArray

    inbox = ros.inbox(DiagnosticArray, "/diagnostics", rh.qos("reliable", 50))
    yield inbox
    inbox.close()


def last_status(diagnostics) -> dict:
    """The node's latest diagnostics values (what it received and processed): the context of a failure."""
    statuses = [s for a in diagnostics.snapshot() for s in a.status if s.name == f"{NODE}: estimator"]
    return {item.key: item.value for item in statuses[-1].values} if statuses else {}


def node_publishers(ros, topic: str) -> list:
    return [info for info in ros.node.get_publishers_info_by_topic(topic) if info.node_name == NODE]


def humans_of(rh, inbox, stamps) -> list:
    return [m for m in inbox.snapshot() if rh.stamp_ns(m.header.stamp) in stamps]


def play(ros, rh, frames, reliability: str, wait_for_subscribers: bool = True) -> set[int]:
    player = rh.Player(ros, reliability)
    try:
        return set(player.play(frames, 15.0, wait_for_subscribers))
    finally:
        player.close()


def test_starts_unconfigured_without_outputs(ros, rh, lifecycle_node):
    assert ros.lifecycle_state(FQN) == "unconfigured"
    assert ros.publishers_of(HUMANS_TOPIC) == 0 and ros.subscribers_of(IMAGE_TOPIC) == 0


def test_an_unknown_backend_fails_configure_and_the_node_stays_alive(ros, lifecycle_node):
    [result] = ros.set_parameters(FQN, {"model.backend": "tensorflow"})
    assert result.successful, result.reason
    assert not ros.change_state(FQN, "configure")
    line = lifecycle_node.wait_for_log(r"configure failed: .*", timeout=10).group(0)
    assert "model.backend" in line and "tensorflow" in line
    assert lifecycle_node.alive() and ros.lifecycle_state(FQN) == "unconfigured"
    [result] = ros.set_parameters(FQN, {"model.backend": "onnxruntime"})
    assert result.successful, result.reason


def test_configure_activate_deactivate_cleanup(ros, rh, lifecycle_node, humans, diagnostics, photo_frames):
    frames = photo_frames["mcap"]  # 320x240 rgb8 sensor_msgs/Image, recorded by rosbag2

    # configure with the CLI, as a user would (no daemon: it starts cold, kit pitfall 9)
    done = subprocess.run(["ros2", "lifecycle", "set", "--no-daemon", "--spin-time", "5", FQN, "configure"],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0 and "Transitioning successful" in done.stdout, done.stdout + done.stderr
    assert ros.lifecycle_state(FQN) == "inactive"
    # publishers exist (lifecycle publishers, inactive); nothing is subscribed yet
    assert rh.wait_until(lambda: ros.publishers_of(HUMANS_TOPIC) == 1, 10)
    assert ros.subscribers_of(IMAGE_TOPIC) == 0

    assert ros.change_state(FQN, "activate") and ros.lifecycle_state(FQN) == "active"
    assert rh.wait_until(lambda: humans.subscription.get_publisher_count() > 0, 10), "humans not matched"
    stamps = play(ros, rh, frames, "reliable")  # waits until the node's subscriptions match
    # (the node's first frame loads what is loaded lazily, and frames coming meanwhile are dropped: one may be all)
    assert humans.wait_for(lambda ms: humans_of(rh, humans, stamps), 60), \
        (len(humans.snapshot()), last_status(diagnostics), rh.tail(lifecycle_node.log(), 5))
    for message in humans_of(rh, humans, stamps):
        assert message.header.frame_id == "camera_color_optical_frame" and len(message.humans) == 1
        person = message.humans[0]
        assert len(person.vertices) == 1229 * 3 and len(person.joints) == 17 * 3 and len(person.tokens) == 54
        assert person.roi.x_offset + person.roi.width <= 320 and person.roi.y_offset + person.roi.height <= 240

    # deactivate: the subscriptions go, frames give nothing
    assert ros.change_state(FQN, "deactivate") and ros.lifecycle_state(FQN) == "inactive"
    assert rh.wait_until(lambda: ros.subscribers_of(IMAGE_TOPIC) == 0, 10)
    humans.clear()
    play(ros, rh, frames[:15], "best_effort", wait_for_subscribers=False)
    assert not humans.wait_for(lambda ms: ms, timeout=2.0), "outputs while inactive"

    # activate again: outputs start again, best-effort input this time
    assert ros.change_state(FQN, "activate")
    stamps = play(ros, rh, frames, "best_effort")
    assert humans.wait_for(lambda ms: humans_of(rh, humans, stamps), 60), \
        ("no outputs after re-activation", last_status(diagnostics), rh.tail(lifecycle_node.log(), 5))

    # deactivate + cleanup: back to unconfigured, publishers gone, the node still alive
    assert ros.change_state(FQN, "deactivate") and ros.change_state(FQN, "cleanup")
    assert ros.lifecycle_state(FQN) == "unconfigured"
    assert rh.wait_until(lambda: ros.publishers_of(HUMANS_TOPIC) == 0, 10)
    # every output goes, /tf and /diagnostics too (a configure after it makes them anew)
    assert rh.wait_until(lambda: not node_publishers(ros, "/tf") and not node_publishers(ros, "/diagnostics"), 10), \
        {"/tf": node_publishers(ros, "/tf"), "/diagnostics": node_publishers(ros, "/diagnostics")}
    assert lifecycle_node.alive()


def test_sigint_from_unconfigured_exits_cleanly(lifecycle_node):
    assert lifecycle_node.stop() == 0
    assert lifecycle_node.stop_seconds < 10.0
    log = lifecycle_node.log()
    assert "process has finished cleanly" in log and "process has died" not in log

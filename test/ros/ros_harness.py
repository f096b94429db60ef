"""What the ROS tests drive a real node with: `ros2 launch` in a subprocess, an rclpy node of the tests' own that
publishes bag messages and collects outputs, lifecycle and parameter service calls.

Imported by test/ros/conftest.py's fixtures only (this module imports rclpy at once), so a test run without ROS
collects and skips the ROS tests without importing it. Every wait is on a condition with a timeout.
"""

from __future__ import annotations

import glob
import importlib
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import rclpy
from rclpy.exceptions import InvalidHandle
from rclpy.executors import MultiThreadedExecutor
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

NS_PER_S = 1_000_000_000
FRAME_ID = "camera_color_optical_frame"
IMAGE_TOPIC = "/camera/image_raw"
CAMERA_INFO_TOPIC = "/camera/camera_info"
DETECTIONS_TOPIC = "/camera/detections"


def qos(kind: str, depth: int = 10) -> QoSProfile:
    """best_effort: what camera drivers publish (sensor data); reliable; latched: reliable + transient local."""
    reliability = ReliabilityPolicy.BEST_EFFORT if kind == "best_effort" else ReliabilityPolicy.RELIABLE
    durability = DurabilityPolicy.TRANSIENT_LOCAL if kind == "latched" else DurabilityPolicy.VOLATILE
    return QoSProfile(depth=depth, history=HistoryPolicy.KEEP_LAST, reliability=reliability, durability=durability)


def stamp_ns(stamp) -> int:
    return stamp.sec * NS_PER_S + stamp.nanosec


def wait_until(predicate: Callable[[], object], timeout: float, period: float = 0.05):
    """predicate's first truthy value within `timeout` seconds, else None."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(period)


# ------------------------------------------------------------------------------------------------------- messages


def message_class(name: str) -> type:
    """The generated class of "pkg/msg/Type". `python -m pytest` puts the checkout first on sys.path, so
    `vqhps_ros` is the source package, which has no generated `msg`: the installed (colcon) package folder, which
    has it, is added to the package's path then."""
    from rosidl_runtime_py.utilities import get_message

    try:
        return get_message(name)
    except (ImportError, AttributeError, ValueError):
        if not name.startswith("vqhps_ros/"):
            raise
    from ament_index_python.packages import get_package_prefix

    import vqhps_ros

    prefix = get_package_prefix("vqhps_ros")
    for folder in sorted(glob.glob(os.path.join(prefix, "lib", "python3*", "site-packages", "vqhps_ros"))):
        if folder not in vqhps_ros.__path__:
            vqhps_ros.__path__.append(folder)
    importlib.invalidate_caches()
    return get_message(name)


class Inbox:
    """Messages of one subscription, in arrival order, with a condition to wait on."""

    def __init__(self) -> None:
        self.messages: list = []
        self._condition = threading.Condition()
        self.subscription = None
        self._node = None

    def __call__(self, message) -> None:
        with self._condition:
            self.messages.append(message)
            self._condition.notify_all()

    def snapshot(self) -> list:
        with self._condition:
            return list(self.messages)

    def clear(self) -> None:
        with self._condition:
            self.messages.clear()

    def wait_for(self, predicate: Callable[[list], object], timeout: float):
        """predicate(messages)'s first truthy value within `timeout` seconds, else None."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while True:
                value = predicate(self.messages)
                remaining = deadline - time.monotonic()
                if value or remaining <= 0:
                    return value
                self._condition.wait(min(remaining, 0.2))

    def close(self) -> None:
        if self.subscription is not None:
            self._node.destroy_subscription(self.subscription)
            self.subscription = None


class Harness:
    """The tests' own rclpy node, spun by a background executor."""

    def __init__(self) -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(f"vqhps_test_harness_{os.getpid()}", context=self.context)
        self.executor = MultiThreadedExecutor(num_threads=4, context=self.context)
        self.executor.add_node(self.node)
        self.spin_error: Exception | None = None
        self._clients: dict[str, object] = {}
        self._spinner = threading.Thread(target=self._spin, name="harness_executor", daemon=True)
        self._spinner.start()

    def _spin(self) -> None:
        while True:
            try:
                self.executor.spin()
                return
            except InvalidHandle:
                # A test thread destroyed a subscription (Inbox.close) while the executor was adding its QoS
                # event handlers to the wait set: rclpy does not catch that there. The next spin builds a new
                # wait set without it; stopping here would leave every later test without messages.
                continue
            except Exception as error:  # the context shuts down under it at the end; anything else is reported
                if self.context.ok():
                    self.spin_error = error
                    raise
                return

    def close(self) -> None:
        for client in self._clients.values():
            self.node.destroy_client(client)
        self.executor.shutdown(timeout_sec=5.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self._spinner.join(timeout=5.0)

    def inbox(self, message_type: type, topic: str, profile: QoSProfile | None = None) -> Inbox:
        inbox = Inbox()
        inbox._node = self.node
        inbox.subscription = self.node.create_subscription(message_type, topic, inbox, profile or qos("reliable", 50))
        return inbox

    def publishers_of(self, topic: str) -> int:
        return self.node.count_publishers(topic)

    def subscribers_of(self, topic: str) -> int:
        return self.node.count_subscribers(topic)

    def call(self, service_type: type, name: str, request, timeout: float = 60.0, attempts: int = 1):
        """The service's response. Clients are kept (one per service), and an idempotent request may be sent again
        (`attempts`, timeout split among them): a response can be lost while a new client is still being matched."""
        client = self._clients.get(name)
        if client is None:
            client = self._clients[name] = self.node.create_client(service_type, name)
        if not client.wait_for_service(timeout_sec=20.0):
            raise AssertionError(f"service {name} not available within 20 s")
        for _ in range(attempts):
            future = client.call_async(request)
            done = threading.Event()
            future.add_done_callback(lambda _, done=done: done.set())
            if done.wait(timeout / attempts):
                return future.result()
            client.remove_pending_request(future)
        raise AssertionError(f"service {name}: no answer within {timeout} s (harness executor alive: "
                             f"{self._spinner.is_alive()}, {self.spin_error!r})")

    # lifecycle and parameters of a node under test

    def lifecycle_state(self, node: str) -> str:
        from lifecycle_msgs.srv import GetState

        return self.call(GetState, f"{node}/get_state", GetState.Request(), timeout=15.0, attempts=3) \
            .current_state.label

    GOAL_STATES = {"configure": "inactive", "activate": "active", "deactivate": "inactive",
                   "cleanup": "unconfigured", "shutdown": "finalized"}

    def change_state(self, node: str, transition: str, timeout: float = 120.0) -> bool:
        """transition: configure | activate | deactivate | cleanup | shutdown; True when it succeeded. Not
        idempotent, so sent once; were its response lost, the state the node reached answers."""
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState

        ids = {"configure": Transition.TRANSITION_CONFIGURE, "activate": Transition.TRANSITION_ACTIVATE,
               "deactivate": Transition.TRANSITION_DEACTIVATE, "cleanup": Transition.TRANSITION_CLEANUP,
               "shutdown": Transition.TRANSITION_UNCONFIGURED_SHUTDOWN}
        request = ChangeState.Request(transition=Transition(id=ids[transition]))
        try:
            return self.call(ChangeState, f"{node}/change_state", request, timeout=timeout).success
        except AssertionError as lost:
            if "no answer" not in str(lost):
                raise
            return self.lifecycle_state(node) == self.GOAL_STATES[transition]

    def set_parameters(self, node: str, values: dict) -> list:
        """The SetParametersResult of each value."""
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter

        request = SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()
                                                    for name, value in values.items()])
        return list(self.call(SetParameters, f"{node}/set_parameters", request, timeout=15.0, attempts=3).results)


# ------------------------------------------------------------------------------------------------------------ bags


@dataclass
class BagFrame:
    """The messages of one camera frame (image, camera_info, detections: the same header stamp), in bag order."""

    stamp_ns: int
    messages: list = field(default_factory=list)  # (topic, message)

    def replaced(self, topic: str, make: Callable) -> BagFrame:
        """A copy whose message on `topic` is make(message)."""
        return BagFrame(self.stamp_ns, [(name, make(message) if name == topic else message)
                                        for name, message in self.messages])


def read_bag(path: Path) -> list[BagFrame]:
    """The bag's messages as rclpy messages (raw CDR through rclpy's deserializer), grouped by header stamp; the
    bag's stamps are kept."""
    from rclpy.serialization import deserialize_message
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    frames: dict[int, BagFrame] = {}
    with AnyReader([Path(path)], default_typestore=get_typestore(Stores.ROS2_JAZZY)) as reader:
        for connection, _, raw in reader.messages():
            message = deserialize_message(bytes(raw), message_class(connection.msgtype))
            stamp = stamp_ns(message.header.stamp)
            frames.setdefault(stamp, BagFrame(stamp)).messages.append((connection.topic, message))
    return [frames[stamp] for stamp in sorted(frames)]


def without_people(frame: BagFrame) -> BagFrame:
    """The frame with an empty Detection2DArray (same header): everyone has left."""
    def empty(detections):
        cls = type(detections)
        return cls(header=detections.header, detections=[])

    return frame.replaced(DETECTIONS_TOPIC, empty)


def without_detections(frame: BagFrame) -> BagFrame:
    """The frame as a camera alone sends it: no Detection2DArray."""
    return BagFrame(frame.stamp_ns, [(topic, message) for topic, message in frame.messages
                                     if topic != DETECTIONS_TOPIC])


class Player:
    """Publishes bag frames through real rclpy publishers with one QoS, paced at a rate."""

    def __init__(self, harness: Harness, reliability: str, depth: int = 10) -> None:
        self.harness = harness
        self.profile = qos(reliability, depth)
        self.publishers: dict[str, object] = {}
        self.image_stamps: list[int] = []

    def _publisher(self, topic: str, message):
        if topic not in self.publishers:
            self.publishers[topic] = self.harness.node.create_publisher(type(message), topic, self.profile)
        return self.publishers[topic]

    def prepare(self, frames: Iterable[BagFrame], wait_for_subscribers: bool = True, timeout: float = 15.0) -> None:
        """Creates the publishers of these frames' topics and waits until the node's subscriptions match them."""
        for frame in frames:
            for topic, message in frame.messages:
                self._publisher(topic, message)
        if wait_for_subscribers:
            matched = wait_until(lambda: all(p.get_subscription_count() > 0 for p in self.publishers.values()),
                                 timeout)
            counts = {topic: p.get_subscription_count() for topic, p in self.publishers.items()}
            assert matched, f"no subscriber matched the publishers within {timeout} s: {counts}"

    def play(self, frames: list[BagFrame], rate_hz: float, wait_for_subscribers: bool = True) -> list[int]:
        """Publishes each frame's messages in bag order, a frame every 1/rate_hz s; returns the image stamps."""
        self.prepare(frames, wait_for_subscribers)
        stamps = []
        start = time.monotonic()
        for index, frame in enumerate(frames):
            delay = start + index / rate_hz - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            for topic, message in frame.messages:
                self._publisher(topic, message).publish(message)
                if topic.startswith(IMAGE_TOPIC):
                    stamps.append(frame.stamp_ns)
        self.image_stamps.extend(stamps)
        return stamps

    def subscription_count(self) -> int:
        """How many subscriptions the image publisher has matched."""
        return sum(p.get_subscription_count() for t, p in self.publishers.items() if t.startswith(IMAGE_TOPIC))

    def close(self) -> None:
        for publisher in self.publishers.values():
            self.harness.node.destroy_publisher(publisher)
        self.publishers.clear()


# ---------------------------------------------------------------------------------------------------------- launch


class Launch:
    """`ros2 launch vqhps_ros estimator.launch.py ARGS` in its own session, output in a log file.

    Stopped with SIGINT to the launch process only (SIGTERM orphans the node; SIGINT to the group reaches the node
    twice and it dies with -2): kit pitfall 8.
    """

    def __init__(self, log_path: Path, arguments: dict[str, str]) -> None:
        self.log_path = log_path
        self.arguments = arguments
        command = ["ros2", "launch", "vqhps_ros", "estimator.launch.py",
                   *(f"{name}:={value}" for name, value in arguments.items())]
        environment = dict(os.environ, PYTHONUNBUFFERED="1", RCUTILS_COLORIZED_OUTPUT="0")
        self._log_file = open(log_path, "w", encoding="utf-8")  # noqa: SIM115 (closed by stop)
        self._log_file.write("$ " + " ".join(command) + "\n")
        self._log_file.flush()
        # SIGINT back to its default in the launch: a shell that starts the tests in the background (`make test &`)
        # ignores SIGINT for them, the launch would inherit that and never hear `stop`.
        self.process = subprocess.Popen(command, stdout=self._log_file, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True, env=environment,
                                        preexec_fn=_default_sigint)
        self.returncode: int | None = None
        self.stop_seconds: float | None = None

    @property
    def node_name(self) -> str:
        return "/" + self.arguments.get("node_name", "vqhps_estimator")

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait_for_log(self, pattern: str, timeout: float) -> re.Match:
        """The first match of the regex `pattern` in the log; fails with the log when it does not come."""
        regex = re.compile(pattern)

        def seen():  # the match; "exited" once the process is gone without it (no use waiting on)
            alive = self.alive()  # before reading the log: a line written just before exiting still counts
            return regex.search(self.log()) or (not alive and "exited")

        match = wait_until(seen, timeout, period=0.1)
        if not isinstance(match, re.Match):
            state = "running" if self.alive() else f"exited with {self.process.returncode}"
            raise AssertionError(f"{pattern!r} not in the launch log within {timeout} s ({state}):\n"
                                 + tail(self.log()))
        return match

    def stop(self, timeout: float = 20.0) -> int:
        """SIGINT, then waits; SIGKILL to the whole session if it hangs. The launch's exit status."""
        if self.returncode is not None:
            return self.returncode
        started = time.monotonic()
        if self.alive():
            os.kill(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self.stop_seconds = time.monotonic() - started
        self.returncode = self.process.returncode
        self._log_file.close()
        return self.returncode


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])

"""The estimator as a ROS 2 lifecycle node: camera in, human meshes, markers, TF and diagnostics out.

Life cycle (rclpy.lifecycle, the same API on Humble and Jazzy):
- configure: parameters (declared from the one config schema) are validated; the engine is built and warmed up;
  publishers are created. A bad parameter or an engine that cannot start fails the transition with the reason.
- activate: the mesh topology is published (transient local), subscriptions and the inference thread start.
- deactivate: subscriptions go, the thread is joined; cleanup / shutdown also release the engine. SIGINT ends the
  process the way shutdown does (`EstimatorNode.release`).

Inputs (renamed by remapping): `image` or `image/compressed` (`inputs.compressed`), `camera_info`, and `detections`
(`inputs.use_detections`), paired by stamp in the package's `FrameAssembler`. Callbacks only pair messages and put
the newest complete frame in a one-frame slot: the inference thread takes it, so a callback never waits for
inference and frames that come faster than inference are dropped (counted). Outputs carry the image's stamp and
frame, never `now()`; the node never dies on bad input: it skips, counts (diagnostics) and logs, throttled.
"""

from __future__ import annotations

import sys
import threading
import time

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import SetParametersResult
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from ..errors import VqhpsError
from ..estimator import Estimator
from ..io.assembler import FrameAssembler
from ..io.cdr import CdrTypes
from ..io.outputs import HUMANS, MARKERS, MESSAGE_TYPES, TF, TOPOLOGY, FrameOutputs
from ..persons import describe_source
from .latest_frame import LatestFrameSlot
from .node_stats import NodeStats
from .parameters import declare_parameters, read_config
from .qos_advice import incompatible_qos_advice

NODE_NAME = "vqhps_estimator"
DIAGNOSTICS_PERIOD_S = 1.0
EXPIRE_PERIOD_S = 0.05  # how often waiting images are checked against the detection timeout
THROTTLE_S = 5.0  # at most one log line of a kind per this many seconds
TF_QOS = QoSProfile(depth=100)  # tf2_ros.TransformBroadcaster's default: reliable, volatile, keep last 100


class EstimatorNode(LifecycleNode):
    def __init__(self, node_name: str = NODE_NAME, **kwargs):
        super().__init__(node_name, **kwargs)
        self.parameter_problems = declare_parameters(self)  # refused overrides, by name: configure fails on them
        # ... until the parameter is set to a value rclpy accepts (type and range are checked before this callback),
        # so a node kept alive after a failed configure can be fixed with `ros2 param set` and configured again.
        self.add_on_set_parameters_callback(self._forget_fixed_parameters)
        self.types = CdrTypes()  # outputs go out as CDR bytes built from numpy arrays (see io/cdr.py)
        self.config = None
        self.estimator: Estimator | None = None
        self.assembler: FrameAssembler | None = None
        self.outputs: FrameOutputs | None = None
        self.slot: LatestFrameSlot = LatestFrameSlot()
        self.stats = NodeStats(time.monotonic())
        self.assembler_lock = threading.Lock()
        self.worker: threading.Thread | None = None
        self.publishers_by_kind: dict = {}
        self.subscriptions_list: list = []
        self.timers_list: list = []
        self.diagnostics_publisher = None
        self.last_camera_info_s: float | None = None

    # ------------------------------------------------------------------------------------------------ life cycle

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.config = read_config(self, list(self.parameter_problems.values()))
            self.estimator = Estimator.from_config(self.config)
            self.estimator.warm_up()
        except (VqhpsError, ImportError, OSError) as error:
            self.get_logger().error(f"configure failed: {error}")
            self._release_engine()
            return TransitionCallbackReturn.FAILURE
        self.get_logger().info(f"inference engine: {self.estimator.description}")
        self.get_logger().info(f"persons: {describe_source(self.estimator.person_source)}")
        self._create_publishers()
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        result = super().on_activate(state)  # activates the lifecycle publishers
        self.assembler = FrameAssembler.from_config(self.config, self.config.inputs.use_detections)
        self.stats = NodeStats(time.monotonic())
        self.slot = LatestFrameSlot()
        # The topology goes out once per activation on its latched topic; markers start afresh.
        self.outputs = FrameOutputs(self.types, self.config.outputs, self.estimator.topology, send_topology=False)
        self.publishers_by_kind[TOPOLOGY].publish(self.types.serialize(self.outputs.topology_message()))
        self.worker = threading.Thread(target=self._work, name="vqhps_inference", daemon=True)
        self.worker.start()
        self._create_subscriptions()
        self.timers_list = [self.create_timer(EXPIRE_PERIOD_S, self._expire_waiting),
                            self.create_timer(DIAGNOSTICS_PERIOD_S, self._publish_diagnostics)]
        self.get_logger().info("active: " + ", ".join(s.topic_name for s in self.subscriptions_list))
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_inputs()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.release()
        return TransitionCallbackReturn.SUCCESS

    def release(self) -> None:
        """What the cleanup and shutdown transitions do, also for a process that ends without them (SIGINT): inputs
        stopped, the inference thread joined, publishers destroyed, the engine released. An inference thread still
        inside the engine when the interpreter exits aborts the process ("terminate called without an active
        exception")."""
        self._stop_inputs()
        self._destroy_publishers()
        self._release_engine()

    def _forget_fixed_parameters(self, parameters) -> SetParametersResult:
        for parameter in parameters:
            self.parameter_problems.pop(parameter.name, None)
        return SetParametersResult(successful=True)

    # ----------------------------------------------------------------------------------------------- set-up

    def _create_publishers(self) -> None:
        outputs = self.config.outputs
        latched = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.publishers_by_kind = {
            HUMANS: self.create_lifecycle_publisher(self._type(HUMANS), outputs.humans_topic, 10),
            MARKERS: self.create_lifecycle_publisher(self._type(MARKERS), outputs.markers_topic, 10),
            TOPOLOGY: self.create_lifecycle_publisher(self._type(TOPOLOGY), outputs.topology_topic, latched),
        }
        if outputs.publish_tf:  # what tf2_ros.TransformBroadcaster creates, publishing bytes
            self.publishers_by_kind[TF] = self.create_lifecycle_publisher(self._type(TF), "/tf", TF_QOS)
        self.diagnostics_publisher = self.create_publisher(DiagnosticArray, "/diagnostics", 10)

    def _create_subscriptions(self) -> None:
        inputs = self.config.inputs
        qos = self._input_qos()
        image_type, image_topic = (CompressedImage, "image/compressed") if inputs.compressed else (Image, "image")
        self.subscriptions_list = [
            self._subscribe(image_type, image_topic, self._on_image, qos),
            self._subscribe(CameraInfo, "camera_info", self._on_camera_info, qos),
        ]
        if inputs.use_detections:
            from vision_msgs.msg import Detection2DArray

            self.subscriptions_list.append(self._subscribe(Detection2DArray, "detections", self._on_detections, qos))

    def _input_qos(self) -> QoSProfile:
        depth = self.config.inputs.queue_depth
        if self.config.inputs.qos == "reliable":
            return QoSProfile(depth=depth, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE)
        return QoSProfile(depth=depth, history=qos_profile_sensor_data.history,
                          reliability=qos_profile_sensor_data.reliability,
                          durability=qos_profile_sensor_data.durability)

    def _subscribe(self, message_type, topic: str, callback, qos: QoSProfile):
        events = subscription_event_callbacks(lambda info, topic=topic: self._on_incompatible_qos(topic, info))
        return self.create_subscription(message_type, topic, callback, qos, event_callbacks=events)

    def _type(self, kind: str):
        return self.types.get(MESSAGE_TYPES[kind])

    # ---------------------------------------------------------------------------------------------- callbacks

    def _on_image(self, message) -> None:
        now = time.monotonic()
        self.stats.image_received(now)
        self._warn_if_no_camera_info(now)
        with self.assembler_lock:
            ready = self.assembler.add_image(message, time.monotonic_ns())
        self._offer(ready)

    def _on_camera_info(self, message) -> None:
        self.last_camera_info_s = time.monotonic()
        with self.assembler_lock:
            self.assembler.add_camera_info(message)

    def _on_detections(self, message) -> None:
        with self.assembler_lock:
            ready = self.assembler.add_detections(message, time.monotonic_ns())
        self._offer(ready)

    def _expire_waiting(self) -> None:
        with self.assembler_lock:
            ready = self.assembler.expire(time.monotonic_ns())
        self._offer(ready)

    def _offer(self, ready: list) -> None:
        for assembled in ready:  # in stamp order: the last one is the newest
            self.slot.put((assembled, time.perf_counter()))

    def _on_incompatible_qos(self, topic: str, info) -> None:
        policy = str(getattr(info, "last_policy_kind", "unknown"))
        self.get_logger().warning(incompatible_qos_advice(self.resolve_topic_name(topic), policy,
                                                          self.config.inputs.qos))

    def _warn_if_no_camera_info(self, now: float) -> None:
        waited = now - (self.last_camera_info_s or self.stats.started_s)
        if waited > self.config.inputs.camera_info_warn_after:
            camera = self.config.camera
            fallback = ("using camera.fallback_intrinsics" if any(camera.fallback_intrinsics) else
                        "using camera.fallback_horizontal_fov_deg" if camera.fallback_horizontal_fov_deg else
                        "frames are skipped until it comes (or set camera.fallback_intrinsics)")
            self.get_logger().warning(f"no camera_info on {self.resolve_topic_name('camera_info')} for "
                                      f"{waited:.0f} s: {fallback}", throttle_duration_sec=THROTTLE_S)

    # ---------------------------------------------------------------------------------------- inference thread

    def _work(self) -> None:
        slot = self.slot
        while True:
            taken = slot.take()
            if taken is None:
                return
            assembled, offered = taken
            try:
                self._process(assembled, waited_ms=1000 * (time.perf_counter() - offered))
            except VqhpsError as error:  # bad input or an engine failure: skip the frame, keep running
                self.stats.frame_failed(type(error).__name__)
                self.get_logger().warning(f"frame skipped: {error}", throttle_duration_sec=THROTTLE_S)
            except Exception as error:  # a fault of ours must not stop the camera stream either: report it loudly
                self.stats.frame_failed("internal_error")
                self.get_logger().error(f"frame skipped after an internal error: {type(error).__name__}: {error}",
                                        throttle_duration_sec=THROTTLE_S)

    def _process(self, assembled, waited_ms: float) -> None:
        """waited_ms: how long the frame waited for the worker (behind the previous frame)."""
        started = time.perf_counter()
        with self.assembler_lock:
            frame = self.assembler.to_frame(assembled)  # decodes the image
        if frame is None:
            return
        decode_ms = 1000 * (time.perf_counter() - started)
        started = time.perf_counter()
        result = self.estimator.process(frame)
        result.timings_ms["estimator"] = 1000 * (time.perf_counter() - started)  # all its stages, this frame
        result.timings_ms["decode"] = decode_ms
        result.timings_ms["wait"] = waited_ms
        started = time.perf_counter()
        for kind, message in self.outputs.in_turn(result):  # the humans go out before the markers are built
            self.publishers_by_kind[kind].publish(self.types.serialize(message))
        result.timings_ms["publish"] = 1000 * (time.perf_counter() - started)
        self.stats.frame_processed(time.monotonic(), result.timings_ms, len(result.humans), result.skipped)

    # -------------------------------------------------------------------------------------------- diagnostics

    def _publish_diagnostics(self) -> None:
        with self.assembler_lock:
            assembly_counts = dict(self.assembler.counts) if self.assembler is not None else {}
        description = self.estimator.description
        engine = {"backend": description.backend, "device": description.device,
                  "precision": description.precision, "person_source": self.config.persons.source}
        values = self.stats.diagnostic_values(self.slot.dropped, engine)
        values.extend((f"skipped_{reason}", str(count)) for reason, count in sorted(assembly_counts.items()))
        level, text = self.stats.level(time.monotonic(), self.slot.dropped)
        status = DiagnosticStatus(level=DiagnosticStatus.OK if level == 0 else DiagnosticStatus.WARN,
                                  name=f"{self.get_name()}: estimator", message=text,
                                  hardware_id=f"{description.backend} {description.device}",
                                  values=[KeyValue(key=key, value=value) for key, value in values])
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()  # diagnostics are about now, not about an image
        self.diagnostics_publisher.publish(array)

    # ------------------------------------------------------------------------------------------------ teardown

    def _stop_inputs(self) -> None:
        for subscription in self.subscriptions_list:
            self.destroy_subscription(subscription)
        self.subscriptions_list = []
        for timer in self.timers_list:
            self.destroy_timer(timer)
        self.timers_list = []
        self.slot.close()
        if self.worker is not None:
            self.worker.join(timeout=30.0)
            self.worker = None

    def _destroy_publishers(self) -> None:
        for publisher in self.publishers_by_kind.values():
            self.destroy_publisher(publisher)
        self.publishers_by_kind = {}
        if self.diagnostics_publisher is not None:
            self.destroy_publisher(self.diagnostics_publisher)
            self.diagnostics_publisher = None

    def _release_engine(self) -> None:
        if self.estimator is not None:
            self.estimator.close()  # frees the session, or the TensorRT engine and its CUDA context
            self.estimator = None


def subscription_event_callbacks(incompatible_qos):
    """SubscriptionEventCallbacks (rclpy.event_handler on Jazzy, rclpy.qos_event on Humble)."""
    try:
        from rclpy.event_handler import SubscriptionEventCallbacks
    except ImportError:
        from rclpy.qos_event import SubscriptionEventCallbacks
    return SubscriptionEventCallbacks(incompatible_qos=incompatible_qos)


def main(argv: list[str] | None = None) -> int:
    """The node's executable: spins until SIGINT; `--autostart` configures and activates it at once."""
    args = sys.argv if argv is None else argv
    autostart = "--autostart" in args
    rclpy.init(args=[arg for arg in args if arg != "--autostart"])
    node = EstimatorNode()
    try:
        if autostart:
            node.trigger_configure()
            node.trigger_activate()
        rclpy.spin(node)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    finally:
        node.release()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0

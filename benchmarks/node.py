"""The ROS 2 node under `ros2 launch`, fed camera frames at 15 and 30 Hz: latency, throughput, drops, overhead.

Run it inside the ROS 2 environment (the test command builds one):

    tools/ros2_env.sh python benchmarks/node.py [--seconds 20] [--rates 15 30] [--out benchmarks/results]

A publisher replays the sample bag's images, camera_info and detections in a loop, each message stamped with the
time it is published, to a node whose persons come from those detections (`person_source:=detections`) or, with no
detections topic, from the built-in detector (`person_source:=builtin`, the camera-only default); a subscriber
records when each HumanMeshArray arrives. Reported per rate: end-to-end latency (image stamp to HumanMeshArray
receipt, p50 / p95), frames out per second, the share of images dropped while the engine was busy (from the node's
diagnostics), the node's overhead over `Estimator.process` (the end-to-end p50 of the last frames minus the node's
p50 of `Estimator.process` over the same number of frames: the callbacks, pairing, decoding, message building, DDS
transport and any wait behind the previous frame; that wait, decoding and building + publishing are also reported
alone, from the node's diagnostics), and the node process's CPU use and peak memory. First, the same probe against
`ros_relay.py`, which answers each image at once with a HumanMeshArray of three people: the latency ROS 2 itself
adds on the machine. Writes node.json and node.md.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_info, write_results  # noqa: E402

from vqhps_ros.ros.node_stats import WINDOW  # noqa: E402  the frames the node's latency percentiles cover

REPO = Path(__file__).resolve().parents[1]
TOPICS = {"image": "/camera/image_raw/compressed", "info": "/camera/camera_info", "detections": "/camera/detections"}


def bag_messages():
    """(topic, rclpy message) of the sample bag in log order."""
    from rclpy.serialization import deserialize_message
    from rosbags.highlevel import AnyReader
    from rosidl_runtime_py.utilities import get_message

    from vqhps_ros.data import sample_bag_path

    with AnyReader([sample_bag_path()]) as reader:
        return [(connection.topic, deserialize_message(raw, get_message(connection.msgtype)))
                for connection, _, raw in reader.messages()]


def launch_node(cache_dir: Path, person_source: str) -> subprocess.Popen:
    command = ["ros2", "launch", "vqhps_ros", "estimator.launch.py", "image_topic:=/camera/image_raw",
               "compressed:=true", "camera_info_topic:=/camera/camera_info", "backend:=onnxruntime",
               f"engine_cache_dir:={cache_dir}", f"person_source:={person_source}"]
    if person_source == "detections":
        command.append("detections_topic:=/camera/detections")
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def node_pid() -> int | None:
    found = subprocess.run(["pgrep", "-f", "lib/vqhps_ros/estimator_node"], capture_output=True, text=True)
    pids = [int(pid) for pid in found.stdout.split()]
    return pids[0] if pids else None


def process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_memory_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Probe:
    """Publishes the bag at a rate, stamped now, and records HumanMeshArray arrivals and diagnostics."""

    def __init__(self, node, messages):
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import qos_profile_sensor_data
        from vqhps_ros.msg import HumanMeshArray

        self.node, self.messages = node, messages
        types = {topic: type(message) for topic, message in messages}
        self.publishers = {topic: node.create_publisher(types[topic], topic, qos_profile_sensor_data)
                           for topic in types}
        self.latencies_s: list[float] = []
        self.diagnostics: dict[str, str] = {}
        node.create_subscription(HumanMeshArray, "/vqhps_estimator/humans", self._on_humans, 10)
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)

    def _on_humans(self, message) -> None:
        stamp = message.header.stamp.sec + message.header.stamp.nanosec * 1e-9
        self.latencies_s.append(self.node.get_clock().now().nanoseconds * 1e-9 - stamp)

    def _on_diagnostics(self, message) -> None:
        for status in message.status:
            if status.name.endswith("estimator"):
                self.diagnostics = {value.key: value.value for value in status.values}

    def play(self, rate_hz: float, seconds: float, spin) -> int:
        """Publish frames at `rate_hz` for `seconds`; returns the number of images published."""
        frames = _frames(self.messages)
        started, images = time.monotonic(), 0
        while time.monotonic() - started < seconds:
            stamp = self.node.get_clock().now().to_msg()
            for topic, message in frames[images % len(frames)]:
                message.header.stamp = stamp
                self.publishers[topic].publish(message)
            images += 1
            spin(max(0.0, started + images / rate_hz - time.monotonic()))
        return images


def _frames(messages):
    """Group the bag's messages by image stamp: [(topic, message), ...] per frame, image last."""
    by_stamp: dict[tuple[int, int], list] = {}
    for topic, message in messages:
        key = (message.header.stamp.sec, message.header.stamp.nanosec)
        by_stamp.setdefault(key, []).append((topic, message))
    return [sorted(group, key=lambda item: item[0] == TOPICS["image"]) for _, group in sorted(by_stamp.items())]


def measure(person_source: str, rate_hz: float, seconds: float, probe: Probe, spin, pid: int) -> dict:
    spin(2.0)
    probe.latencies_s.clear()
    before_diagnostics = dict(probe.diagnostics)
    cpu_before, wall_before = process_cpu_seconds(pid), time.monotonic()
    images = probe.play(rate_hz, seconds, spin)
    spin(2.0)  # the last frames and a diagnostics message
    cpu = (process_cpu_seconds(pid) - cpu_before) / (time.monotonic() - wall_before)
    latencies = np.array(probe.latencies_s) * 1000
    diagnostics = probe.diagnostics
    dropped = int(diagnostics.get("frames_dropped_busy", 0)) - int(before_diagnostics.get("frames_dropped_busy", 0))
    estimator_ms = float(diagnostics.get("latency_estimator_p50_ms", 0.0))  # 0: the relay, which runs none
    wait_ms, decode_ms, publish_ms = (float(diagnostics.get(f"latency_{stage}_p50_ms", "nan"))
                                      for stage in ("wait", "decode", "publish"))
    p50 = float(np.percentile(latencies, 50)) if len(latencies) else float("nan")
    recent_p50 = float(np.percentile(latencies[-WINDOW:], 50)) if len(latencies) else float("nan")
    return {
        "person_source": person_source, "rate_hz": rate_hz, "images_published": images, "frames_out": len(latencies),
        "throughput_hz": round(len(latencies) / seconds, 2),
        "latency_p50_ms": round(p50, 1),
        "latency_p95_ms": round(float(np.percentile(latencies, 95)), 1) if len(latencies) else None,
        "dropped_busy": dropped, "drop_rate": round(dropped / max(images, 1), 3),
        "estimator_p50_ms": round(estimator_ms, 1), "overhead_p50_ms": round(recent_p50 - estimator_ms, 1),
        "overhead_share": round((recent_p50 - estimator_ms) / estimator_ms, 3) if estimator_ms else None,
        "wait_p50_ms": round(wait_ms, 2), "decode_p50_ms": round(decode_ms, 2), "publish_p50_ms": round(publish_ms, 2),
        "node_cpu_cores": round(cpu, 2), "node_peak_memory_mb": round(peak_memory_mb(pid), 1),
    }  # fmt: skip


def measure_node(person_source: str, cache: Path, args, probe: Probe, spin) -> list[dict]:
    """One node, launched and stopped here, measured at every rate."""
    launch = launch_node(cache, person_source)
    try:
        probe.diagnostics = {}
        for _ in range(120):  # start-up: export of the model to ONNX, engine warm-up
            spin(1.0)
            # the new node's own diagnostics: a late message of the node before it would be the baseline of the
            # drop count, which then comes out negative
            if probe.diagnostics.get("images_received") == "0" and node_pid():
                break
        pid = node_pid()
        return [measure(person_source, rate, args.seconds, probe, spin, pid) for rate in args.rates]
    finally:
        launch.send_signal(signal.SIGINT)
        launch.wait(timeout=30)


def measure_relay(args, probe: Probe, spin) -> list[dict]:
    """The floor: `ros_relay.py` (no work, same topics and message sizes) in the node's place, at every rate."""
    relay = subprocess.Popen([sys.executable, str(Path(__file__).with_name("ros_relay.py"))],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        for _ in range(60):
            spin(0.5)
            if probe.node.count_publishers("/vqhps_estimator/humans"):
                break
        probe.diagnostics = {}
        return [measure("relay (ROS 2 only)", rate, args.seconds, probe, spin, relay.pid) for rate in args.rates]
    finally:
        relay.send_signal(signal.SIGINT)
        relay.wait(timeout=30)


def table(rows: list[dict], cpu: str) -> str:
    lines = ["| persons from | rate | frames out/s | latency p50 / p95 | dropped while busy | estimator p50 "
             "| node overhead p50 | of which wait / decode / build + publish | node CPU | node peak memory |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        share = f" ({100 * row['overhead_share']:.0f} %)" if row["overhead_share"] is not None else ""
        parts = " / ".join(_shown(row[f"{stage}_p50_ms"]) for stage in ("wait", "decode", "publish"))
        lines.append(f"| {row['person_source']} | {row['rate_hz']:.0f} Hz | {row['throughput_hz']} | "
                     f"{row['latency_p50_ms']} / {row['latency_p95_ms']} ms | {100 * row['drop_rate']:.0f} % | "
                     f"{row['estimator_p50_ms']} ms | {row['overhead_p50_ms']} ms{share} | {parts} ms | "
                     f"{row['node_cpu_cores']} cores | {row['node_peak_memory_mb']} MB |")
    return "\n".join(lines) + (f"\n\nBundled model, ONNX Runtime on the CPU: {cpu}; sample bag looped, 1 to 3 people. "
                               "The relay answers each image at once with three people's meshes: ROS 2's own cost.\n")


def _shown(value: float) -> str:
    return "-" if value != value else f"{value}"  # NaN: the relay reports no stages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rates", type=float, nargs="+", default=[15.0, 30.0])
    parser.add_argument("--sources", nargs="+", default=["detections", "builtin"], choices=["detections", "builtin"])
    parser.add_argument("--no-relay", action="store_true", help="skip the ROS 2 floor (benchmarks/ros_relay.py)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args(argv)
    import rclpy

    rclpy.init()
    probe_node = rclpy.create_node("vqhps_node_benchmark")
    probe = Probe(probe_node, bag_messages())
    executor = rclpy.executors.SingleThreadedExecutor()
    executor.add_node(probe_node)

    def spin(seconds: float) -> None:
        end = time.monotonic() + seconds
        executor.spin_once(timeout_sec=0.0)
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=max(0.0, min(0.01, end - time.monotonic())))

    rows = [] if args.no_relay else measure_relay(args, probe, spin)
    with tempfile.TemporaryDirectory() as cache:
        for source in args.sources:
            rows += measure_node(source, Path(cache), args, probe, spin)
    rclpy.shutdown()
    info = machine_info(threads=0)
    write_results(args.out, "node", {"machine": info, "rates": rows}, "The ROS 2 node under ros2 launch",
                  table(rows, info["cpu"]))
    print(table(rows, info["cpu"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

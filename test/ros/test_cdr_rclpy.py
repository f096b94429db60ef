"""The node's output bytes (`io.cdr`, from numpy arrays and the installed message layouts) against rclpy's own
serialiser, on real estimator output (the sample bag's people; a photo's person with keypoints): the same length,
the same bytes except for alignment padding (which rclpy's serialiser leaves uninitialised and `io.cdr` zeroes),
and rclpy reads back from them the message it reads back from its own."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.ros]


@pytest.fixture(scope="module")
def results(tmp_path_factory, shared_bags):
    from dataclasses import replace

    from vqhps_ros.config import load_config
    from vqhps_ros.data import sample_bag_path
    from vqhps_ros.estimator import Estimator
    from vqhps_ros.io import read_frames

    cache = tmp_path_factory.mktemp("cache")
    config = load_config(overrides=["temporal.enabled=false", "model.threads=1", f"model.engine_cache_dir={cache}",
                                    f"detector.graph_cache_dir={cache}"])
    sample = list(read_frames(sample_bag_path()))[100:103]  # three people each
    photo = replace(next(iter(read_frames(shared_bags / "ros2_jazzy_photos_sqlite3"))), detections=None)
    with Estimator.from_config(config) as estimator:
        found = [estimator.process(frame) for frame in [*sample, photo]]
        return found, estimator.topology


def test_every_output_of_a_frame_is_written_as_rclpy_writes_it(rh, results):
    from rclpy.serialization import deserialize_message, serialize_message

    from vqhps_ros.config import EstimatorConfig
    from vqhps_ros.io.cdr import CdrTypes
    from vqhps_ros.io.messages import rclpy_types
    from vqhps_ros.io.outputs import MESSAGE_TYPES, FrameOutputs

    for name in ("HumanMeshArray", "MeshTopology"):
        rh.message_class(f"vqhps_ros/msg/{name}")  # makes the checkout's package find its generated messages
    frames, topology = results
    assert sum(len(result.humans) for result in frames) >= 7 and frames[-1].humans[0].keypoints is not None
    outputs = EstimatorConfig().outputs
    reference, fast = FrameOutputs(rclpy_types(), outputs, topology), FrameOutputs(CdrTypes(), outputs, topology)
    kinds = set()
    for result in frames:
        for (kind, message), (same_kind, record) in zip(reference.messages(result), fast.messages(result),
                                                        strict=True):
            assert kind == same_kind
            written, expected = fast.types.serialize(record), bytes(serialize_message(message))
            assert len(written) == len(expected), kind
            differing = [index for index, (a, b) in enumerate(zip(written, expected, strict=True)) if a != b]
            assert all(written[index] == 0 for index in differing), kind  # padding only
            assert len(differing) < 8 * (1 + len(result.humans)) * 20, kind  # a few bytes per field at most
            # read back, both are the same message (float32 fields hold what the wire holds, in both)
            message_class = type(message)
            assert deserialize_message(written, message_class) == deserialize_message(expected, message_class), kind
            kinds.add(kind)
    assert kinds == set(MESSAGE_TYPES)  # topology, humans, markers and TF

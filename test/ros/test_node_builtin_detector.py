"""The node as users start it next to a camera driver: no detections topic, the default person source (auto, i.e.
the built-in detector). The real photographs of the jpeg bag recorded by rosbag2 go in without their detections;
people come out with their body keypoints, named by the latched topology."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.ros, pytest.mark.slow]

NODE = "vqhps_camera_only"
KEYPOINTS = 33  # mediapipe's pose landmarks


def test_people_are_found_without_a_detector_and_carry_their_keypoints(launch_estimator, ros, rh, photo_frames):
    launch = launch_estimator(NODE, detections_topic=None, person_source=None, model=None)  # the defaults
    launch.wait_for_log(rf"\[{NODE}\]: active: ", timeout=240)
    humans = ros.inbox(rh.message_class("vqhps_ros/msg/HumanMeshArray"), f"/{NODE}/humans", rh.qos("reliable", 100))
    topology = ros.inbox(rh.message_class("vqhps_ros/msg/MeshTopology"), f"/{NODE}/mesh_topology",
                         rh.qos("latched", 1))
    frames = [rh.without_detections(frame) for frame in photo_frames["sqlite3"]]
    try:
        assert rh.wait_until(lambda: humans.subscription.get_publisher_count() > 0, 10)
        player = rh.Player(ros, "reliable")
        try:
            stamps = set(player.play(frames, 5.0))  # slow enough that the CPU keeps up: every frame is processed
        finally:
            player.close()
        assert humans.wait_for(lambda ms: len([m for m in ms if rh.stamp_ns(m.header.stamp) in stamps]) >= 20, 90), \
            rh.tail(launch.log())
        assert topology.wait_for(lambda ms: ms, timeout=10)
        names = topology.snapshot()[0]
        messages = [m for m in humans.snapshot() if rh.stamp_ns(m.header.stamp) in stamps]
    finally:
        humans.close()
        topology.close()
    assert names.keypoint_set == "mediapipe_pose_33" and len(names.keypoint_names) == KEYPOINTS
    people = [h for m in messages for h in m.humans]
    # the temporal stage (on by default) publishes a person once confirmed: all but the first frame of each photo
    assert sum(len(m.humans) == 1 for m in messages) >= len(messages) - 4
    for person in people:
        assert person.keypoint_set == names.keypoint_set and len(person.keypoints_2d) == 3 * KEYPOINTS
        u, v, visibility = person.keypoints_2d[0::3], person.keypoints_2d[1::3], person.keypoints_2d[2::3]
        roi = person.roi
        assert visibility[0] > 0.5  # each photo is a portrait: the nose is seen, inside the person's box
        assert roi.x_offset <= u[0] <= roi.x_offset + roi.width and roi.y_offset <= v[0] <= roi.y_offset + roi.height
    assert launch.stop() == 0

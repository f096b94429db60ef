"""A stand-in for the estimator node that does no work, for `benchmarks/node.py`: it answers every compressed image
with a HumanMeshArray of three people of the bundled model's size (1229 vertices, 17 joints, 54 tokens), stamped
like the image, on the node's topic. Its latency is what ROS 2 itself costs on the machine (two DDS hops and two
Python executors): the floor under the node's overhead.

    tools/ros2_env.sh python benchmarks/ros_relay.py     (stopped with SIGINT)
"""

from __future__ import annotations

import array

import rclpy
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage

PEOPLE, VERTICES, JOINTS, TOKENS = 3, 1229, 17, 54


def people(human_mesh_class) -> list:
    def floats(count: int) -> array.array:
        return array.array("f", bytes(4 * count))

    return [human_mesh_class(id=str(index), joint_set="h36m_17", joints=floats(3 * JOINTS),
                             joints_2d=floats(2 * JOINTS), vertices=floats(3 * VERTICES),
                             tokens=array.array("H", bytes(2 * TOKENS)), token_confidence=floats(TOKENS),
                             topology_id="free_body_1229")
            for index in range(PEOPLE)]


def main() -> None:
    from vqhps_ros.msg import HumanMesh, HumanMeshArray

    rclpy.init()
    node = rclpy.create_node("vqhps_estimator")
    publisher = node.create_publisher(HumanMeshArray, "~/humans", 10)
    humans = people(HumanMesh)
    node.create_subscription(CompressedImage, "/camera/image_raw/compressed",
                             lambda image: publisher.publish(HumanMeshArray(header=image.header, humans=humans)),
                             qos_profile_sensor_data)
    try:
        rclpy.spin(node)
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()

"""The ROS 2 node: the only package that imports rclpy (in `node.py` and `parameters.py`, when they are used).

`vqhps_ros.ros.node.main` is the node's executable (`ros2 run vqhps_ros estimator_node`, `vqhps-ros node`); the
other modules here hold what the node needs that rclpy does not: the newest-frame slot, the statistics behind the
diagnostics and the advice given on incompatible QoS, each tested without ROS.
"""

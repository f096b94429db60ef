"""Start the vqhps_ros estimator next to a camera driver.

    ros2 launch vqhps_ros estimator.launch.py image_topic:=/camera/color/image_raw \
        camera_info_topic:=/camera/color/camera_info compressed:=false

finds people with the built-in detector; `detections_topic:=/yolo/detections` takes an external detector's boxes
instead (persons.source auto: the built-in detector only for images without detections; `person_source:=both`
merges the two).

The node is a lifecycle node: unless `autostart:=false`, launch configures it and, once it is inactive, activates
it. Parameters come from `config_file` (default: the package's config/estimator.yaml, which lists every key), with
the launch arguments below applied on top.
"""

import os

import lifecycle_msgs.msg
from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, EmitEvent, OpaqueFunction, RegisterEventHandler
from launch.conditions import IfCondition
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState

from launch import LaunchDescription

PACKAGE = "vqhps_ros"
ARGUMENTS = {
    "image_topic": ("/camera/image_raw", "raw image topic (compressed:=true reads <image_topic>/compressed)"),
    "compressed": ("false", "subscribe to <image_topic>/compressed (sensor_msgs/CompressedImage)"),
    "camera_info_topic": ("/camera/camera_info", "sensor_msgs/CameraInfo topic of the camera"),
    "detections_topic": ("", "vision_msgs/Detection2DArray person boxes; empty: no external detections"),
    "person_source": ("", "auto, detections, builtin, both, full_frame (default: the config file's, auto)"),
    "config_file": ("", "parameter file (default: share/vqhps_ros/config/estimator.yaml)"),
    "model": ("", "model file (.pt), exported graph (.onnx) or bundled:keypoints / bundled:image (default: the "
                  "config file's, the bundled keypoint model)"),
    "backend": ("", "inference backend: auto, tensorrt, onnxruntime, pytorch (default: the config file's)"),
    "engine_cache_dir": ("", "folder of built TensorRT engines (default: the config file's)"),
    "temporal": ("", "true or false: the temporal stage (tracking, smoothing; default: the config file's)"),
    "refine": ("", "true or false: the alignment refinement (meshes fitted to the image; default: the config "
                   "file's, off)"),
    "namespace": ("", "namespace of the node and its topics"),
    "node_name": ("vqhps_estimator", "name of the node"),
    "use_rviz": ("false", "also start RViz with config/estimator.rviz"),
    "autostart": ("true", "configure and activate the lifecycle node at start"),
    "log_level": ("info", "the node's log level"),
}


def generate_launch_description():
    declared = [DeclareLaunchArgument(name, default_value=default, description=text)
                for name, (default, text) in ARGUMENTS.items()]
    return LaunchDescription([*declared, OpaqueFunction(function=_actions)])


def _actions(context):
    value = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    share = get_package_share_directory(PACKAGE)
    config_file = value["config_file"] or os.path.join(share, "config", "estimator.yaml")
    node = LifecycleNode(
        package=PACKAGE, executable="estimator_node", name=value["node_name"], namespace=value["namespace"],
        parameters=[config_file, _overrides(value)], remappings=_remappings(value), output="screen",
        arguments=["--ros-args", "--log-level", value["log_level"]])
    autostart = IfCondition(value["autostart"])
    configure = EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node),
                                            transition_id=lifecycle_msgs.msg.Transition.TRANSITION_CONFIGURE),
                          condition=autostart)
    activate = RegisterEventHandler(OnStateTransition(
        target_lifecycle_node=node, goal_state="inactive",
        entities=[EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node),
                                              transition_id=lifecycle_msgs.msg.Transition.TRANSITION_ACTIVATE))]),
        condition=autostart)
    rviz = Node(package="rviz2", executable="rviz2", arguments=["-d", os.path.join(share, "config", "estimator.rviz")],
                condition=IfCondition(value["use_rviz"]), output="log")
    return [activate, node, configure, rviz]


def _overrides(value: dict) -> dict:
    """Parameters set by launch arguments (only those given), on top of the config file."""
    compressed = value["compressed"].lower() in ("true", "1", "yes")
    overrides = {"inputs.compressed": compressed, "inputs.use_detections": bool(value["detections_topic"])}
    if value["person_source"]:
        overrides["persons.source"] = value["person_source"]
    if value["model"]:
        overrides["model.path"] = value["model"]
    if value["backend"]:
        overrides["model.backend"] = value["backend"]
    if value["engine_cache_dir"]:
        overrides["model.engine_cache_dir"] = value["engine_cache_dir"]
    for argument, parameter in (("temporal", "temporal.enabled"), ("refine", "refine.enabled")):
        if value[argument]:
            overrides[parameter] = value[argument].lower() in ("true", "1", "yes")
    return overrides


def _remappings(value: dict) -> list[tuple[str, str]]:
    image = value["image_topic"]
    remappings = [("image", image), ("image/compressed", f"{image}/compressed"),
                  ("camera_info", value["camera_info_topic"])]
    if value["detections_topic"]:
        remappings.append(("detections", value["detections_topic"]))
    return remappings

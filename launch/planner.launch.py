"""Planner node: CEM with V-JEPA 2-AC toward a goal image (`ros2 launch vjepa2_ros planner.launch.py checkpoint:=...`).

Parameters come from config/planner.yaml. A launch argument overrides its parameter only when given a non-empty
value: every optional argument defaults to '' ("the params file's value"), so the file's ``device: cpu`` holds on a
machine without a GPU unless ``device:=cuda`` is given.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

# planner_node parameters a launch argument of the same name may set ('' keeps the params file's value)
OVERRIDABLE = ("checkpoint", "model_config", "backend", "device", "onnx_dir", "robot", "gripper")


def given_overrides(values: dict[str, str]) -> dict[str, str]:
    """Launch-argument values -> the parameter overrides: only the arguments given a non-empty value."""
    return {name: value for name, value in values.items() if value != ""}


def _planner_node(context, config):
    values = {name: LaunchConfiguration(name).perform(context) for name in OVERRIDABLE}
    return [Node(
        package="vjepa_planner",
        executable="planner_node",
        name="planner_node",
        output="screen",
        parameters=[config, given_overrides(values)],
    )]


def generate_launch_description():
    config = os.path.join(get_package_share_directory("vjepa2_ros"), "config", "planner.yaml")
    args = [
        DeclareLaunchArgument("checkpoint", description="checkpoint holding the AC predictor"),
        DeclareLaunchArgument("model_config", default_value="",
                              description="AC predictor preset or JSON config file (default: planner.yaml)"),
        DeclareLaunchArgument("backend", default_value="",
                              description="torch | onnxruntime | tensorrt (default: planner.yaml)"),
        DeclareLaunchArgument("device", default_value="",
                              description="cpu | cuda | cuda:N (default: planner.yaml, cpu)"),
        DeclareLaunchArgument("onnx_dir", default_value="",
                              description="export directory for onnxruntime/tensorrt (default: planner.yaml)"),
        DeclareLaunchArgument("robot", default_value="",
                              description="robot adapter: franka_impedance | crisp | sim (default: planner.yaml)"),
        DeclareLaunchArgument("gripper", default_value="",
                              description="gripper adapter: franka_action | control_msgs | sim_topic | none "
                                          "(default: planner.yaml)"),
        DeclareLaunchArgument("sigterm_timeout", default_value="15",
                              description="seconds each node gets to exit after Ctrl-C before SIGTERM (launch's own "
                                          "default, 5, is too short for model nodes on a busy machine)"),
    ]
    return LaunchDescription(args + [OpaqueFunction(function=_planner_node, args=[config])])

"""Encoder node: camera images -> V-JEPA 2 latents (`ros2 launch vjepa2_ros perception.launch.py checkpoint:=...`).

Parameters come from config/perception.yaml. A launch argument overrides its parameter only when given a non-empty
value: every optional argument defaults to '' ("the params file's value"), so the file's ``device: cpu`` holds on a
machine without a GPU unless ``device:=cuda`` is given.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

# encoder_node parameters a launch argument of the same name may set ('' keeps the params file's value)
OVERRIDABLE = ("checkpoint", "image_topic", "model_config", "backend", "device", "onnx_dir")


def given_overrides(values: dict[str, str]) -> dict[str, str]:
    """Launch-argument values -> the parameter overrides: only the arguments given a non-empty value."""
    return {name: value for name, value in values.items() if value != ""}


def _encoder_node(context, config):
    values = {name: LaunchConfiguration(name).perform(context) for name in OVERRIDABLE}
    return [Node(
        package="vjepa_perception",
        executable="encoder_node",
        name="encoder_node",
        output="screen",
        parameters=[config, given_overrides(values)],
    )]


def generate_launch_description():
    config = os.path.join(get_package_share_directory("vjepa2_ros"), "config", "perception.yaml")
    args = [
        DeclareLaunchArgument("checkpoint", description="path to the encoder checkpoint (.pt, HF dir or .safetensors)"),
        DeclareLaunchArgument("image_topic", default_value="",
                              description="sensor_msgs/Image topic of the camera (default: perception.yaml)"),
        DeclareLaunchArgument("model_config", default_value="",
                              description="encoder preset or JSON config file (default: perception.yaml)"),
        DeclareLaunchArgument("backend", default_value="",
                              description="torch | onnxruntime | tensorrt (default: perception.yaml)"),
        DeclareLaunchArgument("device", default_value="",
                              description="cpu | cuda | cuda:N (default: perception.yaml, cpu)"),
        DeclareLaunchArgument("onnx_dir", default_value="",
                              description="export directory for onnxruntime/tensorrt (default: perception.yaml)"),
        DeclareLaunchArgument("sigterm_timeout", default_value="15",
                              description="seconds each node gets to exit after Ctrl-C before SIGTERM (launch's own "
                                          "default, 5, is too short for model nodes on a busy machine)"),
    ]
    return LaunchDescription(args + [OpaqueFunction(function=_encoder_node, args=[config])])

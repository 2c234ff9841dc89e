"""Encoder node: camera images -> V-JEPA 2 latents (`ros2 launch vjepa2_ros perception.launch.py checkpoint:=...`)."""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description():
    config = os.path.join(get_package_share_directory("vjepa2_ros"), "config", "perception.yaml")
    args = [
        DeclareLaunchArgument("image_topic", default_value="/camera/image_raw",
                              description="sensor_msgs/Image topic of the camera"),
        DeclareLaunchArgument("checkpoint", description="path to the encoder checkpoint (.pt, HF dir or .safetensors)"),
        DeclareLaunchArgument("model_config", default_value="vit_giant",
                              description="encoder preset or JSON config file"),
        DeclareLaunchArgument("backend", default_value="torch", description="torch | onnxruntime | tensorrt"),
        DeclareLaunchArgument("device", default_value="cuda", description="cpu | cuda | cuda:N"),
        DeclareLaunchArgument("onnx_dir", default_value="", description="export directory for onnxruntime/tensorrt"),
    ]
    node = Node(
        package="vjepa_perception",
        executable="encoder_node",
        name="encoder_node",
        output="screen",
        parameters=[config, {
            "image_topic": LaunchConfiguration("image_topic"),
            "checkpoint": LaunchConfiguration("checkpoint"),
            "model_config": LaunchConfiguration("model_config"),
            "backend": LaunchConfiguration("backend"),
            "device": LaunchConfiguration("device"),
            "onnx_dir": LaunchConfiguration("onnx_dir"),
        }],
    )
    return LaunchDescription(args + [node])

"""Planner node: CEM with V-JEPA 2-AC toward a goal image (`ros2 launch vjepa2_ros planner.launch.py ...`)."""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description():
    config = os.path.join(get_package_share_directory("vjepa2_ros"), "config", "planner.yaml")
    args = [
        DeclareLaunchArgument("checkpoint", description="checkpoint holding the AC predictor"),
        DeclareLaunchArgument("model_config", default_value="vit_giant",
                              description="AC predictor preset or JSON config file"),
        DeclareLaunchArgument("backend", default_value="torch", description="torch | onnxruntime | tensorrt"),
        DeclareLaunchArgument("device", default_value="cuda", description="cpu | cuda | cuda:N"),
        DeclareLaunchArgument("robot", default_value="franka_impedance",
                              description="robot adapter: franka_impedance | crisp | sim"),
        DeclareLaunchArgument("gripper", default_value="franka_action",
                              description="gripper adapter: franka_action | control_msgs | sim_topic | none"),
    ]
    node = Node(
        package="vjepa_planner",
        executable="planner_node",
        name="planner_node",
        output="screen",
        parameters=[config, {
            "checkpoint": LaunchConfiguration("checkpoint"),
            "model_config": LaunchConfiguration("model_config"),
            "backend": LaunchConfiguration("backend"),
            "device": LaunchConfiguration("device"),
            "robot": LaunchConfiguration("robot"),
            "gripper": LaunchConfiguration("gripper"),
        }],
    )
    return LaunchDescription(args + [node])

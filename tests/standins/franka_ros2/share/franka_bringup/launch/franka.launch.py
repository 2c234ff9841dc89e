"""TEST-ONLY stand-in for franka_ros2's franka_bringup/launch/franka.launch.py (Jazzy). Never installed.

It declares exactly the launch arguments of the real file (names and defaults of franka_ros2 jazzy, Apache-2.0;
reference copy: ../shared/ros2-tools/src/franka_ros2/franka_bringup/launch/franka.launch.py, compared by
tests/test_ros2_launch.py) and, instead of starting the robot, writes the resolved value of every argument as JSON
to ``$VJEPA_STANDIN_RECORD_DIR/franka_bringup.json``. Like the real file, whose URDF (xacro with ``robot_type``)
cannot be generated without a robot type, it fails on an empty ``robot_type``.
"""

import json
import os
from pathlib import Path

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.substitutions import FindPackageShare

ARGUMENTS = ("robot_type", "arm_prefix", "namespace", "robot_ip", "load_gripper", "use_fake_hardware",
             "fake_sensor_commands", "joint_state_rate", "load_franka_robot_state_broadcaster", "controllers_yaml")


def record(context):
    values = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    out = os.environ.get("VJEPA_STANDIN_RECORD_DIR")
    if not out:
        raise RuntimeError("test stand-in franka_bringup started without VJEPA_STANDIN_RECORD_DIR: this is not the "
                           "real franka_ros2 (remove tests/standins from AMENT_PREFIX_PATH)")
    path = Path(out) / "franka_bringup.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(values, indent=1, sort_keys=True))
    tmp.replace(path)
    if not values["robot_type"]:
        raise RuntimeError("franka_bringup stand-in: robot_type is empty; the real franka.launch.py cannot build "
                           "its URDF (franka_arm.urdf.xacro) without one")
    return []


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("robot_type", default_value="", description="ID of the type of arm used"),
        DeclareLaunchArgument("arm_prefix", default_value="", description="Prefix for arm topics"),
        DeclareLaunchArgument("namespace", default_value="", description="Namespace for the robot"),
        DeclareLaunchArgument("robot_ip", default_value="172.16.0.3",
                              description="Hostname or IP address of the robot"),
        DeclareLaunchArgument("load_gripper", default_value="false",
                              description="Use Franka Gripper as an end-effector"),
        DeclareLaunchArgument("use_fake_hardware", default_value="false", description="Use fake hardware"),
        DeclareLaunchArgument("fake_sensor_commands", default_value="false", description="Fake sensor commands"),
        DeclareLaunchArgument("joint_state_rate", default_value="30",
                              description="Rate for joint state publishing (Hz)"),
        DeclareLaunchArgument("load_franka_robot_state_broadcaster", default_value="true",
                              description="Load franka_robot_state_broadcaster (default: true). Set to false for "
                                          "robots that do not support it (e.g., TMR)."),
        DeclareLaunchArgument("controllers_yaml",
                              default_value=PathJoinSubstitution([FindPackageShare("franka_bringup"), "config",
                                                                  "controllers.yaml"]),
                              description="Override the default controllers.yaml file."),
        OpaqueFunction(function=record),
    ])

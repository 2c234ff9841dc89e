"""Simulated Franka demo: ``ros2 launch vjepa2_ros sim_demo.launch.py [params_file:=...] [real_time_factor:=2.0]``.

Starts vjepa_sim's ``sim_node`` with ``config/sim.yaml`` from the vjepa2_ros share directory. sim_node
publishes /clock, so nodes added here (encoder, planner) should run with ``use_sim_time: true``.
"""

from __future__ import annotations

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue


def generate_launch_description():
    default_params = os.path.join(get_package_share_directory("vjepa2_ros"), "config", "sim.yaml")
    params_file = LaunchConfiguration("params_file")
    real_time_factor = LaunchConfiguration("real_time_factor")
    seed = LaunchConfiguration("seed")
    autopilot = LaunchConfiguration("autopilot")
    return LaunchDescription([
        DeclareLaunchArgument("params_file", default_value=default_params,
                              description="ROS 2 params file with a sim_node block"),
        DeclareLaunchArgument("real_time_factor", default_value="1.0",
                              description="sim seconds per wall second (0 = as fast as possible)"),
        DeclareLaunchArgument("seed", default_value="0", description="first episode's layout/start seed"),
        DeclareLaunchArgument("autopilot", default_value="none",
                              description="none: follow equilibrium_pose targets; explore: scripted play"),
        Node(
            package="vjepa_sim",
            executable="sim_node",
            name="sim_node",
            output="screen",
            emulate_tty=True,
            parameters=[
                params_file,
                {
                    "real_time_factor": ParameterValue(real_time_factor, value_type=float),
                    "seed": ParameterValue(seed, value_type=int),
                    "autopilot": ParameterValue(autopilot, value_type=str),
                },
            ],
        ),
    ])

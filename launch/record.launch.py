"""Record V-JEPA 2 training episodes (`ros2 launch vjepa2_ros record.launch.py output_dir:=/data/bags`).

Starts recorder_node with config/recorder.yaml. Start and stop episodes with
`ros2 service call /recorder_node/start_episode std_srvs/srv/Trigger` (set the task first with
`ros2 param set /recorder_node task "..."`) and `.../stop_episode`; see docs/data.md.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue


def generate_launch_description():
    config = os.path.join(get_package_share_directory("vjepa2_ros"), "config", "recorder.yaml")
    args = [
        DeclareLaunchArgument("output_dir", default_value="~/vjepa_bags", description="where bags are written"),
        DeclareLaunchArgument("storage", default_value="mcap", description="mcap | sqlite3"),
        DeclareLaunchArgument("mode", default_value="episodes", description="episodes | continuous"),
        DeclareLaunchArgument("task", default_value="", description="task text of the first episode"),
        DeclareLaunchArgument("split_duration_s", default_value="0.0",
                              description="continuous mode: new bag every N seconds (0 = never)"),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="stamp bags with /clock"),
    ]
    node = Node(
        package="vjepa_training",
        executable="recorder_node",
        name="recorder_node",
        output="screen",
        parameters=[config, {
            "output_dir": LaunchConfiguration("output_dir"),
            "storage": LaunchConfiguration("storage"),
            "mode": LaunchConfiguration("mode"),
            "task": ParameterValue(LaunchConfiguration("task"), value_type=str),
            "split_duration_s": ParameterValue(LaunchConfiguration("split_duration_s"), value_type=float),
            "use_sim_time": ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool),
        }],
    )
    return LaunchDescription(args + [node])

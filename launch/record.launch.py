"""Record V-JEPA 2 training episodes (`ros2 launch vjepa2_ros record.launch.py output_dir:=/data/bags`).

Starts recorder_node with config/recorder.yaml (or ``params_file:=``). A launch argument overrides its parameter only
when given a non-empty value: every optional argument defaults to '' ("the params file's value"), so an edited
params file (e.g. ``storage: sqlite3``) is not silently replaced by a launch default. Start and stop episodes with
`ros2 service call /recorder_node/start_episode std_srvs/srv/Trigger` (set the task first with
`ros2 param set /recorder_node task "..."`) and `.../stop_episode`; see docs/data.md. Ctrl-C gives the recorder
``sigterm_timeout`` (15 s) to close its bag before launch escalates to SIGTERM.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

# recorder_node parameters a launch argument of the same name may set ('' keeps the params file's value), typed as
# the node declares them
OVERRIDABLE = {"output_dir": str, "storage": str, "mode": str, "task": str, "topics_file": str,
               "split_duration_s": float, "use_sim_time": None}


def as_bool(value: str) -> bool:
    """A launch boolean ('true'/'1'/'false'/'0', any case) as a bool parameter."""
    text = value.strip().lower()
    if text not in ("true", "1", "false", "0"):
        raise ValueError(f"use_sim_time: expected true or false, got {value!r}")
    return text in ("true", "1")


def given_overrides(values: dict[str, str]) -> dict[str, object]:
    """Launch-argument values -> the parameter overrides: only the arguments given a non-empty value, typed."""
    return {name: (OVERRIDABLE[name] or as_bool)(value) for name, value in values.items() if value != ""}


def _recorder_node(context):
    values = {name: LaunchConfiguration(name).perform(context) for name in OVERRIDABLE}
    return [Node(
        package="vjepa_training",
        executable="recorder_node",
        name="recorder_node",
        output="screen",
        parameters=[LaunchConfiguration("params_file").perform(context), given_overrides(values)],
    )]


def generate_launch_description():
    config = os.path.join(get_package_share_directory("vjepa2_ros"), "config", "recorder.yaml")
    args = [
        DeclareLaunchArgument("params_file", default_value=config,
                              description="ROS 2 params file with a recorder_node block (default: recorder.yaml)"),
        DeclareLaunchArgument("output_dir", default_value="",
                              description="where bags are written (default: the params file's, ~/vjepa_bags)"),
        DeclareLaunchArgument("storage", default_value="", description="mcap | sqlite3 (default: the params file's)"),
        DeclareLaunchArgument("mode", default_value="",
                              description="episodes | continuous (default: the params file's)"),
        DeclareLaunchArgument("task", default_value="", description="task text of the first episode"),
        DeclareLaunchArgument("topics_file", default_value="",
                              description="YAML with a 'topics:' list, e.g. your robot's names "
                                          "(default: the params file's topics)"),
        DeclareLaunchArgument("split_duration_s", default_value="",
                              description="continuous mode: new bag every N seconds (default: the params file's, "
                                          "0 = never)"),
        DeclareLaunchArgument("use_sim_time", default_value="",
                              description="stamp bags with /clock: true | false (default: false)"),
        DeclareLaunchArgument("sigterm_timeout", default_value="15",
                              description="seconds each node gets to exit after Ctrl-C before SIGTERM (launch's own "
                                          "default, 5, is too short for closing a large bag on a busy machine)"),
    ]
    return LaunchDescription(args + [OpaqueFunction(function=_recorder_node)])

"""Action node: what the camera shows, as top-k labels (`ros2 launch vjepa2_ros action.launch.py checkpoint:=...`).

A frozen V-JEPA 2 encoder + an attentive probe on a sliding clip of the camera stream, publishing
vjepa_interfaces/ActionLabels on /vjepa/action_labels (see docs/probes.md). Parameters come from config/action.yaml.
A launch argument overrides its parameter only when given a non-empty value: every optional argument defaults to ''
("the params file's value"), so the file's ``device: cpu`` holds on a machine without a GPU unless ``device:=cuda``
is given. For example, the released SSv2 probe on the released ViT-L:

    ros2 launch vjepa2_ros action.launch.py checkpoint:=vitl.pt probe:=ssv2-vitl-16x2x3.pt \\
        probe_config:=ssv2-vitl-16x2x3.pt labels_file:=labels.json clip_fps:=3.0 device:=cuda
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

# action_node parameters a launch argument of the same name may set ('' keeps the params file's value)
OVERRIDABLE = ("checkpoint", "probe", "probe_config", "labels_file", "model_config", "image_topic", "frames_per_clip",
               "clip_fps", "device")
NUMERIC = {"frames_per_clip": int, "clip_fps": float}


def given_overrides(values: dict[str, str]) -> dict[str, object]:
    """Launch-argument values -> the parameter overrides: only the arguments given a non-empty value (numbers typed
    as the node declares them)."""
    return {name: NUMERIC.get(name, str)(value) for name, value in values.items() if value != ""}


def _action_node(context, config):
    values = {name: LaunchConfiguration(name).perform(context) for name in OVERRIDABLE}
    return [Node(
        package="vjepa_perception",
        executable="action_node",
        name="action_node",
        output="screen",
        parameters=[config, given_overrides(values)],
    )]


def generate_launch_description():
    config = os.path.join(get_package_share_directory("vjepa2_ros"), "config", "action.yaml")
    args = [
        DeclareLaunchArgument("checkpoint", description="encoder checkpoint (.pt, released or trained by the suite)"),
        DeclareLaunchArgument("probe", description="probe file (released, e.g. ssv2-vitl-16x2x3.pt, or RUN/probe.pt)"),
        DeclareLaunchArgument("probe_config", default_value="",
                              description="released probe name, JSON file, or '' for the config vjepa-train probe "
                                          "embeds (default: action.yaml)"),
        DeclareLaunchArgument("labels_file", default_value="",
                              description="class names file (default: action.yaml, none: class ids)"),
        DeclareLaunchArgument("model_config", default_value="",
                              description="encoder preset or JSON config file (default: action.yaml)"),
        DeclareLaunchArgument("image_topic", default_value="",
                              description="sensor_msgs/Image topic of the camera (default: action.yaml)"),
        DeclareLaunchArgument("frames_per_clip", default_value="",
                              description="frames in the sliding clip (default: action.yaml, 16)"),
        DeclareLaunchArgument("clip_fps", default_value="",
                              description="frames per second taken into the clip (default: action.yaml, 0 = all)"),
        DeclareLaunchArgument("device", default_value="",
                              description="cpu | cuda | cuda:N (default: action.yaml, cpu)"),
        DeclareLaunchArgument("sigterm_timeout", default_value="15",
                              description="seconds each node gets to exit after Ctrl-C before SIGTERM (launch's own "
                                          "default, 5, is too short for model nodes on a busy machine)"),
    ]
    return LaunchDescription(args + [OpaqueFunction(function=_action_node, args=[config])])

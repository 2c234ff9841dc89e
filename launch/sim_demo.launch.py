"""Simulated Franka demo: ``ros2 launch vjepa2_ros sim_demo.launch.py [model_dir:=...] [real_time_factor:=2.0]``.

Starts the closed-loop reach graph, the same as ``vjepa-run launch/sim_demo.run.yaml`` and ``vjepa-sim demo``:

- vjepa_sim ``sim_node`` with ``config/sim.yaml`` + ``config/sim_pipeline/sim.yaml`` (96 px side camera);
- vjepa_perception ``encoder_node`` with ``config/sim_pipeline/encoder.yaml``;
- vjepa_planner ``planner_node`` with ``config/sim_pipeline/planner.yaml``.

The encoder and planner load the model in ``model_dir`` (default: the shipped ``models/sim_reach``) and follow
the simulator's ``/clock`` (``use_sim_time``). ``planner:=false`` starts the simulator alone (e.g. with
``autopilot:=explore`` for data collection). Send a goal image to ``/planner_node/set_goal``. Ctrl-C gives each
node ``sigterm_timeout`` (15 s; launch's own default is 5) to exit cleanly before launch escalates to SIGTERM.
"""

from __future__ import annotations

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue


def _model_nodes(context, config: str, model: dict) -> list:
    """encoder_node and planner_node (unless ``planner:=false``), with ``backend`` only when given."""
    if LaunchConfiguration("planner").perform(context).lower() not in ("true", "1"):
        return []
    backend = LaunchConfiguration("backend").perform(context)
    params = {**model, **({"backend": backend} if backend else {})}
    return [
        Node(package="vjepa_perception", executable="encoder_node", name="encoder_node", output="screen",
             parameters=[os.path.join(config, "sim_pipeline/encoder.yaml"), params]),
        Node(package="vjepa_planner", executable="planner_node", name="planner_node", output="screen",
             parameters=[os.path.join(config, "sim_pipeline/planner.yaml"), params]),
    ]


def generate_launch_description():
    share = get_package_share_directory("vjepa2_ros")
    config = os.path.join(share, "config")
    default_params = os.path.join(config, "sim.yaml")
    params_file = LaunchConfiguration("params_file")
    real_time_factor = LaunchConfiguration("real_time_factor")
    seed = LaunchConfiguration("seed")
    autopilot = LaunchConfiguration("autopilot")
    model_dir = LaunchConfiguration("model_dir")
    model = {
        "checkpoint": PathJoinSubstitution([model_dir, "vjepa2_sim.pt"]),
        "model_config": PathJoinSubstitution([model_dir, "config.json"]),
        "onnx_dir": PathJoinSubstitution([model_dir, "onnx"]),
        "use_sim_time": True,
    }
    return LaunchDescription([
        DeclareLaunchArgument("params_file", default_value=default_params,
                              description="ROS 2 params file with a sim_node block"),
        DeclareLaunchArgument("real_time_factor", default_value="1.0",
                              description="sim seconds per wall second (0 = as fast as possible)"),
        DeclareLaunchArgument("seed", default_value="0", description="first episode's layout/start seed"),
        DeclareLaunchArgument("autopilot", default_value="none",
                              description="none: follow equilibrium_pose targets; explore: scripted play"),
        DeclareLaunchArgument("model_dir", default_value=os.path.join(share, "models", "sim_reach"),
                              description="model directory from `vjepa-sim export` (checkpoint, config.json, onnx/)"),
        DeclareLaunchArgument("backend", default_value="",
                              description="onnxruntime | torch for both model nodes ('': each params file's: "
                                          "encoder_node onnxruntime, planner_node torch)"),
        DeclareLaunchArgument("planner", default_value="true",
                              description="start encoder_node and planner_node (false: the simulator alone)"),
        DeclareLaunchArgument("sigterm_timeout", default_value="15",
                              description="seconds each node gets to exit after Ctrl-C before SIGTERM (launch's own "
                                          "default, 5, is too short for model nodes on a busy machine)"),
        Node(
            package="vjepa_sim",
            executable="sim_node",
            name="sim_node",
            output="screen",
            emulate_tty=True,
            parameters=[
                params_file,
                os.path.join(config, "sim_pipeline/sim.yaml"),
                {
                    "real_time_factor": ParameterValue(real_time_factor, value_type=float),
                    "seed": ParameterValue(seed, value_type=int),
                    "autopilot": ParameterValue(autopilot, value_type=str),
                },
            ],
        ),
        OpaqueFunction(function=_model_nodes, args=[config, model]),
    ])

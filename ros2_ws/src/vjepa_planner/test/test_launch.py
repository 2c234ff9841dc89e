"""The planner's launch files, evaluated with the real `launch` / `launch_ros` packages: the parameters planner_node
would get. Issue 14: `device` defaulted to cuda in the launch files, overriding `device: cpu` of the params file, so
the node died on a machine without a GPU. An argument left empty now keeps the params file's value."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[4]


@pytest.fixture(autouse=True)
def _launch_system(ros2_cli: str) -> str:
    """The real launch system (installed by ../shared/ros2-tools/install.sh): skipped without it, with a message
    saying how to get it, and a failure under CI=true (see conftest.py)."""
    return ros2_cli


def launched_parameters(launch_file: str, node_name: str, **arguments: str) -> dict:
    """The parameters ``node_name`` would run with: its params files and overrides, layered in order."""
    from launch import LaunchContext
    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    from launch_ros.actions import Node
    from launch_ros.utilities import evaluate_parameters

    spec = importlib.util.spec_from_file_location(Path(launch_file).stem.replace(".", "_"), ROOT / launch_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    context = LaunchContext()
    context.launch_configurations.update(arguments)
    nodes = []
    for entity in description.entities:
        if isinstance(entity, DeclareLaunchArgument):
            entity.execute(context)  # fills in the default of an argument not given
        elif isinstance(entity, OpaqueFunction):
            nodes += [e for e in entity.execute(context) or [] if isinstance(e, Node)]
        elif isinstance(entity, Node):
            nodes.append(entity)
    (node,) = [n for n in nodes if n.node_executable == node_name]
    merged: dict = {}
    for entry in evaluate_parameters(context, node._Node__parameters):  # launch_ros keeps them private
        if isinstance(entry, dict):
            merged.update(entry)
        else:  # a params file: the block for this node
            merged.update(yaml.safe_load(Path(entry).read_text())[node_name]["ros__parameters"])
    return merged


@pytest.mark.parametrize("launch_file", ["launch/planner.launch.py", "launch/franka_vjepa.launch.py"])
def test_device_comes_from_the_params_file_unless_given(launch_file):
    base = {"checkpoint": "/models/ac.pt", "robot_ip": "172.16.0.2"}
    params = launched_parameters(launch_file, "planner_node", **base)
    assert params["device"] == "cpu"  # config/planner.yaml, not a launch-file default
    assert params["checkpoint"] == "/models/ac.pt"
    assert params["backend"] == "torch" and params["model_config"] == "vit_giant"
    assert launched_parameters(launch_file, "planner_node", **base, device="cuda:1")["device"] == "cuda:1"


def test_franka_launch_sets_the_encoder_device_the_same_way():
    base = {"checkpoint": "/models/ac.pt", "robot_ip": "172.16.0.2"}
    encoder = launched_parameters("launch/franka_vjepa.launch.py", "encoder_node", **base)
    file_value = yaml.safe_load((ROOT / "config" / "perception.yaml").read_text())["encoder_node"][
        "ros__parameters"]["device"]
    assert encoder["device"] == file_value
    assert launched_parameters("launch/franka_vjepa.launch.py", "encoder_node", **base,
                               device="cuda")["device"] == "cuda"


def test_planner_launch_arguments_override_robot_and_gripper_only_when_given():
    params = launched_parameters("launch/planner.launch.py", "planner_node", checkpoint="/m.pt")
    assert (params["robot"], params["gripper"]) == ("franka_impedance", "franka_action")
    params = launched_parameters("launch/planner.launch.py", "planner_node", checkpoint="/m.pt", robot="crisp",
                                 gripper="none")
    assert (params["robot"], params["gripper"]) == ("crisp", "none")


def test_franka_launch_convention_droid_is_the_released_models_preset_in_one_switch():
    from vjepa_planner.conventions import DROID_PRESET

    base = {"checkpoint": "/models/ac.pt", "robot_ip": "172.16.0.2"}
    planner = launched_parameters("launch/franka_vjepa.launch.py", "planner_node", **base)
    encoder = launched_parameters("launch/franka_vjepa.launch.py", "encoder_node", **base)
    # default '': the params files' physical conventions, no minimum step duration
    assert (planner["ee_convention"], planner["min_step_duration_s"], encoder["crop"]) == ("tcp", 0.0, "center")
    planner = launched_parameters("launch/franka_vjepa.launch.py", "planner_node", convention="droid", **base)
    encoder = launched_parameters("launch/franka_vjepa.launch.py", "encoder_node", convention="droid", **base)
    assert (planner["ee_convention"], planner["min_step_duration_s"], encoder["crop"]) == (
        DROID_PRESET.ee_convention, DROID_PRESET.step_duration_s, DROID_PRESET.crop) == ("droid", 1.0, "droid")
    assert planner["device"] == "cpu" and planner["robot"] == "franka_impedance"  # the rest as before
    with pytest.raises(ValueError, match="convention must be"):
        launched_parameters("launch/franka_vjepa.launch.py", "planner_node", convention="DROID", **base)

"""The parameter files in config/ and the parameters the nodes declare agree: no typo'd key is silently ignored,
every declared parameter has a description and a default in its config file, and the two defaults are equal."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from vjepa_perception.action_node import PARAMETERS as ACTION
from vjepa_perception.encoder_node import PARAMETERS as ENCODER
from vjepa_planner.planner_node import PARAMETERS as PLANNER
from vjepa_sim.config import default_ros_params
from vjepa_sim.sim_node import NODE_PARAMS as SIM
from vjepa_training.data.recording import DEFAULT_TOPICS
from vjepa_training.recorder_node import PARAMS as RECORDER

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("config", "node", "declared"),
                         [("perception.yaml", "encoder_node", ENCODER), ("planner.yaml", "planner_node", PLANNER),
                          ("action.yaml", "action_node", ACTION), ("recorder.yaml", "recorder_node", RECORDER)])
def test_config_file_matches_declared_parameters(config, node, declared):
    params = yaml.safe_load((ROOT / "config" / config).read_text())[node]["ros__parameters"]
    assert set(params) <= set(declared), f"unknown keys in {config}: {sorted(set(params) - set(declared))}"
    missing = set(declared) - set(params)
    assert not missing, f"{config} lacks defaults for {sorted(missing)}"
    for name, (default, description) in declared.items():
        assert description and len(description) > 10, f"{node}.{name} has no useful description"
        if name in params:
            assert type(params[name]) is type(default) or (isinstance(default, float) and
                                                          isinstance(params[name], (int, float))), (
                f"{config}: {name} is {type(params[name]).__name__}, node declares {type(default).__name__}")
            assert params[name] == default, (
                f"{config}: {name} = {params[name]!r} but the node's default is {default!r} (one value, two places)")


def test_recorder_topics_are_one_list():
    """The recorder's default topics, its params file and the topics file for ``ros2 bag record`` (docs/data.md)
    list the same topics: camera (raw and compressed), end-effector pose, gripper, joint states."""
    params = yaml.safe_load((ROOT / "config" / "recorder.yaml").read_text())["recorder_node"]["ros__parameters"]
    assert params["topics"] == RECORDER["topics"][0] == DEFAULT_TOPICS
    assert yaml.safe_load((ROOT / "config" / "record_topics.yaml").read_text())["topics"] == DEFAULT_TOPICS


def _flatten(params: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in params.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def test_sim_config_file_matches_declared_parameters():
    """config/sim.yaml and sim_node: every node parameter (NODE_PARAMS) is in the file with the node's default, and
    every scene parameter in the file is one sim_node declares (vjepa_sim.config), with the same default. Camera
    blocks may describe cameras that ``camera_names`` leaves out (ext2), with the per-camera keys."""
    params = _flatten(yaml.safe_load((ROOT / "config" / "sim.yaml").read_text())["sim_node"]["ros__parameters"])
    missing = set(SIM) - set(params)
    assert not missing, f"sim.yaml lacks defaults for {sorted(missing)}"
    for name, (default, description) in SIM.items():
        assert description and len(description) > 10, f"sim_node.{name} has no useful description"
        assert type(params[name]) is type(default) or (isinstance(default, float) and isinstance(params[name], int)), (
            f"sim.yaml: {name} is {type(params[name]).__name__}, sim_node declares {type(default).__name__}")
        assert params[name] == default, f"sim.yaml: {name} = {params[name]!r} but sim_node's default is {default!r}"
    cameras = sorted({k.split(".")[1] for k in params if k.startswith("cameras.")})
    scene = default_ros_params(cameras)
    unknown = set(params) - set(SIM) - set(scene)
    assert not unknown, f"sim.yaml keys sim_node does not declare: {sorted(unknown)}"
    scene["camera_names"] = default_ros_params()["camera_names"]
    differ = {k: (params[k], scene[k]) for k in params
              if k in scene and not k.startswith("cameras.") and params[k] != scene[k]}
    assert not differ, f"sim.yaml (left) and vjepa_sim.config defaults (right) disagree: {differ}"

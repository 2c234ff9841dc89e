"""planner_node's declared defaults equal config/planner.yaml value for value (the files the launch files use), the
Franka names come from vjepa_core.franka, and the shipped parameter files pass the start-up checks."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from vjepa_core import franka
from vjepa_planner.planner_node import PARAMETERS, check_parameters

ROOT = Path(__file__).resolve().parents[4]


def _params(path: Path) -> dict:
    return yaml.safe_load(path.read_text())["planner_node"]["ros__parameters"]


def test_declared_defaults_equal_the_params_file():
    params = _params(ROOT / "config" / "planner.yaml")
    assert set(params) == set(PARAMETERS), sorted(set(params) ^ set(PARAMETERS))
    differ = {k: (params[k], PARAMETERS[k][0]) for k in params if params[k] != PARAMETERS[k][0]}
    assert not differ, f"config/planner.yaml (left) and PARAMETERS (right) disagree: {differ}"


def test_franka_names_come_from_vjepa_core_franka():
    assert PARAMETERS["ee_pose_topic"][0] == franka.CURRENT_POSE_TOPIC
    assert PARAMETERS["gripper_state_topic"][0] == franka.GRIPPER_JOINT_STATES_TOPIC
    assert PARAMETERS["target_topic"][0] == franka.EQUILIBRIUM_POSE_TOPIC
    assert PARAMETERS["gripper_target"][0] == franka.GRIPPER_ACTION_NAMESPACE
    assert PARAMETERS["base_frame"][0] == franka.BASE_FRAME


@pytest.mark.parametrize("path", ["config/planner.yaml", "config/sim_pipeline/planner.yaml",
                                  "config/sim_pipeline/planner_manip.yaml"])
def test_shipped_params_files_pass_the_start_up_checks(path):
    params = {name: default for name, (default, _) in PARAMETERS.items()}
    params.update(_params(ROOT / path))
    params["checkpoint"] = params["checkpoint"] or "given at launch"
    check_parameters(params)


@pytest.mark.parametrize("precision,backend,refused", [
    ("fp32", "onnxruntime", None), ("bf16", "torch", None), ("auto", "torch", None), ("auto", "onnxruntime", None),
    ("int8", "torch", "precision must be one of"), ("bf16", "onnxruntime", "applies to backend torch only"),
])
def test_precision_is_checked_at_start_up(precision, backend, refused):
    params = {name: default for name, (default, _) in PARAMETERS.items()}
    params.update(checkpoint="x.pt", precision=precision, backend=backend)
    if refused is None:
        check_parameters(params)
    else:
        with pytest.raises(ValueError, match=refused):
            check_parameters(params)

"""Launch files that start encoder_node keep the params file's values unless a launch argument is given: no launch
default (such as the former ``device:=cuda``) silently replaces a value of the YAML (``device: cpu``), which made the
node die at start on machines without a GPU. `ros2 launch` is not installed here, so the launch files are read with
`ast`, and perception.launch.py's override rule (a pure function) is run on its own."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[4]
# launch file -> the encoder_node params file it loads
CASES = [("perception.launch.py", "perception.yaml"), ("sim_demo.launch.py", "sim_pipeline/encoder.yaml")]


def launch_arguments(path: Path) -> dict[str, ast.expr | None]:
    """name -> default_value expression (None: a required argument) of every DeclareLaunchArgument."""
    found = {}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "DeclareLaunchArgument":
            name = node.args[0]
            assert isinstance(name, ast.Constant), f"{path.name}:{node.lineno}: launch argument name is not a literal"
            found[name.value] = next((k.value for k in node.keywords if k.arg == "default_value"), None)
    return found


@pytest.mark.parametrize(("launch_file", "params_file"), CASES)
def test_launch_defaults_do_not_replace_params_file_values(launch_file, params_file):
    params = yaml.safe_load((ROOT / "config" / params_file).read_text())["encoder_node"]["ros__parameters"]
    for name, default in launch_arguments(ROOT / "launch" / launch_file).items():
        if name not in params or default is None:
            continue
        assert isinstance(default, ast.Constant), f"{launch_file}: default of {name} is not a literal"
        assert default.value in ("", str(params[name])), (
            f"{launch_file}: launch argument {name} defaults to {default.value!r}, replacing {params[name]!r} from "
            f"config/{params_file}; default it to '' (the params file's value)")


def load_override_rule() -> tuple[tuple[str, ...], object]:
    """perception.launch.py's OVERRIDABLE names and given_overrides(), executed without the launch packages."""
    tree = ast.parse((ROOT / "launch" / "perception.launch.py").read_text())
    keep = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "given_overrides"
            or isinstance(n, ast.Assign) and any(getattr(t, "id", "") == "OVERRIDABLE" for t in n.targets)]
    assert len(keep) == 2, "perception.launch.py lacks OVERRIDABLE or given_overrides()"
    namespace: dict = {}
    exec(compile(ast.Module(body=keep, type_ignores=[]), "perception.launch.py", "exec"), namespace)
    return namespace["OVERRIDABLE"], namespace["given_overrides"]


def test_perception_launch_overrides_only_given_arguments():
    overridable, given_overrides = load_override_rule()
    declared = launch_arguments(ROOT / "launch" / "perception.launch.py")
    assert set(overridable) <= set(declared), "every overridable parameter has a launch argument"
    for name in overridable:
        default = declared[name]
        assert default is None or default.value == "", f"{name} must default to '' (the params file's value)"
    values = {name: "" for name in overridable}
    assert given_overrides({**values, "checkpoint": "/models/vitg.pt"}) == {"checkpoint": "/models/vitg.pt"}
    assert given_overrides({**values, "checkpoint": "/m.pt", "device": "cuda:1"}) == {"checkpoint": "/m.pt",
                                                                                   "device": "cuda:1"}

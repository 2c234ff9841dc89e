"""Franka names come from vjepa_core.franka in the simulator too (issue 14: "Franka topic names and gripper
constants once"): sim_node's parameter defaults, the sim pipeline's topics and frames, the scripted policies and
tasks, and the planner-node benchmark take them from there; no source file writes them again.

The planner and the training package have the same checks (vjepa_planner/test/test_parameters.py,
vjepa_training/test/test_data_build.py)."""

from __future__ import annotations

import ast
from pathlib import Path

from vjepa_core import franka

ROOT = Path(__file__).resolve().parents[4]
SIM = ROOT / "ros2_ws" / "src" / "vjepa_sim" / "vjepa_sim"
SOURCES = sorted(SIM.rglob("*.py")) + [ROOT / "bench" / "bench_planner_node.py"]
# Every string fact franka.py writes down: none of them may appear as a literal elsewhere (docstrings and comments
# may name them). Long names also count inside a longer literal; short, generic ones ("/joint_states", "fr3_")
# only as the whole literal.
FRANKA_STRINGS = [(name, value) for name, value in vars(franka).items() if name.isupper() and isinstance(value, str)]
FRANKA_STRINGS += [("FINGER_JOINT_NAMES", value) for value in franka.FINGER_JOINT_NAMES]
LONG = 16


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def _names(target: ast.AST) -> list[str]:
    if isinstance(target, (ast.Tuple, ast.List)):
        return [n for elt in target.elts for n in _names(elt)]
    if isinstance(target, ast.Attribute):
        return [target.attr]
    if isinstance(target, ast.Name):
        return [target.id]
    return []


def franka_literals(path: Path, root: Path = ROOT) -> list[str]:
    """``file:line what`` for each Franka string literal and each gripper width written as a number in ``path``
    (named relative to ``root``)."""
    tree = ast.parse(path.read_text(), str(path))
    docs = _docstrings(tree)
    found = []
    rel = path.relative_to(root)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            for name, value in FRANKA_STRINGS:
                if node.value == value or (len(value) >= LONG and value in node.value):
                    found.append(f"{rel}:{node.lineno} {node.value!r} (franka.{name})")
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [n.lower() for t in targets for n in _names(t)]
            widths = [c for c in ast.walk(node.value) if isinstance(c, ast.Constant)
                      and isinstance(c.value, float) and c.value == franka.MAX_GRIPPER_WIDTH] if node.value else []
            if widths and any("width" in n or "gripper" in n for n in names):
                found.append(f"{rel}:{node.lineno} gripper width {franka.MAX_GRIPPER_WIDTH} written as a number "
                             f"(franka.MAX_GRIPPER_WIDTH)")
    return found


def test_sim_and_bench_write_no_franka_name_or_gripper_width_again():
    found = [hit for path in SOURCES for hit in franka_literals(path)]
    assert not found, "use vjepa_core.franka instead:\n" + "\n".join(found)


def test_the_scan_finds_copies(tmp_path):
    """The scan above can fail: it sees a topic literal and a numeric gripper width, not a docstring."""
    sample = tmp_path / "sample.py"
    sample.write_text('"""Reads /franka_gripper/joint_states."""\n'
                      'TOPIC = "/franka_gripper/joint_states"\n'
                      'MAX_GRIPPER_WIDTH = 0.08\n'
                      'msg.width, msg.grasp = 0.08, False\n'
                      'frame = "fr3_link0"\n'
                      'other = 0.08\n')
    hits = franka_literals(sample, tmp_path)
    assert sorted({h.split()[0] for h in hits}) == ["sample.py:2", "sample.py:3", "sample.py:4", "sample.py:5"], hits


def test_sim_defaults_are_the_franka_facts():
    from vjepa_sim import scripted, tasks
    from vjepa_sim.pipeline import collect, experimenter
    from vjepa_sim.sim_node import NODE_PARAMS

    assert NODE_PARAMS["base_frame"][0] == franka.BASE_FRAME
    assert NODE_PARAMS["joint_prefix"][0] == franka.JOINT_PREFIX
    assert NODE_PARAMS["pose_topic"][0] == franka.CURRENT_POSE_TOPIC
    assert NODE_PARAMS["joint_states_topic"][0] == franka.JOINT_STATES_TOPIC
    assert NODE_PARAMS["gripper_state_topic"][0] == franka.GRIPPER_JOINT_STATES_TOPIC
    assert NODE_PARAMS["target_topic"][0] == franka.EQUILIBRIUM_POSE_TOPIC
    assert experimenter.POSE_TOPIC == franka.CURRENT_POSE_TOPIC
    assert experimenter.TARGET_TOPIC == franka.EQUILIBRIUM_POSE_TOPIC
    assert {franka.CURRENT_POSE_TOPIC, franka.GRIPPER_JOINT_STATES_TOPIC} <= set(collect.RECORD_TOPICS)
    assert scripted.MAX_GRIPPER_WIDTH is franka.MAX_GRIPPER_WIDTH
    assert tasks.MAX_GRIPPER_WIDTH is franka.MAX_GRIPPER_WIDTH

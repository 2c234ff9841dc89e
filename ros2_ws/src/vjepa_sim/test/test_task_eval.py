"""Manipulation evaluation and play data through the real ROS 2 graph (``vjepa-sim eval --task``, ``collect``).

Pure parts (episode specs, PlanStatus states by name, task-state conversion, summaries, reports, strips) are
tested directly; the evaluation runs for real: sim_node (and for the planner path encoder_node + planner_node with
the shipped reach model) as processes over Fast DDS in a private ROS domain. Episode seeds here are >= 100.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from vjepa_core.franka import GRIPPER_JOINT_STATES_TOPIC, MAX_GRIPPER_WIDTH
from vjepa_core.msgconv import fill_pose_xyzq, gripper_closedness
from vjepa_interfaces.msg import PlanStatus, TaskState
from vjepa_sim.cli import main
from vjepa_sim.pipeline.eval import plan_states
from vjepa_sim.pipeline.task_eval import (
    episode_specs,
    scene_state,
    summarize_tasks,
    write_task_figure,
    write_task_report,
)
from vjepa_sim.tasks import BUDGETS, is_held, make_episode

ROOT = Path(__file__).resolve().parents[4]
SHIPPED = ROOT / "models" / "sim_manip"  # the shipped manipulation model
MANIP = ROOT / "config" / "sim_pipeline" / "manip.yaml"


# ------------------------------------------------------------------------------------------------ pure parts
def test_episode_specs_alternate_kinds_on_scene_seeds_never_used_for_training():
    specs = episode_specs(20, 0)
    assert [s["kind"] for s in specs[:4]] == ["cup", "box", "cup", "box"]
    assert sum(s["kind"] == "cup" for s in specs) == 10  # 10 trials per object, as the paper's Table 2
    seeds = {s["scene_seed"] for s in specs}
    assert len(seeds) == 20 and min(seeds) >= 10_000  # clear of the collect seeds (1000s, 2000s)
    assert seeds.isdisjoint({s["scene_seed"] for s in episode_specs(20, 1)})
    assert episode_specs(3, 4) == episode_specs(3, 4)
    with pytest.raises(ValueError):
        episode_specs(0, 0)


def test_plan_states_come_from_the_message_constants():
    states = plan_states()
    assert states["executing"] == PlanStatus.STATE_EXECUTING
    assert states["terminal"] == {PlanStatus.STATE_SUCCEEDED, PlanStatus.STATE_FAILED, PlanStatus.STATE_STOPPED}
    for not_terminal in (PlanStatus.STATE_IDLE, PlanStatus.STATE_PLANNING, PlanStatus.STATE_EXECUTING,
                         PlanStatus.STATE_SETTLING, PlanStatus.STATE_PAUSED):
        assert not_terminal not in states["terminal"]


def test_scene_state_from_a_task_state_message():
    msg = TaskState()
    msg.task, msg.task_object = "grasp", 0
    fill_pose_xyzq(msg.ee_pose, (0.5, 0.1, 0.12), (1.0, 0.0, 0.0, 1.0))
    pose = fill_pose_xyzq(msg.ee_pose.__class__(), (0.5, 0.1, 0.121), (0.0, 0.0, 0.0, 1.0))
    msg.object_poses = [pose]
    msg.gripper_width, msg.finger_contacts, msg.object_speed = 0.0505, [True, True], 0.01
    state = scene_state(msg, "cup")
    assert np.allclose(state.object_position, [0.5, 0.1, 0.121]) and state.kind == "cup"
    assert state.finger_contacts == (True, True) and state.object_speed == pytest.approx(0.01)
    assert is_held(state)


def _record(index: int, kind: str, success: bool, energies: bool) -> dict:
    trace = [{"goal": g, "step": s, "distance": 0.1 - 0.01 * s, "energy": 0.05 if energies else None,
              "goal_energy": 0.06 if energies else None, "planning_time": 0.3 + 0.01 * s if energies else None}
             for g, n in enumerate((2, 3, 1)) for s in range(1, n + 1)]
    return {"index": index, "scene_seed": 10_000 + index, "kind": kind, "task": "pick_place",
            "policy": "planner" if energies else "scripted", "success": success, "detail": "d", "held": False,
            "lift": 0.0, "distance": 0.02, "distance_xy": 0.02, "gripper_open": True, "resting": True,
            "goals": [{"name": n, "max_steps": b, "steps": s, "ended": "x"}
                      for n, b, s in zip(("grasped", "carried", "released"), BUDGETS["pick_place"], (2, 3, 1))],
            "steps": 6, "steps_per_goal": [2, 3, 1], "trace": trace}


def test_summary_report_and_strip_from_records(tmp_path):
    records = [_record(0, "cup", True, True), _record(1, "box", False, True), _record(2, "cup", True, True)]
    s = summarize_tasks(records, "pick_place", "planner", {"budgets": [8, 10, 4]})
    assert s["success_rate"] == pytest.approx(2 / 3) and s["successes"] == 2
    assert s["by_kind"] == {"box": {"episodes": 1, "successes": 0, "success_rate": 0.0},
                            "cup": {"episodes": 2, "successes": 2, "success_rate": 1.0}}
    times = [t["planning_time"] for r in records for t in r["trace"]]  # 0.31 .. 0.33 s
    assert s["planning_time_p50_s"] == pytest.approx(np.percentile(times, 50))
    assert s["planning_time_p99_s"] == pytest.approx(np.percentile(times, 99)) and s["planning_time_p99_s"] > 0.32
    report = write_task_report(tmp_path / "r.md", s, "vjepa-sim eval ...").read_text()
    assert "2 / 3 = 67%" in report and "| 1 | 10001 | box |" in report
    img = np.full((96, 96, 3), 128, np.uint8)
    for rec in (records[0], _record(3, "box", False, False)):  # with and without energies
        path = tmp_path / f"e{rec['index']}.png"
        write_task_figure(path, rec, [img] * 3, [img] * 3, img, img)
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


def test_eval_refuses_bad_arguments(capsys):
    with pytest.raises(SystemExit):
        main(["eval", "--task", "stack", "--json", "x.json"])
    assert main(["eval", "--task", "grasp", "--policy", "scripted", "--max-steps-per-goal", "0",
                 "--json", "x.json"]) == 2
    assert "max-steps-per-goal" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ real graph
@pytest.fixture
def manip_yaml(tmp_path):
    """The manipulation pipeline settings with a private workdir."""
    cfg = yaml.safe_load(MANIP.read_text())
    cfg["workdir"] = str(tmp_path / "work")
    path = tmp_path / "manip.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_eval_scripted_pick_place_end_to_end(manip_yaml, tmp_path, ros_domain_id):
    out = tmp_path / "pp.json"
    assert main(["eval", "--pipeline", str(manip_yaml), "--task", "pick_place", "--policy", "scripted",
                 "--episodes", "1", "--seed", "101", "--json", str(out), "--quiet"]) == 0
    res = json.loads(out.read_text())
    ep = res["per_episode"][0]
    assert res["task"] == "pick_place" and res["policy"] == "scripted" and res["episodes"] == 1
    assert res["success_rate"] == 1.0 and ep["success"], ep["detail"]
    assert ep["resting"] and ep["gripper_open"] and ep["distance_xy"] <= 0.05 and not ep["held"]
    # the object really went from its spot to the target
    expected = make_episode("pick_place", ep["scene_seed"], ep["kind"])
    assert np.allclose(ep["target"], expected.target, atol=1e-4)
    assert np.linalg.norm(np.array(ep["object_start"][:2]) - np.array(ep["target"][:2])) >= 0.12
    assert np.linalg.norm(np.array(ep["object_final"][:2]) - np.array(ep["target"][:2])) <= 0.05
    assert [g["name"] for g in ep["goals"]] == ["grasped", "carried", "released"]
    assert all(1 <= g["steps"] <= g["max_steps"] for g in ep["goals"])
    phases = [t["phase"] for t in ep["trace"]]
    assert "close" in phases and "release" in phases
    assert any(t["held"] for t in ep["trace"])
    assert (out.parent / ep["figure"]).stat().st_size > 5000
    assert "pick_place evaluation: scripted" in out.with_suffix(".md").read_text()


def test_eval_random_grasp_spends_its_budget(manip_yaml, tmp_path, ros_domain_id):
    out = tmp_path / "rg.json"
    assert main(["eval", "--pipeline", str(manip_yaml), "--task", "grasp", "--policy", "random", "--episodes", "1",
                 "--seed", "102", "--max-steps-per-goal", "3", "--json", str(out), "--quiet"]) == 0
    ep = json.loads(out.read_text())["per_episode"][0]
    assert ep["steps_per_goal"] == [3] and ep["goals"][0]["max_steps"] == 3
    assert all(t["phase"] == "random" and t["energy"] is None for t in ep["trace"])


def test_eval_planner_sends_the_subgoals_as_one_reach_goals_action(manip_yaml, tmp_path, ros_domain_id):
    """A short end-to-end pick-and-place with the shipped manipulation model: one /planner_node/reach_goals goal
    holding the three sub-goal images, each with a budget of one step (capped); the planner moves on by itself
    after each, the feedback gives one planning step per sub-goal with the gripper planned; the strip shows the
    energy per step."""
    out = tmp_path / "pl.json"
    assert main(["eval", "--pipeline", str(manip_yaml), "--task", "pick_place", "--model", str(SHIPPED),
                 "--episodes", "1", "--seed", "103", "--max-steps-per-goal", "1", "--json", str(out), "--quiet"]) == 0
    res = json.loads(out.read_text())
    ep = res["per_episode"][0]
    assert ep["steps_per_goal"] == [1, 1, 1], ep["message"]
    assert [t["goal"] for t in ep["trace"]] == [0, 1, 2]
    assert all(np.isfinite(t["energy"]) and t["planning_time"] > 0 for t in ep["trace"])
    assert ep["planning_time_p50_s"] > 0 and res["planning_time_p99_s"] >= res["planning_time_p50_s"]
    assert res["settings"]["cem_sample_gripper"] is True  # manip.yaml layers planner_manip.yaml on planner.yaml
    ended = [g["ended"] for g in ep["goals"]]
    assert ended[0].startswith("planner moved on after 1 steps") and ended[1].startswith("planner moved on"), ended
    assert ended[2].startswith("budget spent after 1 steps"), ended  # the last goal: its budget, not its threshold


def test_collect_with_the_manipulation_config_records_play(tmp_path, ros_domain_id):
    """`vjepa-sim collect --pipeline manip.yaml` runs sim_node's play policy on cup/box scenes through the ROS
    graph: the recorded gripper closes on objects (widths of a held cup or box) for part of the episode."""
    from vjepa_training.data.bagio import BagReader

    cfg = yaml.safe_load(MANIP.read_text())
    cfg["workdir"] = str(tmp_path / "work")
    cfg["collect"].update({"episodes": 1, "episode_seconds": 16.0, "seed": 2002})  # a box scene
    path = tmp_path / "manip.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["collect", "--pipeline", str(path)]) == 0
    manifest = json.loads((tmp_path / "work" / "bags" / "collect.json").read_text())["episodes"]
    bag = tmp_path / "work" / "bags" / manifest["0"]["bag"]
    widths = []
    with BagReader(bag) as reader:
        types = reader.topics
        for topic, _, raw in reader.messages([GRIPPER_JOINT_STATES_TOPIC]):  # finger opening [m], via msgconv
            widths.append((1.0 - gripper_closedness(reader.deserialize(raw, types[topic]))) * MAX_GRIPPER_WIDTH)
    widths = np.array(widths)
    assert len(widths) > 100
    holding = (widths > 0.035) & (widths < 0.06)  # closed on a 4 cm box or a 5 cm cup
    assert holding.mean() > 0.2 and (widths > 0.075).mean() > 0.2

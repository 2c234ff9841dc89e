"""Manipulation in the simulator (real PyBullet, no ROS): grasp physics, tasks, success measures, goal images, play.

Seeds here are >= 100 (the evaluation seeds 0-2 are never used for development or tests).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from vjepa_sim.config import CameraConfig, SimConfig
from vjepa_sim.explore import PlayConfig, PlayPolicy, make_explorer, run_episode
from vjepa_sim.objects import OBJECT_KINDS, ObjectSpec, fold_yaw, manipulation_layout
from vjepa_sim.scene import DOWN_QUAT, FrankaSim, wrist_quat, wrist_yaw
from vjepa_sim.scripted import RandomPolicy, ScriptedPolicy, apply_command, run_task, settle
from vjepa_sim.tasks import (
    BUDGETS,
    TASKS,
    SceneState,
    goal_reached,
    is_held,
    make_episode,
    measure,
    observe,
    render_goal,
    reset_sim,
)

SMALL = CameraConfig(width=64, height=64)


@pytest.fixture(scope="module")
def sim():
    s = FrankaSim(SimConfig(cameras=(SMALL,)))
    yield s
    s.close()


# ------------------------------------------------------------------------------------------ grasp physics
@pytest.mark.parametrize("kind", ["cup", "box"])
def test_scripted_grasp_lifts_each_object_kind_and_it_stays_in_the_hand_when_carried(sim, kind):
    ep = make_episode("grasp", 101, kind)
    run = run_task(sim, ep, ScriptedPolicy(ep))
    assert run.success, run.measures.detail
    assert run.steps <= ep.total_steps
    state = observe(sim, ep)
    assert is_held(state) and state.finger_contacts == (True, True)
    assert run.measures.lift >= 0.03
    # the force-limited grasp stopped at the object: the fingers rest on its sides
    assert state.gripper_width == pytest.approx(OBJECT_KINDS[kind].grip_width, abs=0.008)
    offset = state.object_position - state.ee_position
    # carry it 15 cm sideways and 10 cm up at full tracker speed, and back down: it must not slip
    for delta in ([0.0, 0.15, 0.10], [0.10, -0.05, -0.05]):
        target = state.ee_position + np.array(delta)
        sim.set_target(target, DOWN_QUAT)
        settle(sim, target)
        now = observe(sim, ep)
        assert is_held(now)
        assert np.linalg.norm((now.object_position - now.ee_position) - offset) < 0.005


def test_box_across_its_long_side_does_not_fit_between_the_fingers(sim):
    """The box needs a wrist angle: turned 90 degrees, its 12 cm side is wider than the open hand (8 cm)."""
    ep = make_episode("grasp", 101, "box")
    turned = replace(ep, objects=(replace(ep.objects[0], yaw=ep.objects[0].yaw + math.pi / 2),))
    run = run_task(sim, turned, ScriptedPolicy(turned))
    assert not run.success
    assert not run.measures.held and run.measures.lift < 0.01


def test_grasp_squeezes_with_the_commanded_force_and_too_little_cannot_lift(sim):
    """Force-limited closing: each finger presses on the box with the commanded force; 0.3 N per finger (friction
    2 x 1.5 x 0.3 N < the 150 g box's weight) lets it slip out when the arm lifts, 20 N holds it."""
    ep = make_episode("grasp", 102, "box")
    lifted, pressed = {}, {}
    for force in (0.3, 5.0, 20.0):
        reset_sim(sim, ep)
        obj = ep.objects[0].position
        for target, grip in (([obj[0], obj[1], obj[2] + 0.06], None), ([obj[0], obj[1], obj[2]], None),
                             ([obj[0], obj[1], obj[2]], force), ([obj[0], obj[1], obj[2] + 0.15], None)):
            sim.set_target(target, DOWN_QUAT)
            if grip is not None:
                sim.set_gripper(0.0, grasp=True, force=grip)
            settle(sim, np.array(target))
            if grip is not None:
                pressed[force] = sim.finger_normal_forces(0)
        lifted[force] = observe(sim, ep).object_position[2] - obj[2]
    for force in (5.0, 20.0):
        assert pressed[force] == pytest.approx((force, force), rel=0.1)
    assert lifted[20.0] > 0.14 and lifted[5.0] > 0.14  # came up with the hand
    assert lifted[0.3] < 0.01  # stayed on the table


def test_gripper_opens_right_after_a_grasp(sim):
    """After a grasp stopped at an object, an open command moves the fingers at once (the command restarts from
    the fingers' position, as franka_gripper's move does), not after the grasp's command has wound back up."""
    ep = make_episode("grasp", 103, "cup")
    run_task(sim, ep, ScriptedPolicy(ep))
    assert is_held(observe(sim, ep))
    sim.step(240)  # hold it a while: the grasp command keeps running toward 0 behind the object
    before = sim.gripper_width()
    sim.set_gripper(0.08)
    sim.step(36)  # 0.15 s
    assert sim.gripper_width() > before + 0.005


def test_held_start_puts_the_object_in_the_closed_hand(sim):
    ep = make_episode("reach_object", 104)
    reset_sim(sim, ep)
    state = observe(sim, ep)
    assert is_held(state)
    assert np.linalg.norm(state.ee_position - np.array(ep.start_position)) < 0.005
    sim.step(240)  # and it stays there
    assert is_held(observe(sim, ep))


# ------------------------------------------------------------------------------------------ episodes
def test_episodes_are_deterministic_per_seed_and_well_formed():
    for task in TASKS:
        a, b, c = make_episode(task, 105), make_episode(task, 105), make_episode(task, 106)
        assert a == b
        assert a != c
        assert tuple(g.max_steps for g in a.goals) == BUDGETS[task]
        assert make_episode(task, 105, "box").kind == "box" and make_episode(task, 105, "cup").kind == "cup"
        for g in a.goals:
            assert np.allclose(g.ee_quaternion, DOWN_QUAT)  # the wrist keeps its yaw (rotation fixed)
    kinds = {make_episode("grasp", s).kind for s in range(100, 120)}
    assert kinds == {"cup", "box"}
    box = [make_episode("grasp", s, "box").objects[0].yaw for s in range(100, 140)]
    assert max(abs(fold_yaw(y)) for y in box) <= math.radians(15.0) + 1e-9  # graspable at the fixed wrist yaw
    pp = make_episode("pick_place", 107)
    assert 0.12 <= np.linalg.norm(np.array(pp.target[:2]) - np.array(pp.objects[0].position[:2])) <= 0.22
    ro = make_episode("reach_object", 107)
    assert 0.10 <= np.linalg.norm(np.array(ro.goals[0].ee_position) - np.array(ro.start_position)) <= 0.20
    with pytest.raises(ValueError, match="unknown task"):
        make_episode("stack", 1)
    with pytest.raises(ValueError, match="unknown object kind"):
        make_episode("grasp", 1, "mug")
    with pytest.raises(ValueError, match="seed"):
        make_episode("grasp", -1)


def test_task_scene_is_bit_identical_per_seed(sim):
    ep = make_episode("pick_place", 108)
    runs = []
    for _ in range(2):
        reset_sim(sim, ep)
        policy = ScriptedPolicy(ep)
        for _ in range(4):
            cmd = policy.act(observe(sim, ep), 0)
            apply_command(sim, cmd)
            settle(sim, cmd.position)
        runs.append((sim.state_vector(), sim.render()))
    assert np.array_equal(runs[0][0], runs[1][0])
    assert np.array_equal(runs[0][1], runs[1][1])


def test_wrist_yaw_round_trip():
    for yaw in (-1.2, 0.0, 0.4, 1.5):
        assert wrist_yaw(wrist_quat(yaw)) == pytest.approx(yaw, abs=1e-9)
    assert fold_yaw(math.pi / 2 + 0.1) == pytest.approx(-math.pi / 2 + 0.1)


# ------------------------------------------------------------------------------------------ success measures
def _state(kind="cup", ee=(0.5, 0.0, 0.12), obj=None, width=None, contacts=(True, True), speed=0.0,
           quat=DOWN_QUAT) -> SceneState:
    ee = np.array(ee, dtype=float)
    return SceneState(ee, np.array(quat, dtype=float),
                      OBJECT_KINDS[kind].grip_width + 0.001 if width is None else width, kind,
                      ee.copy() if obj is None else np.array(obj, dtype=float), np.array([0.0, 0.0, 0.0, 1.0]),
                      speed, contacts)


def test_held_needs_the_object_between_closed_fingers_touching_both():
    assert is_held(_state())
    assert not is_held(_state(contacts=(True, False)))  # one finger only
    assert not is_held(_state(width=0.08))  # open hand around it
    assert not is_held(_state(width=0.02))  # closed far narrower: not on this object
    assert not is_held(_state(obj=(0.5, 0.0, 0.04)))  # 8 cm below the fingers
    assert not is_held(_state(obj=(0.5, 0.04, 0.12)))  # beside the fingers (outside the opening)
    assert not is_held(_state(obj=(0.55, 0.0, 0.12)))  # in front of the pads
    # the opening axis turns with the wrist: at yaw 90 degrees it is the base x axis
    turned = wrist_quat(math.pi / 2)
    assert is_held(_state(obj=(0.51, 0.0, 0.12), quat=turned))
    assert not is_held(_state(obj=(0.5, 0.035, 0.12), quat=turned))


def test_grasp_success_needs_held_and_3cm_lift():
    ep = make_episode("grasp", 109, "cup")
    x, y, _ = ep.target
    rest = ep.target[2]
    ok = measure(ep, _state(ee=(x, y, rest + 0.031)))
    assert ok.success and ok.held and ok.lift == pytest.approx(0.031)
    assert not measure(ep, _state(ee=(x, y, rest + 0.029))).success  # lifted 2.9 cm only
    assert not measure(ep, _state(ee=(x, y, rest + 0.08), contacts=(False, False))).success  # not held


def test_reach_object_success_needs_held_within_5cm_of_the_goal():
    ep = make_episode("reach_object", 109)
    goal = np.array(ep.target)
    near = goal + [0.0, 0.049, 0.0]
    far = goal + [0.0, 0.051, 0.0]
    assert measure(ep, _state(ep.kind, ee=near)).success
    assert not measure(ep, _state(ep.kind, ee=far)).success
    assert not measure(ep, _state(ep.kind, ee=near, width=0.08, contacts=(False, False))).success  # dropped


def test_pick_place_success_needs_the_object_resting_at_the_target_and_the_gripper_open():
    ep = make_episode("pick_place", 109, "box")
    t = np.array(ep.target)
    ee_above = t + [0.0, 0.0, 0.02]
    placed = dict(kind="box", ee=ee_above, obj=t + [0.03, 0.035, 0.0], width=0.08, contacts=(False, False))
    ok = measure(ep, _state(**placed))
    assert ok.success and ok.resting and ok.gripper_open and ok.distance_xy < 0.05
    assert not measure(ep, _state(**{**placed, "obj": t + [0.0, 0.051, 0.0]})).success  # 5.1 cm off
    assert not measure(ep, _state(**{**placed, "width": 0.045})).success  # gripper not open
    assert not measure(ep, _state(**{**placed, "speed": 0.1})).success  # still sliding
    assert not measure(ep, _state(**{**placed, "obj": t + [0.0, 0.0, 0.05]})).success  # in the air
    held = measure(ep, _state("box", ee=t, obj=t, width=0.041))
    assert held.held and not held.success  # still in the hand


def test_goal_reached_matches_the_goal_state():
    ep = make_episode("pick_place", 110, "cup")
    g1, g3 = ep.goals[0], ep.goals[2]
    assert goal_reached(g1, _state(ee=g1.ee_position))
    assert not goal_reached(g1, _state(ee=np.array(g1.ee_position) + [0.0, 0.0, 0.02]))
    assert not goal_reached(g1, _state(ee=g1.ee_position, contacts=(False, False)))
    assert goal_reached(g3, _state(ee=g3.ee_position, obj=ep.target, width=0.08, contacts=(False, False)))
    assert not goal_reached(g3, _state(ee=g3.ee_position))  # still holding it


# ------------------------------------------------------------------------------------------ goal images
def test_task_goal_images_show_the_goal_state_and_leave_the_episode_untouched():
    ep = make_episode("pick_place", 111, "box")

    def episode(render: bool) -> tuple:
        s = FrankaSim(SimConfig(cameras=(SMALL,)))
        try:
            reset_sim(s, ep)
            policy = ScriptedPolicy(ep)
            while not is_held(observe(s, ep)):  # grasp: contacts are active while the goals render
                cmd = policy.act(observe(s, ep), 0)
                apply_command(s, cmd)
                settle(s, cmd.position)
            target = np.array(ep.goals[1].ee_position)
            s.set_target(target, DOWN_QUAT)
            s.step(30)  # mid-motion
            goals = [render_goal(s, ep, k).image for k in range(3)] if render else []
            s.step(120)
            return s.state_vector(), s.render(), goals, s.time
        finally:
            s.close()

    plain, rendered = episode(False), episode(True)
    assert np.array_equal(plain[0], rendered[0])  # bit-identical physics state after rendering three goals
    assert np.array_equal(plain[1], rendered[1])
    assert plain[3] == rendered[3]
    goals = rendered[2]
    # the three sub-goals look different from each other (object lifted, carried, placed)
    for a in range(3):
        for b in range(a + 1, 3):
            assert np.abs(goals[a].astype(int) - goals[b].astype(int)).mean() > 0.5


def test_goal_image_matches_the_state_the_scripted_policy_reaches(sim):
    """A grasp goal image shows the scene the grasp ends in: the final frame is much closer to it than the
    start frame is (the same object, held at the same place)."""
    ep = make_episode("grasp", 112, "cup")
    reset_sim(sim, ep)
    start = sim.render().astype(int)
    goal = render_goal(sim, ep, 0).image.astype(int)
    run = run_task(sim, ep, ScriptedPolicy(ep), reset=False)
    assert run.success
    final = sim.render().astype(int)
    assert np.abs(final - goal).mean() < 0.4 * np.abs(start - goal).mean()


def test_render_goal_refuses_wrong_object_counts_and_goal_indices(sim):
    ep = make_episode("grasp", 113)
    reset_sim(sim, ep)
    with pytest.raises(ValueError, match="objects must give 1"):
        sim.render_goal([0.5, 0.0, 0.2], DOWN_QUAT, 0.0, objects=[])
    with pytest.raises(ValueError, match="goal index"):
        render_goal(sim, ep, 1)


# ------------------------------------------------------------------------------------------ baselines
def test_random_policy_is_seeded_and_spends_the_whole_budget(sim):
    ep = make_episode("grasp", 114)
    runs = [run_task(sim, ep, RandomPolicy(ep, seed=3)) for _ in range(2)]
    assert runs[0].steps == ep.total_steps
    assert runs[0].trace == runs[1].trace


# ------------------------------------------------------------------------------------------ play data
def test_play_policy_grasps_lifts_and_places_objects_deterministically():
    cfg = SimConfig(cameras=(SMALL,), object_set="manipulation")

    def go(seed: int) -> tuple:
        s = FrankaSim(cfg)
        try:
            s.reset(seed)
            kind = s.objects[0].kind
            policy = PlayPolicy(PlayConfig(seed=seed))
            ep = run_episode(s, policy, steps=100)
            return kind, ep, s.object_states()[0].position
        finally:
            s.close()

    kind, a, _ = go(101)
    _, b, _ = go(101)
    assert np.array_equal(a.states, b.states) and np.array_equal(a.images[SMALL.name], b.images[SMALL.name])
    closedness = a.states[:, 6]
    assert (closedness > 0.3).mean() > 0.2  # a good part of the episode with something in the hand
    assert (closedness < 0.05).mean() > 0.2  # and a good part open (free motion, approaches)
    # the object was lifted: the play lifts 4-15 cm, so the end effector, holding it, went well above it
    height = OBJECT_KINDS[kind].height
    held_high = (closedness > 0.3) & (closedness < 0.6) & (a.states[:, 2] > height / 2 + 0.04)
    assert held_high.sum() >= 5


def test_manipulation_layout_and_explorer_factory():
    rng = np.random.default_rng(0)
    specs = [manipulation_layout(rng, (0.4, -0.2), (0.65, 0.2), 0.26)[0] for _ in range(40)]
    assert {s.kind for s in specs} == {"cup", "box"}
    assert all(0.4 <= s.position[0] <= 0.65 and -0.2 <= s.position[1] <= 0.2 for s in specs)
    assert isinstance(make_explorer("play", 1, 2.5, 0.05), PlayPolicy)
    with pytest.raises(ValueError, match="free' or 'play"):
        make_explorer("dance", 1, 2.5, 0.05)
    with pytest.raises(ValueError, match="object_set"):
        SimConfig(object_set="toys").validate()
    with pytest.raises(ValueError, match="unknown object kind"):
        ObjectSpec("mug", "red", (0.5, 0.0, 0.04)).validate()
    with FrankaSim(SimConfig(cameras=(SMALL,))) as s, pytest.raises(ValueError, match="held must index"):
        s.reset(1, held=0)


def test_cli_explore_play_on_manipulation_scenes(tmp_path, capsys):
    from vjepa_sim.cli import main

    out = tmp_path / "play"
    assert main(["explore", "--policy", "play", "--object-set", "manipulation", "--episodes", "1", "--steps", "3",
                 "--seed", "101", "--out", str(out)]) == 0
    data = np.load(out / "episode_0000.npz")
    assert data["states"].shape == (4, 7) and data["targets"].shape == (3, 7)
    assert "episode_0000.npz" in capsys.readouterr().out

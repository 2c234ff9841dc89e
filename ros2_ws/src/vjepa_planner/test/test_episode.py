"""The planner's control loop, without ROS: settle/observe/re-plan, goal criteria, budget, faults, stop/pause."""

from __future__ import annotations

import numpy as np
import pytest

from vjepa_planner.episode import EpisodeLoop, LoopConfig, Observation, PlanOutput, State
from vjepa_planner.safety import SafetyFault, SafetyLimits

HOME = np.array([0.5, 0.0, 0.4, np.pi, 0.0, 0.0, 0.0])
GOAL = np.array([0.6, 0.1, 0.3])


def toward_goal(_latent, state):
    """An ideal planner: step toward GOAL; energy = distance."""
    delta = np.zeros(7)
    delta[:3] = GOAL - state[:3]
    return PlanOutput(action=delta, energy=float(np.linalg.norm(delta[:3]) * 0.5),
                      goal_energy=float(np.linalg.norm(delta[:3])))


class FakeWorld:
    """A perfect arm (reaches each target instantly) and a camera that is encoded 0.1 s after each frame."""

    def __init__(self):
        self.pose = HOME.copy()
        self.t = 0.0

    def obs(self):
        return Observation(self.t, self.pose.copy()), Observation(self.t - 0.05, "tokens", "m@1")


def run(loop, world, ticks=400):
    commands, statuses = [], []
    for _ in range(ticks):
        world.t += 0.1
        pose, latent = world.obs()
        d = loop.tick(world.t, pose, latent)
        if d.target is not None:
            commands.append(d.target)
            world.pose = d.target.copy()
        if d.status is not None:
            statuses.append(d.status)
        if loop.state in (State.SUCCEEDED, State.FAILED, State.STOPPED):
            break
    return commands, statuses


def test_reaches_goal_position_in_limited_steps_and_reports_each_step():
    loop = EpisodeLoop(toward_goal, SafetyLimits(), LoopConfig(max_steps=20, goal_position_tolerance=0.01,
                                                               expected_model_id="m@1"))
    world = FakeWorld()
    loop.start(0.0, goal_position=GOAL)
    commands, statuses = run(loop, world)
    assert loop.state == State.SUCCEEDED
    assert len(commands) == 2  # 0.1 m per axis with 0.05 m steps
    for prev, cmd in zip([HOME] + commands[:-1], commands):
        assert np.all(np.abs(cmd[:3] - prev[:3]) <= 0.05 + 1e-12)
    steps = [s["step"] for s in statuses if s["state"] == State.EXECUTING]
    assert steps == [0, 1]
    assert any("limits:" in s["message"] for s in statuses)


def test_energy_threshold_ends_episode():
    loop = EpisodeLoop(toward_goal, SafetyLimits(), LoopConfig(energy_threshold=0.02))
    loop.start(0.0)
    run(loop, FakeWorld())
    assert loop.state == State.SUCCEEDED and "goal energy" in loop.message


def test_step_budget():
    never = lambda _l, _s: PlanOutput(np.array([0.01, 0, 0, 0, 0, 0, 0]), 1.0, 1.0)  # noqa: E731
    loop = EpisodeLoop(never, SafetyLimits(), LoopConfig(max_steps=3))
    loop.start(0.0)
    commands, _ = run(loop, FakeWorld())
    assert loop.state == State.FAILED and len(commands) == 3 and "budget" in loop.message


def test_waits_for_a_latent_newer_than_the_motion():
    loop = EpisodeLoop(toward_goal, SafetyLimits(), LoopConfig())
    loop.start(0.0)
    pose = Observation(1.0, HOME.copy())
    d = loop.tick(1.0, pose, Observation(0.95, "x"))
    assert d.target is not None and loop.state == State.EXECUTING
    d = loop.tick(1.1, Observation(1.1, d.target), Observation(1.05, "x"))
    assert loop.state == State.SETTLING
    assert loop.tick(1.2, Observation(1.2, d.status["ee_state"]), Observation(1.05, "x")).target is None
    assert loop.state == State.SETTLING  # old latent: keep waiting
    assert loop.tick(1.3, Observation(1.3, HOME), Observation(1.25, "x")).target is not None


@pytest.mark.parametrize(
    ("pose", "latent", "reason"),
    [
        (Observation(1.0, np.full(7, np.nan)), Observation(1.0, "x"), "not finite"),
        (Observation(-5.0, HOME), Observation(1.0, "x"), "end-effector pose is stale"),
        (Observation(1.0, HOME), Observation(-5.0, "x"), "latent is stale"),
        (Observation(1.0, HOME), Observation(1.0, "x", "other@2"), "expects"),
        (None, Observation(1.0, "x"), "no end-effector pose"),
        (Observation(1.0, HOME), None, "no latent"),
    ],
)
def test_faults_send_nothing_and_say_why(pose, latent, reason):
    loop = EpisodeLoop(toward_goal, SafetyLimits(), LoopConfig(expected_model_id="m@1", fault_timeout=2.0))
    loop.start(0.0)
    latent = latent if latent is None or latent.model_id else Observation(latent.stamp, latent.value, "m@1")
    d = loop.tick(1.0, pose, latent)
    assert d.target is None and reason in d.status["message"]
    assert loop.tick(3.5, pose, latent).target is None
    assert loop.state == State.FAILED  # a fault that persists ends the episode


def test_no_goal_means_no_command():
    loop = EpisodeLoop(toward_goal, SafetyLimits())
    assert loop.tick(1.0, Observation(1.0, HOME), Observation(1.0, "x")).target is None
    assert loop.state == State.IDLE


def test_stop_pause_resume_hold_at_current_pose():
    loop = EpisodeLoop(toward_goal, SafetyLimits())
    loop.start(0.0)
    pose = Observation(1.0, HOME + np.array([0.01, 0, 0, 0, 0, 0, 0]))
    d = loop.pause(pose)
    np.testing.assert_array_equal(d.target, pose.value)
    assert loop.tick(1.1, pose, Observation(1.1, "x")).target is None  # paused: nothing moves
    loop.resume(1.2)
    assert loop.tick(1.3, Observation(1.3, HOME), Observation(1.25, "x")).target is not None
    d = loop.stop(Observation(1.4, HOME))
    assert loop.state == State.STOPPED
    np.testing.assert_array_equal(d.target, HOME)
    assert loop.stop(Observation(1.5, np.full(7, np.nan))).target is None  # never a NaN hold
    with pytest.raises(SafetyFault):
        loop.resume(2.0)

"""The planner's control loop, without ROS: settle/observe/re-plan, goal criteria, budget, faults, stop/pause, and
the plan hand-out that lets a stop win over a plan in progress."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from vjepa_core.msgconv import LatentArray
from vjepa_planner.episode import (
    Decision,
    EpisodeLoop,
    LoopConfig,
    PlanOutput,
    PlanRequest,
    PoseObservation,
    Severity,
    State,
)
from vjepa_planner.safety import SafetyFault, SafetyLimits

HOME = np.array([0.5, 0.0, 0.4, np.pi, 0.0, 0.0, 0.0])
GOAL = np.array([0.6, 0.1, 0.3])


def latent(stamp: float, model_id: str = "m@1") -> LatentArray:
    """A (tiny) validated latent stamped ``stamp``."""
    return LatentArray(tokens=np.zeros((1, 2, 2, 4), np.float32), model_id=model_id, normalized=True, stamp=stamp)


GOAL_LATENT = latent(0.0)


def pose(stamp: float, state: np.ndarray = HOME, gripper_stamp: float | None = None) -> PoseObservation:
    return PoseObservation(stamp, np.asarray(state, float).copy(), gripper_stamp)


def toward_goal(request: PlanRequest) -> PlanOutput:
    """An ideal planner: step toward GOAL; energy = distance."""
    delta = np.zeros(7)
    delta[:3] = GOAL - request.state[:3]
    return PlanOutput(action=delta, energy=float(np.linalg.norm(delta[:3]) * 0.5),
                      goal_energy=float(np.linalg.norm(delta[:3])))


def drive(loop: EpisodeLoop, now: float, p: PoseObservation | None, lat: LatentArray | None,
          plan_fn=toward_goal) -> Decision:
    """One tick; a handed-out plan is planned at once and finished with the same observations (the node does
    the same, with the planning outside its lock)."""
    d = loop.tick(now, p, lat)
    if d.plan is None:
        return d
    assert d.target is None and d.status is None
    return loop.finish(d.plan, plan_fn(d.plan), now, p)


class FakeWorld:
    """A perfect arm (reaches each target instantly) and a camera that is encoded 0.05 s after each frame."""

    def __init__(self):
        self.pose = HOME.copy()
        self.t = 0.0

    def obs(self):
        return pose(self.t, self.pose), latent(self.t - 0.05)


def run(loop, world, ticks=400, plan_fn=toward_goal):
    commands, statuses = [], []
    for _ in range(ticks):
        world.t += 0.1
        p, lat = world.obs()
        d = drive(loop, world.t, p, lat, plan_fn)
        if d.target is not None:
            commands.append(d.target)
            world.pose = d.target.copy()
        if d.status is not None:
            statuses.append(d.status)
        if loop.state in (State.SUCCEEDED, State.FAILED, State.STOPPED):
            break
    return commands, statuses


def test_reaches_goal_position_in_limited_steps_and_reports_each_step():
    loop = EpisodeLoop(SafetyLimits(), LoopConfig(max_steps=20, goal_position_tolerance=0.01,
                                                  expected_model_id="m@1"))
    world = FakeWorld()
    loop.start(0.0, GOAL_LATENT, goal_position=GOAL)
    commands, statuses = run(loop, world)
    assert loop.state == State.SUCCEEDED
    assert len(commands) == 2  # 0.1 m per axis with 0.05 m steps
    for prev, cmd in zip([HOME] + commands[:-1], commands):
        assert np.all(np.abs(cmd[:3] - prev[:3]) <= 0.05 + 1e-12)
    executing = [s for s in statuses if s.state == State.EXECUTING]
    assert [s.step for s in executing] == [0, 1]
    assert any("limits:" in s.message for s in statuses)
    assert all(s.severity == Severity.INFO for s in statuses)
    np.testing.assert_allclose(executing[0].ee_state, HOME)  # the state the plan started from


def test_energy_threshold_ends_episode():
    loop = EpisodeLoop(SafetyLimits(), LoopConfig(energy_threshold=0.02))
    loop.start(0.0, GOAL_LATENT)
    run(loop, FakeWorld())
    assert loop.state == State.SUCCEEDED and "goal energy" in loop.message


def test_step_budget():
    def never(_request):
        return PlanOutput(np.array([0.01, 0, 0, 0, 0, 0, 0]), 1.0, 1.0)

    loop = EpisodeLoop(SafetyLimits(), LoopConfig(max_steps=3))
    loop.start(0.0, GOAL_LATENT)
    commands, _ = run(loop, FakeWorld(), plan_fn=never)
    assert loop.state == State.FAILED and len(commands) == 3 and "budget" in loop.message


def test_waits_for_a_latent_newer_than_the_motion():
    loop = EpisodeLoop(SafetyLimits(), LoopConfig())
    loop.start(0.0, GOAL_LATENT)
    d = drive(loop, 1.0, pose(1.0), latent(0.95))
    assert d.target is not None and loop.state == State.EXECUTING
    d = drive(loop, 1.1, pose(1.1, d.target), latent(1.05))
    assert loop.state == State.SETTLING
    assert drive(loop, 1.2, pose(1.2, HOME), latent(1.05)).target is None
    assert loop.state == State.SETTLING  # old latent: keep waiting
    assert drive(loop, 1.3, pose(1.3), latent(1.25)).target is not None


def test_only_one_plan_at_a_time():
    loop = EpisodeLoop(SafetyLimits(), LoopConfig())
    loop.start(0.0, GOAL_LATENT)
    first = loop.tick(1.0, pose(1.0), latent(0.95))
    assert first.plan is not None and loop.pending is first.plan
    assert loop.tick(1.05, pose(1.05), latent(1.0)) == Decision()  # still planning: nothing new is handed out
    d = loop.finish(first.plan, toward_goal(first.plan), 1.1, pose(1.1))
    assert d.target is not None and loop.pending is None and loop.state == State.EXECUTING


@pytest.mark.parametrize("interrupt", ["stop", "pause", "new_goal", "fail"])
def test_a_plan_overtaken_by_stop_pause_or_a_new_goal_is_never_sent(interrupt):
    """Issue 14: the plan in progress when a stop arrives must not be commanded after the stop's hold, and the
    hold goes to the newest pose, not to the pose the plan started from."""
    loop = EpisodeLoop(SafetyLimits(), LoopConfig())
    loop.start(0.0, GOAL_LATENT)
    request = loop.tick(1.0, pose(1.0), latent(0.95)).plan
    assert request is not None and loop.is_current(request)
    moved = HOME + np.array([0.02, -0.01, 0.0, 0, 0, 0, 0])  # the arm was pushed while the plan ran
    newest = pose(1.4, moved)
    if interrupt == "stop":
        hold = loop.stop(newest)
    elif interrupt == "pause":
        hold = loop.pause(newest)
    elif interrupt == "fail":
        hold = loop.fail(newest, "internal error: boom")
        assert loop.state == State.FAILED and hold.status.severity == Severity.ERROR
    else:
        hold = None
        loop.start(1.4, GOAL_LATENT)
    if hold is not None:
        np.testing.assert_array_equal(hold.target, moved)
    assert not loop.is_current(request)  # the planner's cancel check turns True
    late = loop.finish(request, toward_goal(request), 1.5, newest)
    assert late == Decision()  # no target, no status: the stale plan is dropped
    if interrupt == "new_goal":  # the new episode plans afresh from the newest observations
        assert drive(loop, 1.6, pose(1.6, moved), latent(1.55)).target is not None


def test_stop_wins_over_a_slow_plan_running_in_another_thread():
    """The node's arrangement with an injected slow planner: a stop answers at once while the plan runs, the
    planner is cancelled through its check, and its late result is discarded."""
    loop = EpisodeLoop(SafetyLimits(), LoopConfig())
    lock = threading.Lock()
    sent: list[tuple[str, np.ndarray]] = []
    loop.start(0.0, GOAL_LATENT)
    with lock:
        request = loop.tick(1.0, pose(1.0), latent(0.95)).plan
    planning = threading.Event()
    cancelled_after: list[float] = []

    def slow_plan():
        planning.set()
        t0 = time.monotonic()
        while time.monotonic() - t0 < 5.0:  # a 5 s plan that checks its cancel flag between iterations
            if not loop.is_current(request):
                cancelled_after.append(time.monotonic() - t0)
                break
            time.sleep(0.01)
        out = toward_goal(request)
        with lock:
            d = loop.finish(request, out, 2.0, pose(2.0))
            if d.target is not None:
                sent.append(("plan", d.target))

    worker = threading.Thread(target=slow_plan)
    worker.start()
    assert planning.wait(5)
    time.sleep(0.2)
    t0 = time.monotonic()
    with lock:
        d = loop.stop(pose(1.2))
        sent.append(("hold", d.target))
    assert time.monotonic() - t0 < 0.1
    worker.join(10)
    assert [k for k, _ in sent] == ["hold"] and cancelled_after and cancelled_after[0] < 1.0


def test_never_plans_from_a_pose_older_than_the_last_command():
    """Issue 14: after the settle timeout the loop re-planned even though no pose newer than its last command had
    arrived, so the step limit was applied to a stale pose (two steps' worth of motion). Now it holds and waits."""
    loop = EpisodeLoop(SafetyLimits(max_data_age_s=1.0), LoopConfig(settle_timeout=0.3, fault_timeout=5.0))
    loop.start(0.0, GOAL_LATENT)
    old_pose = pose(0.95)
    first = drive(loop, 1.0, old_pose, latent(0.95))
    assert first.target is not None
    assert drive(loop, 1.4, old_pose, latent(0.95)).status.message.startswith("did not settle")
    d = drive(loop, 1.5, old_pose, latent(1.45))  # a new frame, but the pose is still from before the command
    assert d.target is None and d.plan is None
    assert "no end-effector pose since the last command" in d.status.message and d.status.severity == Severity.WARN
    d = drive(loop, 1.6, pose(1.55, first.target), latent(1.5))  # the arm reports again: plan from there
    assert d.target is not None
    assert np.all(np.abs(d.target[:3] - first.target[:3]) <= 0.05 + 1e-12)


@pytest.mark.parametrize(
    ("p", "lat", "reason"),
    [
        (pose(1.0, np.full(7, np.nan)), latent(1.0), "not finite"),
        (pose(-5.0), latent(1.0), "end-effector pose is stale"),
        (pose(1.8), latent(1.0), "end-effector pose is stamped 0.80 s in the future"),
        (pose(1.0), latent(-5.0), "latent is stale"),
        (pose(1.0), latent(1.0, "other@2"), "expects"),
        (None, latent(1.0), "no end-effector pose"),
        (pose(1.0), None, "no latent"),
    ],
)
def test_faults_send_nothing_and_say_why(p, lat, reason):
    loop = EpisodeLoop(SafetyLimits(), LoopConfig(expected_model_id="m@1", fault_timeout=2.0))
    loop.start(0.0, GOAL_LATENT)
    d = drive(loop, 1.0, p, lat)
    assert d.target is None and d.plan is None and reason in d.status.message
    assert d.status.severity == Severity.WARN and d.status.message.startswith("holding:")
    d = drive(loop, 3.5, p, lat)
    assert d.target is None and d.status.severity == Severity.ERROR
    assert loop.state == State.FAILED  # a fault that persists ends the episode


def test_planned_gripper_needs_a_fresh_gripper_state():
    """Issue 14: with the gripper dimension planned, a gripper state never received (closedness silently 0.0) or
    gone stale is a fault like a stale pose."""
    loop = EpisodeLoop(SafetyLimits(max_data_age_s=1.0), LoopConfig(require_gripper=True))
    loop.start(0.0, GOAL_LATENT)
    d = drive(loop, 1.0, pose(1.0), latent(0.95))
    assert d.target is None and "no gripper state received yet" in d.status.message
    d = drive(loop, 3.0, pose(3.0, gripper_stamp=1.0), latent(2.95))
    assert d.target is None and "gripper state is stale" in d.status.message
    assert drive(loop, 3.1, pose(3.1, gripper_stamp=3.05), latent(3.05)).target is not None
    # a pose that went stale while the plan ran: nothing is sent
    loop2 = EpisodeLoop(SafetyLimits(max_data_age_s=1.0), LoopConfig(require_gripper=True))
    loop2.start(0.0, GOAL_LATENT)
    request = loop2.tick(1.0, pose(1.0, gripper_stamp=1.0), latent(0.95)).plan
    d = loop2.finish(request, toward_goal(request), 2.5, pose(1.0, gripper_stamp=1.0))
    assert d.target is None and "stale" in d.status.message and loop2.state == State.PLANNING


def test_no_goal_means_no_command():
    loop = EpisodeLoop(SafetyLimits())
    assert drive(loop, 1.0, pose(1.0), latent(1.0)) == Decision()
    assert loop.state == State.IDLE


def test_stop_pause_resume_hold_at_current_pose():
    loop = EpisodeLoop(SafetyLimits())
    loop.start(0.0, GOAL_LATENT)
    p = pose(1.0, HOME + np.array([0.01, 0, 0, 0, 0, 0, 0]))
    d = loop.pause(p)
    np.testing.assert_array_equal(d.target, p.state)
    assert drive(loop, 1.1, p, latent(1.1)).target is None  # paused: nothing moves
    loop.resume(1.2)
    assert drive(loop, 1.3, pose(1.3), latent(1.25)).target is not None
    d = loop.stop(pose(1.4))
    assert loop.state == State.STOPPED
    np.testing.assert_array_equal(d.target, HOME)
    assert loop.stop(pose(1.5, np.full(7, np.nan))).target is None  # never a NaN hold
    with pytest.raises(SafetyFault):
        loop.resume(2.0)


def test_report_does_not_touch_the_episode():
    loop = EpisodeLoop(SafetyLimits())
    loop.start(0.0, GOAL_LATENT)
    s = loop.report("latent refused: NaN")
    assert (s.episode, s.state, s.severity) == (1, State.PLANNING, Severity.WARN)
    assert loop.message == "goal set" and loop.state == State.PLANNING


@pytest.mark.parametrize("min_step", [0.0, 1.0, 2.5])
def test_no_step_is_commanded_sooner_than_min_step_duration_after_the_last(min_step):
    """A perfect arm settles at once and the camera keeps up, so only min_step_duration spaces the commands (0: as
    fast as settling allows, one control tick after a command; the droid preset: about 1 s per action)."""
    def never(_request):
        return PlanOutput(np.array([0.01, 0, 0, 0, 0, 0, 0]), 1.0, 1.0)

    loop = EpisodeLoop(SafetyLimits(), LoopConfig(max_steps=5, min_step_duration=min_step))
    world, times = FakeWorld(), []
    loop.start(0.0, GOAL_LATENT)
    for _ in range(400):
        world.t = round(world.t + 0.1, 6)
        d = drive(loop, world.t, *world.obs(), never)
        if d.target is not None:
            times.append(world.t)
            world.pose = d.target.copy()
        if loop.state == State.FAILED:
            break
    assert len(times) == 5, times
    gaps = np.diff(times)
    assert np.all(gaps >= min_step - 1e-9), gaps
    # no longer than needed: the step after min_step_duration, a frame taken after that, and its plan
    assert np.all(gaps <= max(min_step, 0.1) + 0.2 + 1e-9), gaps


@pytest.mark.parametrize("bad", [{"max_steps": 0}, {"settle_timeout": 0.0}, {"fault_timeout": -1.0},
                                 {"settle_position_tolerance": float("nan")}, {"energy_threshold": -0.1},
                                 {"min_step_duration": -0.5}, {"min_step_duration": float("inf")}])
def test_inconsistent_loop_config_is_refused(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        LoopConfig(**bad)

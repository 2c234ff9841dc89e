"""Goal sequences in the planner core (no ROS): per-goal budgets and thresholds, switching, the episode's outcome,
per-goal results, and the latched gripper command; plus the planning step's shortcut for reached or spent goals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vjepa_core.msgconv import LatentArray
from vjepa_planner.episode import (
    EpisodeLoop,
    GoalOutcome,
    GoalSpec,
    LoopConfig,
    PlanOutput,
    PlanRequest,
    PoseObservation,
    State,
)
from vjepa_planner.safety import SafetyLimits

HOME = np.array([0.5, 0.0, 0.4, np.pi, 0.0, 0.0, 0.0])
FIXTURE = Path(__file__).resolve().parents[4] / "tests" / "fixtures" / "parity_tiny_a"


def latent(stamp: float, value: float = 0.0) -> LatentArray:
    return LatentArray(tokens=np.full((1, 2, 2, 4), value, np.float32), model_id="m@1", normalized=True, stamp=stamp)


def goal(value: float, max_steps: int, threshold: float = 0.0) -> GoalSpec:
    """A goal told apart by its token value; the test planner's goal energy is |position x - value| / 10."""
    return GoalSpec(latent(0.0, value), max_steps, threshold)


class World:
    """A perfect arm (reaches each target at once; the gripper state is what the test sets) and a camera encoded
    0.05 s after each frame. Plans step x toward the goal's token value, 2 cm at a time."""

    def __init__(self, gripper: float = 0.0, dgripper: float = 0.0):
        self.pose = HOME.copy()
        self.pose[6] = gripper
        self.dgripper = dgripper
        self.t = 0.0
        self.requests: list[PlanRequest] = []

    def plan(self, request: PlanRequest) -> PlanOutput:
        self.requests.append(request)
        target_x = float(request.goal.tokens.flat[0])
        goal_energy = abs(request.state[0] - target_x) / 10
        if request.measure_only or (request.energy_threshold > 0 and goal_energy <= request.energy_threshold):
            return PlanOutput(np.zeros(7), float("nan"), goal_energy, planned=False)
        action = np.zeros(7)
        action[0] = np.clip(target_x - request.state[0], -0.02, 0.02)
        action[6] = self.dgripper
        return PlanOutput(action, goal_energy, goal_energy)

    def run(self, loop: EpisodeLoop, ticks: int = 500):
        targets, statuses = [], []
        for _ in range(ticks):
            self.t += 0.1
            p = PoseObservation(self.t, self.pose.copy(), self.t)
            d = loop.tick(self.t, p, latent(self.t - 0.05))
            if d.plan is not None:
                d = loop.finish(d.plan, self.plan(d.plan), self.t, p)
            if d.target is not None:
                targets.append(d.target)
                self.pose[:6] = d.target[:6]  # the fingers' reading stays what the test set
            if d.status is not None:
                statuses.append(d.status)
            if loop.state in (State.SUCCEEDED, State.FAILED, State.STOPPED):
                break
        return targets, statuses


def test_budgets_switch_goals_and_the_last_budget_fails_the_episode():
    """The paper's pick-and-place budgets 4 / 10 / 4 without thresholds: each goal gets exactly its steps, the
    switch is no failure, the last budget ends the episode as FAILED ("step budget ... exhausted"), and each goal's
    energy is measured once more after its last step (no plan for it)."""
    loop = EpisodeLoop(SafetyLimits(), LoopConfig())
    world = World()
    episode = loop.start_goals(0.0, [goal(0.9, 4), goal(0.2, 10), goal(0.9, 4)])
    assert loop.message == "3 goals set" and loop.state == State.PLANNING
    targets, statuses = world.run(loop)
    assert loop.state == State.FAILED and loop.message.startswith("goal 3/3: step budget of 4 exhausted")
    assert len(targets) == 18
    planned = [r for r in world.requests if not r.measure_only]
    assert [r.goal_index for r in planned] == [0] * 4 + [1] * 10 + [2] * 4
    assert [float(r.goal.tokens.flat[0]) for r in planned] == pytest.approx([0.9] * 4 + [0.2] * 10 + [0.9] * 4)
    measured = [r for r in world.requests if r.measure_only]
    assert [(r.goal_index, r.step) for r in measured] == [(0, 4), (1, 14), (2, 18)]  # after each goal's last step
    results = loop.results()
    assert [r.outcome for r in results] == [GoalOutcome.BUDGET_SPENT] * 3
    assert [r.steps for r in results] == [4, 10, 4]
    # the final energies are those after the last steps: x went 0.5 -> 0.58 -> 0.38 -> 0.46
    np.testing.assert_allclose([r.final_goal_energy for r in results], [0.032, 0.018, 0.044], atol=1e-6)
    executing = [s for s in statuses if s.state == State.EXECUTING]
    assert [(s.goal_index, s.goal_step) for s in executing] == (
        [(0, i) for i in range(4)] + [(1, i) for i in range(10)] + [(2, i) for i in range(4)])
    assert [s.step for s in executing] == list(range(18))
    assert all(s.num_goals == 3 and s.episode == episode for s in statuses)
    switches = [s.message for s in statuses if "next: goal" in s.message]
    assert switches == ["goal 1/3: step budget of 4 exhausted (goal energy 0.0320); next: goal 2/3",
                        "goal 2/3: step budget of 10 exhausted (goal energy 0.0180); next: goal 3/3"]


def test_thresholds_switch_early_and_the_last_goal_reached_succeeds():
    """A reached threshold moves on at once (no command for the reached goal); the episode SUCCEEDS when the last
    goal's threshold is reached, even when its budget's last step reached it (issue 15: the energy after the last
    step was never looked at; a one-goal episode that got there on its last step was FAILED)."""
    loop = EpisodeLoop(SafetyLimits(), LoopConfig())
    world = World()
    loop.start_goals(0.0, [goal(0.5, 5, 0.001), goal(0.56, 2, 0.0), goal(0.56, 1, 0.0011)])
    targets, statuses = world.run(loop)
    assert loop.state == State.SUCCEEDED, loop.message
    assert loop.message.startswith("goal 3/3: goal energy 0.0000 <= threshold 0.0011")
    assert [r.outcome for r in loop.results()] == [GoalOutcome.REACHED, GoalOutcome.BUDGET_SPENT,
                                                   GoalOutcome.REACHED]
    assert [r.steps for r in loop.results()] == [0, 2, 1]
    assert len(targets) == 3
    assert "goal 1/3: goal energy 0.0000 <= threshold 0.0010; next: goal 2/3" in [s.message for s in statuses]

    one = EpisodeLoop(SafetyLimits(), LoopConfig(max_steps=3, energy_threshold=0.001))
    one.start(0.0, latent(0.0, 0.56))  # three 2 cm steps from x = 0.5: reached by the last one
    targets, _ = World().run(one)
    assert len(targets) == 3 and one.state == State.SUCCEEDED and one.message.startswith("goal energy")
    assert one.results()[0].outcome == GoalOutcome.REACHED and one.results()[0].steps == 3


@pytest.mark.parametrize("end", ["stop", "fail", "fault"])
def test_an_episode_ended_early_says_which_goal_it_ended(end):
    loop = EpisodeLoop(SafetyLimits(), LoopConfig(fault_timeout=1.0))
    world = World()
    loop.start_goals(0.0, [goal(0.5, 3, 0.001), goal(0.9, 10), goal(0.9, 4)])
    for _ in range(30):  # goal 1 reached at once, two steps toward goal 2
        world.t += 0.1
        p = PoseObservation(world.t, world.pose.copy(), world.t)
        d = loop.tick(world.t, p, latent(world.t - 0.05))
        if d.plan is not None:
            d = loop.finish(d.plan, world.plan(d.plan), world.t, p)
        if d.target is not None:
            world.pose[:6] = d.target[:6]
        if loop.step == 2:
            break
    assert loop.goal_index == 1
    if end == "stop":
        loop.stop(PoseObservation(world.t, world.pose.copy()))
        state, outcome = State.STOPPED, GoalOutcome.STOPPED
    elif end == "fail":
        loop.fail(PoseObservation(world.t, world.pose.copy()), "internal error: boom")
        state, outcome = State.FAILED, GoalOutcome.FAILED
    else:
        t = world.t
        loop.tick(t + 0.1, PoseObservation(t + 0.1, world.pose.copy(), t + 0.1), latent(t))  # settled
        for dt in (0.3, 1.5):  # then the pose stream stops: a fault that persists
            loop.tick(t + dt, PoseObservation(t - 5.0, world.pose.copy(), t), latent(t + dt - 0.05))
        state, outcome = State.FAILED, GoalOutcome.FAILED
    assert loop.state == state
    assert [r.outcome for r in loop.results()] == [GoalOutcome.REACHED, outcome, GoalOutcome.NOT_STARTED]
    assert [r.steps for r in loop.results()] == [0, 2, 0]


def test_goal_specs_and_sequences_are_checked():
    with pytest.raises(ValueError, match="at least one goal"):
        EpisodeLoop(SafetyLimits()).start_goals(0.0, [])
    for bad, match in [({"max_steps": 0}, "max_steps"), ({"max_steps": 2.5}, "max_steps"),
                       ({"energy_threshold": -0.1}, "energy_threshold"),
                       ({"energy_threshold": float("nan")}, "energy_threshold"),
                       ({"position": [0.1, 0.2]}, "position")]:
        with pytest.raises(ValueError, match=match):
            GoalSpec(**{"latent": latent(0.0), "max_steps": 3, **bad})


@pytest.mark.parametrize(("fingers", "dgripper", "command"), [
    (0.0, 0.75, 1.0),     # open, the plan closes: close
    (0.0, 0.3, 0.0),      # open, the imagined closedness 0.3 stays below 0.5: stay open
    (0.375, 0.0, 1.0),    # closed on a 5 cm cup (reads 0.375 < 0.5), the plan keeps it: stay closed
    (0.375, 0.1, 1.0),    # ... a small positive delta: still closed
    (0.375, -0.3, 0.0),   # ... the plan opens: open
    (1.0, -0.3, 1.0),     # closed on nothing, imagined 0.7: stay closed
])
def test_the_gripper_command_is_latched_and_changes_only_when_the_plan_crosses_the_threshold(fingers, dgripper,
                                                                                              command):
    """Issue 15: targets carried the measured closedness plus the planned delta, and the adapter closes above 0.5,
    so a hand closed on a 5 cm cup (closedness 0.375) was commanded open by the next step with a zero delta, and
    by every hold. Now every target carries the latched command."""
    loop = EpisodeLoop(SafetyLimits(), LoopConfig(max_steps=3))
    world = World(gripper=fingers, dgripper=dgripper)
    loop.start(0.0, latent(0.0, 0.9))
    targets, _ = world.run(loop)
    assert len(targets) == 3 and all(t[6] == command for t in targets), [t[6] for t in targets]
    hold = loop.stop(PoseObservation(world.t, world.pose.copy())).target
    assert hold[6] == command  # a stop never changes the gripper


def test_the_gripper_latch_is_read_from_the_fingers_at_each_episode_start():
    """A new episode (the world may have been reset in between) starts from what the fingers show."""
    loop = EpisodeLoop(SafetyLimits(), LoopConfig(max_steps=1))
    world = World(gripper=0.0, dgripper=0.75)
    loop.start(0.0, latent(0.0, 0.9))
    assert world.run(loop)[0][0][6] == 1.0 and loop.gripper_closed
    world.pose[6], world.dgripper = 0.0, 0.0  # reset: the hand is open again
    loop.start(world.t, latent(0.0, 0.9))
    assert world.run(loop)[0][0][6] == 0.0 and loop.gripper_closed is False
    with pytest.raises(ValueError, match="gripper_closed_above"):
        LoopConfig(gripper_closed_above=0.5)


@pytest.fixture(scope="module")
def latent_planner():
    from vjepa_core.loading import load_world_model
    from vjepa_core.planning import CEMConfig
    from vjepa_planner.world_planner import LatentPlanner

    model = load_world_model(FIXTURE / "checkpoint.pt", FIXTURE / "config.json", encoder=False, predictor=True,
                             threads=1)
    grid = json.loads((FIXTURE / "config.json").read_text())["predictor"]["img_size"] // 16
    return LatentPlanner(model.world_model, CEMConfig(samples=16, iterations=2, topk=4, seed=0), (grid, grid))


def test_the_planning_step_skips_the_search_for_a_measurement_or_a_reached_goal(latent_planner):
    """Moving on from a reached or spent goal costs no CEM search: only the goal energy is computed."""
    rng = np.random.default_rng(0)
    cam = LatentArray(tokens=rng.normal(size=(1, 4, 4, 96)).astype(np.float32), model_id="m", normalized=True,
                      stamp=1.0)
    far = LatentArray(tokens=rng.normal(size=(1, 4, 4, 96)).astype(np.float32), model_id="m", normalized=True)
    calls = []
    unroll = latent_planner.cem.unroll
    latent_planner.cem.unroll = lambda *a: calls.append(1) or unroll(*a)
    try:
        def request(goal, **kw):
            return PlanRequest(0, 1, 0, goal, cam, HOME.copy(), 1.0, **kw)

        full = latent_planner(request(far))
        assert full.planned and len(calls) == 3 and np.isfinite(full.energy)  # 2 iterations + the plan's energy
        measured = latent_planner(request(far, measure_only=True))
        assert not measured.planned and len(calls) == 3 and measured.goal_energy == pytest.approx(full.goal_energy)
        reached = latent_planner(request(cam, energy_threshold=1e-6))
        assert not reached.planned and reached.goal_energy == 0.0 and len(calls) == 3
        expected = float(latent_planner.cem.objective(latent_planner.tokens(cam)[None], latent_planner.tokens(far))[0])
        assert measured.goal_energy == pytest.approx(expected)
    finally:
        latent_planner.cem.unroll = unroll

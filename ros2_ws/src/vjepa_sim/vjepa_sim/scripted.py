"""Reference policies for the manipulation tasks, and an episode loop that runs them in the simulator (no ROS).

- :class:`ScriptedPolicy` (the upper bound): a state-based controller that reads the true object pose and
  follows each sub-goal in turn: approach above the object, descend, grasp, lift, carry, lower, release. It
  shows that every task is solvable in the sim with the same step bound and budgets as the planner.
- :class:`RandomPolicy` (the lower bound): uniformly random moves of the same bound, and random gripper
  commands.

A policy sees a :class:`~vjepa_sim.tasks.SceneState` and the index of the current sub-goal and returns one
:class:`StepCommand`: an end-effector target at most ``maxnorm`` per axis from the current position (the
planner's ``cem_maxnorm``), the fixed wrist orientation, and optionally a gripper command. The evaluation
(``vjepa-sim eval --policy scripted|random``) runs the same policies through the ROS graph; :func:`run_task`
runs them on a :class:`~vjepa_sim.scene.FrankaSim` directly (tests, development).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from vjepa_core.franka import MAX_GRIPPER_WIDTH

from .objects import OBJECT_KINDS, grasp_height
from .tasks import OPEN_MARGIN, SceneState, TaskEpisode, goal_reached, is_held, measure, observe, reset_sim

__all__ = ["RandomPolicy", "ScriptedPolicy", "StepCommand", "TaskRun", "apply_command", "make_policy", "run_task",
           "settle"]

HOVER_CLEARANCE = 0.025  # the grasp point this far above the object's top before the last, vertical descent [m]
ALIGN_TOLERANCE = 0.008  # horizontal grasp-point error before descending [m]
HEIGHT_TOLERANCE = 0.006  # vertical error at the grasp height before closing [m]
PLACE_HEIGHT = 0.005  # release with the object's bottom this far above the table [m]
# Random policy: stays in this box (a little larger than the tasks' area) [m].
RANDOM_MIN = (0.35, -0.22, 0.02)
RANDOM_MAX = (0.68, 0.22, 0.35)


@dataclass
class StepCommand:
    """One step: where the end effector goes, and what the gripper does ("close", "open" or None)."""

    position: np.ndarray
    quaternion: np.ndarray
    gripper: str | None = None
    phase: str = ""  # what the policy is doing (logs and records)


class ScriptedPolicy:
    """State-based pick-and-place controller using the true object pose (the solvability upper bound)."""

    name = "scripted"
    stops_at_goal = True  # moves to the next sub-goal once the state shows the current one (like the planner)

    def __init__(self, episode: TaskEpisode, maxnorm: float = 0.05) -> None:
        if not maxnorm > 0:
            raise ValueError(f"maxnorm must be > 0, got {maxnorm}")
        self.episode = episode
        self.maxnorm = float(maxnorm)
        self.quat = np.asarray(episode.start_quaternion, dtype=np.float64)

    def _move(self, ee: np.ndarray, target: object, phase: str, gripper: str | None = None) -> StepCommand:
        step = np.clip(np.asarray(target, dtype=np.float64) - ee, -self.maxnorm, self.maxnorm)
        return StepCommand(ee + step, self.quat.copy(), gripper, phase)

    def act(self, state: SceneState, goal_index: int) -> StepCommand:
        """The next step toward sub-goal ``goal_index`` from ``state``."""
        goal = self.episode.goals[goal_index]
        kind = OBJECT_KINDS[state.kind]
        ee = np.asarray(state.ee_position, dtype=np.float64)
        obj = np.asarray(state.object_position, dtype=np.float64)
        held = is_held(state)
        gripper_open = state.gripper_width >= kind.grip_width + OPEN_MARGIN
        if goal.holds:
            if held:
                return self._move(ee, goal.ee_position, "carry")
            if not gripper_open:  # closed on nothing (a missed grasp): open and try again
                return self._move(ee, ee + [0.0, 0.0, 0.02], "reopen", "open")
            hover = obj[2] + kind.height / 2.0 + HOVER_CLEARANCE
            if np.linalg.norm(ee[:2] - obj[:2]) > ALIGN_TOLERANCE:  # above the object, not lower than hover
                return self._move(ee, [obj[0], obj[1], max(hover, ee[2] - self.maxnorm)], "approach")
            if ee[2] - obj[2] > HEIGHT_TOLERANCE:
                return self._move(ee, [obj[0], obj[1], obj[2]], "descend")
            return self._move(ee, ee, "close", "close")
        # an open-gripper goal: put the object down under the goal position, let go, and rise to the goal
        if held:
            place = np.array([goal.ee_position[0], goal.ee_position[1], grasp_height(state.kind) + PLACE_HEIGHT])
            if np.linalg.norm(ee - place) > 0.01:
                return self._move(ee, place, "lower")
            return self._move(ee, ee, "release", "open")
        if not gripper_open:
            return self._move(ee, ee, "release", "open")
        return self._move(ee, goal.ee_position, "withdraw")


class RandomPolicy:
    """Uniformly random moves within ``maxnorm`` per axis and random gripper commands (the lower bound)."""

    name = "random"
    stops_at_goal = False  # it does not know the goal: it spends every sub-goal's budget

    def __init__(self, episode: TaskEpisode, seed: int, maxnorm: float = 0.05) -> None:
        self.episode = episode
        self.maxnorm = float(maxnorm)
        self.rng = np.random.default_rng(seed)
        self.quat = np.asarray(episode.start_quaternion, dtype=np.float64)

    def act(self, state: SceneState, goal_index: int) -> StepCommand:
        """A random step (``goal_index`` is ignored)."""
        ee = np.asarray(state.ee_position, dtype=np.float64)
        target = np.clip(ee + self.rng.uniform(-self.maxnorm, self.maxnorm, size=3), RANDOM_MIN, RANDOM_MAX)
        u = self.rng.random()
        gripper = "close" if u < 0.25 else "open" if u < 0.5 else None
        return StepCommand(target, self.quat.copy(), gripper, "random")


def make_policy(name: str, episode: TaskEpisode, seed: int = 0, maxnorm: float = 0.05) -> object:
    """``scripted`` or ``random`` policy for ``episode`` (``seed`` drives the random one)."""
    if name == "scripted":
        return ScriptedPolicy(episode, maxnorm)
    if name == "random":
        return RandomPolicy(episode, seed, maxnorm)
    raise ValueError(f"unknown policy {name!r} (scripted or random)")


def apply_command(sim: object, cmd: StepCommand, force: float = 0.0) -> None:
    """Send a step's target and gripper command to a FrankaSim (grasp = force-limited close)."""
    sim.set_target(cmd.position, cmd.quaternion)
    if cmd.gripper == "close":
        sim.set_gripper(0.0, grasp=True, force=force)
    elif cmd.gripper == "open":
        sim.set_gripper(MAX_GRIPPER_WIDTH)


def settle(sim: object, target: np.ndarray, min_s: float = 0.2, max_s: float = 2.5) -> float:
    """Step ``sim`` until the arm and fingers have stopped (at least ``min_s``, at most ``max_s`` of sim time).

    Stopped: the end effector is within 3 mm of ``target`` or moved less than 0.2 mm in the last 50 ms (it
    may be blocked), and the fingers move slower than 2 mm/s. Returns the sim time it took.
    """
    chunk = max(1, int(round(0.05 * sim.config.physics_rate_hz)))
    t0 = sim.time
    prev = sim.ee_pose()[0]
    while sim.time - t0 < max_s:
        sim.step(chunk)
        pos = sim.ee_pose()[0]
        arm_still = np.linalg.norm(pos - target) < 0.003 or np.linalg.norm(pos - prev) < 0.0002
        fingers_still = float(np.abs(sim.finger_velocities()).max()) < 0.002
        prev = pos
        if sim.time - t0 >= min_s and arm_still and fingers_still:
            break
    return sim.time - t0


@dataclass
class TaskRun:
    """What :func:`run_task` returns."""

    success: bool
    measures: object  # tasks.Measures of the final state
    steps: int
    steps_per_goal: list
    trace: list = field(default_factory=list)  # per step: goal index, phase, ee and object positions, held


def run_task(sim: object, episode: TaskEpisode, policy: object, reset: bool = True,
             after_step: Callable[[StepCommand], None] | None = None) -> TaskRun:
    """Run ``policy`` on ``episode`` in ``sim``: each sub-goal gets its step budget (a policy that stops at
    goals moves on as soon as the state shows the sub-goal); the final state is measured. ``after_step(cmd)``
    is called once each step has settled (e.g. to render what the cameras see then)."""
    if reset:
        reset_sim(sim, episode)
    trace: list = []
    per_goal: list = []
    for k, goal in enumerate(episode.goals):
        n = 0
        while n < goal.max_steps:
            state = observe(sim, episode)
            if getattr(policy, "stops_at_goal", False) and goal_reached(goal, state):
                break
            cmd = policy.act(state, k)
            apply_command(sim, cmd)
            settle(sim, cmd.position)
            if after_step is not None:
                after_step(cmd)
            n += 1
            trace.append({"goal": k, "step": n, "phase": cmd.phase,
                          "ee": [round(float(v), 4) for v in state.ee_position],
                          "object": [round(float(v), 4) for v in state.object_position],
                          "held": is_held(state), "gripper": cmd.gripper})
        per_goal.append(n)
    final = measure(episode, observe(sim, episode))
    return TaskRun(final.success, final, int(sum(per_goal)), per_goal, trace)

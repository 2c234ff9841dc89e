"""The receding-horizon control loop of the planner as a pure state machine (no ROS, no model).

As in the paper: plan, command one action, wait until the arm settles at the target (and at least
``LoopConfig.min_step_duration`` has passed since the command) and a camera latent newer than the motion arrives,
plan again; until the goal criterion, the step budget, a stop request or a fault ends the
episode. The node feeds observations in and sends out whatever the loop returns, so every rule here is tested
without a ROS graph.

An episode is a sequence of goals (:class:`GoalSpec`: a goal latent, its own step budget and energy threshold),
as the paper's pick-and-place with three goal images and budgets 4 / 10 / 4. The loop pursues goal *i* until its
goal energy is <= its threshold (REACHED) or its budget is spent (BUDGET_SPENT: after the budget's last step
the goal energy is measured once more, without planning, so the last step counts), then moves on to goal *i+1*
at once, from the same observation. A spent budget is no failure for an intermediate goal. The episode's outcome:
SUCCEEDED when the last goal is reached; FAILED ("step budget of N exhausted") when the last goal's budget is
spent first, or when a fault persists or the planner errs; STOPPED on stop. A one-goal episode (``start``) follows
exactly these rules. :meth:`EpisodeLoop.results` says how each goal ended.

The gripper: every target carries a gripper *command*, 1.0 (closed) or 0.0 (open), for the adapter (which
closes above 0.5 and sends only on change). The loop latches it: it changes only when a plan's gripper delta
moves the imagined closedness (measured + delta, as the world model sees it) across 0.5 in the delta's
direction; a zero delta keeps it. So a grasp holds: fingers closed on a 5 cm cup read 0.375, below 0.5, and the
measured value must not become an "open" command in the next step or in a stop's hold. At an episode's first
target the latch is read from the fingers (closed above ``LoopConfig.gripper_closed_above``).

Planning is slow (up to a second) and must never delay a stop, so the loop does not plan itself:
:meth:`EpisodeLoop.tick` hands out a :class:`PlanRequest` stamped with the loop's *generation*, the caller plans
outside its lock and gives the result back to :meth:`EpisodeLoop.finish`. ``start``, ``stop``, ``pause``,
``resume`` and ``fail`` bump the generation, so a plan that was running when one of them happened is discarded
by ``finish``: no target computed before a stop is ever sent after it. The caller may also pass
:meth:`EpisodeLoop.is_current` to the planner as a cancel check, so the abandoned plan ends early.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vjepa_core.msgconv import LatentArray

from .safety import SafetyFault, SafetyLimits, check_finite, check_fresh, check_model, make_safe_command

__all__ = ["State", "Severity", "GoalOutcome", "GoalSpec", "GoalResult", "PoseObservation", "PlanRequest",
           "PlanOutput", "Status", "Decision", "LoopConfig", "EpisodeLoop", "TERMINAL", "GRIPPER_THRESHOLD"]


class State(enum.IntEnum):
    """Mirrors the ``STATE_*`` constants of ``vjepa_interfaces/PlanStatus``."""

    IDLE = 0
    PLANNING = 1
    EXECUTING = 2
    SETTLING = 3
    PAUSED = 4
    SUCCEEDED = 5
    FAILED = 6
    STOPPED = 7


TERMINAL = (State.SUCCEEDED, State.FAILED, State.STOPPED)

#: Closedness above which the robot adapters close the gripper (``vjepa_planner.adapters``).
GRIPPER_THRESHOLD = 0.5


class GoalOutcome(enum.IntEnum):
    """How one goal of an episode ended; mirrors ``OUTCOME_*`` of ``vjepa_interfaces/action/ReachGoals``."""

    NOT_STARTED = 0   # the episode ended before this goal began
    REACHED = 1       # goal energy <= its threshold (or the goal position was reached)
    BUDGET_SPENT = 2  # its step budget ended it
    STOPPED = 3       # a stop, a cancel or a new goal ended the episode while this goal was pursued
    FAILED = 4        # a fault or an internal error ended the episode while this goal was pursued


@dataclass(frozen=True)
class GoalSpec:
    """One goal of an episode: the latent to reach, the planning steps allowed toward it and when it counts as
    reached (``energy_threshold`` > 0: goal energy <= it; ``position`` with ``LoopConfig.goal_position_tolerance``:
    the end effector within that distance of it). Defaults of a node are resolved by the caller."""

    latent: LatentArray
    max_steps: int
    energy_threshold: float = 0.0       # 0: no threshold (the goal runs its whole budget)
    position: np.ndarray | None = None  # [3] optional goal position (tests and scripted goals)
    plan_gripper: bool | None = None    # search the gripper toward this goal (None: the planner's setting)

    def __post_init__(self) -> None:
        if isinstance(self.max_steps, bool) or int(self.max_steps) != self.max_steps or self.max_steps < 1:
            raise ValueError(f"a goal's max_steps must be an integer >= 1, got {self.max_steps!r}")
        threshold = float(self.energy_threshold)
        if not (np.isfinite(threshold) and threshold >= 0):
            raise ValueError(f"a goal's energy_threshold must be a finite number >= 0, got {self.energy_threshold}")
        if self.position is not None:
            position = np.asarray(self.position, float).reshape(-1)
            if position.shape != (3,) or not np.all(np.isfinite(position)):
                raise ValueError(f"a goal's position must be 3 finite numbers, got {self.position!r}")
            object.__setattr__(self, "position", position)


@dataclass(frozen=True)
class GoalResult:
    """How one goal ended, the planning steps taken toward it and its goal energy at its last measurement."""

    outcome: GoalOutcome
    steps: int
    final_goal_energy: float  # NaN when never measured


class Severity(enum.IntEnum):
    """How a status is logged: progress (info), a fault the loop holds on (warning), an episode lost (error)."""

    INFO = 0
    WARN = 1
    ERROR = 2


@dataclass(frozen=True)
class PoseObservation:
    """The newest end-effector state. Times in seconds (ROS time of the node's clock)."""

    stamp: float                        # the pose's header stamp (its receipt time when unstamped)
    state: np.ndarray                   # [7] x, y, z, roll, pitch, yaw (extrinsic "xyz"), gripper closedness
    gripper_stamp: float | None = None  # when the closedness in state[6] was measured (None: never)


@dataclass(frozen=True)
class PlanRequest:
    """One planning job handed out by :meth:`EpisodeLoop.tick`; only valid while its generation is current."""

    generation: int
    episode: int
    step: int
    goal: LatentArray
    latent: LatentArray                 # the camera latent to plan from
    state: np.ndarray                   # [7] the end-effector state to plan from
    issued: float                       # node time the request was made
    goal_index: int = 0                 # which goal of the episode ``goal`` is
    energy_threshold: float = 0.0       # the goal's threshold: a planner may skip the search when it is met
    measure_only: bool = False          # only the goal energy is wanted (the goal's budget is spent): no plan
    plan_gripper: bool | None = None    # the goal's gripper mode: search it (True), hold it (False), None: default


@dataclass
class PlanOutput:
    """What the planner returns for one :class:`PlanRequest`."""

    action: np.ndarray          # [7] proposed action (before safety limits)
    energy: float               # predicted energy of that action
    goal_energy: float          # energy of the current observation to the goal (no action)
    planning_time: float = 0.0  # seconds of wall time
    cancelled: bool = False     # the planner gave up because the request stopped being current
    planned: bool = True        # False: no search ran (measure_only, or the goal energy met the threshold)
    info: dict[str, Any] = field(default_factory=dict)


def _zeros() -> np.ndarray:
    return np.zeros(7)


@dataclass
class Status:
    """One ``PlanStatus`` worth of report (the node adds the header and the CEM sizes)."""

    episode: int
    step: int
    state: State
    message: str
    severity: Severity = Severity.INFO
    energy: float = float("nan")
    goal_energy: float = float("nan")
    action: np.ndarray = field(default_factory=_zeros)       # [7] after safety limits
    raw_action: np.ndarray = field(default_factory=_zeros)   # [7] as planned
    ee_state: np.ndarray = field(default_factory=_zeros)     # [7] the state the plan started from
    planning_time: float = 0.0
    latent_age: float = 0.0
    goal_index: int = 0    # the goal being pursued (0-based)
    num_goals: int = 0     # goals of the episode (0 before the first episode)
    goal_step: int = 0     # planning steps taken toward this goal


@dataclass
class Decision:
    """Result of one loop call: a target to command, a status to publish, a plan to run (each may be None)."""

    target: np.ndarray | None = None    # [7] target state for the robot adapter
    status: Status | None = None
    plan: PlanRequest | None = None


@dataclass
class LoopConfig:
    """Episode rules. Distances in metres, angles in radians, times in seconds."""

    max_steps: int = 20
    energy_threshold: float = 0.0           # goal reached when goal_energy <= this (0 disables)
    goal_position_tolerance: float = 0.0    # goal reached when |ee - goal_position| <= this (0 disables)
    settle_position_tolerance: float = 0.01
    settle_timeout: float = 5.0
    min_step_duration: float = 0.0         # a step lasts at least this long: the arm is not called settled (so
    #                                        nothing is planned or commanded) sooner after a command (0: no minimum)
    fault_timeout: float = 10.0             # a fault lasting this long ends the episode as FAILED
    expected_model_id: str = ""             # "" accepts latents of any model
    require_gripper: bool = False           # the gripper is planned: a missing/stale gripper state is a fault
    gripper_closed_above: float = 0.1       # fingers reading more closedness count as closed at an episode's start

    def __post_init__(self) -> None:
        problems = []
        if int(self.max_steps) < 1:
            problems.append(f"max_steps must be >= 1, got {self.max_steps}")
        for name in ("settle_position_tolerance", "settle_timeout", "fault_timeout"):
            value = float(getattr(self, name))
            if not (np.isfinite(value) and value > 0):
                problems.append(f"{name} must be a positive number, got {value}")
        for name in ("energy_threshold", "goal_position_tolerance", "min_step_duration"):
            value = float(getattr(self, name))
            if not (np.isfinite(value) and value >= 0):
                problems.append(f"{name} must be >= 0, got {value}")
        if not 0.0 <= float(self.gripper_closed_above) < GRIPPER_THRESHOLD:
            problems.append(f"gripper_closed_above must be in [0, {GRIPPER_THRESHOLD}), "
                            f"got {self.gripper_closed_above}")
        if problems:
            raise ValueError("; ".join(problems))


class EpisodeLoop:
    """One planning episode at a time. Not thread-safe: the caller serialises calls (the node's loop lock)."""

    def __init__(self, limits: SafetyLimits, config: LoopConfig | None = None) -> None:
        self.limits = limits
        self.config = config or LoopConfig()
        self.state = State.IDLE
        self.episode = 0
        self.step = 0
        self.generation = 0
        self.message = "waiting for a goal"
        self.goals: list[GoalSpec] = []
        self.goal_index = 0
        self.goal_step = 0
        self.goal: LatentArray | None = None
        self.goal_position: np.ndarray | None = None
        self.pending: PlanRequest | None = None
        self.last_plan: PlanOutput | None = None
        self.gripper_closed: bool | None = None  # the latched gripper command (None: read it from the fingers)
        self._outcomes: list[GoalOutcome] = []
        self._goal_steps: list[int] = []
        self._goal_energies: list[float] = []
        self._target: np.ndarray | None = None
        self._command_time: float | None = None
        self._settled_time: float | None = None
        self._fault_since: float | None = None

    @property
    def active(self) -> bool:
        """An episode is running or paused (a stop or shutdown has something to end)."""
        return self.state not in TERMINAL and self.state != State.IDLE

    def is_current(self, request: PlanRequest) -> bool:
        """Whether ``request`` is still wanted (no start/stop/pause/resume/fail since it was handed out)."""
        return request.generation == self.generation

    def results(self) -> list[GoalResult]:
        """How each goal of the current (or last) episode ended so far, in order."""
        return [GoalResult(o, s, e) for o, s, e in zip(self._outcomes, self._goal_steps, self._goal_energies)]

    # ---- commands from services -------------------------------------------------------------------------------
    def start(self, now: float, goal: LatentArray, goal_position: np.ndarray | None = None,
              paused: bool = False) -> int:
        """Begin a one-goal episode toward ``goal`` with the config's budget and threshold; returns its id."""
        spec = GoalSpec(goal, int(self.config.max_steps), float(self.config.energy_threshold), goal_position)
        return self.start_goals(now, [spec], paused)

    def start_goals(self, now: float, goals: Sequence[GoalSpec], paused: bool = False) -> int:
        """Begin a new episode through ``goals`` in order; returns the episode id. A plan still running (of an
        episode this one replaces) is discarded."""
        goals = list(goals)
        if not goals:
            raise ValueError("an episode needs at least one goal")
        self._new_generation()
        self.episode += 1
        self.step = 0
        self.goals = goals
        self.goal_index = 0
        self.goal_step = 0
        self._outcomes = [GoalOutcome.NOT_STARTED] * len(goals)
        self._goal_steps = [0] * len(goals)
        self._goal_energies = [float("nan")] * len(goals)
        self._select_goal()
        self.gripper_closed = None  # read from the fingers at the first target (the world may have been reset)
        self._target = None
        self._command_time = None
        self._settled_time = None
        self._fault_since = None
        self.last_plan = None
        self.state = State.PAUSED if paused else State.PLANNING
        what = "goal set" if len(goals) == 1 else f"{len(goals)} goals set"
        self.message = what + (", paused until resume" if paused else "")
        return self.episode

    def stop(self, pose: PoseObservation | None, reason: str = "stop requested") -> Decision:
        """End the episode and hold at ``pose`` (the newest pose; when known and finite)."""
        self._new_generation()
        if self.active:
            self._end_current(GoalOutcome.STOPPED)
            self.state = State.STOPPED
        return Decision(target=self._hold_target(pose), status=self._status(reason))

    def fail(self, pose: PoseObservation | None, reason: str) -> Decision:
        """End the episode as FAILED (an internal error) and hold at ``pose``."""
        self._new_generation()
        if self.active:
            self._end_current(GoalOutcome.FAILED)
            self.state = State.FAILED
        return Decision(target=self._hold_target(pose), status=self._status(reason, severity=Severity.ERROR))

    def pause(self, pose: PoseObservation | None) -> Decision:
        """Hold at ``pose`` until :meth:`resume`."""
        if not self.active:
            raise SafetyFault(f"nothing to pause: episode is {self.state.name}")
        self._new_generation()
        self.state = State.PAUSED
        return Decision(target=self._hold_target(pose), status=self._status("paused"))

    def resume(self, now: float) -> Decision:
        """Continue a paused episode with a fresh plan (from a latent newer than ``now``)."""
        if self.state != State.PAUSED:
            raise SafetyFault(f"nothing to resume: episode is {self.state.name}")
        self._new_generation()
        self.state = State.PLANNING
        self._fault_since = None
        self._settled_time = now
        return Decision(status=self._status("resumed"))

    def report(self, message: str, severity: Severity = Severity.WARN) -> Status:
        """A status about something outside the episode (e.g. a refused message); changes nothing."""
        return Status(self.episode, self.step, self.state, message, severity, goal_index=self.goal_index,
                      num_goals=len(self.goals), goal_step=self.goal_step)

    # ---- the loop ------------------------------------------------------------------------------------------
    def tick(self, now: float, pose: PoseObservation | None, latent: LatentArray | None) -> Decision:
        """Advance the episode with the newest pose and latent: settle, wait, or hand out a plan request."""
        if self.state == State.EXECUTING:
            return self._check_settled(now, pose)
        if self.state == State.SETTLING and latent is not None and latent.stamp > (self._settled_time or 0.0):
            self.state = State.PLANNING  # a camera frame taken after the arm settled has been encoded
        if self.state != State.PLANNING or self.pending is not None:
            return Decision()
        try:
            return self._request(now, pose, latent)
        except SafetyFault as fault:
            return self._fault(now, fault)

    def finish(self, request: PlanRequest, out: PlanOutput, now: float, pose: PoseObservation | None) -> Decision:
        """Take a finished plan: command its action from the planned state (safety limits applied), unless the
        request is no longer current (then nothing at all happens) or the newest pose forbids moving. A goal
        energy at or below the goal's threshold ends the goal instead (reached), as does the measurement after
        a spent budget."""
        if not self.is_current(request) or self.pending is not request:
            return Decision()
        self.pending = None
        if out.cancelled:
            return Decision()
        self.last_plan = out
        goal = self.goals[self.goal_index]
        if np.isfinite(out.goal_energy):
            self._goal_energies[self.goal_index] = float(out.goal_energy)
        threshold = goal.energy_threshold
        if threshold > 0 and out.goal_energy <= threshold:
            return self._goal_done(GoalOutcome.REACHED,
                                   f"goal energy {out.goal_energy:.4f} <= threshold {threshold:.4f}",
                                   request.state, out.goal_energy)
        if request.measure_only:
            return self._goal_done(GoalOutcome.BUDGET_SPENT, f"step budget of {goal.max_steps} exhausted "
                                   f"(goal energy {out.goal_energy:.4f})", request.state, out.goal_energy)
        if not out.planned:  # a planner that skipped the search for a goal that is not reached: nothing to send
            return self._fault(now, SafetyFault("the planner returned no plan"))
        try:
            self._check_pose(now, pose)  # the arm is still observed (the plan took a while)
            cmd = make_safe_command(request.state, out.action, self.limits)
        except SafetyFault as fault:
            return self._fault(now, fault)
        self._fault_since = None
        cmd.target_state[6] = self._gripper_command(float(request.state[6]), float(cmd.action[6]))
        self._target = cmd.target_state
        self._command_time = now
        self._settled_time = None
        self.state = State.EXECUTING
        status = self._status("limits: " + "; ".join(cmd.clipped) if cmd.clipped else "executing",
                              ee_state=request.state, action=cmd.action, raw_action=np.asarray(out.action, float),
                              energy=out.energy, goal_energy=out.goal_energy, planning_time=out.planning_time,
                              latent_age=request.issued - request.latent.stamp)
        self.step += 1
        self.goal_step += 1
        self._goal_steps[self.goal_index] += 1
        return Decision(target=cmd.target_state.copy(), status=status)

    # ---- internals -----------------------------------------------------------------------------------------
    def _new_generation(self) -> None:
        self.generation += 1
        self.pending = None

    def _select_goal(self) -> None:
        goal = self.goals[self.goal_index]
        self.goal, self.goal_position = goal.latent, goal.position

    def _end_current(self, outcome: GoalOutcome) -> None:
        """Record how the goal being pursued ended (when the episode ends before the goal does)."""
        if self.goals and self._outcomes[self.goal_index] == GoalOutcome.NOT_STARTED:
            self._outcomes[self.goal_index] = outcome

    def _goal_done(self, outcome: GoalOutcome, message: str, ee_state: np.ndarray | None,
                   goal_energy: float) -> Decision:
        """The goal being pursued ended (reached or budget spent): the episode ends after its last goal
        (SUCCEEDED only when reached), otherwise the next goal is pursued from the same observation."""
        i, n = self.goal_index, len(self.goals)
        self._outcomes[i] = outcome
        prefix = f"goal {i + 1}/{n}: " if n > 1 else ""
        if i + 1 >= n:
            self.state = State.SUCCEEDED if outcome == GoalOutcome.REACHED else State.FAILED
            return Decision(status=self._status(prefix + message, ee_state=ee_state, goal_energy=goal_energy))
        self.goal_index += 1
        self.goal_step = 0
        self._select_goal()
        self.state = State.PLANNING
        return Decision(status=self._status(f"{prefix}{message}; next: goal {i + 2}/{n}", ee_state=ee_state,
                                            goal_energy=goal_energy))

    def _gripper_command(self, measured: float, delta: float) -> float:
        """The gripper command of a target (1.0 closed, 0.0 open): the latch, changed only when the plan's
        gripper ``delta`` moves the imagined closedness ``measured + delta`` across the threshold that way."""
        if self.gripper_closed is None:
            self.gripper_closed = measured > self.config.gripper_closed_above
        imagined = min(max(measured + delta, 0.0), 1.0)
        if delta > 0 and imagined > GRIPPER_THRESHOLD:
            self.gripper_closed = True
        elif delta < 0 and imagined <= GRIPPER_THRESHOLD:
            self.gripper_closed = False
        return 1.0 if self.gripper_closed else 0.0

    def _check_pose(self, now: float, pose: PoseObservation | None) -> np.ndarray:
        """The pose's finite 7-D state, or a fault: missing, stale, from the future, or a stale gripper."""
        if pose is None:
            raise SafetyFault("no end-effector pose received yet")
        check_fresh(pose.stamp, now, self.limits.max_data_age_s, "end-effector pose",
                    self.limits.max_future_stamp_s)
        state = check_finite(pose.state)
        if self.config.require_gripper:
            check_fresh(pose.gripper_stamp, now, self.limits.max_data_age_s, "gripper state",
                        self.limits.max_future_stamp_s)
        return state

    def _request(self, now: float, pose: PoseObservation | None, latent: LatentArray | None) -> Decision:
        cfg = self.config
        state = self._check_pose(now, pose)
        assert pose is not None
        if self._command_time is not None and pose.stamp <= self._command_time:
            raise SafetyFault(f"no end-effector pose since the last command {now - self._command_time:.2f} s "
                              "ago: not planning from a pose older than the arm's last target")
        if latent is None:
            raise SafetyFault("no latent received yet")
        check_fresh(latent.stamp, now, self.limits.max_data_age_s, "latent", self.limits.max_future_stamp_s)
        check_model(latent.model_id, cfg.expected_model_id)
        if self.goal is None:
            raise SafetyFault("no goal latent")
        if self._settled_time is not None and latent.stamp <= self._settled_time:
            return Decision()  # wait for a camera frame taken after the arm settled
        self._fault_since = None
        goal = self.goals[self.goal_index]
        if self.goal_position is not None and cfg.goal_position_tolerance > 0:
            dist = float(np.linalg.norm(state[:3] - self.goal_position))
            if dist <= cfg.goal_position_tolerance:
                return self._goal_done(GoalOutcome.REACHED, f"goal position reached ({dist * 100:.1f} cm)", state,
                                       float("nan"))
        self.pending = PlanRequest(self.generation, self.episode, self.step, self.goal, latent, state.copy(), now,
                                   goal_index=self.goal_index, energy_threshold=goal.energy_threshold,
                                   measure_only=self.goal_step >= goal.max_steps, plan_gripper=goal.plan_gripper)
        return Decision(plan=self.pending)

    def _fault(self, now: float, fault: SafetyFault) -> Decision:
        """Hold (no target) and say why; a fault lasting ``fault_timeout`` ends the episode."""
        if self._fault_since is None:
            self._fault_since = now
        if now - self._fault_since >= self.config.fault_timeout:
            self._end_current(GoalOutcome.FAILED)
            self.state = State.FAILED
            return Decision(status=self._status(f"fault persisted {self.config.fault_timeout:.1f} s: {fault}",
                                                severity=Severity.ERROR))
        return Decision(status=self._status(f"holding: {fault}", severity=Severity.WARN))

    def _check_settled(self, now: float, pose: PoseObservation | None) -> Decision:
        """EXECUTING -> SETTLING once the arm is within tolerance of the target (or the settle timeout passed)."""
        assert self._target is not None and self._command_time is not None
        if now - self._command_time < self.config.min_step_duration:
            return Decision()  # the step's minimum duration (the released model's ~1 s per action) is not over
        settled = False
        if pose is not None and np.all(np.isfinite(pose.state)) and pose.stamp > self._command_time:
            err = float(np.linalg.norm(np.asarray(pose.state, float)[:3] - self._target[:3]))
            settled = err <= self.config.settle_position_tolerance
        if not settled and now - self._command_time < self.config.settle_timeout:
            return Decision()
        self._settled_time = now
        self.state = State.SETTLING
        msg = "settled" if settled else f"did not settle within {self.config.settle_timeout:.1f} s; re-planning"
        return Decision(status=self._status(msg))

    def _hold_target(self, pose: PoseObservation | None) -> np.ndarray | None:
        """The newest pose as a target, with the latched gripper command (a hold never drops a grasped object)."""
        if pose is None:
            return None
        value = np.asarray(pose.state, dtype=np.float64).reshape(-1)
        if value.shape != (7,) or not np.all(np.isfinite(value)):
            return None
        value = value.copy()
        value[6] = self._gripper_command(float(value[6]), 0.0)
        return value

    def _status(self, message: str, *, severity: Severity = Severity.INFO, ee_state: np.ndarray | None = None,
                action: np.ndarray | None = None, raw_action: np.ndarray | None = None,
                energy: float = float("nan"), goal_energy: float = float("nan"), planning_time: float = 0.0,
                latent_age: float = 0.0) -> Status:
        self.message = message
        return Status(
            episode=self.episode, step=self.step, state=self.state, message=message, severity=severity,
            energy=float(energy), goal_energy=float(goal_energy),
            action=_zeros() if action is None else np.asarray(action, float),
            raw_action=_zeros() if raw_action is None else np.asarray(raw_action, float),
            ee_state=_zeros() if ee_state is None else np.asarray(ee_state, float),
            planning_time=float(planning_time), latent_age=float(latent_age),
            goal_index=self.goal_index, num_goals=len(self.goals), goal_step=self.goal_step,
        )

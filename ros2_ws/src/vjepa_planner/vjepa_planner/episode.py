"""The receding-horizon control loop of the planner as a pure state machine (no ROS, no model).

As in the paper: plan, command one action, wait until the arm settles at the target and a camera latent newer
than the motion arrives, plan again; until the goal criterion, the step budget, a stop request or a fault ends the
episode. The node feeds observations in and sends out whatever the loop returns, so every rule here is tested
without a ROS graph.

Planning is slow (up to a second) and must never delay a stop, so the loop does not plan itself:
:meth:`EpisodeLoop.tick` hands out a :class:`PlanRequest` stamped with the loop's *generation*, the caller plans
outside its lock and gives the result back to :meth:`EpisodeLoop.finish`. ``start``, ``stop``, ``pause``,
``resume`` and ``fail`` bump the generation, so a plan that was running when one of them happened is discarded
by ``finish``: no target computed before a stop is ever sent after it. The caller may also pass
:meth:`EpisodeLoop.is_current` to the planner as a cancel check, so the abandoned plan ends early.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vjepa_core.msgconv import LatentArray

from .safety import SafetyFault, SafetyLimits, check_finite, check_fresh, check_model, make_safe_command

__all__ = ["State", "Severity", "PoseObservation", "PlanRequest", "PlanOutput", "Status", "Decision",
           "LoopConfig", "EpisodeLoop", "TERMINAL"]


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


@dataclass
class PlanOutput:
    """What the planner returns for one :class:`PlanRequest`."""

    action: np.ndarray          # [7] proposed action (before safety limits)
    energy: float               # predicted energy of that action
    goal_energy: float          # energy of the current observation to the goal (no action)
    planning_time: float = 0.0  # seconds of wall time
    cancelled: bool = False     # the planner gave up because the request stopped being current
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
    fault_timeout: float = 10.0             # a fault lasting this long ends the episode as FAILED
    expected_model_id: str = ""             # "" accepts latents of any model
    require_gripper: bool = False           # the gripper is planned: a missing/stale gripper state is a fault

    def __post_init__(self) -> None:
        problems = []
        if int(self.max_steps) < 1:
            problems.append(f"max_steps must be >= 1, got {self.max_steps}")
        for name in ("settle_position_tolerance", "settle_timeout", "fault_timeout"):
            value = float(getattr(self, name))
            if not (np.isfinite(value) and value > 0):
                problems.append(f"{name} must be a positive number, got {value}")
        for name in ("energy_threshold", "goal_position_tolerance"):
            value = float(getattr(self, name))
            if not (np.isfinite(value) and value >= 0):
                problems.append(f"{name} must be >= 0, got {value}")
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
        self.goal: LatentArray | None = None
        self.goal_position: np.ndarray | None = None
        self.pending: PlanRequest | None = None
        self.last_plan: PlanOutput | None = None
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

    # ---- commands from services -------------------------------------------------------------------------------
    def start(self, now: float, goal: LatentArray, goal_position: np.ndarray | None = None,
              paused: bool = False) -> int:
        """Begin a new episode toward ``goal``; returns the episode id. A plan still running is discarded."""
        self._new_generation()
        self.episode += 1
        self.step = 0
        self.goal = goal
        self.goal_position = None if goal_position is None else np.asarray(goal_position, float).reshape(3)
        self._target = None
        self._command_time = None
        self._settled_time = None
        self._fault_since = None
        self.last_plan = None
        self.state = State.PAUSED if paused else State.PLANNING
        self.message = "goal set" + (", paused until resume" if paused else "")
        return self.episode

    def stop(self, pose: PoseObservation | None, reason: str = "stop requested") -> Decision:
        """End the episode and hold at ``pose`` (the newest pose; when known and finite)."""
        self._new_generation()
        if self.active:
            self.state = State.STOPPED
        return Decision(target=self._hold_target(pose), status=self._status(reason))

    def fail(self, pose: PoseObservation | None, reason: str) -> Decision:
        """End the episode as FAILED (an internal error) and hold at ``pose``."""
        self._new_generation()
        if self.active:
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
        return Status(self.episode, self.step, self.state, message, severity)

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
        request is no longer current (then nothing at all happens) or the newest pose forbids moving."""
        if not self.is_current(request) or self.pending is not request:
            return Decision()
        self.pending = None
        if out.cancelled:
            return Decision()
        self.last_plan = out
        cfg = self.config
        if cfg.energy_threshold > 0 and out.goal_energy <= cfg.energy_threshold:
            self.state = State.SUCCEEDED
            return Decision(status=self._status(
                f"goal energy {out.goal_energy:.4f} <= threshold {cfg.energy_threshold:.4f}",
                ee_state=request.state, goal_energy=out.goal_energy))
        try:
            self._check_pose(now, pose)  # the arm is still observed (the plan took a while)
            cmd = make_safe_command(request.state, out.action, self.limits)
        except SafetyFault as fault:
            return self._fault(now, fault)
        self._fault_since = None
        self._target = cmd.target_state
        self._command_time = now
        self._settled_time = None
        self.state = State.EXECUTING
        status = self._status("limits: " + "; ".join(cmd.clipped) if cmd.clipped else "executing",
                              ee_state=request.state, action=cmd.action, raw_action=np.asarray(out.action, float),
                              energy=out.energy, goal_energy=out.goal_energy, planning_time=out.planning_time,
                              latent_age=request.issued - request.latent.stamp)
        self.step += 1
        return Decision(target=cmd.target_state.copy(), status=status)

    # ---- internals -----------------------------------------------------------------------------------------
    def _new_generation(self) -> None:
        self.generation += 1
        self.pending = None

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
        if self.goal_position is not None and cfg.goal_position_tolerance > 0:
            dist = float(np.linalg.norm(state[:3] - self.goal_position))
            if dist <= cfg.goal_position_tolerance:
                self.state = State.SUCCEEDED
                return Decision(status=self._status(f"goal position reached ({dist * 100:.1f} cm)", ee_state=state))
        if self.step >= cfg.max_steps:
            self.state = State.FAILED
            return Decision(status=self._status(f"step budget of {cfg.max_steps} exhausted", ee_state=state))
        self.pending = PlanRequest(self.generation, self.episode, self.step, self.goal, latent, state.copy(), now)
        return Decision(plan=self.pending)

    def _fault(self, now: float, fault: SafetyFault) -> Decision:
        """Hold (no target) and say why; a fault lasting ``fault_timeout`` ends the episode."""
        if self._fault_since is None:
            self._fault_since = now
        if now - self._fault_since >= self.config.fault_timeout:
            self.state = State.FAILED
            return Decision(status=self._status(f"fault persisted {self.config.fault_timeout:.1f} s: {fault}",
                                                severity=Severity.ERROR))
        return Decision(status=self._status(f"holding: {fault}", severity=Severity.WARN))

    def _check_settled(self, now: float, pose: PoseObservation | None) -> Decision:
        """EXECUTING -> SETTLING once the arm is within tolerance of the target (or the settle timeout passed)."""
        assert self._target is not None and self._command_time is not None
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
        if pose is None:
            return None
        value = np.asarray(pose.state, dtype=np.float64).reshape(-1)
        return value.copy() if value.shape == (7,) and np.all(np.isfinite(value)) else None

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
        )

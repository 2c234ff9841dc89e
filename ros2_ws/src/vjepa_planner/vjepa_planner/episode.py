"""The receding-horizon control loop of the planner as a pure state machine (no ROS, no model).

As in the paper: plan, command one action, wait until the arm settles at the target and a camera latent newer
than the motion arrives, plan again; until the goal criterion, the step budget, a stop request or a fault ends the
episode. The node feeds observations in and sends out whatever :meth:`EpisodeLoop.tick` returns, so every rule here
is tested without a ROS graph; the planning itself is injected as ``plan_fn``.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .safety import SafetyFault, SafetyLimits, check_finite, check_fresh, check_model, make_safe_command

__all__ = ["State", "Observation", "PlanOutput", "Decision", "LoopConfig", "EpisodeLoop"]


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


@dataclass
class Observation:
    """A stamped observation: end-effector state [7] or a latent (tokens + model id). Times in seconds."""

    stamp: float
    value: Any
    model_id: str = ""


@dataclass
class PlanOutput:
    """What the injected planner returns for one step."""

    action: np.ndarray          # [7] proposed action (before safety limits)
    energy: float               # predicted energy of that action
    goal_energy: float          # energy of the current observation to the goal (no action)
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class Decision:
    """Result of one tick: an optional target to command, and the status to publish (None = nothing new)."""

    target: np.ndarray | None = None        # [7] target state to send to the robot adapter
    status: dict[str, Any] | None = None    # fields for PlanStatus


@dataclass
class LoopConfig:
    """Episode rules. Distances in metres, angles in radians, times in seconds."""

    max_steps: int = 20
    energy_threshold: float = 0.0           # goal reached when goal_energy <= this (0 disables)
    goal_position_tolerance: float = 0.0    # goal reached when |ee - goal_position| <= this (0 disables)
    settle_position_tolerance: float = 0.01
    settle_timeout: float = 5.0
    fault_timeout: float = 10.0             # a fault lasting this long ends the episode as FAILED
    expected_model_id: str = ""


class EpisodeLoop:
    """One planning episode at a time. Not thread-safe: call from one thread (the node's worker)."""

    def __init__(self, plan_fn: Callable[[Any, np.ndarray], PlanOutput], limits: SafetyLimits,
                 config: LoopConfig | None = None) -> None:
        self.plan_fn = plan_fn
        self.limits = limits
        self.config = config or LoopConfig()
        self.state = State.IDLE
        self.episode = 0
        self.step = 0
        self.message = "waiting for a goal"
        self.goal_position: np.ndarray | None = None
        self._target: np.ndarray | None = None
        self._command_time = 0.0
        self._settled_time: float | None = None
        self._fault_since: float | None = None
        self._episode_start = 0.0
        self.last_plan: PlanOutput | None = None

    # ---- commands from services -------------------------------------------------------------------------------
    def start(self, now: float, goal_position: np.ndarray | None = None, paused: bool = False) -> int:
        """Begin a new episode (the goal latent lives in ``plan_fn``'s closure); returns the episode id."""
        self.episode += 1
        self.step = 0
        self.goal_position = None if goal_position is None else np.asarray(goal_position, float).reshape(3)
        self._target = None
        self._settled_time = None
        self._fault_since = None
        self._episode_start = now
        self.last_plan = None
        self.state = State.PAUSED if paused else State.PLANNING
        self.message = "goal set" + (", paused until resume" if paused else "")
        return self.episode

    def stop(self, pose: Observation | None, reason: str = "stop requested") -> Decision:
        """End the episode and hold at the current pose (when it is known and finite)."""
        if self.state in TERMINAL or self.state == State.IDLE:
            return Decision(target=self._hold_target(pose), status=self._status(reason))
        self.state = State.STOPPED
        return Decision(target=self._hold_target(pose), status=self._status(reason))

    def pause(self, pose: Observation | None) -> Decision:
        """Hold at the current pose until :meth:`resume`."""
        if self.state in TERMINAL or self.state == State.IDLE:
            raise SafetyFault(f"nothing to pause: episode is {self.state.name}")
        self.state = State.PAUSED
        return Decision(target=self._hold_target(pose), status=self._status("paused"))

    def resume(self, now: float) -> Decision:
        """Continue a paused episode with a fresh plan."""
        if self.state != State.PAUSED:
            raise SafetyFault(f"nothing to resume: episode is {self.state.name}")
        self.state = State.PLANNING
        self._fault_since = None
        self._settled_time = now  # the next plan waits for a latent newer than now
        return Decision(status=self._status("resumed"))

    # ---- the loop ------------------------------------------------------------------------------------------
    def tick(self, now: float, pose: Observation | None, latent: Observation | None) -> Decision:
        """Advance the episode with the newest pose and latent; returns what to command and report."""
        if self.state == State.EXECUTING:
            return self._check_settled(now, pose)
        if self.state == State.SETTLING and latent is not None and latent.stamp > (self._settled_time or 0.0):
            self.state = State.PLANNING  # a camera frame taken after the arm settled has been encoded
        if self.state != State.PLANNING:
            return Decision()
        try:
            return self._plan_step(now, pose, latent)
        except SafetyFault as fault:
            if self._fault_since is None:
                self._fault_since = now
            if now - self._fault_since >= self.config.fault_timeout:
                self.state = State.FAILED
                return Decision(status=self._status(f"fault persisted {self.config.fault_timeout:.1f} s: {fault}"))
            return Decision(status=self._status(f"holding: {fault}"))

    def _plan_step(self, now: float, pose: Observation | None, latent: Observation | None) -> Decision:
        cfg = self.config
        if pose is None:
            raise SafetyFault("no end-effector pose received yet")
        check_fresh(pose.stamp, now, self.limits.max_data_age_s, "end-effector pose")
        state = check_finite(pose.value)
        if latent is None:
            raise SafetyFault("no latent received yet")
        check_fresh(latent.stamp, now, self.limits.max_data_age_s, "latent")
        check_model(latent.model_id, cfg.expected_model_id)
        if self._settled_time is not None and latent.stamp <= self._settled_time:
            return Decision()  # wait for a camera frame taken after the arm settled
        self._fault_since = None
        if self.goal_position is not None and cfg.goal_position_tolerance > 0:
            dist = float(np.linalg.norm(state[:3] - self.goal_position))
            if dist <= cfg.goal_position_tolerance:
                self.state = State.SUCCEEDED
                return Decision(status=self._status(f"goal position reached ({dist * 100:.1f} cm)", state=state))
        if self.step >= cfg.max_steps:
            self.state = State.FAILED
            return Decision(status=self._status(f"step budget of {cfg.max_steps} exhausted", state=state))
        t0 = time.perf_counter()
        out = self.plan_fn(latent.value, state)
        planning_time = time.perf_counter() - t0
        self.last_plan = out
        if cfg.energy_threshold > 0 and out.goal_energy <= cfg.energy_threshold:
            self.state = State.SUCCEEDED
            return Decision(status=self._status(
                f"goal energy {out.goal_energy:.4f} <= threshold {cfg.energy_threshold:.4f}", state=state))
        cmd = make_safe_command(state, out.action, self.limits)
        self._target = cmd.target_state
        self._command_time = now
        self._settled_time = None
        self.state = State.EXECUTING
        status = self._status("limits: " + "; ".join(cmd.clipped) if cmd.clipped else "executing", state=state,
                              action=cmd.action, raw_action=np.asarray(out.action, float), energy=out.energy,
                              goal_energy=out.goal_energy, planning_time=planning_time,
                              latent_age=now - latent.stamp)
        self.step += 1
        return Decision(target=cmd.target_state.copy(), status=status)

    def _check_settled(self, now: float, pose: Observation | None) -> Decision:
        """EXECUTING -> SETTLING once the arm is within tolerance of the target (or the settle timeout passed)."""
        assert self._target is not None
        settled = False
        if pose is not None and np.all(np.isfinite(pose.value)) and pose.stamp >= self._command_time:
            err = float(np.linalg.norm(np.asarray(pose.value, float)[:3] - self._target[:3]))
            settled = err <= self.config.settle_position_tolerance
        if not settled and now - self._command_time < self.config.settle_timeout:
            return Decision()
        self._settled_time = now
        self.state = State.SETTLING
        msg = "settled" if settled else f"did not settle within {self.config.settle_timeout:.1f} s; re-planning"
        return Decision(status=self._status(msg))

    # ---- helpers -------------------------------------------------------------------------------------------
    def _hold_target(self, pose: Observation | None) -> np.ndarray | None:
        if pose is None:
            return None
        value = np.asarray(pose.value, dtype=np.float64).reshape(-1)
        return value.copy() if value.shape == (7,) and np.all(np.isfinite(value)) else None

    def _status(self, message: str, *, state: np.ndarray | None = None, action: np.ndarray | None = None,
                raw_action: np.ndarray | None = None, energy: float = float("nan"),
                goal_energy: float = float("nan"), planning_time: float = 0.0,
                latent_age: float = 0.0) -> dict[str, Any]:
        self.message = message
        zeros = np.zeros(7)
        return {
            "episode": self.episode, "step": self.step, "state": int(self.state), "message": message,
            "energy": float(energy), "goal_energy": float(goal_energy),
            "action": zeros if action is None else action, "raw_action": zeros if raw_action is None else raw_action,
            "ee_state": zeros if state is None else state, "planning_time": float(planning_time),
            "latent_age": float(latent_age),
        }

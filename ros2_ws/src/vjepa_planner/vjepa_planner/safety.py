"""Safety limits applied to every command the planner sends: pure functions, no ROS, separately tested.

The planner proposes a 7-D end-effector action (dx, dy, dz, droll, dpitch, dyaw, dgripper) in the robot's base
frame. Before anything reaches a controller it goes through :func:`make_safe_command`, which

1. refuses (raises :class:`SafetyFault`) when the current pose is not finite, or when the pose or the latent the
   plan was made from is older than ``max_data_age_s`` or stamped more than ``max_future_stamp_s`` in the
   future (a clock mismatch), or when the latent came from another model;
2. clips each position component to ``max_position_step`` metres and each rotation component to
   ``max_rotation_step`` radians, and the gripper to [0, 1];
3. clamps the resulting target into the workspace box ``[workspace_min, workspace_max]``: the box bounds the
   point ``workspace_point`` (given in the planned frame; zero = the planned point itself). When the planner
   plans the flange (``ee_convention: droid``) this is the TCP 0.1034 m further along the tool axis, so the
   fingertips, not the wrist, stay above the table.

Every clip is reported by name, so PlanStatus can say which limit acted. A fault means: hold the current pose.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from vjepa_core.pose import compute_new_pose, euler_to_matrix

__all__ = ["SafetyFault", "SafetyLimits", "SafeCommand", "check_finite", "check_fresh", "check_model",
           "clip_action", "clamp_to_workspace", "make_safe_command", "search_range_warning"]


class SafetyFault(RuntimeError):
    """A condition under which no motion may be commanded; the message names it."""


@dataclass(frozen=True)
class SafetyLimits:
    """Limits for one robot cell. Defaults suit a Franka on a table (base frame at the robot's base)."""

    max_position_step: float = 0.05          # m per axis per command
    max_rotation_step: float = 0.25          # rad per axis per command
    workspace_min: tuple[float, float, float] = (0.25, -0.45, 0.02)
    workspace_max: tuple[float, float, float] = (0.80, 0.45, 0.70)
    max_data_age_s: float = 1.0
    max_future_stamp_s: float = 0.5          # data stamped further ahead of the node's clock is refused
    workspace_point: tuple[float, float, float] = (0.0, 0.0, 0.0)  # bounded point in the planned frame, m

    def __post_init__(self) -> None:
        if not (self.max_position_step > 0 and self.max_rotation_step >= 0 and self.max_data_age_s > 0
                and self.max_future_stamp_s >= 0):
            raise ValueError("max_position_step and max_data_age_s must be > 0, max_rotation_step and "
                             "max_future_stamp_s >= 0")
        lo, hi = np.asarray(self.workspace_min, float), np.asarray(self.workspace_max, float)
        if lo.shape != (3,) or hi.shape != (3,) or not np.all(np.isfinite(lo)) or not np.all(np.isfinite(hi)):
            raise ValueError("workspace_min and workspace_max must be 3 finite numbers each")
        if np.any(lo >= hi):
            raise ValueError(f"workspace_min {tuple(lo)} must be below workspace_max {tuple(hi)} on every axis")
        point = np.asarray(self.workspace_point, float)
        if point.shape != (3,) or not np.all(np.isfinite(point)):
            raise ValueError("workspace_point must be 3 finite numbers")


@dataclass
class SafeCommand:
    """What may be sent: the target 7-D state, the action actually applied, and which limits acted."""

    target_state: np.ndarray            # [7] x, y, z, roll, pitch, yaw, gripper closedness
    action: np.ndarray                  # [7] the applied action (after clipping and clamping)
    clipped: list[str] = field(default_factory=list)


def check_finite(state: Sequence[float], what: str = "end-effector pose") -> np.ndarray:
    """Return ``state`` as float64 [7] or raise when it has the wrong size or a NaN/inf."""
    arr = np.asarray(state, dtype=np.float64).reshape(-1)
    if arr.shape != (7,):
        raise SafetyFault(f"{what} must have 7 values, got {arr.size}")
    if not np.all(np.isfinite(arr)):
        raise SafetyFault(f"{what} is not finite: {np.array2string(arr, precision=3)}")
    return arr


def check_fresh(stamp_s: float | None, now_s: float, max_age_s: float, what: str,
                max_future_s: float = 0.5) -> float:
    """Age of data stamped ``stamp_s`` at time ``now_s``; raise when missing, too old, or stamped more than
    ``max_future_s`` ahead of ``now_s`` (a clock mismatch: such data would look fresh for too long)."""
    if stamp_s is None:
        raise SafetyFault(f"no {what} received yet")
    age = now_s - stamp_s
    if age > max_age_s:
        raise SafetyFault(f"{what} is stale: {age:.2f} s old (limit {max_age_s:.2f} s)")
    if age < -max_future_s:
        raise SafetyFault(f"{what} is stamped {-age:.2f} s in the future (limit {max_future_s:.2f} s; clock "
                          "mismatch?)")
    return age


def check_model(model_id: str, expected: str) -> None:
    """Raise unless the latent's model id matches the predictor's expected encoder (empty = accept any)."""
    if expected and model_id != expected:
        raise SafetyFault(f"latent from model {model_id!r}, but the planner expects {expected!r}")


def clip_action(action: Sequence[float], limits: SafetyLimits) -> tuple[np.ndarray, list[str]]:
    """Clip position, rotation and gripper components of a 7-D action; name every component that was clipped."""
    a = np.asarray(action, dtype=np.float64).reshape(-1)
    if a.shape != (7,) or not np.all(np.isfinite(a)):
        raise SafetyFault(f"action must be 7 finite values, got {np.array2string(a, precision=3)}")
    out = a.copy()
    out[:3] = np.clip(a[:3], -limits.max_position_step, limits.max_position_step)
    out[3:6] = np.clip(a[3:6], -limits.max_rotation_step, limits.max_rotation_step)
    out[6] = np.clip(a[6], -1.0, 1.0)
    names = ("dx", "dy", "dz", "droll", "dpitch", "dyaw", "dgripper")
    clipped = [f"{names[i]} {a[i]:+.3f}->{out[i]:+.3f}" for i in range(7) if out[i] != a[i]]
    return out, clipped


def clamp_to_workspace(xyz: Sequence[float], limits: SafetyLimits) -> tuple[np.ndarray, list[str]]:
    """Clamp a target position into the workspace box; name each axis that was clamped."""
    p = np.asarray(xyz, dtype=np.float64).reshape(3)
    out = np.clip(p, limits.workspace_min, limits.workspace_max)
    return out, [f"workspace {'xyz'[i]} {p[i]:.3f}->{out[i]:.3f}" for i in range(3) if out[i] != p[i]]


def make_safe_command(state: Sequence[float], action: Sequence[float], limits: SafetyLimits) -> SafeCommand:
    """Apply every limit to ``action`` taken from ``state``; raise :class:`SafetyFault` when nothing may move.

    The per-step limit always holds. When the current position itself lies outside the box (e.g. after a
    manual move), the target moves back toward the box by at most one step per axis.
    """
    current = check_finite(state)
    applied, clipped = clip_action(action, limits)
    target = compute_new_pose(current[None], applied[None])[0]
    offset = euler_to_matrix(target[3:6]) @ np.asarray(limits.workspace_point, float)  # bounded point - target
    bounded, box = clamp_to_workspace(target[:3] + offset, limits)
    target[:3] = bounded - offset
    step = np.clip(target[:3] - current[:3], -limits.max_position_step, limits.max_position_step)
    target[:3] = current[:3] + step
    applied[:3] = step
    clipped += box
    if not np.all(np.isfinite(target)):
        raise SafetyFault("target pose is not finite after applying limits")
    return SafeCommand(target_state=target, action=applied, clipped=clipped)


def search_range_warning(cem_maxnorm: float, max_position_step: float) -> str | None:
    """Why the planner's search range and the safety step disagree, or None when they agree.

    CEM samples each position component in +-``cem_maxnorm``; safety clips each commanded component to
    +-``max_position_step``. With a larger search range the planner picks moves (and scores their predicted
    outcomes) that are never executed as planned: the arm gets a clipped move whose outcome the model did not
    score. The node warns at start-up; set ``cem_maxnorm <= max_position_step``.
    """
    if cem_maxnorm > max_position_step:
        return (f"cem_maxnorm {cem_maxnorm:g} m exceeds max_position_step {max_position_step:g} m: CEM optimizes "
                f"moves up to {cem_maxnorm:g} m per axis that safety clips to {max_position_step:g} m, so executed "
                "moves differ from the planned ones; set cem_maxnorm <= max_position_step")
    return None

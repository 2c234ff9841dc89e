"""CEM planning over V-JEPA 2-AC world models (pure torch, no model/device/ROS inside)."""

from __future__ import annotations

from ..pose_torch import compute_new_pose_torch, euler_to_matrix_torch, matrix_to_euler_torch
from .cem import PRESETS, CEMConfig, CEMPlanner, PlanResult, Unroll
from .energy import Objective, get_objective, l1_energy, l2_energy

__all__ = [
    "PRESETS",
    "CEMConfig",
    "CEMPlanner",
    "Objective",
    "PlanResult",
    "Unroll",
    "compute_new_pose_torch",
    "euler_to_matrix_torch",
    "get_objective",
    "l1_energy",
    "l2_energy",
    "matrix_to_euler_torch",
]

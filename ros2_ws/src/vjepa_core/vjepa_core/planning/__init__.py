"""Planning over V-JEPA 2-AC world models (pure torch, no model/device/ROS inside): CEM, iCEM, MPPI and gradient
refinement, built by name with :func:`make_planner`."""

from __future__ import annotations

from ..pose_torch import compute_new_pose_torch, euler_to_matrix_torch, matrix_to_euler_torch
from .cem import PRESETS, CEMConfig, CEMPlanner, PlanResult, Unroll
from .energy import Objective, get_objective, l1_energy, l2_energy
from .factory import PLANNER_KINDS, Planner, make_planner, planner_class
from .gradient import GradientConfig, GradientRefinedPlanner
from .icem import ICEMConfig, ICEMPlanner, colored_noise
from .mppi import MPPIConfig, MPPIPlanner, mppi_weights

__all__ = [
    "PLANNER_KINDS",
    "PRESETS",
    "CEMConfig",
    "CEMPlanner",
    "GradientConfig",
    "GradientRefinedPlanner",
    "ICEMConfig",
    "ICEMPlanner",
    "MPPIConfig",
    "MPPIPlanner",
    "Objective",
    "PlanResult",
    "Planner",
    "Unroll",
    "colored_noise",
    "compute_new_pose_torch",
    "euler_to_matrix_torch",
    "get_objective",
    "l1_energy",
    "l2_energy",
    "make_planner",
    "matrix_to_euler_torch",
    "mppi_weights",
    "planner_class",
]

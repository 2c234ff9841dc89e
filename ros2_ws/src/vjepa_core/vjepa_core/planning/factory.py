"""One constructor for every planner kind, so the planner node and the evaluations switch planners by name.

Kinds: ``cem`` (:class:`~vjepa_core.planning.cem.CEMPlanner`), ``icem``
(:class:`~vjepa_core.planning.icem.ICEMPlanner`), ``mppi`` (:class:`~vjepa_core.planning.mppi.MPPIPlanner`),
``<kind>_adam`` (that sampling planner followed by gradient refinement,
:class:`~vjepa_core.planning.gradient.GradientRefinedPlanner`) and ``adam`` (gradient steps from the
warm-start mean, no sampling). All share ``plan(...)``, ``reset()``, ``objective`` and ``config``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .cem import CEMPlanner, RolloutModel
from .gradient import GradientConfig, GradientRefinedPlanner
from .icem import ICEMPlanner
from .mppi import MPPIPlanner

__all__ = ["PLANNER_KINDS", "Planner", "make_planner", "planner_class"]

_SAMPLERS: dict[str, type[CEMPlanner]] = {"cem": CEMPlanner, "icem": ICEMPlanner, "mppi": MPPIPlanner}
#: every kind :func:`make_planner` accepts
PLANNER_KINDS: tuple[str, ...] = (*_SAMPLERS, *(f"{k}_adam" for k in _SAMPLERS), "adam")

#: what :func:`make_planner` returns
Planner = CEMPlanner | GradientRefinedPlanner


def planner_class(kind: str) -> tuple[type[CEMPlanner], bool, bool]:
    """``(sampling planner class, gradient refinement?, sampling?)`` of a planner kind; ``ValueError`` naming the
    valid kinds for an unknown one."""
    if kind not in PLANNER_KINDS:
        raise ValueError(f"unknown planner kind {kind!r}; choose one of {', '.join(PLANNER_KINDS)}")
    if kind == "adam":
        return CEMPlanner, True, False
    base, _, grad = kind.partition("_")
    return _SAMPLERS[base], bool(grad), True


def make_planner(kind: str, config: Mapping[str, Any] | None, world_model: RolloutModel) -> Planner:
    """A planner of ``kind`` over ``world_model`` (its ``unroll``, and ``unroll_differentiable`` for the gradient
    kinds).

    Args:
        kind: one of :data:`PLANNER_KINDS`.
        config: fields of the sampling planner's config (:class:`CEMConfig`, plus ``temperature`` ... for MPPI,
            ``noise_beta`` ... for iCEM); for gradient kinds also ``"gradient"``: a dict of
            :class:`GradientConfig` fields. Unknown keys (e.g. an MPPI setting given to CEM) raise ``ValueError``,
            so a misspelt or misplaced setting is never silently ignored.
        world_model: e.g. :class:`vjepa_core.inference.WorldModel`.
    """
    cls, grad, sample = planner_class(kind)
    d = dict(config or {})
    grad_dict = d.pop("gradient", None)
    if grad_dict is not None and not grad:
        raise ValueError(f"planner kind {kind!r} takes no 'gradient' settings (use a *_adam kind)")
    cfg = cls.config_class.from_dict(d)
    if not grad:
        return cls.for_world_model(world_model, cfg)
    return GradientRefinedPlanner.for_world_model(world_model, cls, cfg, GradientConfig.from_dict(grad_dict or {}),
                                                  sample=sample)

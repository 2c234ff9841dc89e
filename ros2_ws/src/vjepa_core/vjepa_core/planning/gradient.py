"""Gradient refinement of a sampled plan: a few Adam (or plain gradient) steps on the mean actions through a
differentiable unroll, projected onto the action bounds after every step.

:class:`GradientRefinedPlanner` wraps a sampling planner (CEM, iCEM or MPPI: any
:class:`~vjepa_core.planning.cem.CEMPlanner`) and reuses its input checks, search, bounds (``constrain``) and
post-processing (``finalize``): the sampling search runs as usual, then the final mean is refined by gradient
descent on the energy of the planned trajectory, then the plan is post-processed and scored like the base
planner's. With ``sample=False`` no sampling runs: the descent starts from the initial / warm-start mean.
Only searched dimensions move (fixed rotation or gripper stay as the base planner has them). With ``keep_best``
the lowest-energy iterate (the start included) is kept, so the refinement never returns a worse mean than it
was given. Sampling needs only forward passes of the exported or torch model; the refinement needs a
differentiable unroll (:meth:`vjepa_core.inference.WorldModel.unroll_differentiable`, torch backend).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .cem import CEMConfig, CEMPlanner, PlanResult, Search, Unroll

__all__ = ["GradientConfig", "GradientRefinedPlanner"]

OPTIMIZERS = ("adam", "sgd")


@dataclass
class GradientConfig:
    """Settings of the gradient refinement.

    Attributes:
        steps: optimizer steps (each one forward + backward pass of one trajectory).
        lr: learning rate in action units (Adam's first steps move each coordinate by about ``lr``, m for
            positions).
        optimizer: ``"adam"`` or ``"sgd"`` (plain gradient descent).
        keep_best: return the lowest-energy iterate (the start included) rather than the last one.
    """

    steps: int = 5
    lr: float = 0.005
    optimizer: str = "adam"
    keep_best: bool = True

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the offending field."""
        if isinstance(self.steps, bool) or int(self.steps) < 1:
            raise ValueError(f"GradientConfig.steps must be >= 1, got {self.steps!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"GradientConfig.lr must be a positive finite number, got {self.lr!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"GradientConfig.optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")

    @classmethod
    def from_dict(cls, d: dict) -> GradientConfig:
        """Build from a dict, rejecting unknown keys."""
        names = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown GradientConfig keys {unknown}; valid keys: {sorted(names)}")
        return cls(**d)


class GradientRefinedPlanner:
    """A sampling planner followed by gradient steps on its mean; see the module docstring.

    Has the planners' interface (``plan``, ``reset``, ``objective``, ``config`` = the base planner's config), so
    the planner node and the evaluations use it like :class:`~vjepa_core.planning.cem.CEMPlanner`.
    """

    def __init__(
        self,
        base: CEMPlanner,
        unroll_differentiable: Unroll,
        config: GradientConfig | None = None,
        sample: bool = True,
    ) -> None:
        if not isinstance(base, CEMPlanner):
            raise TypeError(f"the base planner must be a CEMPlanner (or subclass), got {type(base).__name__}")
        if unroll_differentiable is None or not callable(unroll_differentiable):
            raise ValueError("GradientRefinedPlanner needs a differentiable unroll(context_tokens, "
                             "context_states, actions) callable")
        self.base = base
        self.unroll_differentiable = unroll_differentiable
        self.gradient = config if config is not None else GradientConfig()
        self.gradient.validate()
        self.sample = bool(sample)

    @classmethod
    def for_world_model(
        cls, world_model: object, base_class: type[CEMPlanner] = CEMPlanner, config: CEMConfig | None = None,
        gradient: GradientConfig | None = None, sample: bool = True,
    ) -> GradientRefinedPlanner:
        """``base_class.for_world_model(world_model, config)`` refined through
        ``world_model.unroll_differentiable`` (e.g. :class:`vjepa_core.inference.WorldModel` on the torch
        backend; exported backends are refused here, before any plan)."""
        backend = getattr(world_model, "backend", None)
        if backend is not None and getattr(backend, "name", "torch") != "torch":
            raise ValueError(f"gradient refinement needs the torch backend (gradients through the predictor); "
                             f"the world model runs {backend.name!r}")
        unroll_d = getattr(world_model, "unroll_differentiable", None)
        if unroll_d is None:
            raise ValueError(f"{type(world_model).__name__} has no unroll_differentiable for gradient refinement")
        return cls(base_class.for_world_model(world_model, config), unroll_d, gradient, sample)

    @property
    def config(self) -> CEMConfig:
        """The base planner's config (samples, iterations, horizon, bounds)."""
        return self.base.config

    @property
    def objective(self) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """The base planner's energy ``objective(pred[S, N, D], goal[N, D]) -> [S]``."""
        return self.base.objective

    def reset(self) -> None:
        """Forget the previous plan (warm start) and re-seed, as the base planner does."""
        self.base.reset()

    @torch.no_grad()
    def plan(
        self,
        context_tokens: torch.Tensor,
        context_states: torch.Tensor,
        goal_tokens: torch.Tensor,
        init_mean: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        cancel: Callable[[], bool] | None = None,
    ) -> PlanResult:
        """The base planner's search (unless ``sample=False``), then :meth:`refine`, then its post-processing;
        arguments and result as :meth:`CEMPlanner.plan` (``result.refine_energy``: the iterates' energies)."""
        b = self.base
        ctx, st, goal = b.check_inputs(context_tokens, context_states, goal_tokens)
        s = b.search(ctx, st, goal, init_mean, generator, cancel, iterations=None if self.sample else 0)
        t = time.perf_counter()
        energies = [] if s.cancelled else self.refine(s, ctx, st, goal, cancel)
        result = b.finalize(s, ctx, st, goal, extra_timings_ms={"refine": (time.perf_counter() - t) * 1e3})
        result.refine_energy = energies
        return result

    def refine(
        self, s: Search, ctx: torch.Tensor, states: torch.Tensor, goal: torch.Tensor,
        cancel: Callable[[], bool] | None = None,
    ) -> list[float]:
        """Gradient steps on ``s.mean`` (in place), each followed by the projection onto the bounds; returns the
        energies of the iterates, start first. ``cancel`` is asked before every step (then ``s.cancelled``)."""
        cfg, b = self.gradient, self.base
        mask = s.searched.to(s.mean.dtype)  # fixed dimensions get no gradient
        x = b.constrain(s.mean[None])[0].detach().clone().requires_grad_(True)
        opt: torch.optim.Optimizer = (torch.optim.Adam([x], lr=cfg.lr) if cfg.optimizer == "adam"
                                      else torch.optim.SGD([x], lr=cfg.lr))
        energies: list[float] = []
        best_e, best_x = math.inf, x.detach().clone()
        for step in range(cfg.steps + 1):
            last = step == cfg.steps
            if not last and cancel is not None and cancel():
                s.cancelled = True
                return energies
            with torch.set_grad_enabled(not last):  # the last iterate is only scored
                e = self.objective(self.unroll_differentiable(ctx, states, x[None]), goal)
                if e.shape != (1,):
                    raise ValueError(f"objective must return one energy per sample, got shape {tuple(e.shape)}")
                grad = None if last else torch.autograd.grad(e[0], x)[0]
            energies.append(float(e[0]))
            if energies[-1] < best_e:
                best_e, best_x = energies[-1], x.detach().clone()
            if last:
                break
            x.grad = torch.nan_to_num(grad) * mask
            opt.step()
            with torch.no_grad():
                x.copy_(b.constrain(x[None])[0])
        s.mean = best_x if cfg.keep_best else x.detach().clone()
        if best_e < s.best_energy:
            s.best_energy, s.best_actions = best_e, best_x.clone()
        return energies

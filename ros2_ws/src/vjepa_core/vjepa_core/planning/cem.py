"""Cross-entropy-method (CEM) planner over 7-D end-effector actions, with the world model injected.

The planner knows nothing about models, devices or ROS (design rule 3). It is given

* ``unroll(context_tokens, context_states, actions) -> predicted``: ``context_tokens`` [T_ctx, N, D] (the
  encoded observation history, shared by all samples), ``context_states`` [T_ctx, 7], ``actions``
  [S, H, 7] candidate trajectories; returns the predicted tokens of the *final* imagined frame [S, N, D].
  :class:`vjepa_core.inference.WorldModel.unroll` is the production implementation (batched, KV cache,
  poses on the model's device); :meth:`CEMPlanner.for_world_model` wires one in.
* ``objective(predicted [S, N, D], goal [N, D]) -> energy [S]``, default the paper's L1 energy between
  layer-normed tokens (:func:`vjepa_core.planning.energy.l1_energy`). Tokens are layer-normed once: a world
  model that already normalises its predictions gets an energy that does not normalise again.

Algorithm (paper §3.2 / Fig. 7; reference ``notebooks/utils/mpc_utils.py:cem``): a diagonal Gaussian per
action coordinate and horizon step; each iteration samples ``samples`` trajectories, clips them to the
action bounds, scores them with one batched ``unroll`` (which bounds its own memory, e.g. the world model's chunking),
keeps the ``topk`` lowest energies and moves mean/std to the elite statistics (optionally with momentum,
separately for the gripper as in the reference). The plan is the final mean (rotation fixed to zero unless
sampled, small gripper values rounded to 0) and its energy (one more batch-1 ``unroll``: the final mean is
not one of the scored samples). Only the first action is meant to be executed before re-planning (receding
horizon); ``warm_start`` seeds the next call with the shifted previous mean. ``plan(cancel=...)`` is asked
between iterations and ends the plan early (the result says ``cancelled``), so a stop never waits for a plan.

The other planners (:mod:`.mppi`, :mod:`.icem`, :mod:`.gradient`, built by name with
:func:`vjepa_core.planning.make_planner`) reuse this class's input checks, bounds, initial / warm-start
distribution, scoring and post-processing through :meth:`CEMPlanner.search` / :meth:`CEMPlanner.finalize` and the
``_sample`` / ``_update`` steps.

Dependencies point one way: planning uses the inference layer's world model (duck-typed), never the reverse.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import torch

from .energy import Objective, get_objective

__all__ = ["CEMConfig", "CEMPlanner", "PlanResult", "Unroll", "PRESETS", "RolloutModel", "Search"]

#: ``unroll(context_tokens[T,N,D], context_states[T,7], actions[S,H,7]) -> final tokens [S,N,D]``.
Unroll = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


class RolloutModel(Protocol):
    """What :meth:`CEMPlanner.for_world_model` needs of a world model (e.g. ``vjepa_core.inference.WorldModel``):
    an ``unroll`` and whether its predictions come out layer-normed (``normalize``)."""

    normalize: bool

    def unroll(self, context_tokens: torch.Tensor, context_states: torch.Tensor,
               actions: torch.Tensor) -> torch.Tensor:
        """Final imagined frame ``[S, N, D]`` for each of ``S`` action sequences."""
        ...

ACTION_DIM = 7
_POS = slice(0, 3)
_ROT = slice(3, 6)
_GRIP = 6


@dataclass
class CEMConfig:
    """CEM settings. Defaults are the paper's (800 samples, 10 iterations, top-10, horizon 1, per-axis
    position limit 0.075 m, gripper searched); see :data:`PRESETS` for the reference code's variants.

    Attributes:
        samples: candidate trajectories per iteration.
        iterations: CEM refinement iterations.
        topk: elites used to refit the Gaussian.
        horizon: planned actions (imagined frames) per candidate.
        maxnorm: position limit in metres (per axis for ``position_constraint="box"``, radius of the L1
            ball for ``"l1"``).
        position_constraint: ``"box"`` (reference code: clip each of dx, dy, dz) or ``"l1"`` (paper text:
            samples outside the L1 ball of radius ``maxnorm`` are scaled back onto it).
        init_std_position: initial std of dx, dy, dz (``None``: ``maxnorm``, as the reference code).
        rotation: ``"zero"`` (reference: rotation deltas fixed at 0) or ``"sample"``.
        max_rotation: per-axis rotation limit (radians) and initial std when ``rotation="sample"``.
        sample_gripper: search the gripper dimension (otherwise it is fixed at 0).
        gripper_limit: gripper samples are clipped to +-``gripper_limit`` (reference 0.75).
        init_std_gripper: initial std of the gripper dimension (reference 1.0).
        gripper_round: final gripper values with ``|g| <`` this are set to 0 (reference 0.25; 0 disables).
        close_gripper: from this horizon step on the gripper action is forced to 1.0 (reference option).
        momentum_mean, momentum_std: ``new = (1 - m) * elite_stat + m * old`` for position/rotation.
        momentum_mean_gripper, momentum_std_gripper: the same for the gripper.
        min_std: lower bound on every searched std (0 = reference behaviour).
        energy: ``"l1"`` (paper) or ``"l2"``; used when no objective is injected.
        normalize: compare layer-normed predicted and goal tokens. With :meth:`CEMPlanner.for_world_model`
            the energy normalises only when the world model does not already (tokens are normed once).
        warm_start: start each plan from the previous plan shifted by one step (``reset()`` forgets it).
        seed: seed of the planner's own ``torch.Generator`` (``None``: nondeterministic).
    """

    samples: int = 800
    iterations: int = 10
    topk: int = 10
    horizon: int = 1
    maxnorm: float = 0.075
    position_constraint: str = "box"
    init_std_position: float | None = None
    rotation: str = "zero"
    max_rotation: float = 0.1
    sample_gripper: bool = True
    gripper_limit: float = 0.75
    init_std_gripper: float = 1.0
    gripper_round: float = 0.25
    close_gripper: int | None = None
    momentum_mean: float = 0.0
    momentum_std: float = 0.0
    momentum_mean_gripper: float = 0.0
    momentum_std_gripper: float = 0.0
    min_std: float = 0.0
    energy: str = "l1"
    normalize: bool = True
    warm_start: bool = False
    seed: int | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` with the offending field for inconsistent settings."""
        for name in ("samples", "iterations", "topk", "horizon"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"CEMConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.topk > self.samples:
            raise ValueError(f"CEMConfig.topk ({self.topk}) must not exceed samples ({self.samples})")
        if self.topk < 2:
            raise ValueError("CEMConfig.topk must be >= 2 (the elite std needs two samples)")
        if not (self.maxnorm > 0 and math.isfinite(self.maxnorm)):
            raise ValueError(f"CEMConfig.maxnorm must be a positive finite number, got {self.maxnorm}")
        if self.position_constraint not in ("box", "l1"):
            raise ValueError(
                f"CEMConfig.position_constraint must be 'box' or 'l1', got {self.position_constraint!r}"
            )
        if self.rotation not in ("zero", "sample"):
            raise ValueError(f"CEMConfig.rotation must be 'zero' or 'sample', got {self.rotation!r}")
        if self.max_rotation <= 0 or self.gripper_limit <= 0:
            raise ValueError("CEMConfig.max_rotation and gripper_limit must be > 0")
        for name in ("momentum_mean", "momentum_std", "momentum_mean_gripper", "momentum_std_gripper"):
            v = getattr(self, name)
            if not 0.0 <= v < 1.0:
                raise ValueError(f"CEMConfig.{name} must be in [0, 1), got {v}")
        if self.energy not in ("l1", "l2"):
            raise ValueError(f"CEMConfig.energy must be 'l1' or 'l2', got {self.energy!r}")
        if self.close_gripper is not None and self.close_gripper < 0:
            raise ValueError("CEMConfig.close_gripper must be >= 0 or None")

    @classmethod
    def from_dict(cls, d: dict) -> CEMConfig:
        """Build from a dict, rejecting unknown keys (so typos in YAML files fail loudly)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown CEMConfig keys {unknown}; valid keys: {sorted(names)}")
        return cls(**d)

    @classmethod
    def preset(cls, name: str, **overrides: object) -> CEMConfig:
        """A named preset (see :data:`PRESETS`) with optional field overrides."""
        if name not in PRESETS:
            raise ValueError(f"unknown CEM preset {name!r}; choose one of {sorted(PRESETS)}")
        return cls.from_dict({**PRESETS[name], **overrides})

    def to_dict(self) -> dict:
        """Plain dict of every field (for saving the resolved config beside results)."""
        return dataclasses.asdict(self)


#: Named settings. ``paper``: Table 3 (800 x 10, top-10, H=1, 0.075 m). ``reference_cem``: the defaults of
#: the released ``cem()``. ``reference_world_model``: the released ``WorldModel`` ``mpc_args``.
#: ``notebook``: the CPU energy-landscape notebook. ``bench_h2``: the CPU benchmark target of issue 4.
PRESETS: dict[str, dict] = {
    "paper": {},
    "reference_cem": dict(
        samples=100, iterations=100, topk=10, horizon=1, maxnorm=0.05, momentum_mean=0.25,
        momentum_std=0.95, momentum_mean_gripper=0.15, momentum_std_gripper=0.15,
    ),
    "reference_world_model": dict(
        samples=400, iterations=10, topk=10, horizon=2, maxnorm=0.05, momentum_mean=0.15,
        momentum_std=0.15, momentum_mean_gripper=0.15, momentum_std_gripper=0.15,
    ),
    "notebook": dict(
        samples=25, iterations=2, topk=10, horizon=2, maxnorm=0.075, momentum_mean=0.15,
        momentum_std=0.75, momentum_mean_gripper=0.15, momentum_std_gripper=0.15,
    ),
    "bench_h2": dict(samples=800, iterations=10, topk=10, horizon=2, maxnorm=0.075),
}


@dataclass
class PlanResult:
    """Outcome of one CEM call (tensors on the planner's device).

    Attributes:
        actions: [H, 7] the plan (final mean, post-processed); execute ``actions[0]``.
        mean, std: [H, 7] the final Gaussian (``mean`` before gripper rounding, used for warm start).
        best_actions: [H, 7] the lowest-energy sample seen; ``best_energy`` its energy.
        energy: the energy of ``actions`` (the plan itself; NaN when cancelled).
        elite_energy: per iteration, the mean energy of the elites.
        samples_evaluated: total CEM trajectories scored (the plan's own scoring not counted).
        timings_ms: ``total``, ``unroll`` (world model + objective), ``sampling`` (the rest) and, for a
            gradient-refined plan, ``refine``.
        cancelled: ``cancel()`` returned True between iterations; the plan is unfinished and not kept for
            the warm start.
        refine_energy: energies of the gradient refinement's iterates, start first (empty without one).
    """

    actions: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    best_actions: torch.Tensor
    best_energy: float
    energy: float = math.nan
    elite_energy: list[float] = field(default_factory=list)
    samples_evaluated: int = 0
    timings_ms: dict[str, float] = field(default_factory=dict)
    cancelled: bool = False
    refine_energy: list[float] = field(default_factory=list)


@dataclass
class Search:
    """State of one plan's sampling search, shared by the planners built on :class:`CEMPlanner` (their
    ``_sample`` / ``_update`` steps read and move it).

    Attributes:
        mean, std: [H, 7] the current sampling distribution.
        searched: [H, 7] dimensions that are sampled at all (fixed ones keep their value).
        m_mean, m_std: [7] momenta of the mean / std update per action dimension.
        iteration: index of the running iteration.
        best_energy, best_actions: the lowest-energy sample scored so far.
        history: per iteration, the mean energy of its ``topk`` lowest energies (CEM's elites).
        evaluated: trajectories scored by the search (the plan's own scoring not counted).
        t0, t_unroll: start of the plan (``time.perf_counter``) and seconds spent in unroll + objective.
        cancelled: ``cancel()`` returned True.
    """

    mean: torch.Tensor
    std: torch.Tensor
    searched: torch.Tensor
    m_mean: torch.Tensor
    m_std: torch.Tensor
    best_actions: torch.Tensor
    best_energy: float = math.inf
    iteration: int = 0
    history: list[float] = field(default_factory=list)
    evaluated: int = 0
    t0: float = 0.0
    t_unroll: float = 0.0
    cancelled: bool = False

    def observe(self, best_energy: torch.Tensor | float, best_actions: torch.Tensor, elite_energy: float) -> None:
        """Record an iteration: its lowest energy and that sample (kept if it beats the best so far) and the
        mean elite energy (for :attr:`PlanResult.elite_energy`)."""
        if float(best_energy) < self.best_energy:
            self.best_energy = float(best_energy)
            self.best_actions = best_actions.clone()
        self.history.append(float(elite_energy))


class CEMPlanner:
    """CEM over action trajectories; see the module docstring. Reusable across control steps.

    Subclasses (:class:`~vjepa_core.planning.mppi.MPPIPlanner`, :class:`~vjepa_core.planning.icem.ICEMPlanner`)
    share the bounds, the initial / warm-start distribution, the scoring and the post-processing, and replace
    the sampling (``_sample``) or the distribution update (``_update``); ``config_class`` is their config type.
    """

    config_class: type[CEMConfig] = CEMConfig

    def __init__(
        self,
        config: CEMConfig | None = None,
        unroll: Unroll | None = None,
        objective: Objective | None = None,
    ) -> None:
        self.config = config if config is not None else self.config_class()
        if type(self.config) is not self.config_class:  # a subclass's options would be silently ignored
            raise TypeError(f"{type(self).__name__} takes a {self.config_class.__name__}, "
                            f"got {type(self.config).__name__}")
        self.config.validate()
        if unroll is None or not callable(unroll):
            raise ValueError(f"{type(self).__name__} needs an unroll(context_tokens, context_states, actions) "
                             "callable")
        self.unroll = unroll
        self.objective = objective if objective is not None else get_objective(
            self.config.energy, self.config.normalize
        )
        self._generator: torch.Generator | None = None
        self._last_mean: torch.Tensor | None = None

    @classmethod
    def for_world_model(cls, world_model: RolloutModel, config: CEMConfig | None = None) -> CEMPlanner:
        """A planner over ``world_model.unroll`` with the energy named by ``config``.

        The energy layer-norms tokens only when ``config.normalize`` asks for it and the world model does not
        already normalise its predictions (``world_model.normalize``), so every token is normed exactly once.
        """
        config = config if config is not None else cls.config_class()
        normalized = bool(getattr(world_model, "normalize", False))
        return cls(config, world_model.unroll, get_objective(config.energy, config.normalize and not normalized))

    # ----------------------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget the previous plan (warm start) and re-seed the generator (same seed -> same plans)."""
        self._last_mean = None
        self._generator = None

    def _gen(self, device: torch.device) -> torch.Generator | None:
        if self.config.seed is None:
            return None
        if self._generator is None or self._generator.device != device:
            self._generator = torch.Generator(device=device)
            self._generator.manual_seed(int(self.config.seed))
        return self._generator

    def _bounds(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-dimension [7] lower/upper bounds of a sampled action (fixed dims have 0 width)."""
        c = self.config
        hi = torch.zeros(ACTION_DIM, device=device)
        hi[_POS] = c.maxnorm
        if c.rotation == "sample":
            hi[_ROT] = c.max_rotation
        if c.sample_gripper:
            hi[_GRIP] = c.gripper_limit
        return -hi, hi

    def _initial(
        self, device: torch.device, init_mean: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.config
        H = c.horizon
        std = torch.zeros(H, ACTION_DIM, device=device)
        std[:, _POS] = c.maxnorm if c.init_std_position is None else c.init_std_position
        if c.rotation == "sample":
            std[:, _ROT] = c.max_rotation
        if c.sample_gripper:
            std[:, _GRIP] = c.init_std_gripper
        mean = torch.zeros(H, ACTION_DIM, device=device)
        if init_mean is None and c.warm_start and self._last_mean is not None:
            prev = self._last_mean.to(device)
            mean[: H - 1] = prev[1:H]  # shift: the first action was executed; last step starts at 0
        elif init_mean is not None:
            init_mean = torch.as_tensor(init_mean, dtype=torch.float32, device=device)
            if init_mean.shape != (H, ACTION_DIM):
                raise ValueError(f"init_mean must be [{H}, {ACTION_DIM}], got {tuple(init_mean.shape)}")
            mean = init_mean.clone()
        lo, hi = self._bounds(device)
        mean = torch.maximum(torch.minimum(mean, hi), lo)
        return mean, std

    def constrain(self, actions: torch.Tensor) -> torch.Tensor:
        """Project sampled actions [S, H, 7] onto the feasible set (in place safe: returns a new tensor)."""
        c = self.config
        lo, hi = self._bounds(actions.device)
        out = torch.maximum(torch.minimum(actions, hi), lo)
        if c.position_constraint == "l1":
            pos = actions[..., _POS]
            l1 = pos.abs().sum(dim=-1, keepdim=True)
            scale = torch.clamp(c.maxnorm / l1.clamp_min(1e-12), max=1.0)
            out = out.clone()
            out[..., _POS] = pos * scale
        if c.close_gripper is not None and c.close_gripper < c.horizon:
            out = out.clone()
            out[:, c.close_gripper :, _GRIP] = 1.0
        return out

    def _score(
        self, ctx_tokens: torch.Tensor, ctx_states: torch.Tensor, goal: torch.Tensor, actions: torch.Tensor
    ) -> torch.Tensor:
        S = actions.shape[0]
        # one call for every sample: the unroll (e.g. WorldModel.unroll) bounds its own memory by chunking
        e = self.objective(self.unroll(ctx_tokens, ctx_states, actions), goal)
        if e.shape != (S,):
            raise ValueError(f"objective must return one energy per sample, got shape {tuple(e.shape)}")
        return e.float()

    # ----------------------------------------------------------------------------------------------------
    # the search, split into steps that the other planners reuse (MPPI / iCEM override _sample / _update; the
    # gradient refiner runs check_inputs -> search -> its own refinement -> finalize)
    def check_inputs(
        self, context_tokens: torch.Tensor, context_states: torch.Tensor, goal_tokens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Validate ``plan``'s inputs and return them as ``[T, N, D]``, ``[T, 7]``, ``[N, D]`` (a single frame or
        state gets its time axis), so a bad call fails with the offending argument named, before any unroll."""
        if context_tokens.dim() == 2:
            context_tokens = context_tokens.unsqueeze(0)
        if context_states.dim() == 1:
            context_states = context_states.unsqueeze(0)
        if context_tokens.dim() != 3:
            raise ValueError(f"context_tokens must be [T, N, D] or [N, D], got {tuple(context_tokens.shape)}")
        if context_states.shape != (context_tokens.shape[0], ACTION_DIM):
            raise ValueError(
                f"context_states must be [{context_tokens.shape[0]}, 7] to match the context frames, "
                f"got {tuple(context_states.shape)}"
            )
        if goal_tokens.shape[-2:] != context_tokens.shape[-2:]:
            raise ValueError(
                f"goal tokens {tuple(goal_tokens.shape)} do not match context tokens "
                f"{tuple(context_tokens.shape)}"
            )
        for name, t in (("context_tokens", context_tokens), ("context_states", context_states),
                        ("goal_tokens", goal_tokens)):
            if not torch.isfinite(t).all():
                raise ValueError(f"{name} contains NaN or Inf")
        return context_tokens, context_states, goal_tokens

    def _sample(self, s: Search, gen: torch.Generator | None) -> torch.Tensor:
        """Candidate trajectories ``[S, H, 7]`` of one iteration (CEM: white Gaussian noise around the mean),
        projected onto the feasible set."""
        noise = torch.randn(self.config.samples, self.config.horizon, ACTION_DIM, generator=gen, device=s.mean.device)
        return self.constrain(s.mean + s.std * noise)

    def _update(self, s: Search, actions: torch.Tensor, energy: torch.Tensor) -> None:
        """Move ``s.mean`` / ``s.std`` given the scored samples (CEM: refit to the ``topk`` lowest energies, with
        momentum) and record the iteration's best sample and elite energy."""
        self._refit_to_elites(s, actions, energy)

    def _refit_to_elites(
        self, s: Search, actions: torch.Tensor, energy: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """CEM's update; returns the elites ``[K, H, 7]`` and their energies ``[K]``, best first."""
        vals, idx = torch.topk(energy, self.config.topk, largest=False)
        elites = actions[idx]  # [K, H, 7]
        s.observe(vals[0], elites[0], float(vals.mean()))
        self._move(s, elites.mean(dim=0), elites.std(dim=0))
        return elites, vals

    def _move(self, s: Search, new_mean: torch.Tensor, new_std: torch.Tensor) -> None:
        """``mean/std <- (1 - m) * new + m * old`` on the searched dimensions (momenta per dimension, the
        gripper's separate), the std floored at ``min_std``; fixed dimensions keep their value."""
        s.mean = torch.where(s.searched, (1 - s.m_mean) * new_mean + s.m_mean * s.mean, s.mean)
        s.std = torch.where(s.searched, ((1 - s.m_std) * new_std + s.m_std * s.std).clamp_min(self.config.min_std),
                            s.std)

    def search(
        self,
        context_tokens: torch.Tensor,
        context_states: torch.Tensor,
        goal_tokens: torch.Tensor,
        init_mean: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        cancel: Callable[[], bool] | None = None,
        iterations: int | None = None,
    ) -> Search:
        """Run the sampling iterations on checked inputs (see :meth:`check_inputs`) and return the search state;
        ``iterations`` overrides ``config.iterations`` (0: only the initial / warm-start mean)."""
        c = self.config
        device = context_tokens.device
        gen = generator if generator is not None else self._gen(device)
        mean, std = self._initial(device, init_mean)
        grip_cols = torch.zeros(ACTION_DIM, dtype=torch.bool, device=device)
        grip_cols[_GRIP] = True
        s = Search(
            mean=mean, std=std, searched=std > 0, best_actions=mean.clone(), t0=time.perf_counter(),
            m_mean=torch.where(grip_cols, c.momentum_mean_gripper, c.momentum_mean).to(device),
            m_std=torch.where(grip_cols, c.momentum_std_gripper, c.momentum_std).to(device),
        )
        for it in range(c.iterations if iterations is None else int(iterations)):
            if cancel is not None and cancel():
                s.cancelled = True
                break
            s.iteration = it
            actions = self._sample(s, gen)
            energy = self.score(context_tokens, context_states, goal_tokens, actions, s)
            s.evaluated += actions.shape[0]
            self._update(s, actions, energy)
        return s

    def score(
        self, ctx_tokens: torch.Tensor, ctx_states: torch.Tensor, goal: torch.Tensor, actions: torch.Tensor,
        s: Search | None = None,
    ) -> torch.Tensor:
        """Energies ``[S]`` of ``actions`` ``[S, H, 7]`` with one ``unroll`` call for every sample (the unroll,
        e.g. ``WorldModel.unroll``, bounds its own memory by chunking); the time is added to ``s.t_unroll``."""
        tu = time.perf_counter()
        S = actions.shape[0]
        e = self.objective(self.unroll(ctx_tokens, ctx_states, actions), goal)
        if e.shape != (S,):
            raise ValueError(f"objective must return one energy per sample, got shape {tuple(e.shape)}")
        if s is not None:
            s.t_unroll += time.perf_counter() - tu
        return e.float()

    def postprocess(self, mean: torch.Tensor) -> torch.Tensor:
        """The executable plan ``[H, 7]`` from a mean: projected onto the feasible set, gripper values with
        ``|g| < gripper_round`` set to 0 (the reference's rounding: small gripper moves are noise)."""
        plan = self.constrain(mean.unsqueeze(0))[0]
        if self.config.gripper_round > 0:
            g = plan[:, _GRIP]
            plan[:, _GRIP] = torch.where(g.abs() < self.config.gripper_round, torch.zeros_like(g), g)
        return plan

    def finalize(
        self, s: Search, context_tokens: torch.Tensor, context_states: torch.Tensor, goal_tokens: torch.Tensor,
        extra_timings_ms: dict[str, float] | None = None,
    ) -> PlanResult:
        """Post-process ``s.mean`` into the plan, score it (one batch-1 unroll; not when cancelled), keep the mean
        for the warm start and assemble the :class:`PlanResult`."""
        plan = self.postprocess(s.mean)
        plan_energy = math.nan
        if not s.cancelled:
            self._remember(s)
            plan_energy = float(self.score(context_tokens, context_states, goal_tokens, plan.unsqueeze(0), s)[0])
        total = (time.perf_counter() - s.t0) * 1e3
        extra = dict(extra_timings_ms or {})
        timings = {"total": total, "unroll": s.t_unroll * 1e3,
                   "sampling": total - s.t_unroll * 1e3 - sum(extra.values()), **extra}
        return PlanResult(
            actions=plan,
            mean=s.mean,
            std=s.std,
            best_actions=s.best_actions,
            best_energy=s.best_energy,
            energy=plan_energy,
            elite_energy=s.history,
            samples_evaluated=s.evaluated,
            timings_ms=timings,
            cancelled=s.cancelled,
        )

    def _remember(self, s: Search) -> None:
        """Keep what the next plan's warm start needs (CEM: the final mean)."""
        self._last_mean = s.mean.clone()

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
        """Plan ``horizon`` actions from the context toward the goal.

        Args:
            context_tokens: [T_ctx, N, D] (or [N, D] for one frame) encoded observations.
            context_states: [T_ctx, 7] (or [7]) end-effector states matching the frames.
            goal_tokens: [N, D] goal representation.
            init_mean: optional [H, 7] initial mean (overrides the warm start).
            generator: optional torch.Generator on the tokens' device (overrides ``config.seed``).
            cancel: asked before every iteration; when it returns True the plan ends at once with
                ``cancelled=True`` (e.g. a stop request arrived: the caller discards the plan).
        Returns:
            A :class:`PlanResult`; ``result.actions[0]`` is the action to execute (unless ``cancelled``).
        """
        ctx, st, goal = self.check_inputs(context_tokens, context_states, goal_tokens)
        s = self.search(ctx, st, goal, init_mean, generator, cancel)
        return self.finalize(s, ctx, st, goal)

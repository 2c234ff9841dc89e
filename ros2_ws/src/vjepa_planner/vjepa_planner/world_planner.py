"""The planning step the node runs for :class:`~vjepa_planner.episode.EpisodeLoop`: latents + state -> action.

ROS-free: CEM or another planner of ``vjepa_core.planning`` (iCEM, MPPI, gradient refinement: chosen by name with
:func:`~vjepa_core.planning.make_planner`) over the AC world model (``vjepa_core.inference.WorldModel``) toward the
goal latent, with the paper's L1 energy. Latents arrive validated (:func:`vjepa_core.msgconv.latent_from_msg`
against :attr:`LatentPlanner.expected_grid`); the planner still refuses a grid that does not fit the predictor.
Also here: the id of the encoder a checkpoint's predictor was trained with (what the planner expects latents from).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from vjepa_core.checkpoint import CheckpointError, arch_name, model_id, read_checkpoint
from vjepa_core.config import ConfigError, EncoderConfig
from vjepa_core.inference import WorldModel
from vjepa_core.loading import ModelLoadError, resolve_model_config
from vjepa_core.msgconv import LatentArray
from vjepa_core.planning import CEMConfig, Planner, make_planner
from vjepa_core.tokens import normalize_tokens

from .episode import PlanOutput, PlanRequest
from .safety import SafetyFault

__all__ = ["LatentPlanner", "checkpoint_encoder_id"]


class LatentPlanner:
    """Plans one receding-horizon step from a latent toward a goal latent (called from one thread only)."""

    def __init__(self, world_model: WorldModel, cem: CEMConfig | Mapping[str, Any], grid_hw: tuple[int, int],
                 kind: str = "cem") -> None:
        """``cem``: the planner's settings (a :class:`CEMConfig` or the config dict of
        :func:`~vjepa_core.planning.make_planner`); ``kind``: the planner kind (``cem``, ``mppi``, ``cem_adam`` ...).
        The planner is kept as ``self.cem`` whatever its kind (it has CEM's ``plan`` / ``reset`` / ``objective`` /
        ``config``)."""
        be = world_model.backend
        h, w = (int(v) for v in grid_hw)
        if h * w != be.tokens_per_frame:
            raise ValueError(f"token grid {h}x{w} does not match the predictor's {be.tokens_per_frame} tokens")
        self.world_model = world_model
        self.kind = kind
        self._settings = dict(cem.to_dict() if isinstance(cem, CEMConfig) else cem)
        self.cem: Planner = make_planner(kind, self._settings, world_model)
        self._other: Planner | None = None  # the gripper search the other way round (a goal's gripper mode)
        self.device = be.device
        self.expected_grid: tuple[int, int, int] = (h, w, int(be.embed_dim))
        self._goal: tuple[int, int] | None = None  # (episode, goal index) of the last plan

    def tokens(self, latent: LatentArray) -> torch.Tensor:
        """A latent's last frame as the predictor's ``[N, D]`` tokens, layer-normed once when the model wants it."""
        f, h, w, d = latent.grid
        if (h, w, d) != self.expected_grid:
            raise SafetyFault(f"latent grid {f}x{h}x{w}x{d} does not match the predictor's "
                              f"{'x'.join(str(v) for v in self.expected_grid)} per frame")
        x = torch.from_numpy(np.ascontiguousarray(latent.tokens[-1], dtype=np.float32)).reshape(h * w, d)
        x = x.to(self.device)
        if not latent.normalized and self.world_model.normalize:
            x = normalize_tokens(x)
        return x

    def planner_for(self, plan_gripper: bool | None) -> Planner:
        """The planner for a goal's gripper mode: the configured one, or (``plan_gripper`` differing from its
        ``sample_gripper``) the same settings with the gripper search switched on or off. A held gripper's action
        dimension stays 0, so the episode loop's latched gripper command does not change."""
        if plan_gripper is None or bool(plan_gripper) == bool(self.cem.config.sample_gripper):
            return self.cem
        if self._other is None:  # built on first use
            flipped = {**self._settings, "sample_gripper": not self.cem.config.sample_gripper}
            self._other = make_planner(self.kind, flipped, self.world_model)
        return self._other

    @torch.no_grad()
    def __call__(self, request: PlanRequest, cancel: Callable[[], bool] | None = None) -> PlanOutput:
        """Plan for ``request``; ``cancel`` (asked between iterations and gradient steps) abandons it early.

        The goal energy of the current observation comes first: when the request only measures it
        (``measure_only``: the goal's budget is spent) or it already meets the goal's threshold, no search runs
        (``planned=False``), so moving on to the next goal of a sequence costs no plan.
        """
        t0 = time.perf_counter()
        planner = self.planner_for(request.plan_gripper)
        key = (request.episode, request.goal_index)
        if key != self._goal:  # a new goal: forget the last plan, re-seed (reproducible episodes)
            planner.reset()
            self._goal = key
        ctx = self.tokens(request.latent)
        goal = self.tokens(request.goal)
        goal_energy = float(planner.objective(ctx[None], goal)[0])
        if request.measure_only or (request.energy_threshold > 0 and goal_energy <= request.energy_threshold):
            return PlanOutput(action=np.zeros(7), energy=float("nan"), goal_energy=goal_energy,
                              planning_time=time.perf_counter() - t0, planned=False)
        st = torch.as_tensor(np.asarray(request.state, dtype=np.float32), device=self.device).reshape(1, 7)
        result = planner.plan(ctx[None], st, goal, cancel=cancel)
        return PlanOutput(action=result.actions[0].double().cpu().numpy(), energy=result.energy,
                          goal_energy=goal_energy, planning_time=time.perf_counter() - t0,
                          cancelled=result.cancelled,
                          info={"timings_ms": result.timings_ms, "samples": result.samples_evaluated})


def checkpoint_encoder_id(checkpoint: str | os.PathLike[str], model_config: str,
                          digest: str | None = None) -> tuple[str, str]:
    """``(model id, "")`` of the encoder stored next to the predictor in ``checkpoint``, else ``("", why not)``.

    The id is the one encoder_node publishes for the same checkpoint and ``model_config``
    (:func:`vjepa_core.checkpoint.model_id`: ``"<arch>@<sha256 prefix>"``). ``digest`` is that sha256 prefix when
    the caller has it already (e.g. from ``LoadedModel.predictor_id``), so a multi-GB file is not hashed twice.
    """
    try:
        enc_dict, _ = resolve_model_config(model_config, checkpoint)
        if enc_dict is None:
            return "", f"model_config {model_config!r} describes no encoder"
        cfg = EncoderConfig.from_dict(dict(enc_dict))
        ckpt = read_checkpoint(checkpoint, mmap=True)
    except (ModelLoadError, CheckpointError, ConfigError, OSError, ValueError) as exc:
        return "", str(exc)
    if not any(isinstance(ckpt.get(k), dict) and ckpt[k] for k in ("encoder", "target_encoder")):
        return "", f"{checkpoint} holds no encoder weights (top-level keys: {sorted(ckpt)})"
    return (f"{arch_name(cfg)}@{digest}" if digest else model_id(cfg, checkpoint)), ""

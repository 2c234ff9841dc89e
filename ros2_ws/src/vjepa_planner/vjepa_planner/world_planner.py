"""The planning step the node injects into :class:`~vjepa_planner.episode.EpisodeLoop`: latents + state -> action.

ROS-free: CEM (``vjepa_core.planning``) over the AC world model (``vjepa_core.inference.WorldModel``) toward the
goal latent, with the paper's L1 energy. Checks that each latent's token grid matches the predictor.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from vjepa_core.inference import WorldModel
from vjepa_core.planning import CEMConfig, CEMPlanner

from .episode import PlanOutput
from .safety import SafetyFault

__all__ = ["LatentPlanner"]


class LatentPlanner:
    """Plans one receding-horizon step from the newest latent toward a goal latent."""

    def __init__(self, world_model: WorldModel, cem: CEMConfig) -> None:
        self.world_model = world_model
        self.planner = CEMPlanner.for_world_model(world_model, cem)
        self.goal: torch.Tensor | None = None
        self.device = world_model.backend.device

    def tokens(self, grid: np.ndarray, normalized: bool) -> torch.Tensor:
        """A Latent's [frames, h, w, D] grid -> the predictor's [N, D] context tokens (last frame)."""
        be = self.world_model.backend
        if grid.ndim != 4 or grid.shape[1] * grid.shape[2] != be.tokens_per_frame or grid.shape[3] != be.embed_dim:
            raise SafetyFault(f"latent grid {tuple(grid.shape)} does not match the predictor "
                              f"({be.tokens_per_frame} tokens x {be.embed_dim} dims per frame)")
        x = torch.from_numpy(np.ascontiguousarray(grid[-1], dtype=np.float32)).reshape(-1, grid.shape[3])
        x = x.to(self.device)
        if not normalized and self.world_model.normalize:
            x = F.layer_norm(x, (x.shape[-1],))
        return x

    def set_goal(self, grid: np.ndarray, normalized: bool) -> None:
        """Store the goal latent and forget the previous plan (warm start)."""
        self.goal = self.tokens(grid, normalized)
        self.planner.reset()

    @torch.no_grad()
    def __call__(self, latent: tuple[np.ndarray, bool], state: np.ndarray) -> PlanOutput:
        """``plan_fn`` for the episode loop: ``latent`` = (grid, normalized)."""
        if self.goal is None:
            raise SafetyFault("no goal latent")
        ctx = self.tokens(*latent)
        st = torch.as_tensor(np.asarray(state, dtype=np.float32), device=self.device).reshape(1, 7)
        result = self.planner.plan(ctx[None], st, self.goal)
        action = result.actions[0]
        goal_energy = float(self.planner.objective(ctx[None], self.goal)[0])
        return PlanOutput(action=action.double().cpu().numpy(), energy=result.energy, goal_energy=goal_energy,
                          info={"timings_ms": result.timings_ms, "samples": result.samples_evaluated})

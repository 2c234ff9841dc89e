"""Planning energies: distance between predicted and goal token maps.

The paper's energy (V-JEPA 2 §3.2, Eq. 5) is the L1 distance between the predicted representation and the
goal image's representation; the reference code layer-normalises both (no affine) and takes
``mean(|a - b|)`` over all tokens and channels of the final predicted frame. An L2 variant is provided
because third-party studies (JEPA-WMs) found it plans better on some tasks.

``normalize=True`` layer-norms both inputs here (:func:`vjepa_core.tokens.normalize_tokens`); pass
``normalize=False`` when they are normed already, e.g. the predictions of a ``WorldModel(normalize=True)``
(:meth:`vjepa_core.planning.CEMPlanner.for_world_model` decides this for a planner).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..tokens import normalize_tokens

__all__ = ["Objective", "l1_energy", "l2_energy", "get_objective"]

#: ``objective(predicted[S, N, D], goal[N, D] or [1, N, D]) -> energies[S]`` (lower is better).
Objective = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _prep(pred: torch.Tensor, goal: torch.Tensor, normalize: bool) -> tuple[torch.Tensor, torch.Tensor]:
    if pred.dim() < 2:
        raise ValueError(f"predicted tokens must be [S, ..., D], got {tuple(pred.shape)}")
    if goal.dim() == pred.dim() - 1:
        goal = goal.unsqueeze(0)
    if goal.shape[1:] != pred.shape[1:]:
        raise ValueError(
            f"goal tokens {tuple(goal.shape)} do not match predicted tokens {tuple(pred.shape)}"
        )
    pred = pred.float()
    goal = goal.to(pred.device).float()
    if normalize:
        pred = normalize_tokens(pred)
        goal = normalize_tokens(goal)
    return pred, goal


def l1_energy(pred: torch.Tensor, goal: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    """Mean absolute difference per sample between (layer-normed) predicted and goal tokens -> [S]."""
    p, g = _prep(pred, goal, normalize)
    return (p - g).abs().flatten(1).mean(dim=1)


def l2_energy(pred: torch.Tensor, goal: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    """Mean squared difference per sample between (layer-normed) predicted and goal tokens -> [S]."""
    p, g = _prep(pred, goal, normalize)
    return (p - g).pow(2).flatten(1).mean(dim=1)


def get_objective(name: str, normalize: bool = True) -> Objective:
    """Objective by name (``"l1"`` or ``"l2"``), with or without layer normalisation."""
    table = {"l1": l1_energy, "l2": l2_energy}
    if name not in table:
        raise ValueError(f"unknown energy {name!r}; choose one of {sorted(table)}")
    fn = table[name]
    return lambda pred, goal: fn(pred, goal, normalize=normalize)

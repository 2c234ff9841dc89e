"""Learning-rate, weight-decay and EMA-momentum schedules as pure functions of the optimizer step.

Being stateless, they need no saving: a resumed run recomputes the same values from the step it resumes at
(the "scheduler state" in a checkpoint is just the step). Reference: ``WSDSchedule`` / ``WarmupCosineSchedule``
/ ``CosineWDSchedule`` in ``src/utils/schedulers.py``.
"""

from __future__ import annotations

import math

from .config import OptimConfig

__all__ = ["ema_momentum", "learning_rate", "weight_decay"]


def learning_rate(cfg: OptimConfig, step: int) -> float:
    """LR used for optimizer step ``step`` (0-based).

    ``wsd``: linear warmup ``start_lr -> lr`` over ``warmup_steps``, constant ``lr``, then linear ``lr ->
    final_lr`` over the last ``cooldown_steps``. ``cosine``: warmup, then half-cosine ``lr -> final_lr``.
    """
    step = min(max(step, 0), cfg.total_steps)
    if step < cfg.warmup_steps:
        return cfg.start_lr + (cfg.lr - cfg.start_lr) * (step + 1) / cfg.warmup_steps
    if cfg.lr_schedule == "cosine":
        span = max(1, cfg.total_steps - cfg.warmup_steps)
        progress = (step - cfg.warmup_steps) / span
        return cfg.final_lr + 0.5 * (cfg.lr - cfg.final_lr) * (1.0 + math.cos(math.pi * progress))
    cool_start = cfg.total_steps - cfg.cooldown_steps
    if cfg.cooldown_steps > 0 and step >= cool_start:
        progress = (step - cool_start + 1) / cfg.cooldown_steps
        return cfg.lr + (cfg.final_lr - cfg.lr) * min(progress, 1.0)
    return cfg.lr


def weight_decay(cfg: OptimConfig, step: int) -> float:
    """Weight decay at ``step``: cosine ``weight_decay -> final_weight_decay`` over ``total_steps``."""
    progress = min(max(step, 0), cfg.total_steps) / cfg.total_steps
    span = cfg.weight_decay - cfg.final_weight_decay
    return cfg.final_weight_decay + 0.5 * span * (1 + math.cos(math.pi * progress))


def ema_momentum(cfg: OptimConfig, step: int) -> float:
    """EMA momentum at ``step``: linear ``ema[0] -> ema[1]`` over ``total_steps``."""
    progress = min(max(step, 0), cfg.total_steps) / cfg.total_steps
    return cfg.ema[0] + (cfg.ema[1] - cfg.ema[0]) * progress

"""MPPI (model-predictive path integral) planner over 7-D actions, with the world model injected.

Sampling, bounds, the initial / warm-start distribution, scoring and the final post-processing are CEM's
(:class:`~vjepa_core.planning.cem.CEMPlanner`); only the update differs. Where CEM refits the Gaussian to the
``topk`` best samples, MPPI moves the mean to the average of **all** samples weighted by
``softmax(-(energy - min energy) / lambda)``. The temperature ``lambda`` is relative to the spread of the
iteration's energies (``temperature * std(energy)`` by default, or ``* (max - min)``), so one setting works for
energies of any scale; ``temperature -> 0`` puts all the weight on the argmin, large values average the samples
uniformly. The std is refit to the weighted spread (``update_std``) or kept at its initial value (classic MPPI).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .cem import CEMConfig, CEMPlanner, Search

__all__ = ["MPPIConfig", "MPPIPlanner", "mppi_weights"]

TEMPERATURE_SCALES = ("std", "range", "absolute")


@dataclass
class MPPIConfig(CEMConfig):
    """CEM's settings (``topk`` only sizes the reported elite energy) plus MPPI's weighting.

    Attributes:
        temperature: softmax temperature, relative to the iteration's energy spread (see ``temperature_scale``).
        temperature_scale: ``"std"`` (lambda = temperature * std of the energies), ``"range"`` (* (max - min))
            or ``"absolute"`` (lambda = temperature, in energy units).
        update_std: refit the std to the weighted spread of the samples (otherwise it stays at the initial std).
    """

    temperature: float = 0.1
    temperature_scale: str = "std"
    update_std: bool = True

    def validate(self) -> None:
        """CEM's checks plus a positive finite temperature and a known scale."""
        super().validate()
        if not (isinstance(self.temperature, (int, float)) and math.isfinite(self.temperature)
                and self.temperature > 0):
            raise ValueError(f"MPPIConfig.temperature must be a positive finite number, got {self.temperature!r}")
        if self.temperature_scale not in TEMPERATURE_SCALES:
            raise ValueError(f"MPPIConfig.temperature_scale must be one of {TEMPERATURE_SCALES}, "
                             f"got {self.temperature_scale!r}")


def mppi_weights(energy: torch.Tensor, temperature: float, scale: str = "std") -> torch.Tensor:
    """Normalised weights ``[S]`` = ``softmax(-(energy - min) / lambda)``, ``lambda`` = ``temperature`` times the
    energies' std / range (``scale``), or ``temperature`` itself (``"absolute"``).

    Equal energies (zero spread) get equal weights; the shift by the minimum keeps the exponentials finite.
    """
    e = energy.float()
    if scale == "std":
        spread = float(e.std()) if e.numel() > 1 else 0.0
    elif scale == "range":
        spread = float(e.max() - e.min())
    elif scale == "absolute":
        spread = 1.0
    else:
        raise ValueError(f"unknown temperature scale {scale!r}; choose one of {TEMPERATURE_SCALES}")
    lam = temperature * spread
    if not lam > 0:  # all energies equal: nothing to prefer
        return torch.full_like(e, 1.0 / e.numel())
    return torch.softmax(-(e - e.min()) / lam, dim=0)


class MPPIPlanner(CEMPlanner):
    """MPPI with CEM's sampling and post-processing; see the module docstring."""

    config_class = MPPIConfig
    config: MPPIConfig

    def _update(self, s: Search, actions: torch.Tensor, energy: torch.Tensor) -> None:
        """Mean (and optionally std) <- the softmax(-energy / lambda)-weighted statistics of all samples."""
        c = self.config
        w = mppi_weights(energy, c.temperature, c.temperature_scale)[:, None, None]  # [S, 1, 1]
        new_mean = (w * actions).sum(dim=0)
        if c.update_std:
            new_std = ((w * (actions - new_mean).pow(2)).sum(dim=0)).sqrt()
        else:
            new_std = s.std
        k = min(c.topk, energy.numel())
        vals, idx = torch.topk(energy, k, largest=False)
        s.observe(vals[0], actions[idx[0]], float(vals.mean()))
        self._move(s, new_mean, new_std)

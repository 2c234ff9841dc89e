"""iCEM (Pinneri et al. 2020, "Sample-efficient cross-entropy method for real-time planning") as options on CEM.

:class:`ICEMPlanner` is :class:`~vjepa_core.planning.cem.CEMPlanner` with up to four changes, each off when its
setting is neutral (all neutral: exactly CEM, sample for sample):

* **colored noise** (``noise_beta``): samples are ``mean + std * n`` with ``n`` Gaussian noise whose power
  spectral density along the horizon falls as ``1 / f**beta`` (beta 0: white, 2: "red"/Brownian-like), so
  consecutive actions of a candidate are correlated. The lowest frequency is cut at ``1 / H`` (as the
  ``colorednoise`` package does), so horizons of 1 to 3 steps get white noise whatever ``beta`` is: with the
  paper's horizon 1 this option has no effect.
* **elite reuse across iterations** (``keep_elites``): a fraction of the previous iteration's elites joins the
  next iteration's samples with their energies (the world model is deterministic, so they are not re-scored).
* **elite shift across control steps** (``shift_elites``, with ``warm_start``): the last plan's kept elites,
  shifted by one step (the last step takes the warm-start mean's), are scored with the first iteration.
* **sample decay** (``samples_decay`` = gamma): iteration ``i`` draws ``max(samples * gamma**-i, 2 * topk)``
  samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .cem import ACTION_DIM, CEMConfig, CEMPlanner, Search, Unroll
from .energy import Objective

__all__ = ["ICEMConfig", "ICEMPlanner", "colored_noise"]


@dataclass
class ICEMConfig(CEMConfig):
    """CEM's settings plus iCEM's options (see the module docstring); defaults are the iCEM paper's.

    Attributes:
        noise_beta: exponent of the noise's power spectrum along the horizon (0 = white noise).
        keep_elites: fraction of ``topk`` elites carried into the next iteration (0 = none).
        shift_elites: with ``warm_start``, score the last plan's kept elites (shifted one step) in the first
            iteration.
        samples_decay: samples shrink by this factor per iteration (1 = constant), never below ``2 * topk``.
    """

    noise_beta: float = 2.0
    keep_elites: float = 0.3
    shift_elites: bool = True
    samples_decay: float = 1.0

    def validate(self) -> None:
        """CEM's checks plus iCEM's ranges."""
        super().validate()
        if not (math.isfinite(self.noise_beta) and self.noise_beta >= 0):
            raise ValueError(f"ICEMConfig.noise_beta must be a finite number >= 0, got {self.noise_beta!r}")
        if not 0.0 <= self.keep_elites <= 1.0:
            raise ValueError(f"ICEMConfig.keep_elites must be a fraction in [0, 1], got {self.keep_elites!r}")
        if not (math.isfinite(self.samples_decay) and self.samples_decay >= 1.0):
            raise ValueError(f"ICEMConfig.samples_decay must be >= 1 (1 = no decay), got {self.samples_decay!r}")

    def samples_at(self, iteration: int) -> int:
        """Samples drawn in ``iteration`` (0-based): ``max(samples * decay**-iteration, 2 * topk)``, at most
        ``samples``."""
        n = int(self.samples * self.samples_decay ** (-iteration))
        return min(self.samples, max(n, 2 * self.topk))

    @property
    def kept(self) -> int:
        """Elites carried between iterations / control steps: ``round(keep_elites * topk)``."""
        return int(round(self.keep_elites * self.topk))


def colored_noise(
    beta: float, samples: int, horizon: int, dim: int = ACTION_DIM,
    generator: torch.Generator | None = None, device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Gaussian noise ``[samples, horizon, dim]`` with unit variance per element and power spectral density
    ``~ 1 / f**beta`` along the horizon axis (independent across samples and dimensions).

    Spectral synthesis as in the ``colorednoise`` package (Timmer & Koenig 1995): random Fourier coefficients
    scaled by ``f**(-beta / 2)``, frequencies below ``1 / horizon`` raised to it, inverse real FFT, divided by
    the exact std of an output element (the package's normalisation leaves out the DC term, so its variance
    exceeds 1 for short horizons). ``beta == 0`` or ``horizon < 4`` (no two distinct frequencies above the
    cutoff: the spectrum is flat) is plain white noise from ``torch.randn`` with the same generator.
    """
    if beta < 0:
        raise ValueError(f"beta must be >= 0, got {beta}")
    f = torch.fft.rfftfreq(horizon, device=device)
    f[f < 1.0 / horizon] = 1.0 / horizon
    scale = f.pow(-beta / 2.0)
    if beta == 0 or bool((scale == scale[0]).all()):
        return torch.randn(samples, horizon, dim, generator=generator, device=device)
    # exact std of one output element: the DC (and, for an even horizon, Nyquist) terms are real with variance
    # 2 s^2, every other frequency enters twice (conjugate pair) with variance 4 s^2; irfft divides by horizon
    var = 2.0 * scale[0] ** 2 + 4.0 * (scale[1:] ** 2).sum()
    if horizon % 2 == 0:
        var = var - 2.0 * scale[-1] ** 2
    sigma = torch.sqrt(var) / horizon
    shape = (samples, dim, f.numel())
    re = torch.randn(shape, generator=generator, device=device) * scale
    im = torch.randn(shape, generator=generator, device=device) * scale
    if horizon % 2 == 0:
        im[..., -1] = 0.0
        re[..., -1] *= math.sqrt(2.0)
    im[..., 0] = 0.0
    re[..., 0] *= math.sqrt(2.0)
    y = torch.fft.irfft(torch.complex(re, im), n=horizon, dim=-1) / sigma
    return y.transpose(1, 2).contiguous()


class ICEMPlanner(CEMPlanner):
    """CEM with iCEM's options; see the module docstring."""

    config_class = ICEMConfig
    config: ICEMConfig

    def __init__(
        self, config: ICEMConfig | None = None, unroll: Unroll | None = None, objective: Objective | None = None
    ) -> None:
        super().__init__(config, unroll, objective)
        self._kept: tuple[torch.Tensor, torch.Tensor] | None = None  # this plan's carried elites (+ energies)
        self._prev_elites: torch.Tensor | None = None  # the last plan's kept elites (for the shift)

    def reset(self) -> None:
        """Forget the previous plan (warm start and shifted elites) and re-seed."""
        super().reset()
        self._prev_elites = None

    def _sample(self, s: Search, gen: torch.Generator | None) -> torch.Tensor:
        """Colored noise around the mean (``samples_at(iteration)`` of them); in the first iteration of a warm
        started plan, the previous plan's elites shifted one step are added."""
        c = self.config
        if s.iteration == 0:
            self._kept = None
        noise = colored_noise(c.noise_beta, c.samples_at(s.iteration), c.horizon, ACTION_DIM, gen, s.mean.device)
        actions = self.constrain(s.mean + s.std * noise)
        prev = self._prev_elites
        if s.iteration == 0 and c.warm_start and c.shift_elites and prev is not None and prev.numel():
            prev = prev.to(s.mean.device)
            shifted = torch.cat([prev[:, 1:], s.mean[-1:].expand(prev.shape[0], 1, ACTION_DIM)], dim=1)
            actions = torch.cat([actions, self.constrain(shifted)], dim=0)
        return actions

    def _update(self, s: Search, actions: torch.Tensor, energy: torch.Tensor) -> None:
        """CEM's refit over the new samples plus the carried elites; then carry ``kept`` of the new elites."""
        if self._kept is not None:
            actions = torch.cat([actions, self._kept[0]], dim=0)
            energy = torch.cat([energy, self._kept[1]], dim=0)
        elites, vals = self._refit_to_elites(s, actions, energy)
        n = self.config.kept
        self._kept = (elites[:n].clone(), vals[:n].clone()) if n > 0 else None

    def _remember(self, s: Search) -> None:
        """Keep the mean (warm start) and this plan's kept elites (shift)."""
        super()._remember(s)
        self._prev_elites = self._kept[0].clone() if self._kept is not None else None

"""Visible progress: ``RUN/metrics.csv``, TensorBoard scalars, a tqdm bar, and the collapse monitor.

Only rank 0 writes. ``metrics.csv`` has a fixed header per run (``step,loss,lr,...``); on resume the rows
past the resumed step (written before a kill, after the last checkpoint) are dropped so that the file reads
as one uninterrupted run.
"""

from __future__ import annotations

import csv
import logging
import math
import sys
from pathlib import Path
from typing import Any

import torch

__all__ = ["CollapseMonitor", "MetricsLogger", "feature_std"]

log = logging.getLogger("vjepa_train")


def feature_std(h: torch.Tensor) -> float:
    """Mean over channels of the std over all tokens of ``h[..., D]``: ~1 for healthy layer-normed targets,
    -> 0 when the encoder maps every token to the same vector (representation collapse)."""
    flat = h.detach().float().reshape(-1, h.shape[-1])
    if flat.shape[0] < 2:
        return float("nan")
    return float(flat.std(dim=0).mean())


class CollapseMonitor:
    """Warns (log + ``collapse_warnings`` count) when the target-feature std drops below ``threshold``."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self.warnings = 0

    def check(self, std: float, step: int) -> bool:
        """True (and a warning) when ``std`` signals collapse."""
        if math.isnan(std) or std >= self.threshold:
            return False
        self.warnings += 1
        log.warning("step %d: target feature std %.4f < %.4f: the representation may be collapsing "
                    "(check lr, EMA momentum, masks)", step, std, self.threshold)
        return True


class MetricsLogger:
    """CSV + TensorBoard + progress bar for rank 0; inert on other ranks."""

    def __init__(self, run_dir: str | Path, columns: list[str], enabled: bool, total_steps: int,
                 start_step: int = 0, tensorboard: bool = True, progress_bar: bool = True) -> None:
        self.enabled = enabled
        self.columns = ["step", *[c for c in columns if c != "step"]]
        self.path = Path(run_dir) / "metrics.csv"
        self._tb = None
        self._bar = None
        if not enabled:
            return
        self._prepare_csv(start_step)
        self._file = open(self.path, "a", newline="", encoding="utf-8")  # noqa: SIM115 - kept open for the run
        self._writer = csv.DictWriter(self._file, fieldnames=self.columns, extrasaction="ignore")
        if self.path.stat().st_size == 0:
            self._writer.writeheader()
            self._file.flush()
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(Path(run_dir) / "tb"), purge_step=start_step + 1)
            except ImportError:
                log.warning("tensorboard is not installed: no TensorBoard logs (metrics.csv is still written)")
        if progress_bar:
            from tqdm import tqdm

            self._bar = tqdm(total=total_steps, initial=start_step, unit="step", dynamic_ncols=True,
                             file=sys.stderr, mininterval=0.5)

    def _prepare_csv(self, start_step: int) -> None:
        """Keep only rows up to ``start_step`` of an existing file with the same header."""
        if not self.path.exists():
            return
        with open(self.path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
            header = rows and list(rows[0].keys())
        if header and header != self.columns:
            self.path.rename(self.path.with_suffix(".old.csv"))
            return
        kept = [r for r in rows if int(float(r["step"])) <= start_step]
        tmp = self.path.with_suffix(".csv.tmp")
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=self.columns)
            w.writeheader()
            w.writerows(kept)
        tmp.replace(self.path)

    def log(self, step: int, values: dict[str, Any]) -> None:
        """Write one row (and TensorBoard scalars) for ``step``."""
        if not self.enabled:
            return
        row = {"step": step, **{k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in values.items()}}
        self._writer.writerow(row)
        self._file.flush()
        if self._tb is not None:
            for k, v in values.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    self._tb.add_scalar(k, v, step)

    def progress(self, n: int, postfix: dict[str, str] | None = None) -> None:
        """Advance the bar by ``n`` steps, showing ``postfix`` (loss, lr, throughput)."""
        if self._bar is not None:
            if postfix:
                self._bar.set_postfix(postfix, refresh=False)
            self._bar.update(n)

    def close(self) -> None:
        """Flush and close everything."""
        if not self.enabled:
            return
        self._file.close()
        if self._tb is not None:
            self._tb.close()
        if self._bar is not None:
            self._bar.close()

"""``vjepa-train plot RUN``: PNG curves of ``RUN/metrics.csv`` (matplotlib, Agg backend, no display)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

__all__ = ["plot_run"]

_GROUPS = {
    "loss": ["loss", "loss_tf", "loss_rollout"],
    "lr": ["lr"],
    "wd": ["wd"],
    "target_std": ["target_std"],
    "throughput": ["clips_per_s"],
    "memory": ["peak_mem_mb"],
}


def _read(path: Path) -> dict[str, list[float]]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{path} has no rows yet")
    cols: dict[str, list[float]] = {}
    for k in rows[0]:
        vals = []
        for r in rows:
            try:
                vals.append(float(r[k]))
            except (TypeError, ValueError):
                vals.append(math.nan)
        cols[k] = vals
    return cols


def plot_run(run_dir: str | Path, out_dir: str | Path | None = None) -> list[Path]:
    """Write one PNG per metric group (loss, lr, wd, target_std, throughput, memory); returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run = Path(run_dir)
    csv_path = run / "metrics.csv"
    if not csv_path.is_file():
        raise FileNotFoundError(f"{csv_path} not found: is {run} a vjepa-train run directory?")
    cols = _read(csv_path)
    out = Path(out_dir) if out_dir else run / "plots"
    out.mkdir(parents=True, exist_ok=True)
    steps = cols["step"]
    written = []
    for name, keys in _GROUPS.items():
        keys = [k for k in keys if k in cols and any(not math.isnan(v) for v in cols[k])]
        if not keys:
            continue
        fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
        for k in keys:
            ax.plot(steps, cols[k], label=k)
        ax.set_xlabel("step")
        ax.set_ylabel(name)
        if name == "loss" and all(v > 0 for k in keys for v in cols[k] if not math.isnan(v)):
            ax.set_yscale("log")
        ax.set_title(f"{run.name}: {name}")
        ax.grid(alpha=0.3)
        if len(keys) > 1:
            ax.legend()
        fig.tight_layout()
        path = out / f"{name}.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written

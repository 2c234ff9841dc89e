"""Training throughput: the tiny pretraining config (`config/train/pretrain_tiny.yaml`) through the real training CLI
(`vjepa-train pretrain`, and `torch.distributed.run` for two DDP processes) on synthetic shards, global batch 16.

    python bench/bench_training.py [--steps 40] [--out bench/results/training.json]

Rows: 1 process x 2 threads, 1 x 1, 2 processes x 1 thread (DDP over gloo). Clips per second are read from each
run's metrics.csv (logged every step) over steps 3..N (the first two, with allocator and data warm-up, left out):
clips / sum of step times. Peak RSS is the rank-0 process's ``peak_mem_mb`` (ru_maxrss) at the last step.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config" / "train" / "pretrain_tiny.yaml"
GLOBAL_BATCH = 16
FIRST_STEP = 3


def run(procs: int, threads: int, steps: int, shards: Path, work: Path) -> dict:
    """One training run; returns its row (clips/s over steps FIRST_STEP..steps, peak RSS)."""
    out = work / f"run_{procs}x{threads}"
    sets = [f"data.sources=[{{kind: shards, path: {shards}}}]", f"out={out}", f"threads={threads}",
            f"max_steps={steps}", f"optim.total_steps={steps}", "optim.warmup_steps=2", "optim.cooldown_steps=0",
            f"data.batch_size={GLOBAL_BATCH // procs}", "log.every_steps=1", "log.progress_bar=false",
            "log.tensorboard=false", f"checkpoint.every_steps={steps}", "device=cpu"]
    if procs > 1:
        sets.append("dist.strategy=ddp")
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}",
               "-m", "vjepa_training.train_cli", "pretrain"]
    else:
        cmd = [sys.executable, "-m", "vjepa_training.train_cli", "pretrain"]
    cmd += ["--config", str(CONFIG), *[a for s in sets for a in ("--set", s)]]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"{procs}x{threads} training run failed:\n{proc.stderr[-3000:]}")
    with open(out / "metrics.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if int(r["step"]) >= FIRST_STEP]
    seconds = sum(float(r["step_s"]) for r in rows)
    return {"procs": procs, "threads": threads, "strategy": "ddp" if procs > 1 else None,
            "clips_per_s": round(GLOBAL_BATCH * len(rows) / seconds, 1),
            "peak_rss_mb": round(float(rows[-1]["peak_mem_mb"]), 1), "steps_timed": len(rows)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "training.json")
    args = ap.parse_args()
    import torch

    from vjepa_training.train.synthetic import write_shard_dataset

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="vjepa_bench_train_") as tmp:
        work = Path(tmp)
        shards = write_shard_dataset(work / "shards", n_episodes=8, n_frames=24, size=64)
        rows = []
        for procs, threads in ((1, 2), (1, 1), (2, 1)):
            rows.append(run(procs, threads, args.steps, shards, work))
            r = rows[-1]
            print(f"{procs} x {threads}: {r['clips_per_s']:.0f} clips/s, peak RSS {r['peak_rss_mb']:.0f} MB")
    result = {"benchmark": "training", "config": str(CONFIG.relative_to(ROOT)),
              "model": "encoder 48 wide x 2 blocks, predictor 32 x 1, 4 frames at 64 px, 32 tokens",
              "first_step": FIRST_STEP, "steps": args.steps, "global_batch": GLOBAL_BATCH, "rows": rows,
              "notes": "At this size per-step overhead dominates (the model is tiny), so more processes or threads "
                       "gain little; DDP on CPU tests the multi-process path.",
              "machine": {"cpus": os.cpu_count(), "cpu": platform.processor() or platform.machine(),
                          "python": platform.python_version(), "torch": torch.__version__},
              "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
              "date": datetime.date.today().isoformat(), "command": "python bench/bench_training.py"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Sim reach targets of the shipped model (models/sim_reach): planning time per step and action inference.

    source scripts/env.sh && python bench/bench_reach.py [--transitions 100] [--out bench/results/sim_reach.json]

1. Records fresh exploration episodes through sim_node + recorder_node (`vjepa-sim collect`, scene seeds never
   used for training) and builds them into a held-out dataset (`vjepa-sim build`), ~1 min.
2. Action inference (`vjepa-sim action-error`): plan one CEM step from frame t toward frame t+1 with the
   planner's settings (config/sim_pipeline/planner.yaml) and compare with the recorded action; target: mean
   position error < 1.5 cm. Run with the onnxruntime backend (the planner's) and torch, side by side.
3. Planning time per step of those plans (target < 1 s on 2 CPU cores with onnxruntime).
The closed-loop success rate (3 x 20 episodes + the random baseline) takes ~10 min and is not re-run here; its last
results are copied from models/sim_reach/eval/ (`vjepa-sim eval`, commands in models/sim_reach/MODEL_CARD.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--transitions", type=int, default=100)
    ap.add_argument("--episodes", type=int, default=3, help="held-out episodes to record")
    ap.add_argument("--model", default=str(ROOT / "models" / "sim_reach"))
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "sim_reach.json"))
    args = ap.parse_args(argv)
    os.chdir(ROOT)
    from vjepa_sim.cli import main as sim_main

    work = Path(tempfile.mkdtemp(prefix="bench_reach_"))
    pipeline = work / "pipeline.yaml"
    pipeline.write_text(
        f"workdir: {work}\n"
        f"collect: {{episodes: {args.episodes + 1}, seed: 900000, episode_seconds: 40.0}}\n"
        f"build: {{heldout_episodes: {args.episodes}}}\n")
    t0 = time.monotonic()
    p = ["--pipeline", str(pipeline)]
    if sim_main(["collect", *p]) or sim_main(["build", *p, "--quiet"]):
        print("bench_reach: recording the held-out episodes failed", file=sys.stderr)
        return 1
    record_s = time.monotonic() - t0
    rows = []
    for backend in ("onnxruntime", "torch"):
        out = work / f"ae_{backend}.json"
        # the energy profile depends on the encoder, not the backend: computed once, with the first backend
        once = [] if backend == "onnxruntime" else ["--no-profile"]
        if sim_main(["action-error", *p, "--model", args.model, "--transitions", str(args.transitions),
                     "--backend", backend, *once, "--json", str(out)]):
            return 1
        rows.append(json.loads(out.read_text()))
    evals = {}
    for f in sorted((Path(args.model) / "eval").glob("eval_*.json")):  # eval_planner_seedS, eval_random
        d = json.loads(f.read_text())
        evals[f.stem] = {k: d.get(k) for k in ("policy", "episodes", "successes", "success_rate",
                                               "mean_final_distance", "median_final_distance",
                                               "planning_time_median_s", "command")}
    result = {
        "benchmark": "sim_reach",
        "machine": f"{os.cpu_count()} CPU cores ({platform.machine()}), no GPU, python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"),
        "record_seconds": round(record_s, 1),
        "action_inference": rows,
        "closed_loop": evals,
        "targets": {"action_error_cm": 1.5, "planning_time_s": 1.0, "success_rate": 0.8},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print("\n| backend | transitions | mean position error [cm] | zero-action baseline [cm] | cosine | "
          "planning time per step [s] (median) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['backend']} | {r['transitions']} | {r['mean_position_error_cm']:.2f} | "
              f"{r['zero_action_baseline_cm']:.2f} | {r['cosine_mean']:.2f} | {r['planning_time_median_s']:.3f} |")
    for name, e in evals.items():
        print(f"\n{name}: success {e['successes']}/{e['episodes']} = {e['success_rate'] * 100:.0f}%, mean final "
              f"distance {e['mean_final_distance'] * 100:.1f} cm ({e['command']})")
    print(f"\nwrote {args.out}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

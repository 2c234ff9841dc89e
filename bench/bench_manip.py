"""Simulated manipulation targets (issue 15): success per task and policy, planning time per step.

    source scripts/env.sh && python bench/bench_manip.py [--run] [--seeds 0 1 2] [--episodes 20]
        [--model models/sim_manip] [--out bench/results/manipulation.json]

Without ``--run`` this collects the evaluation JSONs already in ``MODEL/eval/`` (written by the commands of the
model card, ``vjepa-sim eval --task T --policy P --seed S --json MODEL/eval/T_P_seedS.json``) into one result
file. With ``--run`` it first runs the missing ones: grasp, reach_object and pick_place with the planner for each
seed, and the random and scripted baselines on the first seed's episodes (the same scenes). A planner evaluation
takes about 5-15 minutes per task and seed on 2 CPU cores, so ``--run`` over three seeds takes hours; the model
card says which runs exist.

Targets (issue 15, 20 episodes x 3 evaluation seeds per task): grasp >= 65%, reach_object >= 75%,
pick_place >= 65% (the paper's real-robot averages), stretch 80%; the planning time per step is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TASKS = ("grasp", "reach_object", "pick_place")
TARGETS = {"grasp": 0.65, "reach_object": 0.75, "pick_place": 0.65}
STRETCH = 0.80
MANIP = ROOT / "config" / "sim_pipeline" / "manip.yaml"


def eval_path(model: Path, task: str, policy: str, seed: int) -> Path:
    """Where the model card's commands write one evaluation."""
    return model / "eval" / f"{task}_{policy}_seed{seed}.json"


def summarize(model: Path, seeds: list[int]) -> dict:
    """One row per (task, policy): successes over the seeds that exist, per seed and per object kind."""
    rows = []
    for task in TASKS:
        for policy in ("planner", "scripted", "random"):
            runs = [(s, json.loads(eval_path(model, task, policy, s).read_text()))
                    for s in seeds if eval_path(model, task, policy, s).is_file()]
            if not runs:
                continue
            kinds: dict[str, list[int]] = {}
            for _, d in runs:
                for kind, v in d["by_kind"].items():
                    k = kinds.setdefault(kind, [0, 0])
                    k[0] += v["successes"]
                    k[1] += v["episodes"]
            ok, n = sum(d["successes"] for _, d in runs), sum(d["episodes"] for _, d in runs)
            ptimes = [t["planning_time"] for _, d in runs for r in d["per_episode"] for t in r["trace"]
                      if t.get("planning_time") is not None]
            rows.append({
                "task": task, "policy": policy, "seeds": [s for s, _ in runs], "successes": ok, "episodes": n,
                "success_rate": ok / n if n else 0.0,
                "per_seed": {str(s): d["success_rate"] for s, d in runs},
                "by_kind": {k: {"successes": v[0], "episodes": v[1], "success_rate": v[0] / v[1]}
                            for k, v in kinds.items()},
                "planning_time_p50_s": _percentile(ptimes, 50), "planning_time_p99_s": _percentile(ptimes, 99),
                "mean_steps": sum(d["mean_steps"] * d["episodes"] for _, d in runs) / n if n else None,
                "commands": [d.get("command", "") for _, d in runs],
                "target": TARGETS[task] if policy == "planner" else None,
            })
    return {"benchmark": "manipulation", "model": str(model.relative_to(ROOT) if model.is_relative_to(ROOT)
                                                      else model),
            "machine": f"{os.cpu_count()} CPU cores ({platform.machine()}), no GPU, python "
                       f"{platform.python_version()}",
            "date": time.strftime("%Y-%m-%d"), "rows": rows, "targets": TARGETS, "stretch": STRETCH}


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    import numpy as np

    return float(np.percentile(values, q))


def run_missing(model: Path, seeds: list[int], episodes: int) -> int:
    """Run the evaluations that have no JSON yet (planner on every seed, baselines on the first)."""
    from vjepa_sim.cli import main as sim_main

    jobs = [(t, "planner", s) for s in seeds for t in TASKS]
    jobs += [(t, p, seeds[0]) for p in ("scripted", "random") for t in TASKS]
    for task, policy, seed in jobs:
        out = eval_path(model, task, policy, seed)
        if out.is_file():
            continue
        args = ["eval", "--pipeline", str(MANIP), "--task", task, "--policy", policy, "--episodes",
                str(episodes), "--seed", str(seed), "--json", str(out), "--quiet"]
        if policy == "planner":
            args += ["--model", str(model)]
        print(f"bench_manip: vjepa-sim {' '.join(args)}", flush=True)
        if sim_main(args):
            return 1
    return 0


def main(argv: list | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "sim_manip")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--episodes", type=int, default=20)
    ap.add_argument("--run", action="store_true", help="run the evaluations that are missing first (hours)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "manipulation.json")
    args = ap.parse_args(argv)
    model = args.model.resolve()
    if args.run and run_missing(model, args.seeds, args.episodes):
        return 1
    result = summarize(model, args.seeds)
    if not result["rows"]:
        print(f"bench_manip: no evaluations in {model / 'eval'} (run with --run, or the model card's commands)",
              file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print("| task | policy | success | per seed | cup | box | plan time p50 / p99 |")
    print("|---|---|---|---|---|---|---|")
    for r in result["rows"]:
        print(format_row(r))
    print(f"wrote {args.out}")
    return 0


def format_row(r: dict) -> str:
    """One markdown table row of a summary row (shared with bench/make_readme.py)."""
    kinds = r["by_kind"]
    kind = [f"{kinds[k]['successes']}/{kinds[k]['episodes']}" if k in kinds else "-" for k in ("cup", "box")]
    seeds = ", ".join(f"{float(v) * 100:.0f}%" for v in r["per_seed"].values())
    pt = ("-" if r["planning_time_p50_s"] is None
          else f"{r['planning_time_p50_s']:.2f} / {r['planning_time_p99_s']:.2f} s")
    target = f" (target {r['target'] * 100:.0f}%)" if r.get("target") else ""
    return (f"| {r['task']} | {r['policy']} | {r['successes']}/{r['episodes']} = {r['success_rate'] * 100:.0f}%"
            f"{target} | {seeds} | {kind[0]} | {kind[1]} | {pt} |")


if __name__ == "__main__":
    sys.exit(main())

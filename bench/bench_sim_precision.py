"""fp32 vs bf16 planning in the closed loop: the shipped sim reach model, CEM 128 x 4, H=1, planner_node on torch.

    source scripts/env.sh && python bench/bench_sim_precision.py [--runs dev_seed7_fp32,...] [--from-runs DIR]

Why: the shipped `config/sim_pipeline/planner.yaml` plans with `precision: auto` (bf16 on CPUs with AVX-512 BF16 /
AMX, about twice as fast as fp32 there; `bench/bench_planning.py`). bf16 changes the predictions by ~1e-2, so it
was shipped only after closed-loop episodes showed the same success. The choice used the development seeds 7 and 9
only (rule, fixed before the runs: ship bf16 if it succeeds in at least as many development episodes as fp32 minus
one); the evaluation seed 0 is reported, not used for the choice.

Each run is one `vjepa-sim eval` (bench/bench_planners.py's `run_eval`: the same overlay mechanism, one planner
thread, `--backend torch`) with `precision` pinned. `--from-runs DIR` summarises existing eval JSONs
(`DIR/<name>/eval.json`) instead of running them. Output: `bench/results/sim_precision.json`, rendered by
`bench/make_readme.py`. Planning times share the 2 cores with the simulator, the encoder and any other job; the
side-by-side speed of the two precisions is `bench/bench_planning.py`'s.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_planners import ROOT, row, run_eval  # noqa: E402

#: name -> (seed, episodes, precision, role)
RUNS: dict[str, tuple[int, int, str, str]] = {
    "dev_seed9_fp32": (9, 6, "fp32", "development"),
    "dev_seed9_bf16": (9, 6, "bf16", "development"),
    "dev_seed7_fp32": (7, 20, "fp32", "development"),
    "dev_seed7_bf16": (7, 20, "bf16", "development"),
    "eval_seed0_fp32": (0, 20, "fp32", "evaluation"),
    "eval_seed0_bf16": (0, 20, "bf16", "evaluation"),
}
RULE = ("the choice uses the development seeds only: ship bf16 if, on seeds 7 and 9, it succeeds in at least as "
        "many episodes as fp32 minus one. The evaluation seed 0 is reported, not used for the choice.")


def overlay(precision: str) -> dict[str, Any]:
    """planner_node parameters of one run: the shipped CEM budget, one thread, ``precision`` pinned."""
    return {"planner": "cem", "cem_samples": 128, "cem_iterations": 4, "threads": 1, "precision": precision}


def decide(rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Apply :data:`RULE` to the development rows (``None`` when one is missing)."""
    dev = {p: [r for n, r in rows.items() if RUNS[n][3] == "development" and RUNS[n][2] == p] for p in ("fp32", "bf16")}
    if not all(len(v) == 2 for v in dev.values()):
        return {"decision": None, "why": "development runs missing"}
    ok = {p: sum(r["successes"] for r in v) for p, v in dev.items()}
    eps = {p: sum(r["episodes"] for r in v) for p, v in dev.items()}
    ship = ok["bf16"] >= ok["fp32"] - 1
    return {"decision": "bf16" if ship else "fp32", "development_successes": ok, "development_episodes": eps}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", default=",".join(RUNS), help=f"comma-separated subset of {list(RUNS)}")
    ap.add_argument("--from-runs", type=Path, default=None,
                    help="summarise DIR/<name>/eval.json instead of running the evaluations")
    ap.add_argument("--workdir", type=Path, default=ROOT / "runs" / "sim_precision")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "sim_precision.json")
    args = ap.parse_args(argv)
    names = [n for n in args.runs.split(",") if n]
    unknown = sorted(set(names) - set(RUNS))
    if unknown:
        ap.error(f"unknown runs {unknown}; choose from {list(RUNS)}")
    load = [round(os.getloadavg()[0], 2)]
    rows: dict[str, dict[str, Any]] = {}
    for name in names:
        seed, episodes, precision, role = RUNS[name]
        planner = overlay(precision)
        if args.from_runs is not None:
            doc = json.loads((args.from_runs / name / "eval.json").read_text())
        else:
            doc = run_eval(name, planner, episodes, seed, args.workdir)
        rows[name] = {**row(name, "cem", 128, 4, planner, doc), "seed": seed, "precision": precision, "role": role,
                      "command": doc.get("command")}
        print(f"{name}: {rows[name]['successes']}/{rows[name]['episodes']}, plan p50 "
              f"{rows[name]['planning_time_p50_s']:.3f} s", flush=True)
    load.append(round(os.getloadavg()[0], 2))
    doc = {"benchmark": "sim_precision", "model": "models/sim_reach", "planner": overlay("fp32") | {"precision": None},
           "rule": RULE, "result": decide(rows), "rows": list(rows.values()), "load_average": load,
           "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
           "date": datetime.date.today().isoformat(),
           "command": "python bench/bench_sim_precision.py" + ("" if args.from_runs is None else " --from-runs ...")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1))
    print(f"decision: {doc['result']} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""bench/bench_manip.py folds the manipulation evaluations (one JSON per task, policy and seed, as `vjepa-sim eval
--task` writes them) into bench/results/manipulation.json, and bench/make_readme.py renders its table from it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _eval_json(task: str, policy: str, seed: int, successes: list[bool], ptime: float | None) -> dict:
    """A `vjepa-sim eval --task` summary with the fields the bench reads (episodes alternate cup, box)."""
    kinds = ["cup", "box"]
    per = [{"kind": kinds[i % 2], "success": ok,
            "trace": [{"planning_time": ptime}, {"planning_time": ptime}] if ptime else [{"planning_time": None}]}
           for i, ok in enumerate(successes)]
    by_kind = {}
    for k in kinds:
        rs = [r for r in per if r["kind"] == k]
        n_ok = sum(r["success"] for r in rs)
        by_kind[k] = {"episodes": len(rs), "successes": n_ok, "success_rate": n_ok / len(rs)}
    ok = sum(successes)
    return {"task": task, "policy": policy, "episodes": len(per), "successes": ok, "success_rate": ok / len(per),
            "by_kind": by_kind, "mean_steps": 2.0, "per_episode": per, "command": f"vjepa-sim eval --seed {seed}"}


def test_the_evaluations_are_summed_over_seeds_and_rendered(tmp_path):
    model = tmp_path / "model"
    (model / "eval").mkdir(parents=True)
    runs = {("grasp", "planner", 0): ([True, False, True, True], 0.5),
            ("grasp", "planner", 1): ([False, False, True, True], 1.5),
            ("grasp", "random", 0): ([False] * 4, None)}
    for (task, policy, seed), (oks, pt) in runs.items():
        (model / "eval" / f"{task}_{policy}_seed{seed}.json").write_text(
            json.dumps(_eval_json(task, policy, seed, oks, pt)))
    out = tmp_path / "results" / "manipulation.json"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_manip.py"), "--model", str(model),
                           "--seeds", "0", "1", "2", "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    doc = json.loads(out.read_text())
    rows = {(r["task"], r["policy"]): r for r in doc["rows"]}
    assert set(rows) == {("grasp", "planner"), ("grasp", "random")}
    planner = rows[("grasp", "planner")]
    assert (planner["successes"], planner["episodes"], planner["seeds"]) == (5, 8, [0, 1])  # seed 2 missing
    assert planner["by_kind"]["cup"] == {"successes": 3, "episodes": 4, "success_rate": 0.75}
    assert planner["planning_time_p50_s"] == 1.0 and planner["target"] == 0.65
    assert rows[("grasp", "random")]["planning_time_p50_s"] is None
    readme = subprocess.run([sys.executable, str(ROOT / "bench" / "make_readme.py"), "--section", "manipulation",
                             "--file", str(out), "--stdout"], capture_output=True, text=True, timeout=120)
    assert readme.returncode == 0, readme.stderr
    assert "| grasp | planner | 5/8 = 62% (target 65%) | 75%, 50% | 3/4 | 2/4 | 1.00 / 1.50 s |" in readme.stdout
    assert "python bench/bench_manip.py" in readme.stdout


def test_no_evaluations_is_an_error(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_manip.py"), "--model", str(tmp_path),
                           "--out", str(tmp_path / "m.json")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "no evaluations" in done.stderr

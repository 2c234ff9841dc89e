"""bench/bench_planners.py gives each run only the settings of its planner kind, and bench/make_readme.py renders the
planners section (issue 18) from a bench/results/planners.json."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from bench_planners import CHOSEN, overlay, row  # noqa: E402


def test_each_run_gets_its_kinds_settings_only():
    assert overlay("cem", 128, 4, CHOSEN) == {"planner": "cem", "cem_samples": 128, "cem_iterations": 4,
                                              "threads": 1, "precision": "fp32"}
    assert overlay("mppi", 256, 6, CHOSEN)["mppi_temperature"] == CHOSEN["mppi_temperature"]
    adam = overlay("cem_adam", 128, 4, CHOSEN)
    assert adam["adam_lr"] == CHOSEN["adam_lr"] and adam["adam_steps"] == CHOSEN["adam_steps"]
    assert "mppi_temperature" not in adam and "icem_keep_elites" not in adam
    assert overlay("icem", 128, 4, CHOSEN)["icem_keep_elites"] == CHOSEN["icem_keep_elites"]


def test_the_section_renders_a_row_per_run(tmp_path):
    eval_doc = {"per_episode": [
        {"success": True, "final_distance": 0.01, "trace": [{"planning_time": 0.2}, {"planning_time": 0.4}]},
        {"success": False, "final_distance": 0.09, "trace": [{"planning_time": 0.3}, {"planning_time": None}]}]}
    r = row("mppi_128x4", "mppi", 128, 4, overlay("mppi", 128, 4, {"mppi_temperature": 0.03}), eval_doc)
    assert (r["successes"], r["episodes"], r["steps"]) == (1, 2, 3)
    assert r["planning_time_p50_s"] == 0.3 and abs(r["median_final_distance_m"] - 0.05) < 1e-12
    doc = {"model": "models/sim_reach", "episodes": 2, "seed": 0, "backend": "torch", "planner_threads": 1,
           "rows": [r], "tuning": {"mppi_temperature": {"0.03": "6/6"}}, "machine": {"cpus": 2},
           "offline_timing": {"mppi_128x4": {"median_ms": 500.0, "min_ms": 450.0, "cpu_median_ms": 120.0}},
           "offline_timing_load_average": 3.0}
    (tmp_path / "planners.json").write_text(json.dumps(doc))
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "make_readme.py"), "--section", "planners",
                          "--results", str(tmp_path), "--stdout"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("## Planners on the sim reach task (issue 18)")
    expected = "| mppi | 128x4 | mppi_temperature 0.03 | 1/2 = 50% | 5.0 cm | 3 | 300 / 398 ms | 120 ms (500 ms) |"
    assert expected in out.stdout
    assert "Development runs that chose the settings (seed 9" in out.stdout
    assert "mppi_temperature 0.03: 6/6" in out.stdout


def test_sim_precision_rule_and_section(tmp_path):
    """bench/bench_sim_precision.py applies its development-seed rule (bf16 ships only when it succeeds in at least
    as many development episodes as fp32 minus one; evaluation rows never count) and the section renders."""
    from bench_sim_precision import RUNS, decide, main

    def summary(ok: int, n: int) -> dict:
        return {"per_episode": [{"success": i < ok, "final_distance": 0.01, "trace": [{"planning_time": 0.5}]}
                                for i in range(n)], "command": "vjepa-sim eval ..."}

    runs = tmp_path / "runs"
    counts = {"dev_seed9_fp32": (6, 6), "dev_seed9_bf16": (5, 6), "dev_seed7_fp32": (20, 20),
              "dev_seed7_bf16": (20, 20), "eval_seed0_fp32": (20, 20), "eval_seed0_bf16": (0, 20)}
    for name, (ok, n) in counts.items():
        (runs / name).mkdir(parents=True)
        (runs / name / "eval.json").write_text(json.dumps(summary(ok, n)))
    out = tmp_path / "sim_precision.json"
    assert main(["--from-runs", str(runs), "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["result"]["decision"] == "bf16"  # 25 vs 26 development successes; seed 0's 0/20 does not count
    assert decide({n: {"successes": 0 if n == "dev_seed7_bf16" else 20, "episodes": 20} for n in RUNS}
                  )["decision"] == "fp32"
    md = subprocess.run([sys.executable, str(ROOT / "bench" / "make_readme.py"), "--section", "sim_precision",
                         "--results", str(tmp_path), "--stdout"], capture_output=True, text=True, timeout=60)
    assert md.returncode == 0, md.stderr
    assert "Decision: **bf16**" in md.stdout and "| eval_seed0_bf16 | evaluation | 0 | bf16 | 0/20 |" in md.stdout


def test_reach_object_runs_its_own_pipeline_and_model_and_renders_its_section(tmp_path):
    """--task reach_object evaluates models/sim_manip through config/sim_pipeline/manip.yaml (its planner files
    included) into its own summary, rendered as its own section with the task's success measure."""
    import yaml
    from bench_planners import TASKS, _planner_files

    pipeline, model, out = TASKS["reach_object"]
    assert (ROOT / model / "vjepa2_sim.pt").is_file() and out.endswith("planners_reach_object.json")
    files = _planner_files(yaml.safe_load((ROOT / pipeline).read_text()))
    assert "config/sim_pipeline/planner_manip.yaml" in files and all((ROOT / f).is_file() for f in files)
    r = row("cem_128x4", "cem", 128, 4, overlay("cem", 128, 4, CHOSEN),
            {"per_episode": [{"success": True, "distance": 0.02, "trace": [{"planning_time": 0.4}]}]})
    doc = {"task": "reach_object", "model": model, "episodes": 1, "seed": 0, "backend": "torch",
           "planner_threads": 1, "rows": [r], "tuning": {"cem": "6/6"}, "machine": {"cpus": 2}}
    (tmp_path / "planners_reach_object.json").write_text(json.dumps(doc))
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "make_readme.py"), "--section", "planners_reach_object",
                          "--results", str(tmp_path), "--stdout"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("## Planners on the sim reach_object task (issue 18)")
    assert "the object still held and within 5 cm of the goal" in out.stdout
    assert "| cem | 128x4 | - | 1/1 = 100% | 2.0 cm | 1 | 400 / 400 ms | - |" in out.stdout
    assert "Reach task: Development runs" in out.stdout


def test_resume_reuses_a_finished_eval_only_when_it_matches(tmp_path, monkeypatch):
    """--resume takes an eval an interrupted bench finished (same overlay, episodes, seed) instead of re-running it;
    anything else is run again."""
    import bench_planners
    import yaml

    planner = overlay("mppi", 128, 4, CHOSEN)
    d = tmp_path / "mppi_128x4_seed0"
    d.mkdir()
    (d / "planner.yaml").write_text(yaml.safe_dump({"planner_node": {"ros__parameters": planner}}))
    (d / "eval.json").write_text(json.dumps({"settings": {"seed": 0}, "per_episode": [{"success": True}] * 3}))
    ran = []
    monkeypatch.setattr(bench_planners.subprocess, "run", lambda cmd, **kw: ran.append(cmd) or
                        subprocess.CompletedProcess(cmd, 1))
    doc = bench_planners.run_eval("mppi_128x4", planner, 3, 0, tmp_path, "reach_object", resume=True)
    assert len(doc["per_episode"]) == 3 and not ran
    for episodes, other in ((4, planner), (3, {**planner, "mppi_temperature": 0.3})):
        (d / "planner.yaml").write_text(yaml.safe_dump({"planner_node": {"ros__parameters": planner}}))
        (d / "eval.json").write_text(json.dumps({"settings": {"seed": 0}, "per_episode": [{"success": True}] * 3}))
        with pytest.raises(RuntimeError, match="vjepa-sim eval failed"):
            bench_planners.run_eval("mppi_128x4", other, episodes, 0, tmp_path, "reach_object", resume=True)
    assert len(ran) == 2 and "reach_object" in ran[0] and "models/sim_manip" in " ".join(ran[0])

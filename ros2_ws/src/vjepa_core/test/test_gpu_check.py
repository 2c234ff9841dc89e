"""bench/gpu_check.sh starts and runs end to end without a GPU (``--dry-run``: CPU, tiny fixture, no installs), its
stages respect the time budget, the real mode refuses a machine without CUDA, and bench/make_readme.py renders the
GPU and training tables from JSON only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest


@pytest.fixture
def repo(fixtures_dir) -> Path:
    return fixtures_dir.parent.parent


def _env() -> dict:
    env = dict(os.environ)
    env.pop("CUDA_VISIBLE_DEVICES", None)
    return env


def test_dry_run_end_to_end(repo, tmp_path):
    out = tmp_path / "dry" / "gpu.json"
    real = repo / "bench" / "results" / "gpu.json"
    before = real.read_bytes() if real.is_file() else None
    t0 = time.monotonic()
    proc = subprocess.run(["bash", "bench/gpu_check.sh", "--dry-run", "--out", str(out)], cwd=repo, env=_env(),
                          capture_output=True, text=True, timeout=240)
    took = time.monotonic() - t0
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["dry_run"] and doc["benchmark"] == "gpu_check"
    assert doc["tests"]["rc"] == 0 and "3 tests collected" in doc["tests"]["summary"]
    enc = {r["backend"]: r for r in doc["encoder"]}
    assert set(enc) == {"torch", "onnxruntime", "tensorrt"}
    for name in ("torch", "onnxruntime"):
        assert enc[name]["config"] == "tiny" and enc[name]["ms_per_frame_median"] > 0, enc[name]
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        assert "tensorrt is not installed" in enc["tensorrt"]["skipped"]
    (plan,) = doc["planner"]
    assert plan["samples"] == 64 and plan["horizon"] == 1 and plan["ms_per_plan_median"] > 0
    # the markdown table is printed from the dry run's JSON; bench/results/gpu.json is not touched
    assert "## GPU check (issue 18)" in proc.stdout and "**Dry run**" in proc.stdout
    assert "| encoder | tiny | onnxruntime | fp32 |" in proc.stdout
    assert (real.read_bytes() if real.is_file() else None) == before
    print(f"dry run took {took:.0f} s")


def test_stages_past_the_deadline_are_skipped_not_run(repo, tmp_path):
    out = tmp_path / "gpu.json"
    proc = subprocess.run([sys.executable, "bench/gpu_bench.py", "--dry-run", "--out", str(out), "--deadline",
                           str(time.time()), "--work", str(tmp_path / "work")], cwd=repo, env=_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1  # the tests did not run: not a pass
    doc = json.loads(out.read_text())
    records = [doc["tests"], *doc["encoder"], *doc["planner"]]
    assert len(records) == 5 and all("time budget" in r["skipped"] for r in records)
    assert not list((tmp_path / "work").iterdir())  # nothing was exported or measured


def test_real_mode_needs_cuda(repo, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the real mode would measure (bench/gpu_check.sh)")
    proc = subprocess.run([sys.executable, "bench/gpu_bench.py", "--out", str(tmp_path / "g.json")], cwd=repo,
                          env=_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "sees no CUDA GPU" in proc.stderr and not (tmp_path / "g.json").exists()


def test_readme_tables_come_from_json_only(repo, tmp_path):
    """Every table of bench/README.md is rendered from a JSON in the results folder (no prose copied from the
    docs): with an empty folder every section says 'not run yet'; the GPU and training tables render their JSON."""
    sys.path.insert(0, str(repo / "bench"))
    try:
        import make_readme
    finally:
        sys.path.pop(0)
    empty = make_readme.render(tmp_path)
    assert "|" not in empty  # no table without its JSON
    assert empty.count("_Not run yet") == len(make_readme.SECTIONS)
    res = tmp_path / "res"
    res.mkdir()
    (res / "training.json").write_text(json.dumps({
        "config": "config/train/pretrain_tiny.yaml", "model": "tiny", "first_step": 3, "steps": 40,
        "global_batch": 16, "rows": [{"procs": 1, "threads": 2, "clips_per_s": 471.6, "peak_rss_mb": 375.2},
                                     {"procs": 2, "threads": 1, "strategy": "ddp", "clips_per_s": 386.0,
                                      "peak_rss_mb": 370.0}],
        "machine": {"cpus": 2}, "date": "2026-12-01", "command": "python bench/bench_training.py"}))
    (res / "gpu.json").write_text(json.dumps({
        "dry_run": False, "machine": {"gpu": "NVIDIA H200", "cpus": 16, "torch": "2.13.0"}, "weights": "random",
        "tests": {"summary": "3 passed in 40s", "rc": 0}, "date": "2026-12-02", "seconds": 400,
        "encoder": [{"config": "vitg", "backend": "tensorrt", "precision": "fp16", "ms_per_frame_median": 2.5,
                     "frames_per_s": 400.0},
                    {"config": "vitg", "backend": "onnxruntime-cuda", "precision": "fp32",
                     "skipped": "time budget: stopped after 240 s"}],
        "planner": [{"config": "vitg", "backend": "torch", "precision": "bf16", "samples": 800, "iterations": 10,
                     "horizon": 1, "ms_per_plan_median": 1800.0}]}))
    text = make_readme.render(res)
    assert "| 1 x 2 | 472 | 375 MB |" in text and "| 2 x 1 (DDP, gloo) | 386 | 370 MB |" in text
    assert "| encoder | vitg | tensorrt | fp16 | 2.50 ms per frame (400 frames/s) |" in text
    assert "| encoder | vitg | onnxruntime-cuda | fp32 | time budget: stopped after 240 s |" in text
    assert "| AC plan 800x10, H=1 | vitg | torch | bf16 | 1.80 s per plan |" in text
    assert "GPU numbers come from `bench/gpu_check.sh` on NVIDIA H200" in text
    assert "docs/training.md" not in text

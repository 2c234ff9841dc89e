"""The measuring half of `bench/gpu_check.sh` (issue 18): GPU unit tests, encoder latency per frame and the V-JEPA 2-AC
plan at the paper's settings, each stage in its own process under a shared time budget, into one JSON file.

    python bench/gpu_bench.py --out bench/results/gpu.json [--deadline EPOCH_S] [--repeats 20]
    python bench/gpu_bench.py --dry-run --out /tmp/gpu.json      # CPU, tiny models: checks that every stage starts

Stages (real mode, on CUDA):
  1. ``pytest -m gpu`` on ros2_ws/src/vjepa_core/test/test_gpu.py (torch bf16, onnxruntime CUDA with I/O binding,
     TensorRT from an export with external weights);
  2. encoder ms per frame (one 256x256 frame = one duplicated tubelet, batch 1) for ViT-L and ViT-g: torch bf16,
     onnxruntime CUDA (fp32 graph), TensorRT fp16; one ONNX export per model, shared by onnxruntime and TensorRT;
  3. the AC plan: ViT-g-sized AC predictor, 800 samples x 10 iterations, top-10, H=1, torch bf16 (+ KV cache).
Weights are random (the released architectures, built from their presets): the timings hold for the released
checkpoints, the outputs mean nothing. Stages run most important first; one that would not end before the
deadline is recorded as skipped with the reason, so the whole check ends within its budget. Dry run: the tiny
fixture instead of ViT-L/ViT-g, CPU, onnxruntime's CPU provider for the CUDA one, a 64 x 2 plan, and the GPU tests
only collected (they need CUDA).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
GPU_TESTS = "ros2_ws/src/vjepa_core/test/test_gpu.py"


def stages(dry_run: bool, work: Path, repeats: int) -> list[dict[str, Any]]:
    """The stage list: ``name``, ``kind`` (tests / encoder / planner), ``cmd`` (argv), ``json`` (the record it
    writes, if any) and ``budget_s`` (its own time limit, also capped by the deadline)."""
    py = sys.executable
    out: list[dict[str, Any]] = []
    if dry_run:
        out.append({"name": "gpu unit tests (collected only: no CUDA in a dry run)", "kind": "tests",
                    "cmd": [py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "gpu", "--collect-only",
                            GPU_TESTS], "budget_s": 60})
        models, device = ["tiny"], "cpu"
        encoder_backends = [("torch", "bf16"), ("onnxruntime", "fp32"), ("tensorrt", "fp16")]
        plan = {"config": "tiny", "samples": 64, "iterations": 2}
    else:
        out.append({"name": "gpu unit tests", "kind": "tests",
                    "cmd": [py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "gpu", "-rs", GPU_TESTS],
                    "budget_s": 150})
        models, device = ["vitl", "vitg"], "cuda"
        encoder_backends = [("torch", "bf16"), ("onnxruntime-cuda", "fp32"), ("tensorrt", "fp16")]
        plan = {"config": "vitg", "samples": 800, "iterations": 10}

    def encoder(model: str, backend: str, precision: str) -> dict[str, Any]:
        rec = work / f"encoder_{model}_{backend}_{precision}.json"
        cmd = ["vjepa-bench", "encoder", "--config", model, "--backend", backend, "--precision", precision,
               "--device", device, "--repeats", str(repeats), "--json", str(rec)]
        if backend != "torch":
            cmd += ["--export-dir", str(work / f"onnx_{model}")]
        return {"name": f"encoder {model} {backend} {precision}", "kind": "encoder", "cmd": cmd, "json": rec,
                "budget_s": 240, "meta": {"config": model, "backend": backend, "precision": precision}}

    # most important first: torch encoders and the plan (the GPU target), then the exported runtimes
    out += [encoder(m, "torch", "bf16") for m in models]
    rec = work / "planner.json"
    out.append({"name": f"plan {plan['config']} {plan['samples']}x{plan['iterations']} H=1 torch bf16",
                "kind": "planner", "json": rec, "budget_s": 180,
                "meta": {"config": plan["config"], "backend": "torch", "precision": "bf16"},
                "cmd": ["vjepa-bench", "planner", "--config", plan["config"], "--samples", str(plan["samples"]),
                        "--iterations", str(plan["iterations"]), "--topk", "10", "--horizon", "1", "--backend",
                        "torch", "--precision", "bf16", "--device", device, "--repeats", "3", "--json", str(rec)]})
    for m in models:
        out += [encoder(m, b, p) for b, p in encoder_backends if b != "torch"]
    return out


def _tail(text: str, lines: int = 6) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def run_stage(stage: dict[str, Any], deadline: float) -> dict[str, Any]:
    """Run one stage as a child process within ``min(budget, time to deadline)``; returns its result record."""
    left = deadline - time.time()
    base = {"stage": stage["name"], **stage.get("meta", {})}
    if left < 10:
        return {**base, "skipped": f"time budget: {max(left, 0):.0f} s left before the deadline"}
    limit = min(stage["budget_s"], left)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(stage["cmd"], cwd=ROOT, capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired:
        return {**base, "skipped": f"time budget: stopped after {limit:.0f} s", "seconds": limit}
    seconds = round(time.perf_counter() - t0, 1)
    if stage["kind"] == "tests":
        summary = _tail(proc.stdout, 1)
        return {**base, "rc": proc.returncode, "summary": summary, "seconds": seconds,
                **({"output_tail": _tail(proc.stdout + proc.stderr, 15)} if proc.returncode else {})}
    if proc.returncode != 0 or not stage["json"].is_file():
        return {**base, "skipped": f"failed (exit {proc.returncode}): {_tail(proc.stderr or proc.stdout, 3)}",
                "seconds": seconds}
    return {**base, **json.loads(stage["json"].read_text()), "seconds": seconds}


def machine() -> dict[str, Any]:
    """GPU name, driver and library versions (what the numbers were measured with)."""
    info: dict[str, Any] = {"cpus": os.cpu_count(), "cpu": platform.processor() or platform.machine(),
                            "python": platform.python_version()}
    try:
        import torch

        info["torch"] = torch.__version__
        info["cuda"] = torch.version.cuda
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    for mod in ("onnxruntime", "tensorrt"):
        try:
            info[mod] = __import__(mod).__version__
        except ImportError:
            info[mod] = None
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
        if smi.returncode == 0:
            info["driver"] = smi.stdout.strip().splitlines()[0]
    except (OSError, subprocess.TimeoutExpired, IndexError):
        pass
    return info


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "gpu.json")
    ap.add_argument("--dry-run", action="store_true", help="CPU, tiny models, GPU tests only collected")
    ap.add_argument("--deadline", type=float, default=None, help="epoch seconds by which to finish (default: +6 min)")
    ap.add_argument("--repeats", type=int, default=None, help="encoder timing repeats (default 20; dry run 2)")
    ap.add_argument("--work", type=Path, default=None, help="scratch folder for exports and engines")
    args = ap.parse_args(argv)
    started = time.time()
    deadline = args.deadline or started + 360
    repeats = args.repeats or (2 if args.dry_run else 20)
    work = args.work or Path(tempfile.mkdtemp(prefix="vjepa_gpu_check_"))
    work.mkdir(parents=True, exist_ok=True)
    if not args.dry_run:
        import torch

        if not torch.cuda.is_available():
            print("gpu_bench: torch sees no CUDA GPU (torch " + torch.__version__ + "); use --dry-run on a CPU "
                  "machine", file=sys.stderr)
            return 2
    result: dict[str, Any] = {
        "benchmark": "gpu_check", "dry_run": args.dry_run, "date": datetime.date.today().isoformat(),
        "machine": machine(), "weights": "random (released architectures: timing only)" if not args.dry_run
        else "tiny fixture (dry run)", "tests": None, "encoder": [], "planner": [],
        "command": "bash bench/gpu_check.sh" + (" --dry-run" if args.dry_run else ""),
    }
    for stage in stages(args.dry_run, work, repeats):
        print(f"[gpu_check] {stage['name']} ...", flush=True)
        rec = run_stage(stage, deadline)
        if stage["kind"] == "tests":
            result["tests"] = rec
            line = rec.get("summary") or rec.get("skipped")
        else:
            result[stage["kind"]].append(rec)
            line = rec.get("skipped") or (f"{rec['ms_per_frame_median']:.2f} ms per frame"
                                          if stage["kind"] == "encoder"
                                          else f"{rec['ms_per_plan_median'] / 1e3:.2f} s per plan")
        print(f"[gpu_check]   -> {line} ({rec.get('seconds', 0)} s)", flush=True)
    result["seconds"] = round(time.time() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"[gpu_check] wrote {args.out} ({result['seconds']} s)")
    tests_ok = result["tests"] is not None and result["tests"].get("rc") == 0
    return 0 if tests_ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Planning benchmark (issues 4 and 18): our CEM planner vs a straightforward re-implementation of the reference
loop, and the same plan with onnxruntime (KV-cached step graphs), all measured side by side in one run.

Settings: 800 samples, 10 iterations, top-10, horizon 2, the tiny predictor (tests/fixtures/parity_tiny_a: 64 px
-> 4x4 = 16 tokens per frame, predictor width 64, depth 2, 4 heads, encoder width 96), 2 threads (issue 18's
setting; torch threads and onnxruntime intra-op threads alike), eager torch unless --compile. The reference loop
re-runs the whole sequence per horizon step, updates poses with numpy on the CPU and sends all 800 samples
through in one call; ours uses the exact KV cache, precomputed RoPE, cache-sized chunks and torch pose updates;
onnxruntime runs the exported per-frame step graphs with the same KV cache. All use the same CEM code and seed,
so the plans can be compared directly. Variants are interleaved, plan by plan, so background load hits each
alike; the medians over --repeats plans are reported.

    .venv/bin/python bench/bench_planning.py [--threads 2] [--repeats 5] [--compile]

Writes bench/results/planning.json and prints a markdown table (a few minutes on 2 quiet cores). GPU timings
are `bash bench/gpu_check.sh` (bench/results/gpu.json).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "ros2_ws" / "src" / "vjepa_core"))

from vjepa_core.cli.bench import run_planner_bench  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (and onnxruntime intra-op threads)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--compile", action="store_true", help="torch.compile our torch planner's hot path")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "planning.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    record = run_planner_bench("tiny", samples=800, iterations=10, topk=10, horizon=2, backend="torch",
                               repeats=args.repeats, compare_reference=True, compile=args.compile,
                               device="cpu", ablation=True, compare_backends=("onnxruntime",))
    rows = [
        ("reference loop (recompute, numpy poses, one batch)", "reference"),
        ("ours: KV cache + chunks" + (" + torch.compile" if args.compile else ""), "ours"),
        ("ours without chunking", "ours_no_chunking"),
        ("ours without KV cache (recompute, torch poses, chunks, eager)", "ours_no_kv_cache"),
        ("onnxruntime, KV-cached step graphs", "onnxruntime"),
        ("onnxruntime without KV cache (recompute)", "onnxruntime_no_kv_cache"),
    ]
    # other jobs on the machine slow multi-threaded plans unevenly: say how loaded it was (1-min load average)
    record["load_average"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    ref_ms = record["ms_per_plan_median_reference"]
    print(f"\nCPU planning, tiny predictor, 800 samples x 10 iterations, top-10, horizon 2 "
          f"({record['device_name']}, torch {record['torch']}), medians of {args.repeats}\n")
    print("| planner | ms per plan (median) | speed-up vs reference | plan energy |")
    print("|---|---|---|---|")
    for label, key in rows:
        ms = record[f"ms_per_plan_median_{key}"]
        print(f"| {label} | {ms:.0f} | {ref_ms / ms:.2f}x | {record[f'plan_energy_{key}']:.6f} |")
    print(f"\nonnxruntime / torch (ours): {record['ratio_vs_ours_onnxruntime']:.2f}x (issue-18 target <= 1.25x)")
    print(f"plan difference ours vs reference: max {record['plan_max_abs_diff_vs_reference_m'] * 1e3:.3f} mm, "
          f"energy relative difference {record['plan_energy_rel_diff']:.1e}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"cpu": record}, indent=1))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

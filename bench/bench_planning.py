"""Planning benchmark (issues 4 and 18): our CEM planner vs a straightforward re-implementation of the reference
loop, and the same plan with onnxruntime (KV-cached step graphs), all measured side by side in one run.

Settings: 800 samples, 10 iterations, top-10, horizon 2, the tiny predictor (tests/fixtures/parity_tiny_a: 64 px
-> 4x4 = 16 tokens per frame, predictor width 64, depth 2, 4 heads, encoder width 96), 2 threads (issue 18's
setting; torch threads and onnxruntime intra-op threads alike), eager torch unless --compile, precision `auto` (bf16
where the CPU computes it natively (AVX-512 BF16 / AMX), else fp32), with the other precision timed beside it. The
reference loop
re-runs the whole sequence per horizon step, updates poses with numpy on the CPU and sends all 800 samples
through in one call; ours uses the exact KV cache, precomputed RoPE, cache-sized chunks and torch pose updates;
onnxruntime runs the exported per-frame step graphs with the same KV cache. All use the same CEM code and seed,
so the plans can be compared directly. Variants are interleaved, plan by plan, so background load hits each
alike; the medians over --repeats plans are reported.

Second, the shipped sim model (models/sim_reach, its real weights) at the paper's settings (800 x 10, top-10, H=1),
torch (auto precision and the other one) and onnxruntime side by side (issue 18: <= 1.0 s per plan on 2 cores).

    .venv/bin/python bench/bench_planning.py [--threads 2] [--repeats 5] [--compile] [--no-sim-model]

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
    ap.add_argument("--no-sim-model", action="store_true", help="skip the sim model at the paper's settings")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "planning.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    record = run_planner_bench("tiny", samples=800, iterations=10, topk=10, horizon=2, backend="torch",
                               repeats=args.repeats, compare_reference=True, compile=args.compile,
                               device="cpu", ablation=True, compare_backends=("onnxruntime",))
    prec = record["precision"]
    other = "fp32" if prec != "fp32" else "bf16"
    rows = [
        ("reference loop (recompute, numpy poses, one batch)", "reference"),
        (f"ours: KV cache + chunks, {prec}" + (" + torch.compile" if args.compile else ""), "ours"),
        (f"ours, {other}", f"ours_{other}"),
        ("ours without chunking", "ours_no_chunking"),
        ("ours without the shared context frame (first block per sample)", "ours_no_shared_context"),
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
        if f"ms_per_plan_median_{key}" not in record:
            continue
        ms = record[f"ms_per_plan_median_{key}"]
        print(f"| {label} | {ms:.0f} | {ref_ms / ms:.2f}x | {record[f'plan_energy_{key}']:.6f} |")
    print(f"\nonnxruntime / torch (ours): {record['ratio_vs_ours_onnxruntime']:.2f}x (issue-18 target <= 1.25x)")
    for key in ("ours", f"ours_{other}"):
        if f"plan_max_abs_diff_vs_reference_m_{key}" in record:
            ref_e = record["plan_energy_reference"]
            rel = (record[f"plan_energy_{key}"] - ref_e) / abs(ref_e)
            diff_mm = record[f"plan_max_abs_diff_vs_reference_m_{key}"] * 1e3
            print(f"plan difference {key} vs reference: max {diff_mm:.3f} mm, plan energy (exact fp32) {rel:+.1e} "
                  "relative")
    doc = {"cpu": record}
    if not args.no_sim_model:
        load_sim = os.getloadavg()[0]
        sim = run_planner_bench(str(ROOT / "models" / "sim_reach"), samples=800, iterations=10, topk=10, horizon=1,
                                backend="torch", repeats=args.repeats, compare_reference=False, compile=args.compile,
                                device="cpu", ablation=True, compare_backends=("onnxruntime",))
        sim["config"] = "models/sim_reach"
        sim["load_average"] = [round(load_sim, 2), round(os.getloadavg()[0], 2)]
        doc["sim_model"] = sim
        print(f"\nshipped sim model, 800 x 10, top-10, H=1 (target <= 1000 ms per plan): "
              f"torch {sim['precision']} {sim['ms_per_plan_median']:.0f} ms"
              + "".join(f", {k[len('ms_per_plan_median_'):]} {v:.0f} ms" for k, v in sim.items()
                        if k.startswith("ms_per_plan_median_") and k != "ms_per_plan_median_ours"))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

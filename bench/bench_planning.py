"""Planning benchmark for issue 4: our CEM planner vs a straightforward re-implementation of the reference
loop, measured side by side in one run, plus GPU encoder/planner timings when CUDA is present.

CPU target: same settings (800 samples, 10 iterations, top-10, horizon 2) and the same tiny predictor
(tests/fixtures/parity_tiny_a: 64 px -> 4x4 = 16 tokens per frame, predictor width 64, depth 2, 4 heads,
encoder width 96). The reference loop re-runs the whole sequence per horizon step, updates poses with
numpy on the CPU and sends all 800 samples through in one call; ours uses the exact KV cache, precomputed
RoPE, cache-sized chunks, torch pose updates and (by default) torch.compile. Both use the same CEM code and
seed, so the plans can be compared directly.

    .venv/bin/python bench/bench_planning.py [--threads 1] [--repeats 3] [--no-compile]

Writes bench/results/planning.json and prints a markdown table (about 1-2 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "ros2_ws" / "src" / "vjepa_core"))

from vjepa_core.cli.bench import run_encoder_bench, run_planner_bench  # noqa: E402


def gpu_section(repeats: int) -> dict:
    """Encoder latency (ViT-L, ViT-g at 256 px; torch bf16, onnxruntime, TensorRT) and the full plan at the
    paper's settings (ViT-g AC predictor, 800 x 10, H=1) on the GPU; each entry records errors/skips."""
    out: dict = {"device_name": torch.cuda.get_device_name(0), "encoder": [], "planner": []}
    for cfg in ("vitl", "vitg"):
        for backend, prec in (("torch", "bf16"), ("torch", "fp32"), ("onnxruntime-cuda", "fp32"),
                              ("tensorrt", "fp16")):
            try:
                rec = run_encoder_bench(cfg, backend, repeats=20, precision=prec, device="cuda")
                out["encoder"].append(rec)
                print(f"encoder {cfg} {backend} {prec}: {rec['ms_per_frame_median']:.2f} ms/frame")
            except (Exception, SystemExit) as e:  # noqa: BLE001 - record why a path did not run
                out["encoder"].append({"config": cfg, "backend": backend, "precision": prec,
                                       "skipped": f"{type(e).__name__}: {e}"})
                print(f"encoder {cfg} {backend} {prec}: skipped ({type(e).__name__}: {e})")
    for prec in ("bf16",):
        try:
            rec = run_planner_bench("vitg", 800, 10, 10, 1, "torch", repeats, compare_reference=False,
                                    precision=prec, device="cuda")
            out["planner"].append(rec)
            print(f"planner vitg 800x10 H=1 torch {prec}: {rec['ms_per_plan_median'] / 1e3:.2f} s per action")
        except Exception as e:  # noqa: BLE001
            out["planner"].append({"precision": prec, "skipped": f"{type(e).__name__}: {e}"})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads for both planners")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-compile", action="store_true", help="eager only (no torch.compile)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "planning.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    record = run_planner_bench("tiny", samples=800, iterations=10, topk=10, horizon=2, backend="torch",
                               repeats=args.repeats, compare_reference=True, compile=not args.no_compile,
                               device="cpu", ablation=True)
    results = {"cpu": record}
    rows = [
        ("reference loop (recompute, numpy poses, one batch)", "reference"),
        ("ours: KV cache + chunks" + (" + torch.compile" if not args.no_compile else ""), "ours"),
        ("ours without chunking (KV cache" + (", compiled)" if not args.no_compile else ")"), "ours_no_chunking"),
        ("ours without KV cache (recompute, torch poses, chunks, eager)", "ours_no_kv_cache"),
    ]
    ref_ms = record["ms_per_plan_median_reference"]
    print(f"\nCPU planning, tiny predictor, 800 samples x 10 iterations, top-10, horizon 2 "
          f"({record['device_name']}, torch {record['torch']})\n")
    print("| planner | ms per plan (median) | speed-up vs reference | plan energy |")
    print("|---|---|---|---|")
    for label, key in rows:
        ms = record[f"ms_per_plan_median_{key}"]
        print(f"| {label} | {ms:.0f} | {ref_ms / ms:.2f}x | {record[f'plan_energy_{key}']:.6f} |")
    print(f"\nplan difference ours vs reference: max {record['plan_max_abs_diff_vs_reference_m'] * 1e3:.3f} mm, "
          f"energy relative difference {record['plan_energy_rel_diff']:.1e}")
    if torch.cuda.is_available():
        results["gpu"] = gpu_section(args.repeats)
    else:
        results["gpu"] = {"skipped": "no CUDA device: GPU encoder/planner benchmarks not run"}
        print("\nGPU benchmarks skipped: no CUDA device on this machine.")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

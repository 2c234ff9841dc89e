"""Regenerate bench/README.md from the JSON results in bench/results/ (and the training table in docs/training.md).

    python bench/make_readme.py [--results bench/results] [--out bench/README.md]

One section per benchmark: what it measures, a table, the command that reproduces it, the machine and the date
(the JSON's ``date``, else the file's modification date). A missing result file gives a "not run yet" line
instead of a table, so the README can be rebuilt after running any subset of the benchmarks.
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _load(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _date(doc: dict[str, Any], path: Path) -> str:
    if doc.get("date"):
        return str(doc["date"])
    return datetime.date.fromtimestamp(path.stat().st_mtime).isoformat()


def _machine(doc: dict[str, Any]) -> str:
    m = doc.get("machine") or {}
    cpus = m.get("cpus")
    parts = [f"{cpus} CPU cores" if cpus else "CPU"]
    if m.get("cpu"):
        parts[0] += f" ({m['cpu']})"
    gpu = m.get("gpu")
    parts.append(f"GPU {gpu}" if gpu else "no GPU")
    for k in ("python", "torch", "onnxruntime"):
        if m.get(k):
            parts.append(f"{k} {m[k]}")
    return ", ".join(parts)


def _fmt(v: Any, nd: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def _footer(command: str, machine: str, date: str) -> str:
    return f"\n\nReproduce: `{command}` · machine: {machine} · date: {date}\n"


# ---- sections --------------------------------------------------------------------------------------------------
def sec_sim(doc: dict[str, Any], date: str) -> str:
    lines = ["Headless PyBullet simulator: simulated seconds per wall-clock second with the camera rendering "
             f"256x256 frames (target >= {doc.get('target_realtime_factor', 3.0)}x real time with the default "
             f"camera: **{'met' if doc.get('meets_target') else 'not met'}**, "
             f"{_fmt(doc.get('default_realtime_factor'))}x).", "",
             "| configuration | sim s / wall s | ms per frame | render share |", "|---|---|---|---|"]
    for r in doc["rows"]:
        share = "-" if r.get("render_share") is None else f"{100 * r['render_share']:.0f}%"
        lines.append(f"| {r['config']} | {r['realtime_factor']:.1f}x | {_fmt(r.get('ms_per_frame'))} | {share} |")
    m = dict(doc.get("machine") or {})
    m.setdefault("cpus", 2)
    return "\n".join(lines) + _footer("python bench/bench_sim.py", _machine({"machine": m}), date)


def sec_data(doc: dict[str, Any], date: str) -> str:
    lines = [f"Dataset pipeline: synthetic {doc.get('recording_seconds', 20):g} s recordings written as real "
             "rosbag2 files, then `build_dataset` (4 fps, 256 px), and clip loading.", "",
             "| build | dataset frames | seconds | frames/s | bag msgs/s | bag MB |", "|---|---|---|---|---|---|"]
    for r in doc["build"]:
        lines.append(f"| {r['case']} | {r['frames']} | {r['seconds']} | {r['frames_per_s']} | "
                     f"{r['bag_msgs_per_s']} | {r['bag_mb']} |")
    lines += ["", "| load | clips | seconds | clips/s |", "|---|---|---|---|"]
    for r in doc["load"]:
        lines.append(f"| {r['case']} | {r['clips']} | {r['seconds']} | {r['clips_per_s']} |")
    return "\n".join(lines) + _footer("python bench/bench_data.py", _machine(doc), date)


def sec_planning(doc: dict[str, Any], date: str) -> str:
    c = doc["cpu"]
    lines = [f"CEM planning with the tiny AC predictor, {c['samples']} samples x {c['iterations']} iterations, "
             f"top-{c['topk']}, horizon {c['horizon']}, {c['device_name']}, torch {c['torch']} (issue-4 target: "
             ">= 3x faster than the reference loop with the same plan quality).", "",
             "| planner | ms per plan (median) | speed-up vs reference | plan energy |", "|---|---|---|---|"]
    ref = c.get("ms_per_plan_median_reference")
    labels = [("reference", "reference loop (recompute, numpy poses, one batch)"),
              ("ours", "ours: KV cache + chunks" + (" + torch.compile" if c.get("compile") else "")),
              ("ours_no_chunking", "ours without chunking"),
              ("ours_no_kv_cache", "ours without KV cache (recompute, eager)")]
    for key, label in labels:
        ms = c.get(f"ms_per_plan_median_{key}")
        if ms is None:
            continue
        speed = f"{ref / ms:.2f}x" if ref else "-"
        lines.append(f"| {label} | {ms:.0f} | {speed} | {c[f'plan_energy_{key}']:.6f} |")
    if "plan_max_abs_diff_vs_reference_m" in c:
        diff_mm = c["plan_max_abs_diff_vs_reference_m"] * 1e3
        lines += ["", f"Plans differ from the reference by at most {diff_mm:.2f} mm "
                      f"(energy relative difference {c['plan_energy_rel_diff']:.1e})."]
    gpu = doc.get("gpu") or {}
    if "skipped" in gpu:
        lines += ["", f"GPU: {gpu['skipped']}."]
    else:
        lines += ["", f"GPU ({gpu.get('device_name')}):", "", "| what | backend | precision | result |",
                  "|---|---|---|---|"]
        for r in gpu.get("encoder", []):
            res = r.get("skipped") or f"{r['ms_per_frame_median']:.2f} ms/frame"
            lines.append(f"| encoder {r.get('config')} | {r.get('backend')} | {r.get('precision')} | {res} |")
        for r in gpu.get("planner", []):
            res = r.get("skipped") or f"{r['ms_per_plan_median'] / 1e3:.2f} s per action"
            lines.append(f"| planner vitg 800x10 H=1 | torch | {r.get('precision')} | {res} |")
    m = {"machine": {"cpus": 2, "cpu": c.get("cpu"), "torch": c.get("torch"),
                     "gpu": gpu.get("device_name") if "skipped" not in gpu else None}}
    return "\n".join(lines) + _footer("python bench/bench_planning.py", _machine(m), date)


def sec_training(text: str, date: str) -> str:
    body = text.strip()
    body = re.sub(r"^## .*\n", "", body).strip()
    return ("From [docs/training.md](../docs/training.md#throughput-tiny-config-cpu) (measured with the training "
            "CLI, no JSON):\n\n" + body + "\n" + _footer(
                "vjepa-train pretrain --config config/train/pretrain_tiny.yaml --out runs/pretrain_tiny",
                "2 CPU cores, no GPU", date))


def sec_perception(doc: dict[str, Any], date: str) -> str:
    s = doc.get("settings", {})
    lines = [f"encoder_node image-to-latent latency and sustained throughput, {doc.get('model')}, "
             f"{doc.get('image')}, node in its own process ({doc['ros']['rmw']}, domain {doc['ros']['domain_id']}), "
             f"{s.get('seconds')} s per row after {s.get('warmup')} s warm-up. Latency = latent receipt - image "
             "publish, matched by header stamp; inference = the node's own `Latent.inference_time`; dropped = "
             "images without a latent (best-effort transport losses plus frames replaced by newer ones in the "
             "node, which keeps only the newest frame).", "",
             "| backend | camera | latents/s | dropped | latency p50 (ms) | latency p99 (ms) | inference p50 (ms) |",
             "|---|---|---|---|---|---|---|"]
    for r in doc["rows"]:
        lines.append(f"| {r['backend']} | {r['camera_hz_actual']:.1f} Hz | {r['throughput_hz']:.1f} | "
                     f"{100 * r['dropped_frac']:.1f}% | {_fmt(r['latency_ms']['p50'])} | "
                     f"{_fmt(r['latency_ms']['p99'])} | {_fmt(r['inference_ms']['p50'], 2)} |")
    if doc.get("notes"):
        lines += ["", f"Note: {doc['notes']}"]
    return "\n".join(lines) + _footer(doc.get("command", "python bench/bench_perception.py"), _machine(doc), date)


def sec_planner_node(doc: dict[str, Any], date: str) -> str:
    lines = [f"Per-step planning latency inside planner_node (`PlanStatus.planning_time`: CEM plan + the two "
             f"reported energies), {doc.get('model')}, node in its own process with "
             f"{doc['ros'].get('node_threads')} torch thread(s); {doc.get('inputs')}. "
             f"{doc.get('steps_per_setting')} steps per setting; the first plan is shown apart and left out of the "
             "percentiles. Cycle = time between two commands (plan + settle + a newer latent). The last column "
             "times the same CEM plan without ROS (`vjepa-bench planner`, eager torch, same thread count).", "",
             "| CEM (samples x iterations, horizon) | steps | planning p50 (ms) | planning p99 (ms) | "
             "first plan (ms) | cycle p50 (ms) | same plan without ROS (ms) |",
             "|---|---|---|---|---|---|---|"]
    for r in doc["rows"]:
        lines.append(f"| {r['samples']} x {r['iterations']}, H={r['horizon']} | {r['steps']} | "
                     f"{_fmt(r['planning_ms']['p50'])} | {_fmt(r['planning_ms']['p99'])} | "
                     f"{_fmt(r['first_plan_ms'])} | {_fmt(r['cycle_ms']['p50'])} | "
                     f"{_fmt(r.get('standalone_plan_ms_median'))} |")
    if doc.get("notes"):
        lines += ["", f"Note: {doc['notes']}"]
    return "\n".join(lines) + _footer(doc.get("command", "python bench/bench_planner_node.py"), _machine(doc), date)


def sec_landscape(doc: dict[str, Any], date: str) -> str:
    a, t = doc["argmin_action"], doc.get("true_action")
    lines = [f"`vjepa-bench landscape` on `{Path(doc['traj']).name}` (episode {doc['episode']}, step "
             f"{doc['step']}) with `{doc['predictor_id']}`: {doc['num_actions']} actions "
             f"({doc['grid']} per axis, +-{doc['range_m']} m) in one batched call. The tiny checkpoint has random "
             "weights, so its landscape is nearly flat and the argmin means nothing; this row times the tool "
             "and records the transition's true action.", "",
             "| actions | ms (one batched call) | energy min .. max | argmin (m) | true action (m) | argmin error |",
             "|---|---|---|---|---|---|"]
    ta = "-" if t is None else f"({t[0]:+.3f}, {t[1]:+.3f}, {t[2]:+.3f})"
    err = "-" if doc.get("error_m") is None else f"{doc['error_m'] * 100:.1f} cm"
    lines.append(f"| {doc['num_actions']} | {doc['seconds'] * 1e3:.0f} | {doc['energy_min']:.5f} .. "
                 f"{doc['energy_max']:.5f} | ({a[0]:+.3f}, {a[1]:+.3f}, {a[2]:+.3f}) | {ta} | {err} |")
    m = {"machine": {"cpus": 2, "cpu": doc.get("cpu"), "torch": doc.get("torch")}}
    return "\n".join(lines) + _footer(
        f"vjepa-bench landscape --config tiny --grid {doc['grid']} --range {doc['range_m']} --threads 1 "
        "--json bench/results/landscape.json", _machine(m), date)


def sec_reach(doc: dict[str, Any], date: str) -> str:
    lines = ["Action inference with the shipped simulator model (`models/sim_reach`) on freshly recorded held-out "
             "transitions: plan one step from frame t toward frame t+1 and compare with the true action "
             "(issue-10 target: mean position error < 1.5 cm; planning < 1 s per step with onnxruntime).", "",
             "| backend | transitions | mean error | median error | zero-action baseline | CEM | plan time (median) |",
             "|---|---|---|---|---|---|---|"]
    for r in doc.get("action_inference", []):
        c = r["cem"]
        lines.append(f"| {r['backend']} | {r['transitions']} | {r['mean_position_error_cm']:.2f} cm | "
                     f"{r['median_position_error_cm']:.2f} cm | {r['zero_action_baseline_cm']:.2f} cm | "
                     f"{c['samples']}x{c['iterations']} | {r['planning_time_median_s'] * 1e3:.0f} ms |")
    loops = doc.get("closed_loop", {})
    if loops:
        lines += ["", "Closed-loop reaching (copied from `models/sim_reach/eval/`, target >= 80% success):", "",
                  "| run | success | median final distance | plan time (median) |", "|---|---|---|---|"]
        for name, e in loops.items():
            lines.append(f"| {name} | {e['successes']}/{e['episodes']} = {e['success_rate'] * 100:.0f}% | "
                         f"{e['median_final_distance'] * 100:.1f} cm | "
                         + (f"{e['planning_time_median_s'] * 1e3:.0f} ms |" if e.get("planning_time_median_s")
                            else "- |"))
    return "\n".join(lines) + _footer("python bench/bench_reach.py", doc.get("machine", "2 CPU cores, no GPU"), date)


SECTIONS: list[tuple[str, str, str, Callable[[dict[str, Any], str], str]]] = [
    ("Simulator", "sim.json", "python bench/bench_sim.py", sec_sim),
    ("Dataset pipeline", "data.json", "python bench/bench_data.py", sec_data),
    ("CEM planning (issue 4)", "planning.json", "python bench/bench_planning.py", sec_planning),
    ("Perception: encoder_node (issue 5)", "perception.json", "python bench/bench_perception.py", sec_perception),
    ("Planner node (issue 6)", "planner_node.json", "python bench/bench_planner_node.py", sec_planner_node),
    ("Energy landscape tool (issue 4)", "landscape.json", "vjepa-bench landscape --config tiny", sec_landscape),
    ("Simulated reaching: action inference (issue 10)", "sim_reach.json", "python bench/bench_reach.py", sec_reach),
]


def training_section() -> str:
    path = ROOT / "docs" / "training.md"
    try:
        text = path.read_text()
    except OSError:
        return "_docs/training.md not found._\n"
    m = re.search(r"^## Throughput.*?(?=^## |\Z)", text, flags=re.S | re.M)
    if not m:
        return "_No throughput section in docs/training.md yet._\n"
    return sec_training(m.group(0), datetime.date.fromtimestamp(path.stat().st_mtime).isoformat())


def render(results: Path) -> str:
    out = ["# Benchmarks", "",
           "Generated by `bench/make_readme.py` from the JSON files in `bench/results/` (do not edit by hand). "
           "Run everything with `make bench` (= `bash bench/run_all.sh` with the venv active), which re-measures "
           "and regenerates this file; each benchmark also runs on its own with the command under its table.", "",
           "All numbers so far come from one shared development VM: **2 CPU cores, no GPU** (other jobs were "
           "running beside the benchmarks, so single measurements are noisy). No GPU numbers exist yet.", ""]
    for i, (title, fname, command, fn) in enumerate(SECTIONS):
        if i == 3:  # training between planning and perception
            out += ["## Training throughput", "", training_section()]
        path = results / fname
        doc = _load(path)
        out += [f"## {title}", ""]
        if doc is None:
            out += [f"_Not run yet: no `bench/results/{fname}`. Run `{command}`._", ""]
            continue
        try:
            out += [fn(doc, _date(doc, path))]
        except (KeyError, TypeError, IndexError, ValueError) as exc:
            out += [f"_`bench/results/{fname}` has an unexpected layout ({type(exc).__name__}: {exc}); "
                    f"re-run `{command}`._", ""]
    return "\n".join(out).rstrip() + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", type=Path, default=HERE / "results")
    ap.add_argument("--out", type=Path, default=HERE / "README.md")
    args = ap.parse_args()
    args.out.write_text(render(args.results))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

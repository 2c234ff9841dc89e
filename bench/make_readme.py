"""Regenerate bench/README.md from the JSON results in bench/results/ (every table comes from a JSON file).

    python bench/make_readme.py [--results bench/results] [--out bench/README.md]
    python bench/make_readme.py --section gpu [--file /tmp/x/gpu.json] --stdout    # one section, printed

One section per benchmark: what it measures, a table, the command that reproduces it, the machine and the date
(the JSON's ``date``, else the file's modification date). A missing result file gives a "not run yet" line
instead of a table, so the README can be rebuilt after running any subset of the benchmarks.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
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
    """The JSON's ``date``; else the date of the commit that last changed the file (a fresh clone's file times
    are the clone's); else the file's modification date (a new, uncommitted result)."""
    if doc.get("date"):
        return str(doc["date"])
    try:
        dirty = subprocess.run(["git", "status", "--porcelain", "--", path.name], cwd=path.parent,
                               capture_output=True, text=True, timeout=10)
        log = subprocess.run(["git", "log", "-1", "--format=%cs", "--", path.name], cwd=path.parent,
                             capture_output=True, text=True, timeout=10)
        if dirty.returncode == 0 and not dirty.stdout.strip() and log.returncode == 0 and log.stdout.strip():
            return log.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
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


def _load_note(doc: dict[str, Any]) -> list[str]:
    """The machine's 1-minute load average at the start and end of the run, when recorded."""
    la = doc.get("load_average")
    if not la:
        return []
    return ["", f"Load average (1 min) at the start / end of the run: {la[0]:.1f} / {la[1]:.1f} on "
                f"{(doc.get('machine') or {}).get('cpus', 2)} cores: other jobs shared the machine, so the times "
                "vary from run to run (multi-threaded torch most)."]


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


def _plan_agreement(c: dict[str, Any]) -> str:
    """How the plans compare with the reference loop's: exact fp32 variants agree to rounding; a bf16 plan is a
    different point of (nearly) the same energy, so its plan energy (computed exactly in fp32) is what to compare."""
    exact = c.get("plan_max_abs_diff_vs_reference_m_ours_fp32")
    if c.get("precision", "fp32") == "fp32" or exact is None:
        return (f"Plans differ from the reference by at most {c['plan_max_abs_diff_vs_reference_m'] * 1e3:.2f} mm "
                f"(energy relative difference {c['plan_energy_rel_diff']:.1e}).")
    ref = c["plan_energy_reference"]
    rel = (c["plan_energy_ours"] - ref) / max(abs(ref), 1e-12)
    return (f"fp32 plans differ from the reference by at most {exact * 1e3:.2f} mm. The {c['precision']} plan is a "
            f"different action of nearly the same energy (the CEM picks among many near-equal candidates of this "
            f"random-weight model): its energy, computed exactly in fp32, is {rel:+.1e} relative to the reference "
            f"plan's (largest difference in any action coordinate {c['plan_max_abs_diff_vs_reference_m']:.2f}, "
            f"the gripper's included).")


def _sim_model_planning(m: dict[str, Any] | None) -> list[str]:
    """The shipped sim model at the paper's CEM settings (issue 18: <= 1.0 s per plan on 2 cores)."""
    if not m:
        return []
    ms = m["ms_per_plan_median"]
    verdict = "met" if ms <= 1000 else "NOT met"
    lines = ["", f"The shipped sim model ({m['config']}, real weights, {m['tokens_per_frame']} tokens per frame) "
                 f"at the paper's settings, {m['samples']} x {m['iterations']}, top-{m['topk']}, H={m['horizon']}, "
                 f"{m.get('torch_threads', '?')} threads (target <= 1.0 s per plan: **{verdict}**, "
                 f"{ms / 1e3:.2f} s):", "",
             "| backend | ms per plan (median) | plan energy |", "|---|---|---|"]
    other = "fp32" if m.get("precision", "fp32") != "fp32" else "bf16"
    for key, label in (("ours", f"torch {m.get('precision', 'fp32')}"), (f"ours_{other}", f"torch {other}"),
                       ("ours_no_shared_context", f"torch {m.get('precision', 'fp32')}, without the shared context "
                                                  "frame"),
                       ("ours_no_chunking", f"torch {m.get('precision', 'fp32')}, without chunking"),
                       ("onnxruntime", "onnxruntime (fp32)")):
        if f"ms_per_plan_median_{key}" in m:
            lines.append(f"| {label} | {m[f'ms_per_plan_median_{key}']:.0f} | {m[f'plan_energy_{key}']:.6f} |")
    return lines + _load_note(m)


def sec_planning(doc: dict[str, Any], date: str) -> str:
    c = doc["cpu"]
    lines = [f"CEM planning with the tiny AC predictor, {c['samples']} samples x {c['iterations']} iterations, "
             f"top-{c['topk']}, horizon {c['horizon']}, {c['device_name']}, torch {c['torch']}, "
             f"{'torch.compile' if c.get('compile') else 'eager'} (targets: issue 4, >= 3x faster than the reference "
             "loop with the same plan quality; issue 18, with 2 threads >= 4x, and onnxruntime no slower than "
             "1.25x torch).", "",
             "| planner | ms per plan (median) | speed-up vs reference | plan energy |", "|---|---|---|---|"]
    ref = c.get("ms_per_plan_median_reference")
    prec = c.get("precision", "fp32")
    labels = [("reference", "reference loop (recompute, numpy poses, one batch)"),
              ("ours", f"ours: KV cache + chunks, {prec}" + (" + torch.compile" if c.get("compile") else "")),
              ("ours_fp32", "ours, fp32"), ("ours_bf16", "ours, bf16"),
              ("ours_no_chunking", "ours without chunking"),
              ("ours_no_shared_context", "ours without the shared context frame (first block per sample)"),
              ("ours_no_kv_cache", "ours without KV cache (recompute, eager)")]
    for key in ("onnxruntime", "onnxruntime_no_kv_cache"):
        if f"ms_per_plan_median_{key}" in c:
            kv = "KV-cached step graphs" if c.get(f"kv_cache_{key}", key == "onnxruntime") else "recompute"
            ratio = c[f"ms_per_plan_median_{key}"] / c["ms_per_plan_median_ours"]
            labels.append((key, f"onnxruntime ({kv}; {ratio:.2f}x the time of ours)"))
    for key, label in labels:
        ms = c.get(f"ms_per_plan_median_{key}")
        if ms is None:
            continue
        speed = f"{ref / ms:.2f}x" if ref else "-"
        lines.append(f"| {label} | {ms:.0f} | {speed} | {c[f'plan_energy_{key}']:.6f} |")
    if "plan_max_abs_diff_vs_reference_m" in c:
        lines += ["", _plan_agreement(c)]
    if c.get("repeats"):
        lines += ["", f"Medians of {c['repeats']} plans per variant, interleaved in one run "
                      f"({c.get('torch_threads', '?')} torch thread(s); onnxruntime with as many intra-op threads)."]
    lines += _load_note(c)
    lines += _sim_model_planning(doc.get("sim_model"))
    gpu = doc.get("gpu") or {}
    if not gpu:
        lines += ["", "GPU: see the GPU check section (`bash bench/gpu_check.sh`)."]
    elif "skipped" in gpu:
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


def sec_training(doc: dict[str, Any], date: str) -> str:
    lines = [f"Pretraining throughput, `{doc['config']}` ({doc.get('model', '')}), steps {doc['first_step']}-"
             f"{doc['steps']} of a {doc['steps']}-step run on synthetic shards, global batch {doc['global_batch']}: "
             "clips per second over those steps (the first steps, with allocator and data warm-up, left out) and "
             "the peak resident memory of the (rank-0) process.", "",
             "| processes x threads | clips/s | peak RSS per process |", "|---|---|---|"]
    for r in doc["rows"]:
        label = f"{r['procs']} x {r['threads']}" + (f" ({r['strategy'].upper()}, gloo)" if r["procs"] > 1 else "")
        lines.append(f"| {label} | {r['clips_per_s']:.0f} | {r['peak_rss_mb']:.0f} MB |")
    if doc.get("notes"):
        lines += ["", f"Note: {doc['notes']}"]
    lines += _load_note(doc)
    return "\n".join(lines) + _footer(doc.get("command", "python bench/bench_training.py"), _machine(doc), date)


def sec_gpu(doc: dict[str, Any], date: str) -> str:
    dry = doc.get("dry_run")
    m = doc.get("machine") or {}
    lines = [("**Dry run** (CPU, tiny fixture: checks that every stage starts; these are not GPU numbers). "
              if dry else "") +
             f"Encoder latency per frame (one 256x256 frame = one duplicated tubelet, batch 1) and the V-JEPA 2-AC "
             f"plan at the paper's settings (800 samples x 10 iterations, top-10, H=1) on {m.get('gpu') or 'CPU'}; "
             f"weights: {doc.get('weights')}. Issue-18 target: ViT-g AC plan <= 2 s per action.", ""]
    t = doc.get("tests") or {}
    if t:
        lines += [f"GPU unit tests (`pytest -m gpu`): {t.get('summary') or t.get('skipped')}", ""]
    lines += ["| what | model | backend | precision | result |", "|---|---|---|---|---|"]
    for r in doc.get("encoder", []):
        res = r.get("skipped") or f"{r['ms_per_frame_median']:.2f} ms per frame ({r['frames_per_s']:.0f} frames/s)"
        lines.append(f"| encoder | {r.get('config')} | {r.get('backend')} | {r.get('precision')} | {res} |")
    for r in doc.get("planner", []):
        if r.get("skipped"):
            res = r["skipped"]
            what = "AC plan"
        else:
            res = f"{r['ms_per_plan_median'] / 1e3:.2f} s per plan"
            what = f"AC plan {r['samples']}x{r['iterations']}, H={r['horizon']}"
        lines.append(f"| {what} | {r.get('config')} | {r.get('backend')} | {r.get('precision')} | {res} |")
    versions = ", ".join(f"{k} {m[k]}" for k in ("torch", "cuda", "onnxruntime", "tensorrt", "driver") if m.get(k))
    lines += ["", f"Versions: {versions or '-'}; whole check {doc.get('seconds', '?')} s."]
    return "\n".join(lines) + _footer(doc.get("command", "bash bench/gpu_check.sh"), _machine(doc), date)


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
             "| CEM (samples x iterations, horizon) | GIL switch interval | steps | planning p50 (ms) "
             "| planning p99 (ms) | first plan (ms) | cycle p50 (ms) | same plan without ROS (ms) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in doc["rows"]:
        interval = f"{r['switch_interval_ms']} ms" if "switch_interval_ms" in r else "5 ms (CPython default)"
        lines.append(f"| {r['samples']} x {r['iterations']}, H={r['horizon']} | {interval} | {r['steps']} | "
                     f"{_fmt(r['planning_ms']['p50'])} | {_fmt(r['planning_ms']['p99'])} | "
                     f"{_fmt(r['first_plan_ms'])} | {_fmt(r['cycle_ms']['p50'])} | "
                     f"{_fmt(r.get('standalone_plan_ms_median'))} |")
    if doc.get("notes"):
        lines += ["", f"Note: {doc['notes']}"]
    return "\n".join(lines) + _footer(doc.get("command", "python bench/bench_planner_node.py"), _machine(doc), date)


def sec_stop_latency(doc: dict[str, Any], date: str) -> str:
    lines = [f"`~/stop` and `~/pause` round trips while a plan runs ({doc.get('model')}), the planner's "
             f"{doc.get('planner_threads')} torch thread(s), target {doc.get('target_ms'):.0f} ms; the client and "
             "fake robot run in the benchmark's process. `node acted` = the hold's header stamp minus the call time "
             "(the node's side). `plan sent after` counts trials where the arm moved after the answer (the "
             "cancelled plan's target reaching it): must be 0.", "",
             "| planner_node | GIL switch interval | call | n | p50 (ms) | p90 (ms) | max (ms) "
             f"| within {doc.get('target_ms'):.0f} ms | node acted p50 / max (ms) | plan sent after |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    where = {"process": "own process", "process_gil_5ms": "own process", "in_process": "in the client's process"}
    for r in doc["rows"]:
        for kind in ("stop", "pause"):
            s, h = r[kind], r[kind].get("hold_stamp_ms") or {}
            lines.append(f"| {where.get(r['mode'], r['mode'])} | {r['switch_interval_ms']} ms | `~/{kind}` | {s['n']} "
                         f"| {_fmt(s['p50'])} | {_fmt(s['p90'])} | {_fmt(s['max'])} | {s['within_target']}/{s['n']} "
                         f"| {_fmt(h.get('p50'))} / {_fmt(h.get('max'))} | {r['plan_sent_after_answer']} |")
    return "\n".join(lines) + _footer(doc.get("command", "python bench/bench_stop_latency.py"), _machine(doc), date)


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


def sec_manip(doc: dict[str, Any], date: str) -> str:
    sys.path.insert(0, str(HERE))
    from bench_manip import format_row

    lines = [f"Closed-loop manipulation in the simulator with `{doc['model']}`: the planner toward image sub-goals "
             "through planner_node's ReachGoals action, beside the scripted (upper bound) and random (lower bound) "
             "policies on the same scenes; success measured on the simulator's state (issue-15 targets over 3 x 20 "
             "episodes: grasp >= 65%, reach_object >= 75%, pick_place >= 65%).", "",
             "| task | policy | success | per seed | cup | box | plan time p50 / p99 |",
             "|---|---|---|---|---|---|---|"]
    lines += [format_row(r) for r in doc["rows"]]
    return "\n".join(lines) + _footer("python bench/bench_manip.py", doc.get("machine", "2 CPU cores, no GPU"), date)


def sec_grasp_prediction(doc: dict[str, Any], date: str) -> str:
    sys.path.insert(0, str(HERE))
    from bench_grasp_prediction import markdown

    lines = [f"Does a sim model foresee a grasp? From a hover {doc['hover_m'] * 100:.0f} cm above a cup or box "
             f"({doc['scenes']} development scenes, 19000 and up), \"down, close, up\" and the same moves without "
             "the close, in the simulator and in the model (open loop). Effect = latent L1 between the two final "
             "frames (what the close changes), real and predicted; prefers the grasp = the grasp's predicted energy "
             "to a goal image of the object held up is below the no-grasp one's. Last column: the energy of the real "
             "frames to the task's goal image along the scripted grasp, by phase.", "", markdown(doc)]
    return "\n".join(lines) + _footer("python bench/bench_grasp_prediction.py", doc.get("machine", "2 CPU cores"), date)


def sec_action(doc: dict[str, Any], date: str) -> str:
    r = doc.get("ros") or {}
    lines = ["Latency per clip of `action_node` (sliding clip -> encoder -> attentive probe -> top-k labels) on the "
             f"CPU, the node in its own process ({r.get('rmw', 'rmw_fastrtps_cpp')}, domain "
             f"{r.get('domain_id', '?')}, {r.get('node_threads', 1)} torch thread(s)), this process the camera.", "",
             "| configuration | clips | latency p50 / p90 / p99 (ms) | inference p50 / p99 (ms) |",
             "|---|---|---|---|"]
    for row in doc["rows"]:
        lat, inf = row["latency_ms"], row["inference_ms"]
        lines.append(f"| {row['config']} | {row['clips']} | {_fmt(lat['p50'])} / {_fmt(lat.get('p90'))} / "
                     f"{_fmt(lat['p99'])} | {_fmt(inf['p50'])} / {_fmt(inf['p99'])} |")
    live = doc.get("live_episode")
    if live:
        lines += ["", f"Live sim episode (scene seed {live['seed']}, {live['primitives']} motion primitives, "
                      "`models/sim_probe` on `models/sim_reach`): top-1 "
                      f"**{100 * live['top1']:.0f}%** ({live['correct']}/{live['scored']} clips inside a primitive); "
                      f"{live['transitions']} clips spanning a primitive boundary or the preparation are not scored."]
    if doc.get("notes"):
        lines += ["", f"Note: {doc['notes']}"]
    lines += _load_note(doc)
    return "\n".join(lines) + _footer(doc.get("command", "python bench/bench_action.py"), _machine(doc), date)


#: success criterion per task of bench_planners.py, as the section states it
_PLANNER_TASK_SUCCESS = {"reach": "final distance <= 5 cm",
                         "reach_object": "the object still held and within 5 cm of the goal, gripper held closed"}


def sec_planners(doc: dict[str, Any], date: str) -> str:
    task = doc.get("task", "reach")
    chosen = ("Settings were chosen on the development seed 9, not on the evaluation seeds." if task == "reach" else
              "Settings are the reach task's (chosen on its development seed 9); nothing was tuned on this task.")
    lines = [f"Planners side by side on the simulated {task} task (`{doc['model']}`, {doc['episodes']} episodes at "
             f"seed {doc['seed']} each, the same episodes for every run): closed-loop success "
             f"({_PLANNER_TASK_SUCCESS.get(task, 'the task measure')}) and planning time per step, backend "
             f"{doc['backend']} ({doc.get('precision', 'fp32')}) with {doc['planner_threads']} planner "
             f"thread. {chosen}", "",
             "| planner | samples x iterations | settings | success | median final distance | planning steps | "
             "plan time in the loop p50 / p99 | alone: CPU time (wall) |", "|---|---|---|---|---|---|---|---|"]
    alone = doc.get("offline_timing") or {}
    for r in doc["rows"]:
        settings = ", ".join(f"{k} {v}" for k, v in r["settings"].items() if k != "threads") or "-"
        dist = r.get("median_final_distance_m")
        t = alone.get(r["name"])
        lines.append(f"| {r['planner']} | {r['samples']}x{r['iterations']} | {settings} | "
                     f"{r['successes']}/{r['episodes']} = {100 * r['success_rate']:.0f}% | "
                     f"{'-' if dist is None else f'{100 * dist:.1f} cm'} | {r['steps']} | "
                     f"{1e3 * r['planning_time_p50_s']:.0f} / {1e3 * r['planning_time_p99_s']:.0f} ms | "
                     + (f"{t['cpu_median_ms']:.0f} ms ({t['median_ms']:.0f} ms) |" if t else "- |"))
    if alone:
        lines += ["", "In the loop: planner_node's time per step during the episodes (sharing the 2 cores with the "
                      "simulator, the encoder and other jobs). Alone: one step of the same planner on the same model "
                      "in one process, runs interleaved, median CPU time of the one-thread process (what a step costs "
                      "on an idle core) and its wall-clock median (load average "
                      f"{doc.get('offline_timing_load_average', float('nan')):.1f} during that measurement)."]
    if doc.get("tuning"):
        runs = [f"{k} {', '.join(f'{x}: {y}' for x, y in v.items())}" if isinstance(v, dict) else f"{k}: {v}"
                for k, v in doc["tuning"].items()]
        lines += ["", f"{'' if task == 'reach' else 'Reach task: '}Development runs that chose the settings "
                      "(seed 9, 6 episodes, 128x4; successes, planning steps, median final distance): "
                      + "; ".join(runs) + "."]
    if doc.get("notes"):
        lines += ["", f"Note: {doc['notes']}"]
    lines += _load_note(doc)
    return "\n".join(lines) + _footer(doc.get("command", "python bench/bench_planners.py"), _machine(doc), date)


def sec_sim_precision(doc: dict[str, Any], date: str) -> str:
    """Closed-loop reach with the planner in fp32 and bf16 (the shipped sim config's precision: auto)."""
    pl = doc.get("planner") or {}
    lines = [f"Closed-loop reach with {doc['model']}, planner_node on torch, CEM {pl.get('cem_samples')} x "
             f"{pl.get('cem_iterations')}, H=1, one planner thread, fp32 vs bf16 weights. Rule: {doc['rule']} "
             f"Decision: **{(doc.get('result') or {}).get('decision')}**.", "",
             "| run | role | seed | precision | success | median final distance | plan p50 / p99 |",
             "|---|---|---|---|---|---|---|"]
    for r in doc["rows"]:
        lines.append(f"| {r['name']} | {r['role']} | {r['seed']} | {r['precision']} | {r['successes']}/{r['episodes']} "
                     f"| {r['median_final_distance_m'] * 100:.1f} cm | {r['planning_time_p50_s']:.2f} / "
                     f"{r['planning_time_p99_s']:.2f} s |")
    lines += ["", "Planning times in the loop shared the 2 cores with the simulator, the encoder and other jobs "
                  "(1-minute load 3-17 during these runs), so they are not comparable between rows; the side-by-side "
                  "speed of the two precisions is in the CEM planning section."]
    return "\n".join(lines) + _footer("python bench/bench_sim_precision.py", _machine(doc), date)


SECTIONS: list[tuple[str, str, str, Callable[[dict[str, Any], str], str]]] = [
    ("Simulator", "sim.json", "python bench/bench_sim.py", sec_sim),
    ("Dataset pipeline", "data.json", "python bench/bench_data.py", sec_data),
    ("CEM planning (issues 4, 18)", "planning.json", "python bench/bench_planning.py", sec_planning),
    ("Training throughput", "training.json", "python bench/bench_training.py", sec_training),
    ("Perception: encoder_node (issue 5)", "perception.json", "python bench/bench_perception.py", sec_perception),
    ("Planner node (issue 6)", "planner_node.json", "python bench/bench_planner_node.py", sec_planner_node),
    ("Stop and pause while planning (issue 14)", "stop_latency.json", "python bench/bench_stop_latency.py",
     sec_stop_latency),
    ("Energy landscape tool (issue 4)", "landscape.json", "vjepa-bench landscape --config tiny", sec_landscape),
    ("Simulated reaching: action inference (issue 10)", "sim_reach.json", "python bench/bench_reach.py", sec_reach),
    ("Simulated manipulation (issue 15)", "manipulation.json", "python bench/bench_manip.py", sec_manip),
    ("Does the model foresee a grasp? (issue 15)", "grasp_prediction.json", "python bench/bench_grasp_prediction.py",
     sec_grasp_prediction),
    ("Planners on the sim reach task (issue 18)", "planners.json", "python bench/bench_planners.py", sec_planners),
    ("Planners on the sim reach_object task (issue 18)", "planners_reach_object.json",
     "python bench/bench_planners.py --task reach_object", sec_planners),
    ("fp32 vs bf16 planning in the closed loop (issue 18)", "sim_precision.json", "python bench/bench_sim_precision.py",
     sec_sim_precision),
    ("GPU check (issue 18)", "gpu.json", "bash bench/gpu_check.sh", sec_gpu),
    ("Video understanding: action_node (issue 17)", "action.json", "python bench/bench_action.py", sec_action),
]


def _section(title: str, fname: str, command: str, fn: Callable[[dict[str, Any], str], str],
             path: Path) -> list[str]:
    doc = _load(path)
    out = [f"## {title}", ""]
    if doc is None:
        return out + [f"_Not run yet: no `bench/results/{fname}`. Run `{command}`._", ""]
    try:
        return out + [fn(doc, _date(doc, path))]
    except (KeyError, TypeError, IndexError, ValueError) as exc:
        return out + [f"_`bench/results/{fname}` has an unexpected layout ({type(exc).__name__}: {exc}); "
                      f"re-run `{command}`._", ""]


def _gpu_sentence(results: Path) -> str:
    doc = _load(results / "gpu.json")
    if doc and not doc.get("dry_run") and (doc.get("machine") or {}).get("gpu"):
        return f"GPU numbers come from `bench/gpu_check.sh` on {doc['machine']['gpu']} (GPU check section)."
    return "No GPU numbers exist yet: `bash bench/gpu_check.sh` measures them on a CUDA machine."


def render(results: Path) -> str:
    """The whole README from the JSON files in ``results``."""
    out = ["# Benchmarks", "",
           "Generated by `bench/make_readme.py` from the JSON files in `bench/results/` (do not edit by hand). "
           "Run everything with `make bench` (= `bash bench/run_all.sh` with the venv active), which re-measures "
           "and regenerates this file; each benchmark also runs on its own with the command under its table.", "",
           "CPU numbers come from one shared development VM with 2 cores (other jobs were running beside the "
           "benchmarks, so single measurements are noisy; each section names its machine). "
           + _gpu_sentence(results), ""]
    for title, fname, command, fn in SECTIONS:
        out += _section(title, fname, command, fn, results / fname)
    return "\n".join(out).rstrip() + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", type=Path, default=HERE / "results")
    ap.add_argument("--out", type=Path, default=HERE / "README.md")
    ap.add_argument("--section", default=None, help="render only this section (its JSON name without .json)")
    ap.add_argument("--file", type=Path, default=None, help="with --section: the JSON file (default: in --results)")
    ap.add_argument("--stdout", action="store_true", help="print instead of writing --out")
    args = ap.parse_args()
    if args.section:
        match = [s for s in SECTIONS if s[1] == f"{args.section}.json"]
        if not match:
            ap.error(f"unknown section {args.section!r}; choose one of {[s[1][:-5] for s in SECTIONS]}")
        title, fname, command, fn = match[0]
        text = "\n".join(_section(title, fname, command, fn, args.file or args.results / fname)).rstrip() + "\n"
    else:
        text = render(args.results)
    if args.stdout:
        print(text, end="")
    else:
        args.out.write_text(text)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Action-node benchmark (issue 17): latency per clip (encoder + probe) of action_node on the CPU, and the shipped
simulator probe labelling a live sim episode.

    .venv/bin/python bench/bench_action.py [--primitives 21] [--seed 9000] [--threads 1] \
        [--picture models/sim_probe/live_episode.png] [--out bench/results/action.json]

A real ROS 2 graph over Fast DDS on ROS_DOMAIN_ID 230 (localhost discovery): action_node runs as its own process
(``python -m vjepa_perception.action_node --ros-args ...``), as in a deployment; this process is the camera.

1. **Live sim episode** (models/sim_probe on models/sim_reach): the PyBullet scene with the pipeline's tiled camera
   (two 96 x 48 views in one 96 x 96 frame) runs the scripted motion primitives of ``vjepa_sim.pipeline.probe_data``
   (a scene seed no split of the probe data used) and publishes every frame at 10 Hz of sim time, paced to the
   wall clock, stamped with sim time. The node samples clips of 4 frames at 2.5 fps by stamp and labels each new
   clip. Every label message is matched to the primitive its clip shows (clips spanning a primitive boundary or the
   off-camera preparation count as "transition" and are not scored): live top-1.
2. **Latency per clip** of each configuration (live sim model; the tiny fixture probe_tiny_a with 16-frame clips):
   latency = label receipt time - publish time of the clip's last frame (DDS transport of the frame, decoding,
   preprocessing, encoder, probe, ActionLabels transport); inference = the node's own ``inference_time``
   (preprocessing + encoder + probe).

Writes bench/results/action.json and prints a markdown table; ``--picture`` writes a strip of the live episode with
the true and the predicted label on each labelled clip's last frame.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import start_node, summary, write_result

ROOT = Path(__file__).resolve().parents[1]
SIM_PROBE = ROOT / "models" / "sim_probe"
SIM_MODEL = ROOT / "models" / "sim_reach"
TINY = ROOT / "tests" / "fixtures" / "probe_tiny_a"
DOMAIN_ID = 230
TRANSITION = "transition"


class Camera:
    """Publishes frames on /camera/image_raw and collects ActionLabels, both keyed by stamp (nanoseconds)."""

    def __init__(self, node: Any) -> None:
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import Image

        from vjepa_interfaces.msg import ActionLabels

        self.node = node
        self.pub = node.create_publisher(Image, "/camera/image_raw", qos_profile_sensor_data)
        node.create_subscription(ActionLabels, "/vjepa/action_labels", self._on_labels, 50)
        self.sent: dict[int, float] = {}
        self.labels: list[tuple[float, Any]] = []
        self._lock = threading.Lock()

    def _on_labels(self, msg: Any) -> None:
        t = time.perf_counter()
        with self._lock:
            self.labels.append((t, msg))

    def publish(self, rgb: np.ndarray, stamp_ns: int) -> None:
        from sensor_msgs.msg import Image

        from vjepa_core.imgmsg import rgb_to_image_fields

        msg = Image(**rgb_to_image_fields(rgb))
        msg.header.stamp.sec, msg.header.stamp.nanosec = stamp_ns // 10**9, stamp_ns % 10**9
        msg.header.frame_id = "ext1_optical_frame"
        with self._lock:
            self.sent[stamp_ns] = time.perf_counter()
        self.pub.publish(msg)

    def results(self) -> tuple[list[float], list[float], list[Any]]:
        """(latency ms, inference ms, label messages) for the labels whose clip's last frame was sent."""
        with self._lock:
            pairs = [(t, m) for t, m in self.labels]
            sent = dict(self.sent)
        lat, inf, msgs = [], [], []
        for t, m in pairs:
            key = m.header.stamp.sec * 10**9 + m.header.stamp.nanosec
            if key in sent:
                lat.append((t - sent[key]) * 1e3)
                inf.append(m.inference_time * 1e3)
                msgs.append(m)
        return lat, inf, msgs


class Graph:
    """The node process + this process's camera node, on the bench's domain."""

    def __init__(self, params: dict[str, Any], threads: int, log: Path) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self.proc = start_node("vjepa_perception.action_node", params, threads, log, DOMAIN_ID)
        self.log = log
        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx, domain_id=DOMAIN_ID)
        self.node = rclpy.create_node("bench_camera", context=self.ctx)
        self.cam = Camera(self.node)
        self.ex = SingleThreadedExecutor(context=self.ctx)
        self.ex.add_node(self.node)
        self.spin = threading.Thread(target=self.ex.spin, daemon=True)
        self.spin.start()
        deadline = time.monotonic() + 120
        while not (self.cam.pub.get_subscription_count() and self.node.count_publishers("/vjepa/action_labels")):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"action_node did not come up; its log:\n{log.read_text()[-3000:]}")
            time.sleep(0.05)

    def close(self) -> None:
        import subprocess

        import rclpy

        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.ex.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.ctx)
        self.spin.join(2)


def live_episode(args: argparse.Namespace, tmp: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The shipped probe on a live sim episode; returns the latency row and the per-clip records."""
    from vjepa_sim.pipeline.probe_data import PrimitiveRunner, ProbeDataConfig
    from vjepa_sim.pipeline.settings import load_settings
    from vjepa_sim.scene import FrankaSim

    params = {"checkpoint": str(SIM_MODEL / "vjepa2_sim.pt"), "model_config": str(SIM_MODEL / "config.json"),
              "probe": str(SIM_PROBE / "probe.pt"), "labels_file": str(SIM_PROBE / "labels.json"),
              "frames_per_clip": 4, "clip_fps": 2.5, "crop": "center", "max_rate_hz": 10.0, "top_k": 3}
    graph = Graph(params, args.threads, tmp / "action_node_sim.log")
    frames: dict[int, tuple[np.ndarray, str | None]] = {}
    period = 1.0 / ProbeDataConfig.camera_hz
    next_wall = [time.perf_counter()]

    def observer(frame: np.ndarray, state: np.ndarray, sim_time: float, label: str | None) -> None:
        wait = next_wall[0] - time.perf_counter()
        if wait > 0:
            time.sleep(wait)                       # a camera at 10 Hz of wall time
        next_wall[0] = max(next_wall[0] + period, time.perf_counter() - period)
        stamp = int(round(sim_time * 1e9))
        frames[stamp] = (frame, label)
        graph.cam.publish(frame, stamp)

    try:
        with FrankaSim(load_settings().sim_config()) as sim:
            runner = PrimitiveRunner(sim, ProbeDataConfig(), observer=observer)
            sim.reset(seed=args.seed)
            rng = np.random.default_rng([args.seed, 17])
            known = set(json.loads((SIM_PROBE / "labels.json").read_text()).values())   # what the probe names
            labels: list[str] = []
            while len(labels) < args.primitives:
                labels += [x for x in runner.episode_order(rng) if x in known]
            labels = labels[:args.primitives]
            for label in labels:
                runner.record(runner.prepare(label, rng))
            runner.rest(1.0)                      # a last second of rest, so the final clip is labelled
        time.sleep(2.0)
        lat, inf, msgs = graph.cam.results()
    finally:
        graph.close()
    stamps = sorted(frames)
    records = []
    for m in msgs:
        last = m.header.stamp.sec * 10**9 + m.header.stamp.nanosec
        first = last - int(round(m.clip_duration * 1e9))
        inside = [frames[s][1] for s in stamps if first <= s <= last]
        truth = inside[0] if inside and inside[0] is not None and all(x == inside[0] for x in inside) else TRANSITION
        records.append({"stamp_ns": last, "truth": truth, "pred": m.labels[0], "score": round(float(m.scores[0]), 3),
                        "top3": list(m.labels)})
    from vjepa_core.probes import load_probe

    cfg = load_probe(SIM_PROBE / "probe.pt", None).cfg
    row = {"config": f"sim_probe on sim_reach (4 frames at 2.5 fps, 96 px; probe depth {cfg.depth}, "
                     f"{cfg.num_heads} heads)", "clips": len(lat),
           "latency_ms": summary(lat, 2), "inference_ms": summary(inf, 2)}
    if args.picture:
        draw_strip(records, frames, Path(args.picture))
    return row, records


def tiny_latency(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """probe_tiny_a (released-format probe, 16-frame clips at 64 px) on a 10 Hz stream of 256 px frames."""
    cfg = tmp / "cls.json"
    cfg.write_text(json.dumps({"embed_dim": 96, "num_heads": 4, "depth": 2, "num_classes": 7}))
    params = {"checkpoint": str(TINY / "encoder.pt"), "model_config": str(TINY / "config.json"),
              "checkpoint_key": "encoder", "probe": str(TINY / "probe_classification.pt"),
              "probe_config": str(cfg), "frames_per_clip": 16, "max_rate_hz": 10.0}
    graph = Graph(params, args.threads, tmp / "action_node_tiny.log")
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (256, 256, 3), dtype=np.uint8) for _ in range(8)]
    try:
        t0 = time.perf_counter()
        i = 0
        while time.perf_counter() - t0 < args.tiny_seconds:
            graph.cam.publish(images[i % len(images)], 10**9 + i * 10**8)
            i += 1
            time.sleep(max(0.0, t0 + i * 0.1 - time.perf_counter()))
        time.sleep(2.0)
        lat, inf, _ = graph.cam.results()
    finally:
        graph.close()
    return {"config": "probe_tiny_a (16 frames, 64 px, ViT width 96 x 2 blocks, depth-2 probe; 256 px input)",
            "clips": len(lat), "latency_ms": summary(lat, 2), "inference_ms": summary(inf, 2)}


def draw_strip(records: list[dict[str, Any]], frames: dict[int, tuple[np.ndarray, str | None]], path: Path,
               per_row: int = 6, scale: int = 2) -> None:
    """The last frame of labelled clips (one per primitive: the first clip fully inside it, plus transitions
    skipped) with the true and predicted labels; green when right, red when wrong."""
    from PIL import Image, ImageDraw

    chosen, seen = [], set()
    for r in records:
        key = (r["truth"], len([c for c in chosen if c["truth"] == r["truth"]]))
        if r["truth"] == TRANSITION or key in seen:
            continue
        if chosen and chosen[-1]["truth"] == r["truth"]:
            continue                                # one clip per primitive run
        seen.add(key)
        chosen.append(r)
    if not chosen:
        return
    tile_w, tile_h, text_h = 96 * scale, 96 * scale, 34
    rows = (len(chosen) + per_row - 1) // per_row
    canvas = Image.new("RGB", (per_row * tile_w, rows * (tile_h + text_h)), "white")
    draw = ImageDraw.Draw(canvas)
    for k, r in enumerate(chosen):
        x, y = (k % per_row) * tile_w, (k // per_row) * (tile_h + text_h)
        img = Image.fromarray(frames[r["stamp_ns"]][0]).resize((tile_w, tile_h), Image.NEAREST)
        canvas.paste(img, (x, y))
        ok = r["pred"] == r["truth"]
        draw.text((x + 3, y + tile_h + 2), f"true: {r['truth']}", fill=(0, 0, 0))
        draw.text((x + 3, y + tile_h + 17), f"node: {r['pred']} {r['score']:.2f}",
                  fill=(0, 130, 0) if ok else (200, 0, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)


def _repo_relative(path: str) -> str:
    p = Path(path).resolve()
    return str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p)


def markdown(rows: list[dict[str, Any]], live: dict[str, Any]) -> str:
    lines = ["| configuration | clips | latency p50 (ms) | latency p99 (ms) | inference p50 (ms) "
             "| inference p99 (ms) |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['config']} | {r['clips']} | {r['latency_ms']['p50']} | {r['latency_ms']['p99']} | "
                     f"{r['inference_ms']['p50']} | {r['inference_ms']['p99']} |")
    lines.append("")
    lines.append(f"Live sim episode: {live['scored']} clips inside a primitive, top-1 {live['top1']:.3f} "
                 f"({live['correct']}/{live['scored']}); {live['transitions']} transition clips not scored.")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--primitives", type=int, default=21, help="primitives in the live sim episode (of the "
                                                                "probe's labels, in seeded random order)")
    ap.add_argument("--seed", type=int, default=9000, help="scene seed of the live episode (not in the probe data)")
    ap.add_argument("--tiny-seconds", type=float, default=10.0, help="seconds of the 10 Hz stream for probe_tiny_a")
    ap.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of the node (torch intra-op threads)")
    ap.add_argument("--picture", help="write the labelled live episode strip here (PNG)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "action.json")
    args = ap.parse_args()
    for path in (SIM_PROBE / "probe.pt", SIM_MODEL / "vjepa2_sim.pt", TINY / "encoder.pt"):
        if not path.is_file():
            raise SystemExit(f"missing {path}")
    with tempfile.TemporaryDirectory(prefix="vjepa_bench_action_") as d:
        tmp = Path(d)
        sim_row, records = live_episode(args, tmp)
        rows = [sim_row, tiny_latency(args, tmp)]
    scored = [r for r in records if r["truth"] != TRANSITION]
    correct = sum(r["pred"] == r["truth"] for r in scored)
    live = {"seed": args.seed, "primitives": args.primitives, "scored": len(scored), "correct": correct,
            "top1": correct / len(scored) if scored else float("nan"),
            "transitions": len(records) - len(scored), "clips": records}
    import torch

    result = {
        "benchmark": "action_node latency per clip (encoder + probe) and live sim labelling",
        "date": datetime.date.today().isoformat(),
        "machine": {"cpus": os.cpu_count(), "cpu": platform.processor() or platform.machine(),
                    "python": platform.python_version(), "torch": torch.__version__, "gpu": None},
        "ros": {"domain_id": DOMAIN_ID, "rmw": os.environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp"),
                "node": "separate process", "node_threads": args.threads},
        "command": "python bench/bench_action.py" + (f" --picture {_repo_relative(args.picture)}"
                                                     if args.picture else ""),
        "notes": ("latency = label receipt - publish time of the clip's last frame; inference = the node's "
                  "ActionLabels.inference_time (preprocessing + encoder + probe). The camera, DDS, the PyBullet "
                  "render and the node share the machine's CPU cores."),
        "rows": rows,
        "live_episode": live,
    }
    write_result(args.out, result, markdown(rows, live))
    return 0


if __name__ == "__main__":
    sys.exit(main())

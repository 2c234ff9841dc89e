"""Headless simulator speed: sim-seconds per wall-second with the camera rendering at 10 Hz, 256x256.

    .venv/bin/python bench/bench_sim.py [--seconds 20] [--out bench/results/sim.json]

Runs the same loop sim_node runs (physics at 240 Hz, tracker at 60 Hz, camera frames on a sim-time
schedule) with the arm following a new random target every 0.5 s, in one process on one core. Rows:
camera off (physics + tracker only), the default camera, and the slower variants (shadows, stock meshes,
two cameras), all measured side by side in this run. Target: >= 3x real time with the default camera.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import replace

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "ros2_ws", "src", "vjepa_sim"))

from vjepa_sim.config import CameraConfig, SimConfig  # noqa: E402
from vjepa_sim.scene import DOWN_QUAT, FrankaSim  # noqa: E402


def measure(cfg: SimConfig, seconds: float, camera_hz: float) -> dict:
    """Run ``seconds`` of sim time; return sim seconds per wall second and the time split."""
    sim = FrankaSim(cfg)
    rng = np.random.default_rng(0)
    steps = int(round(seconds * cfg.physics_rate_hz))
    frame_every = int(round(cfg.physics_rate_hz / camera_hz)) if camera_hz > 0 else 0
    target_every = int(round(0.5 * cfg.physics_rate_hz))
    render_s = 0.0
    frames = 0
    start = time.perf_counter()
    for i in range(steps):
        if i % target_every == 0:
            sim.set_target(rng.uniform([0.35, -0.2, 0.1], [0.65, 0.2, 0.45]), DOWN_QUAT)
        if frame_every and i % frame_every == 0:
            t = time.perf_counter()
            for cam in cfg.cameras:
                sim.render(cam.name)
                frames += 1
            render_s += time.perf_counter() - t
        sim.step(1)
    wall = time.perf_counter() - start
    sim.close()
    return {
        "sim_seconds": seconds,
        "wall_seconds": round(wall, 3),
        "realtime_factor": round(seconds / wall, 2),
        "frames": frames,
        "ms_per_frame": round(1000 * render_s / frames, 2) if frames else None,
        "render_share": round(render_s / wall, 3),
    }


def measure_node(seconds: float) -> dict | None:
    """sim_node at real_time_factor 0 with the exploration autopilot and an image subscriber (ROS overhead
    included: messages, DDS). None when rclpy or vjepa_interfaces are not importable."""
    try:
        import threading

        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from sensor_msgs.msg import Image

        from vjepa_sim.sim_node import QOS_CAMERA, SimNode
    except ImportError as err:
        print(f"skipping the sim_node row: {err}", file=sys.stderr)
        return None
    ctx = Context()
    rclpy.init(context=ctx, domain_id=200 + os.getpid() % 30)
    node = SimNode({"real_time_factor": 0.0, "autopilot": "explore"}, context=ctx)
    sub = rclpy.create_node("bench_sub", context=ctx)
    frames = []
    sub.create_subscription(Image, "/camera/image_raw", lambda m: frames.append(m.header.stamp), QOS_CAMERA)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    ex.add_node(sub)
    th = threading.Thread(target=ex.spin, daemon=True)
    th.start()
    time.sleep(1.0)  # discovery
    t0, w0, n0 = node.sim.time, time.perf_counter(), len(frames)
    time.sleep(seconds)
    t1, w1, n1 = node.sim.time, time.perf_counter(), len(frames)
    ex.shutdown()
    th.join(timeout=10)
    node.destroy_node()
    sub.destroy_node()
    rclpy.shutdown(context=ctx)
    return {"config": "sim_node (ROS 2), real_time_factor 0, explore autopilot, 1 image subscriber",
            "sim_seconds": round(t1 - t0, 2), "wall_seconds": round(w1 - w0, 3),
            "realtime_factor": round((t1 - t0) / (w1 - w0), 2), "frames": n1 - n0,
            "ms_per_frame": None, "render_share": None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="sim seconds per row")
    parser.add_argument("--out", default=os.path.join(HERE, "results", "sim.json"))
    args = parser.parse_args()
    base = SimConfig()
    two = (CameraConfig(), CameraConfig(name="ext2", eye=(0.5, -1.0, 0.7), target=(0.45, 0.0, 0.2)))
    rows = [
        ("physics + tracker, no camera", base, 0.0),
        ("camera 10 Hz 256x256 (default)", base, 10.0),
        ("camera 15 Hz 256x256", base, 15.0),
        ("camera 10 Hz, shadows on", replace(base, shadows=True), 10.0),
        ("camera 10 Hz, stock visual meshes", replace(base, arm_meshes="visual"), 10.0),
        ("two cameras 10 Hz", replace(base, cameras=two), 10.0),
    ]
    results = []
    for name, cfg, hz in rows:
        r = measure(cfg, args.seconds, hz)
        r["config"] = name
        results.append(r)
        print(f"{name}: {r['realtime_factor']}x", file=sys.stderr)
    node_row = measure_node(args.seconds / 4.0)
    if node_row is not None:
        results.append(node_row)
    default = results[1]["realtime_factor"]
    doc = {
        "benchmark": "vjepa_sim headless speed (sim seconds per wall second)",
        "machine": {"cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                    "python": platform.python_version()},
        "target_realtime_factor": 3.0,
        "default_realtime_factor": default,
        "meets_target": default >= 3.0,
        "rows": results,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=2)
    print("| configuration | sim s / wall s | ms per frame | render share |")
    print("|---|---|---|---|")
    for r in results:
        ms = "-" if r["ms_per_frame"] is None else f"{r['ms_per_frame']:.1f}"
        share = "-" if r["render_share"] is None else f"{100 * r['render_share']:.0f}%"
        print(f"| {r['config']} | {r['realtime_factor']:.1f}x | {ms} | {share} |")
    print(f"\nTarget >= 3x real time with the default camera: {'met' if default >= 3.0 else 'NOT met'} "
          f"({default:.1f}x). Results: {os.path.relpath(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

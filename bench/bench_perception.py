"""Perception benchmark (issue 5): image-to-latent latency and sustained throughput through encoder_node.

    .venv/bin/python bench/bench_perception.py [--seconds 12] [--warmup 3] [--camera-hz 30 300] \
        [--backends torch onnxruntime] [--threads 1] [--out bench/results/perception.json]

A real ROS 2 graph over Fast DDS on ROS_DOMAIN_ID 231 (localhost discovery; the test suites use 1-100 and
160-229): encoder_node runs as its own process (``python -m vjepa_perception.encoder_node --ros-args ...``),
as it would in a deployment, with the tiny shared model (fixtures/parity_tiny_a: 64 px, ViT width 96, depth 2)
on the CPU, once with the torch backend and once with onnxruntime (graphs exported with ``vjepa-export onnx``
into a temporary directory first). This process is the camera: it publishes 256x256 rgb8 ``sensor_msgs/Image``
at 30 Hz (the issue's camera; then at 300 Hz, faster than the node, to show its capacity) with sensor-data QoS,
each with a unique stamp, and subscribes to ``/vjepa/latent``.

- latency = latent receipt time - publish time of the image with the same header stamp (end to end: DDS
  transport of the 196 KB image, conversion, resize 256 -> 64, encoding, Latent serialisation and transport);
- throughput = latents received per second over the measurement window (after a warm-up);
- dropped = images for which no latent came back (the node keeps only the newest frame by design);
- inference = the node's own ``Latent.inference_time`` (preprocessing + model only).

Writes bench/results/perception.json and prints a markdown table (about 1.5 minutes with the defaults).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import start_node as start_node_process
from _common import summary, write_result

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "parity_tiny_a"
DOMAIN_ID = 231


def export_tiny(out: Path) -> Path:
    """``vjepa-export onnx`` of the tiny encoder (1-frame graph) into ``out``; fails loudly on a parity error."""
    from vjepa_core.cli import export

    rc = export.main(["onnx", "--checkpoint", str(FIXTURE / "checkpoint.pt"), "--config",
                      str(FIXTURE / "config.json"), "--out", str(out), "--no-predictor", "--encoder-frames", "1"])
    if rc != 0:
        raise SystemExit(f"vjepa-export onnx failed with status {rc}")
    return out


def start_node(backend: str, onnx_dir: Path | None, threads: int, log_path: Path) -> subprocess.Popen:
    """encoder_node as a child process on the bench's domain."""
    params = {"checkpoint": str(FIXTURE / "checkpoint.pt"), "model_config": str(FIXTURE / "config.json"),
              "backend": backend, "device": "cpu", "max_rate_hz": 1000.0, "diagnostics_period_s": 0.5}
    if onnx_dir is not None:
        params["onnx_dir"] = str(onnx_dir)
    return start_node_process("vjepa_perception.encoder_node", params, threads, log_path, DOMAIN_ID)


class Camera:
    """Publishes 256x256 rgb8 frames at a fixed rate from its own thread and matches latents by stamp."""

    def __init__(self, node: Any, hz: float = 30.0) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import Image

        from vjepa_core.imgmsg import rgb_to_image_fields
        from vjepa_interfaces.msg import Latent

        self.node = node
        self.hz = hz
        self.pub = node.create_publisher(Image, "/camera/image_raw", qos_profile_sensor_data)
        self.sub = node.create_subscription(Latent, "/vjepa/latent", self._on_latent, 100)
        self.diag_sub = node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 10)
        self.node_counts: dict[str, int] = {}
        rng = np.random.default_rng(0)
        self.frames = []  # a few prebuilt messages: building 196 KB of data per frame would cost more than DDS
        for _ in range(8):
            msg = Image(**rgb_to_image_fields(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8), "rgb8"))
            msg.header.frame_id = "bench_camera"
            self.frames.append(msg)
        self.sent: dict[tuple[int, int], float] = {}
        self.received: dict[tuple[int, int], tuple[float, float]] = {}  # stamp -> (receipt time, inference s)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _on_latent(self, msg: Any) -> None:
        t = time.perf_counter()
        key = (msg.header.stamp.sec, msg.header.stamp.nanosec)
        with self._lock:
            self.received[key] = (t, float(msg.inference_time))

    def _on_diag(self, msg: Any) -> None:
        for st in msg.status:
            if "encoder" in st.name:
                vals = {kv.key: kv.value for kv in st.values}
                with self._lock:
                    self.node_counts = {k: int(vals[k]) for k in ("received", "published", "dropped_frames",
                                                                  "invalid_frames") if k in vals}

    def counts(self) -> dict[str, int]:
        """The node's cumulative counters (from its last /diagnostics message) and the images sent so far."""
        with self._lock:
            return {**self.node_counts, "sent": len(self.sent)}

    def _run(self) -> None:
        period = 1.0 / self.hz
        nxt = time.perf_counter()
        i = 0
        while not self._stop.is_set():
            now = time.perf_counter()
            if now < nxt:
                time.sleep(min(nxt - now, 0.05))
                continue
            msg = self.frames[i % len(self.frames)]
            i += 1
            stamp = time.time_ns()
            msg.header.stamp.sec, msg.header.stamp.nanosec = stamp // 10**9, stamp % 10**9
            t = time.perf_counter()
            with self._lock:
                self.sent[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = t
            self.pub.publish(msg)
            nxt += period
            if nxt < time.perf_counter() - period:  # fell behind (machine busy): do not burst to catch up
                nxt = time.perf_counter()

    def start(self, hz: float) -> None:
        self.hz = hz
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)

    def window(self, t0: float, t1: float) -> dict[str, Any]:
        """Statistics for images published in [t0, t1)."""
        with self._lock:
            sent = {k: t for k, t in self.sent.items() if t0 <= t < t1}
            got = {k: self.received[k] for k in sent if k in self.received}
        lat = [(got[k][0] - sent[k]) * 1e3 for k in got]
        inf = [v[1] * 1e3 for v in got.values()]
        dur = t1 - t0
        return {"seconds": round(dur, 2), "images_sent": len(sent), "camera_hz_actual": round(len(sent) / dur, 2),
                "latents": len(got), "throughput_hz": round(len(got) / dur, 2),
                "dropped": len(sent) - len(got), "dropped_frac": round(1 - len(got) / max(len(sent), 1), 4),
                "latency_ms": summary(lat, 2), "inference_ms": summary(inf, 2)}


def run_backend(backend: str, onnx_dir: Path | None, args: argparse.Namespace, tmp: Path) -> list[dict[str, Any]]:
    """One encoder_node process; one measurement window per camera rate."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    log = tmp / f"encoder_node_{backend}.log"
    proc = start_node(backend, onnx_dir, args.threads, log)
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=DOMAIN_ID)
    node = rclpy.create_node("bench_camera", context=ctx)
    cam = Camera(node)
    rows = []
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    spin = threading.Thread(target=ex.spin, daemon=True)
    spin.start()
    try:
        deadline = time.monotonic() + 60
        while not (cam.pub.get_subscription_count() > 0 and node.count_publishers("/vjepa/latent") > 0):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"encoder_node ({backend}) did not come up; its log:\n{log.read_text()[-3000:]}")
            time.sleep(0.05)
        for hz in args.camera_hz:
            before = cam.counts()
            cam.start(hz)
            time.sleep(args.warmup)
            t0 = time.perf_counter()
            time.sleep(args.seconds)
            t1 = time.perf_counter()
            cam.stop()
            time.sleep(1.5)  # let in-flight latents and the node's next /diagnostics arrive
            after = cam.counts()
            # where images went, over the whole row (warm-up included): lost in transport (best-effort QoS)
            # vs replaced in the node before it got to them (keep-newest policy)
            delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
            split = {"sent": delta.get("sent"), "node_received": delta.get("received"),
                     "node_replaced": delta.get("dropped_frames"), "node_published": delta.get("published")}
            if None not in (split["sent"], split["node_received"]):
                split["transport_lost"] = split["sent"] - split["node_received"]
            row = {"backend": backend, "camera_hz": hz, **cam.window(t0, t1), "row_counts": split}
            rows.append(row)
            print(f"{backend} @ {hz:g} Hz: {row['throughput_hz']} latents/s, latency p50 "
                  f"{row['latency_ms']['p50']} ms, p99 {row['latency_ms']['p99']} ms", flush=True)
    finally:
        cam.stop()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        ex.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=ctx)
        spin.join(2)
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    head = ("| backend | camera | latents/s | dropped | latency p50 (ms) | latency p99 (ms) | inference p50 (ms) |\n"
            "|---|---|---|---|---|---|---|")
    lines = [head]
    for r in rows:
        lines.append(f"| {r['backend']} | {r['camera_hz_actual']:.1f} Hz | {r['throughput_hz']:.1f} | "
                     f"{100 * r['dropped_frac']:.1f}% | {r['latency_ms']['p50']} | {r['latency_ms']['p99']} | "
                     f"{r['inference_ms']['p50']} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=12.0, help="measurement window per backend and camera rate")
    ap.add_argument("--warmup", type=float, default=3.0, help="seconds of camera before measuring")
    ap.add_argument("--camera-hz", type=float, nargs="+", default=[30.0, 300.0],
                    help="camera rates; 30 Hz is the issue's setting, a faster one shows the node's capacity")
    ap.add_argument("--backends", nargs="+", default=["torch", "onnxruntime"], choices=["torch", "onnxruntime"])
    ap.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of the node (torch intra-op threads)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "perception.json")
    args = ap.parse_args()
    if not FIXTURE.is_dir():
        raise SystemExit(f"tiny fixture not found at {FIXTURE}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="vjepa_bench_perception_") as d:
        tmp = Path(d)
        onnx_dir = export_tiny(tmp / "onnx") if "onnxruntime" in args.backends else None
        for backend in args.backends:
            rows += run_backend(backend, onnx_dir if backend == "onnxruntime" else None, args, tmp)
    import onnxruntime
    import torch

    result = {
        "benchmark": "encoder_node image-to-latent latency and throughput",
        "date": datetime.date.today().isoformat(),
        "machine": {"cpus": os.cpu_count(), "cpu": platform.processor() or platform.machine(),
                    "python": platform.python_version(), "torch": torch.__version__,
                    "onnxruntime": onnxruntime.__version__, "gpu": None},
        "model": "parity_tiny_a (64 px, ViT width 96, depth 2, 16 tokens)",
        "image": "256x256 rgb8 sensor_msgs/Image, sensor-data QoS",
        "ros": {"domain_id": DOMAIN_ID, "rmw": os.environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp"),
                "node": "separate process", "node_threads": args.threads},
        "settings": {"seconds": args.seconds, "warmup": args.warmup, "camera_hz": args.camera_hz,
                     "node_max_rate_hz": 1000.0},
        "command": "python bench/bench_perception.py",
        "notes": ("torch in the node runs with OMP_NUM_THREADS threads; onnxruntime uses its default intra-op "
                  "thread count (encoder_node's `threads` parameter can cap it), which competes with the camera "
                  "publisher on a 2-core machine. The camera, DDS and the node share the same 2 cores, so the "
                  "300 Hz rows measure the whole machine's capacity, not the model's."),
        "rows": rows,
    }
    write_result(args.out, result, markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())

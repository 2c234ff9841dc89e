"""Stop / pause latency (issue 14): how long ``~/stop`` and ``~/pause`` take to answer while a plan is computed.

    .venv/bin/python bench/bench_stop_latency.py [--trials 10] [--threads 2] \
        [--modes process process_gil_5ms in_process] \
        [--out bench/results/stop_latency.json]

A real ROS 2 graph over Fast DDS on ROS_DOMAIN_ID 232 (localhost discovery; the test suites use 1-100 and 160-229).
planner_node plans with the tiny shared AC predictor (tests/fixtures/parity_tiny_a) at a setting far slower than any
trial (CEM 200 samples x 2000 iterations: tens of seconds per plan), so every call arrives while a plan is running.
The rest of the robot is played by this process (``bench_planner_node.FakeRobot``: an instant arm at 50 Hz,
fabricated latents at 30 Hz).

Each trial starts an episode (goal latent; the node starts planning within one control period of hearing it),
lets the plan run a random 0.3-1.5 s (seeded), then calls ``~/stop`` (or ``~/pause``, then ``~/stop`` to end the
episode) and measures the round trip from ``call_async`` to the response in this process, and when the node
stamped its hold (the first target after the call: the node's side of the latency). After each answer it waits
1 s and checks that the arm is where it was at the call (the cancelled plan's target never reached it; the hold is
at the newest pose).

Three modes, side by side in one run:

- ``process``: planner_node is its own process (``python -m vjepa_planner.planner_node``), as ``ros2 launch``
  runs it on a robot, with the GIL switch interval its ``main`` sets (0.1 ms, :mod:`vjepa_core.process`).
  This is the row the 100 ms target is about.
- ``process_gil_5ms``: the same with CPython's default interval (``VJEPA_GIL_SWITCH_INTERVAL_MS=5``), the node
  as it was before: the planning thread and the executor threads wait up to 5 ms for the GIL each time one of
  them hands it over, many times per message, so calls queue for seconds.
- ``in_process``: planner_node, the fake robot and the client share one Python process and one
  ``MultiThreadedExecutor`` (4 threads), as the unit tests build their graphs (with the tests' 0.1 ms interval).

Writes bench/results/stop_latency.json and prints a markdown table (about 2-3 minutes with the defaults).
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
from _common import start_node, summary, write_result
from bench_planner_node import FIXTURE, GRIPPER_TOPIC, MODEL_ID, POSE_TOPIC, TARGET_TOPIC, FakeRobot

from vjepa_core.process import NODE_SWITCH_INTERVAL_S, SWITCH_INTERVAL_ENV, tune_node_process

ROOT = Path(__file__).resolve().parents[1]
# shared with bench_planner_node.py (run_all.sh runs the benches one at a time; Fast DDS has no domain above 232)
DOMAIN_ID = 232
SLOW = {"cem_samples": 200, "cem_iterations": 2000}  # tens of seconds per plan: every trial lands inside a plan
TARGET_MS = 100.0
# mode -> (where planner_node runs, GIL switch interval in ms)
MODES = {"process": ("own process", NODE_SWITCH_INTERVAL_S * 1e3), "process_gil_5ms": ("own process", 5.0),
         "in_process": ("in the client's process", NODE_SWITCH_INTERVAL_S * 1e3)}


def planner_params(threads: int) -> dict[str, Any]:
    """planner_node parameters: tiny predictor, torch, CPU, the bench's topics, a plan far longer than a trial."""
    return {
        "checkpoint": str(FIXTURE / "checkpoint.pt"), "model_config": str(FIXTURE / "config.json"),
        "backend": "torch", "device": "cpu", **SLOW, "cem_topk": 10, "cem_horizon": 1, "robot": "sim",
        "gripper": "none", "target_topic": TARGET_TOPIC, "ee_pose_topic": POSE_TOPIC,
        "gripper_state_topic": GRIPPER_TOPIC, "max_steps": 50, "control_rate_hz": 50.0, "settle_timeout_s": 5.0,
        "max_data_age_s": 2.0, "fault_timeout_s": 60.0, "expected_model_id": MODEL_ID, "threads": threads,
    }


class Trials:
    """The client side: start an episode, wait for PLANNING, call a trigger, time the answer, check the arm."""

    def __init__(self, node: Any, robot: FakeRobot, rng: np.random.Generator) -> None:
        from std_srvs.srv import Trigger

        self.node, self.robot, self.rng = node, robot, rng
        self.clients = {name: node.create_client(Trigger, f"/planner_node/{name}") for name in ("stop", "pause")}

    def wait_ready(self, alive: Any, timeout: float = 90.0) -> None:
        """Until the planner's services and topics are matched (``alive()`` False: the node died)."""
        deadline = time.monotonic() + timeout
        while not (all(c.service_is_ready() for c in self.clients.values())
                   and self.robot.goal_pub.get_subscription_count() > 0
                   and self.robot.pose_pub.get_subscription_count() > 0
                   and self.node.count_publishers("/planner_node/status") > 0):
            if not alive() or time.monotonic() > deadline:
                raise RuntimeError("planner_node did not come up")
            time.sleep(0.05)
        time.sleep(1.0)  # poses and latents reach the node
        self.call("stop")  # an idle stop: the reply path is matched before the timed calls

    def call(self, name: str, timeout: float = 30.0) -> tuple[float, bool, str]:
        """Call ``~/<name>``; (round-trip seconds, success, the node's message)."""
        from std_srvs.srv import Trigger

        done = threading.Event()
        t0 = time.perf_counter()
        future = self.clients[name].call_async(Trigger.Request())
        future.add_done_callback(lambda _f: done.set())
        if not done.wait(timeout):
            raise RuntimeError(f"no answer to ~/{name} within {timeout} s")
        seconds = time.perf_counter() - t0
        return seconds, bool(future.result().success), str(future.result().message)

    def run(self, kind: str) -> dict[str, Any]:
        """One trial of ``kind`` (stop or pause)."""
        self.robot.start_episode()  # the node starts planning within one control period of hearing the goal
        time.sleep(float(self.rng.uniform(0.3, 1.5)))  # the plan is running (it takes tens of seconds)
        targets, state = self.robot.targets, self.robot.state.copy()
        sent = time.time()  # the node stamps its hold with the same (system) clock
        seconds, ok, message = self.call(kind)
        time.sleep(1.0)
        stamps = self.robot.target_stamps[targets:]  # the first target after the call is the hold
        hold_ms = (stamps[0] - sent) * 1e3 if stamps else None
        moved = float(np.abs(self.robot.state[:3] - state[:3]).max())
        if kind == "pause":
            self.call("stop")  # end the paused episode
        return {"kind": kind, "ms": round(seconds * 1e3, 1),
                "hold_stamp_ms": None if hold_ms is None else round(hold_ms, 1), "success": ok, "message": message,
                "targets_after": self.robot.targets - targets, "moved_m": moved}


def run_trials(trials: Trials, n: int) -> list[dict[str, Any]]:
    """``n`` stop and ``n`` pause trials, alternating."""
    out = []
    for i in range(2 * n):
        out.append(trials.run("stop" if i % 2 == 0 else "pause"))
    return out


def run_mode(mode: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """One mode's trials in a fresh graph."""
    import rclpy
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.parameter import Parameter

    params = planner_params(args.threads)
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=DOMAIN_ID)
    proc: subprocess.Popen | None = None
    planner = None
    node = rclpy.create_node("bench_robot", context=ctx)
    robot = FakeRobot(node)
    nodes = [node]
    interval_ms = MODES[mode][1]
    if mode.startswith("process"):
        log = tmp / f"planner_node_{mode}.log"
        proc = start_node("vjepa_planner.planner_node", params, args.threads, log, DOMAIN_ID,
                          {SWITCH_INTERVAL_ENV: str(interval_ms)})
        ex = MultiThreadedExecutor(num_threads=2, context=ctx)
    else:
        from vjepa_planner.planner_node import PlannerNode

        planner = PlannerNode(context=ctx, parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
        nodes.append(planner)
        ex = MultiThreadedExecutor(num_threads=4, context=ctx)
    for n in nodes:
        ex.add_node(n)
    spin = threading.Thread(target=ex.spin, daemon=True)
    spin.start()
    try:
        trials = Trials(node, robot, np.random.default_rng(args.seed))
        trials.wait_ready(lambda: proc is None or proc.poll() is None)
        rows = run_trials(trials, args.trials)
    finally:
        if proc is not None:
            proc.send_signal(2)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        if planner is not None:
            planner.hold_and_close()
        ex.shutdown()
        for n in nodes:
            n.destroy_node()
        rclpy.shutdown(context=ctx)
        spin.join(2)
    result: dict[str, Any] = {"mode": mode, "switch_interval_ms": interval_ms, "trials": rows}
    for kind in ("stop", "pause"):
        ms = [r["ms"] for r in rows if r["kind"] == kind]
        holds = [r["hold_stamp_ms"] for r in rows if r["kind"] == kind and r["hold_stamp_ms"] is not None]
        result[kind] = {**summary(ms, 1, with_min=True), "n": len(ms),
                        "within_target": sum(v <= TARGET_MS for v in ms),
                        "hold_stamp_ms": summary(holds, 1)}
    result["all_succeeded"] = all(r["success"] for r in rows)
    result["plan_sent_after_answer"] = sum(r["moved_m"] > 1e-6 for r in rows)
    return result


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| planner_node | GIL switch interval | call | n | p50 (ms) | p90 (ms) | max (ms) "
             f"| within {TARGET_MS:.0f} ms | plan sent after |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        where = MODES[r["mode"]][0]
        for kind in ("stop", "pause"):
            s = r[kind]
            lines.append(f"| {where} | {r['switch_interval_ms']} ms | ~/{kind} | {s['n']} | {s['p50']} | {s['p90']} "
                         f"| {s['max']} | {s['within_target']}/{s['n']} | {r['plan_sent_after_answer']} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=10, help="stop trials and pause trials per mode")
    ap.add_argument("--threads", type=int, default=2, help="the planner's torch threads (its `threads` parameter)")
    ap.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    ap.add_argument("--seed", type=int, default=0, help="seeds the delays between plan start and call")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "stop_latency.json")
    args = ap.parse_args()
    if args.trials < 1:
        ap.error("--trials must be >= 1")
    import torch

    tune_node_process()  # this process (the client and the fake robot) hands the GIL over like a node does
    rows = []
    with tempfile.TemporaryDirectory(prefix="vjepa_bench_stop_") as d:
        for mode in args.modes:
            row = run_mode(mode, args, Path(d))
            rows.append(row)
            print(f"{mode}: stop p50 {row['stop']['p50']} ms max {row['stop']['max']} ms; pause p50 "
                  f"{row['pause']['p50']} ms max {row['pause']['max']} ms", flush=True)
    result = {
        "benchmark": "planner_node ~/stop and ~/pause answer time while a plan runs",
        "date": datetime.date.today().isoformat(),
        "machine": {"cpus": os.cpu_count(), "cpu": platform.processor() or platform.machine(),
                    "python": platform.python_version(), "torch": torch.__version__, "gpu": None,
                    "load_1min_at_end": round(os.getloadavg()[0], 2)},
        "model": "parity_tiny_a AC predictor, torch, CPU, CEM 200 x 2000 (a plan far longer than any trial)",
        "ros": {"domain_id": DOMAIN_ID, "rmw": os.environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")},
        "planner_threads": args.threads, "target_ms": TARGET_MS,
        "command": "python bench/bench_stop_latency.py",
        "rows": rows,
    }
    write_result(args.out, result, markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Process-wide settings for a node that runs a busy worker thread beside its ROS 2 executor.

Every vjepa2_ros node that infers (planner_node, encoder_node, action_node) runs the model on a worker thread while
rclpy's executor threads take messages and service calls. CPython hands the GIL from a running thread to a waiting
one only every ``sys.getswitchinterval()`` seconds (5 ms by default). A thread that gives the GIL up briefly (each
torch op, each rcl call) then waits up to that interval to get it back, many times per message or per CEM
iteration, and the two sides starve each other. Measured on 2 cores (``bench/README.md``, side by side in one run):
``~/stop`` during a plan answered in up to ~0.9-1.6 s with 5 ms and within ~40 ms with 0.1 ms
(``python bench/bench_stop_latency.py``); planning 100 x 5 inside the node took 1.2 s per step (p50) with 5 ms and
55 ms with 0.1 ms (``python bench/bench_planner_node.py``). A short interval costs
a single-threaded program nothing (nobody asks for the GIL).

This module imports no rclpy; node ``main`` functions call :func:`tune_node_process` once, before spinning. The
environment variable ``VJEPA_GIL_SWITCH_INTERVAL_MS`` overrides the interval (``5`` restores CPython's default;
the benchmarks use it to compare both in one run).
"""

from __future__ import annotations

import math
import os
import sys

__all__ = ["NODE_SWITCH_INTERVAL_S", "SWITCH_INTERVAL_ENV", "node_switch_interval", "tune_node_process"]

NODE_SWITCH_INTERVAL_S = 1e-4
SWITCH_INTERVAL_ENV = "VJEPA_GIL_SWITCH_INTERVAL_MS"


def node_switch_interval(environ: dict[str, str] | None = None) -> float:
    """The GIL switch interval in seconds for a node process: ``VJEPA_GIL_SWITCH_INTERVAL_MS`` if set, else 0.1 ms.

    Raises ValueError (with the variable's name) for a value that is not a positive number of milliseconds."""
    env = os.environ if environ is None else environ
    text = env.get(SWITCH_INTERVAL_ENV, "").strip()
    if not text:
        return NODE_SWITCH_INTERVAL_S
    try:
        ms = float(text)
    except ValueError:
        raise ValueError(f"{SWITCH_INTERVAL_ENV}={text!r} is not a number of milliseconds") from None
    if not (math.isfinite(ms) and ms > 0):
        raise ValueError(f"{SWITCH_INTERVAL_ENV}={text!r} must be a positive, finite number of milliseconds")
    return ms / 1e3


def tune_node_process() -> float:
    """Set this process's GIL switch interval for a node (see the module docstring); returns the interval set."""
    interval = node_switch_interval()
    sys.setswitchinterval(interval)
    return interval

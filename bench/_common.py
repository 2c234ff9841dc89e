"""Helpers shared by the node benchmarks (bench_perception.py, bench_planner_node.py): summary statistics,
starting a node as a child process on the bench's ROS domain, and writing the result JSON + markdown table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np


def summary(xs: list[float], digits: int, with_min: bool = False) -> dict[str, float | None]:
    """p50 / p90 / p99 / mean / max (and min) of ``xs`` rounded to ``digits``; all None when ``xs`` is empty."""
    keys = ["p50", "p90", "p99", "mean", "max"] + (["min"] if with_min else [])
    if not xs:
        return dict.fromkeys(keys)
    a = np.asarray(xs)
    values = {"p50": np.percentile(a, 50), "p90": np.percentile(a, 90), "p99": np.percentile(a, 99),
              "mean": a.mean(), "max": a.max(), "min": a.min()}
    return {k: round(float(values[k]), digits) for k in keys}


def start_node(module: str, params: dict[str, Any], threads: int, log_path: Path, domain_id: int,
               extra_env: dict[str, str] | None = None) -> subprocess.Popen:
    """``python -m module --ros-args -p k:=v ...`` on ``domain_id`` (localhost discovery), with
    ``OMP_NUM_THREADS=threads`` (and ``extra_env``); stdout and stderr go to ``log_path``."""
    cmd = [sys.executable, "-m", module, "--ros-args"]
    for k, v in params.items():
        cmd += ["-p", f"{k}:={v}"]
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain_id), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               OMP_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1", **(extra_env or {}))
    return subprocess.Popen(cmd, env=env, stdout=log_path.open("w"), stderr=subprocess.STDOUT)


def write_result(path: Path, result: dict[str, Any], table: str) -> None:
    """Write ``result`` as JSON to ``path`` (creating its folder) and print the markdown ``table``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    print()
    print(table)

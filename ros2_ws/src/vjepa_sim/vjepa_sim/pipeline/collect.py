"""``vjepa-sim collect``: scripted exploration in ``sim_node``, recorded by ``recorder_node`` into rosbag2 files.

Everything goes through the real ROS 2 graph: sim_node (``autopilot: explore``) and recorder_node run as
their own processes; this process only calls services: for each episode ``/sim_node/reset`` (scene seed
``seed + i``), ``/recorder_node/start_episode``, wait ``episode_seconds`` of sim time (``/clock``), then
``/recorder_node/stop_episode``. ``collect.json`` in the bag directory lists finished episodes (bag names
relative to it, so the directory can move); a rerun keeps
them and records only the missing ones (a half-written bag of an interrupted episode is removed and redone).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from vjepa_core.franka import CURRENT_POSE_TOPIC, GRIPPER_JOINT_STATES_TOPIC

from .graph import NodeGraph, call, wait_for_service
from .settings import Settings, add_common_arguments, load_settings

__all__ = ["add_arguments", "collect", "run"]

RECORD_TOPICS = [
    "/camera/image_raw",
    CURRENT_POSE_TOPIC,
    GRIPPER_JOINT_STATES_TOPIC,
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """CLI of ``vjepa-sim collect``."""
    add_common_arguments(parser)
    parser.add_argument("--episodes", type=int, default=None, help="number of episodes (default: settings)")
    parser.add_argument("--episode-seconds", type=float, default=None, help="sim seconds per episode")
    parser.add_argument("--out", default=None, help="bag directory (default WORKDIR/bags)")


def _manifest(out: Path) -> dict:
    path = out / "collect.json"
    if path.is_file():
        return json.loads(path.read_text())
    return {"episodes": {}}


def _save_manifest(out: Path, manifest: dict) -> None:
    tmp = out / "collect.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, out / "collect.json")


def collect(settings: Settings, episodes: int, episode_seconds: float, out: Path) -> dict:
    """Record ``episodes`` exploration bags into ``out`` (resumable). Returns the manifest."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rosgraph_msgs.msg import Clock
    from std_srvs.srv import Trigger

    from vjepa_interfaces.srv import ResetSim

    c = settings.section("collect")
    if episodes < 1 or episode_seconds <= 0:
        raise ValueError("--episodes must be >= 1 and --episode-seconds > 0")
    out.mkdir(parents=True, exist_ok=True)
    manifest = _manifest(out)
    done = manifest["episodes"]
    for key, entry in list(done.items()):  # a bag that vanished is recorded again
        if not (out / entry["bag"] / "metadata.yaml").is_file():
            del done[key]
    todo = [i for i in range(episodes) if str(i) not in done]
    known = {e["bag"] for e in done.values()}
    for d in out.glob("episode_*"):  # half-written bags of an interrupted run
        if d.is_dir() and d.name not in known:
            shutil.rmtree(d)
    if not todo:
        print(f"collect: all {episodes} episodes already recorded in {out}")
        return manifest
    print(f"collect: {len(done)} episodes kept, recording {len(todo)} into {out}")
    nodes = [
        {"package": "vjepa_sim", "executable": "sim_node", "name": "sim_node",
         "parameters": [*settings.sim_params(),
                        {"autopilot": "explore", "real_time_factor": float(c["real_time_factor"]),
                         "seed": int(c["seed"]), "explore_seed": 0,
                         "explore_control_rate_hz": float(c["explore_control_rate_hz"]),
                         "explore_max_delta": float(c["explore_max_delta"])}]},
        {"package": "vjepa_training", "executable": "recorder_node", "name": "recorder_node",
         "parameters": [{"topics": RECORD_TOPICS, "output_dir": str(out), "storage": "mcap", "mode": "episodes",
                         "task": "scripted exploration (vjepa-sim collect)", "use_sim_time": True,
                         "discovery_period_s": 0.2}]},
    ]
    t_start = time.monotonic()
    with NodeGraph(nodes, settings.logs / "collect.log") as graph:
        rclpy.init(domain_id=graph.domain_id)  # the graph's domain; our environment stays untouched
        node = rclpy.create_node("vjepa_sim_collect")
        ex = SingleThreadedExecutor()
        ex.add_node(node)
        clock = {"t": -1.0}

        def _on_clock(msg: Any) -> None:
            clock["t"] = msg.clock.sec + msg.clock.nanosec * 1e-9

        node.create_subscription(Clock, "/clock", _on_clock, 10)
        reset = node.create_client(ResetSim, "/sim_node/reset")
        start = node.create_client(Trigger, "/recorder_node/start_episode")
        stop = node.create_client(Trigger, "/recorder_node/stop_episode")
        try:
            for cl, name in ((reset, "/sim_node/reset"), (start, "/recorder_node/start_episode"),
                             (stop, "/recorder_node/stop_episode")):
                wait_for_service(node, cl, name, 60.0, graph)
            _wait_topics(node, ex, graph)
            for n, i in enumerate(todo):
                t0 = time.monotonic()
                req = ResetSim.Request()
                req.seed = int(c["seed"]) + i
                res = call(ex, reset, req, "reset", graph=graph)
                if not res.success:
                    raise RuntimeError(f"sim reset failed: {res.message}")
                res = call(ex, start, Trigger.Request(), "start_episode", graph=graph)
                if not res.success:
                    raise RuntimeError(f"recorder start_episode failed: {res.message}")
                bag = res.message
                clock["t"] = -1.0
                while clock["t"] < 0:
                    ex.spin_once(timeout_sec=0.05)
                t_end = clock["t"] + episode_seconds
                while clock["t"] < t_end:
                    ex.spin_once(timeout_sec=0.05)
                    graph.check()
                res = call(ex, stop, Trigger.Request(), "stop_episode", graph=graph)
                if not res.success:
                    raise RuntimeError(f"recorder stop_episode failed: {res.message}")
                done[str(i)] = {"bag": Path(bag).name, "seed": int(c["seed"]) + i, "sim_seconds": episode_seconds}
                _save_manifest(out, manifest)
                print(f"collect: episode {i} ({n + 1}/{len(todo)}) -> {Path(bag).name} "
                      f"in {time.monotonic() - t0:.1f} s", flush=True)
        finally:
            node.destroy_node()
            rclpy.try_shutdown()
    manifest["last_run_seconds"] = round(time.monotonic() - t_start, 1)
    _save_manifest(out, manifest)
    return manifest


def _wait_topics(node: Any, ex: Any, graph: NodeGraph, timeout: float = 30.0) -> None:
    """Give the recorder time to subscribe to every recorded topic before the first episode starts."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ex.spin_once(timeout_sec=0.1)
        graph.check()
        if all(node.count_subscribers(t) > 0 for t in RECORD_TOPICS):
            return
    raise TimeoutError(f"recorder_node did not subscribe to {RECORD_TOPICS} within {timeout:.0f} s\n{graph.tail()}")


def run(args: argparse.Namespace) -> int:
    """Entry point of ``vjepa-sim collect``."""
    s = load_settings(args.pipeline, args.workdir)
    c = s.section("collect")
    episodes = args.episodes if args.episodes is not None else int(c["episodes"])
    seconds = args.episode_seconds if args.episode_seconds is not None else float(c["episode_seconds"])
    out = Path(args.out).resolve() if args.out else s.bags
    t0 = time.monotonic()
    manifest = collect(s, episodes, seconds, out)
    print(f"collect: {len(manifest['episodes'])} episodes in {out} ({time.monotonic() - t0:.0f} s)")
    return 0

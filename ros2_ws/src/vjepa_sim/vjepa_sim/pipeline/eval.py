"""``vjepa-sim eval`` and ``vjepa-sim demo``: closed-loop reach episodes through the real ROS 2 graph.

The graph is the deployment one: ``sim_node`` (camera, pose, ``~/reset``, ``~/render_goal``), ``encoder_node``
(camera -> ``/vjepa/latent``, ``~/encode`` for goal images) and ``planner_node`` (CEM on the AC predictor,
targets to the simulator's ``equilibrium_pose`` input), each its own process, started with the project's
runner. This process is only the experimenter: per episode it

1. draws a start position and a target position (seeded; at least ``min_goal_distance`` apart, gripper
   pointing down) and resets the scene with the arm at the start (``/sim_node/reset``);
2. renders the goal image with the arm at the target (``/sim_node/render_goal``; the episode is not disturbed);
3. sends the image to ``/planner_node/set_goal`` and follows ``/planner_node/status`` until the planner ends the
   episode (step budget ``max_steps``);
4. measures the final end-effector distance to the target: **success when it is within ``success_radius``**.

``--policy random`` replaces the planner by uniformly random actions of the same size bound (the baseline):
the same episodes, the same step budget, targets sent straight to sim_node.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from .graph import NodeGraph
from .report import summarize, write_episode_figure, write_json, write_report
from .settings import Settings, add_common_arguments, load_settings

__all__ = ["add_arguments_demo", "add_arguments_eval", "run_demo", "run_eval", "sample_tasks", "evaluate"]

POSE_TOPIC = "/franka_robot_state_broadcaster/current_pose"
TARGET_TOPIC = "/cartesian_impedance_example_controller/equilibrium_pose"
IMAGE_TOPIC = "/camera/image_raw"
LATENT_TOPIC = "/vjepa/latent"
DOWN_QUAT = (1.0, 0.0, 0.0, 0.0)
TERMINAL_STATES = (5, 6, 7)  # PlanStatus SUCCEEDED, FAILED, STOPPED


def sample_tasks(n: int, seed: int, lo: list, hi: list, min_distance: float) -> list:
    """``n`` reach tasks ``{"index", "scene_seed", "start", "target"}``: positions uniform in the box [lo, hi],
    target at least ``min_distance`` from the start. A function of ``seed`` only."""
    lo_a, hi_a = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
    if lo_a.shape != (3,) or hi_a.shape != (3,) or np.any(hi_a <= lo_a):
        raise ValueError(f"target_min/target_max must be 3 numbers with min < max, got {lo}, {hi}")
    if min_distance >= np.linalg.norm(hi_a - lo_a):
        raise ValueError(f"min_goal_distance {min_distance} m does not fit in the box {lo}..{hi}")
    rng = np.random.default_rng(seed)
    tasks = []
    for i in range(n):
        start = rng.uniform(lo_a, hi_a)
        target = rng.uniform(lo_a, hi_a)
        while np.linalg.norm(target - start) < min_distance:
            target = rng.uniform(lo_a, hi_a)
        tasks.append({"index": i, "scene_seed": 10_000 + 1000 * int(seed) + i,
                      "start": [round(float(v), 4) for v in start], "target": [round(float(v), 4) for v in target]})
    return tasks


def model_files(model_dir: Path) -> dict:
    """Checkpoint, config and ONNX directory of an exported model directory (``vjepa-sim export``)."""
    model_dir = Path(model_dir)
    ckpt = model_dir / "vjepa2_sim.pt"
    cfg = model_dir / "config.json"
    if not ckpt.is_file() or not cfg.is_file():
        raise ValueError(f"{model_dir} is not a model directory (needs vjepa2_sim.pt and config.json; "
                         "see `vjepa-sim export`)")
    return {"checkpoint": str(ckpt.resolve()), "model_config": str(cfg.resolve()),
            "onnx_dir": str((model_dir / "onnx").resolve())}


def graph_nodes(settings: Settings, model_dir: Path | None, backend: str, real_time_factor: float) -> list:
    """Runner node specs of the evaluation graph (sim_node alone when ``model_dir`` is None)."""
    e = settings.section("eval")
    nodes: list = [{"package": "vjepa_sim", "executable": "sim_node", "name": "sim_node",
                    "parameters": [*settings.sim_params(), {"real_time_factor": float(real_time_factor)}]}]
    if model_dir is not None:
        files = model_files(model_dir)
        if backend != "torch" and not Path(files["onnx_dir"]).is_dir():
            raise ValueError(f"backend {backend} needs {files['onnx_dir']} (run `vjepa-sim export`)")
        model = {**files, "backend": backend, "use_sim_time": True}
        if backend == "torch":
            model["onnx_dir"] = ""
        nodes.append({"package": "vjepa_perception", "executable": "encoder_node", "name": "encoder_node",
                      "parameters": [str(settings.path(e["encoder_params"])), model]})
        nodes.append({"package": "vjepa_planner", "executable": "planner_node", "name": "planner_node",
                      "parameters": [str(settings.path(e["planner_params"])),
                                     {**model, "max_steps": int(e["max_steps"])}]})
    return nodes


def _planner_param(settings: Settings, name: str, default: Any) -> Any:
    """A value from the planner params file (the random baseline uses the planner's step bound)."""
    import yaml

    doc = yaml.safe_load(settings.path(settings.section("eval")["planner_params"]).read_text()) or {}
    return ((doc.get("planner_node") or {}).get("ros__parameters") or {}).get(name, default)


class _Experimenter:
    """The evaluation's own rclpy node: service clients, pose/image/latent/status subscriptions (spun in a thread)."""

    def __init__(self, graph: NodeGraph) -> None:
        import rclpy
        from geometry_msgs.msg import PoseStamped
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from rosgraph_msgs.msg import Clock
        from sensor_msgs.msg import Image

        from vjepa_interfaces.msg import Latent, PlanStatus
        from vjepa_interfaces.srv import RenderGoal, ResetSim, SetGoal

        self.graph = graph
        rclpy.init(domain_id=graph.domain_id)  # the graph's domain; our environment stays untouched
        self.node = rclpy.create_node("vjepa_sim_eval")
        self.lock = threading.Lock()
        self.pose: np.ndarray | None = None
        self.image: tuple | None = None  # (stamp, array)
        self.latent_stamp = -1.0
        self.clock = -1.0
        self.status: list = []
        n = self.node
        n.create_subscription(PoseStamped, POSE_TOPIC, self._on_pose,
                              QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
        n.create_subscription(Image, IMAGE_TOPIC, self._on_image, 5)
        n.create_subscription(Latent, LATENT_TOPIC, self._on_latent, 5)
        n.create_subscription(PlanStatus, "/planner_node/status", self._on_status, 50)
        n.create_subscription(Clock, "/clock", self._on_clock, 10)
        self.target_pub = n.create_publisher(PoseStamped, TARGET_TOPIC, 10)
        self.reset_cli = n.create_client(ResetSim, "/sim_node/reset")
        self.render_cli = n.create_client(RenderGoal, "/sim_node/render_goal")
        self.goal_cli = n.create_client(SetGoal, "/planner_node/set_goal")
        self.types = {"ResetSim": ResetSim, "RenderGoal": RenderGoal, "SetGoal": SetGoal, "PoseStamped": PoseStamped}
        self.executor = SingleThreadedExecutor()  # one thread: callbacks never race the shutdown
        self.executor.add_node(n)
        self._spin = threading.Thread(target=self.executor.spin, daemon=True)
        self._spin.start()

    # ---- subscriptions
    def _on_pose(self, msg: Any) -> None:
        p = msg.pose.position
        with self.lock:
            self.pose = np.array([p.x, p.y, p.z])

    def _on_image(self, msg: Any) -> None:
        if msg.encoding != "rgb8":
            return
        arr = np.frombuffer(bytes(msg.data), dtype=np.uint8).reshape(msg.height, msg.step)[:, : msg.width * 3]
        with self.lock:
            self.image = (msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9,
                          arr.reshape(msg.height, msg.width, 3).copy())

    def _on_latent(self, msg: Any) -> None:
        with self.lock:
            self.latent_stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9

    def _on_clock(self, msg: Any) -> None:
        with self.lock:
            self.clock = msg.clock.sec + msg.clock.nanosec * 1e-9

    def _on_status(self, msg: Any) -> None:
        with self.lock:
            self.status.append(msg)

    # ---- helpers
    def wait(self, predicate: Any, timeout: float, what: str) -> None:
        """Poll ``predicate`` until true; ``TimeoutError`` naming ``what`` (and the node log) otherwise."""
        deadline = time.monotonic() + timeout
        while not predicate():
            self.graph.check()
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}\n{self.graph.tail()}")
            time.sleep(0.02)

    def call(self, client: Any, request: Any, what: str, timeout: float = 60.0) -> Any:
        deadline = time.monotonic() + timeout
        while not client.wait_for_service(timeout_sec=0.5):
            self.graph.check()
            if time.monotonic() > deadline:
                raise TimeoutError(f"service {what} not available after {timeout:.0f} s\n{self.graph.tail()}")
        future = client.call_async(request)
        self.wait(future.done, timeout, f"the answer of {what}")
        return future.result()

    def close(self) -> None:
        import rclpy

        self.executor.shutdown(timeout_sec=10.0)  # wait for running callbacks before destroying their node
        self._spin.join(timeout=10.0)
        self.node.destroy_node()
        rclpy.try_shutdown()


def _pose_msg(position: Any, quat: Any = DOWN_QUAT) -> Any:
    from geometry_msgs.msg import Pose

    pose = Pose()
    pose.position.x, pose.position.y, pose.position.z = (float(v) for v in position)
    pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w = (float(v) for v in quat)
    return pose


def _run_episode(ex: _Experimenter, task: dict, policy: str, e: dict, rng: np.random.Generator,
                 maxnorm: float, verbose: bool) -> tuple:
    """One reach episode; returns (record, start image, goal image, final image)."""
    T = ex.types
    target = np.array(task["target"])
    req = T["ResetSim"].Request()
    req.seed, req.use_start_pose, req.start_pose, req.gripper = task["scene_seed"], True, _pose_msg(task["start"]), 0.0
    res = ex.call(ex.reset_cli, req, "/sim_node/reset")
    if not res.success:
        raise RuntimeError(f"episode {task['index']}: reset failed: {res.message}")
    with ex.lock:
        t_reset = ex.clock
    req = T["RenderGoal"].Request()
    req.pose, req.gripper, req.camera = _pose_msg(target), 0.0, ""
    goal = ex.call(ex.render_cli, req, "/sim_node/render_goal")
    if not goal.success:
        raise RuntimeError(f"episode {task['index']}: goal not reachable: {goal.message}")
    a = goal.achieved_pose.position
    target = np.array([a.x, a.y, a.z])  # the pose the goal image shows
    goal_img = np.frombuffer(bytes(goal.image.data), dtype=np.uint8).reshape(
        goal.image.height, goal.image.step)[:, : goal.image.width * 3].reshape(goal.image.height, goal.image.width, 3)
    ex.wait(lambda: ex.image is not None and ex.image[0] >= t_reset, 30.0, "a camera frame after the reset")
    with ex.lock:
        start_img = ex.image[1].copy()
    ex.wait(lambda: ex.pose is not None and np.linalg.norm(ex.pose - np.array(task["start"])) < 0.01, 30.0,
            "the arm at the start pose")
    with ex.lock:
        initial = float(np.linalg.norm(ex.pose - target))
    trace: list = []
    t0 = time.monotonic()
    message = ""
    if policy == "planner":
        ex.wait(lambda: ex.latent_stamp >= t_reset, 30.0, "a latent of a frame after the reset")
        with ex.lock:
            ex.status.clear()
        req = T["SetGoal"].Request()
        req.image, req.task, req.start = goal.image, f"reach {task['target']}", True
        res = ex.call(ex.goal_cli, req, "/planner_node/set_goal")
        if not res.success:
            raise RuntimeError(f"episode {task['index']}: set_goal refused: {res.message}")
        episode_id = res.episode
        seen = 0
        deadline = time.monotonic() + 60.0 * max(1, int(e["max_steps"]))
        done = False
        while not done:
            ex.graph.check()
            if time.monotonic() > deadline:
                raise TimeoutError(f"episode {task['index']}: the planner did not finish\n{ex.graph.tail()}")
            with ex.lock:
                new = [m for m in ex.status[seen:]]
                seen = len(ex.status)
            for m in new:
                if m.episode != episode_id:
                    continue
                if m.state == 2 and math.isfinite(m.energy):  # EXECUTING: one planning step
                    dist = float(np.linalg.norm(np.array(m.ee_state[:3]) - target))
                    trace.append({"step": len(trace) + 1, "distance": dist, "energy": float(m.energy),
                                  "goal_energy": float(m.goal_energy), "action": [float(v) for v in m.action[:3]],
                                  "planning_time": float(m.planning_time)})
                    if verbose:
                        act = " ".join(f"{v * 100:+5.1f}" for v in m.action[:3])
                        print(f"  step {len(trace):2d}: energy {m.energy:.4f} (current frame {m.goal_energy:.4f})"
                              f"  distance to target {dist * 100:5.1f} cm  action [{act}] cm  "
                              f"plan {m.planning_time:.2f} s", flush=True)
                if m.state in TERMINAL_STATES:
                    done, message = True, m.message
            time.sleep(0.02)
    else:  # random actions of the planner's size bound, sent straight to the simulator
        lo, hi = np.array(e["target_min"]) - 0.05, np.array(e["target_max"]) + 0.05
        for k in range(int(e["max_steps"])):
            with ex.lock:
                pos = ex.pose.copy()
            dist = float(np.linalg.norm(pos - target))
            cmd = np.clip(pos + rng.uniform(-maxnorm, maxnorm, size=3), lo, hi)
            msg = T["PoseStamped"]()
            msg.header.frame_id = "fr3_link0"
            msg.pose = _pose_msg(cmd)
            ex.target_pub.publish(msg)
            trace.append({"step": k + 1, "distance": dist, "energy": None, "goal_energy": None,
                          "action": [float(v) for v in cmd - pos], "planning_time": None})
            if verbose:
                print(f"  step {k + 1:2d}: random action, distance to target {dist * 100:5.1f} cm", flush=True)
            try:
                ex.wait(lambda c=cmd: np.linalg.norm(ex.pose - c) < 0.01, 10.0, "the arm to settle")
            except TimeoutError:
                pass
        message = f"{len(trace)} random steps"
    time.sleep(0.3)  # let the last move settle and a fresh frame arrive
    with ex.lock:
        final_pos = ex.pose.copy()
        t_img = ex.image[0]
    ex.wait(lambda: ex.image[0] > t_img, 30.0, "a final camera frame")
    with ex.lock:
        final_img = ex.image[1].copy()
    final = float(np.linalg.norm(final_pos - target))
    record = {
        **task, "policy": policy, "target_achieved": [round(float(v), 4) for v in target],
        "initial_distance": initial, "final_distance": final,
        "min_distance": min([final] + [t["distance"] for t in trace]),
        "final_position": [round(float(v), 4) for v in final_pos], "steps": len(trace),
        "success": bool(final <= float(e["success_radius"])), "message": message,
        "seconds": round(time.monotonic() - t0, 1), "trace": trace,
    }
    return record, start_img, goal_img, final_img


def evaluate(settings: Settings, model_dir: Path | None, episodes: int, seed: int, policy: str, out_json: Path,
             backend: str = "onnxruntime", verbose: bool = False, command: str = "") -> dict:
    """Run ``episodes`` reach episodes; write ``out_json``, ``<stem>.md`` and ``<stem>_episodes/*.png``."""
    if policy not in ("planner", "random"):
        raise ValueError(f"--policy must be 'planner' or 'random', got {policy!r}")
    if episodes < 1:
        raise ValueError("--episodes must be >= 1")
    if policy == "planner" and model_dir is None:
        raise ValueError("--model DIR is required with --policy planner")
    e = settings.section("eval")
    tasks = sample_tasks(episodes, seed, e["target_min"], e["target_max"], float(e["min_goal_distance"]))
    out_json = Path(out_json)
    pic_dir = out_json.parent / f"{out_json.stem}_episodes"
    maxnorm = float(_planner_param(settings, "cem_maxnorm", 0.05))
    rng = np.random.default_rng(seed + 7)
    records: list = []
    nodes = graph_nodes(settings, model_dir if policy == "planner" else None, backend, float(e["real_time_factor"]))
    with NodeGraph(nodes, out_json.parent / f"{out_json.stem}_nodes.log") as graph:
        ex = _Experimenter(graph)
        try:
            for task in tasks:
                if verbose:
                    d = np.linalg.norm(np.array(task["target"]) - np.array(task["start"]))
                    print(f"episode {task['index']}: start {task['start']} -> target {task['target']} "
                          f"({d * 100:.1f} cm), scene seed {task['scene_seed']}, policy {policy}", flush=True)
                rec, s_img, g_img, f_img = _run_episode(ex, task, policy, e, rng, maxnorm, verbose)
                fig = pic_dir / f"episode_{task['index']:03d}.png"
                write_episode_figure(fig, rec, s_img, g_img, f_img, float(e["success_radius"]))
                rec["figure"] = str(fig.relative_to(out_json.parent))
                records.append(rec)
                print(f"episode {task['index']}: {'SUCCESS' if rec['success'] else 'failure'}: final distance "
                      f"{rec['final_distance'] * 100:.1f} cm (start {rec['initial_distance'] * 100:.1f} cm) after "
                      f"{rec['steps']} steps, {rec['seconds']:.0f} s [{rec['message']}]", flush=True)
        finally:
            ex.close()
    run_settings = {k: e[k] for k in ("max_steps", "success_radius", "min_goal_distance", "target_min",
                                       "target_max", "real_time_factor")}
    run_settings.update({"seed": seed, "model": str(model_dir) if model_dir else None, "backend": backend,
                         "cem_maxnorm": maxnorm})
    if policy == "planner":
        for k in ("cem_samples", "cem_iterations", "cem_topk", "cem_horizon"):
            run_settings[k] = _planner_param(settings, k, None)
    summary = summarize(records, policy, run_settings)
    summary["command"] = command
    write_json(out_json, summary)
    write_report(out_json.with_suffix(".md"), summary, command)
    return summary


# ---------------------------------------------------------------------------------------------------- CLI
def add_arguments_eval(parser: argparse.ArgumentParser) -> None:
    """CLI of ``vjepa-sim eval``."""
    add_common_arguments(parser)
    parser.add_argument("--model", default=None, help="model directory from `vjepa-sim export` (e.g. models/sim_reach)")
    parser.add_argument("--episodes", type=int, default=None, help="number of episodes (default: settings, 20)")
    parser.add_argument("--seed", type=int, default=None, help="episode seed (start/target/scene; default 0)")
    parser.add_argument("--policy", choices=("planner", "random"), default="planner",
                        help="planner: the world model through planner_node; random: the random-action baseline")
    parser.add_argument("--backend", default="onnxruntime", choices=("onnxruntime", "torch"),
                        help="inference backend of encoder_node and planner_node")
    parser.add_argument("--json", required=True, help="output JSON; also writes <stem>.md and <stem>_episodes/*.png")
    parser.add_argument("--quiet", action="store_true", help="print only one line per episode")


def run_eval(args: argparse.Namespace) -> int:
    """Entry point of ``vjepa-sim eval``."""
    s = load_settings(args.pipeline, args.workdir)
    e = s.section("eval")
    episodes = args.episodes if args.episodes is not None else int(e["episodes"])
    seed = args.seed if args.seed is not None else int(e["seed"])
    model = Path(args.model).resolve() if args.model else None
    t0 = time.monotonic()
    summary = evaluate(s, model, episodes, seed, args.policy, Path(args.json).resolve(), args.backend,
                       not args.quiet, "vjepa-sim " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
    ptime = summary.get("planning_time_median_s")
    print(f"eval ({args.policy}): success {summary['successes']}/{summary['episodes']} = "
          f"{summary['success_rate'] * 100:.0f}%, mean final distance {summary['mean_final_distance'] * 100:.1f} cm"
          + (f", median planning time {ptime:.3f} s" if ptime is not None else "")
          + f" ({time.monotonic() - t0:.0f} s) -> {args.json}")
    return 0


def add_arguments_demo(parser: argparse.ArgumentParser) -> None:
    """CLI of ``vjepa-sim demo``."""
    add_common_arguments(parser)
    parser.add_argument("--model", default="models/sim_reach", help="model directory (default models/sim_reach)")
    parser.add_argument("--seed", type=int, default=0, help="episode seed (default 0)")
    parser.add_argument("--episodes", type=int, default=1)
    parser.add_argument("--out", default="runs/demo", help="output directory for the JSON, report and pictures")
    parser.add_argument("--backend", default="onnxruntime", choices=("onnxruntime", "torch"))


def run_demo(args: argparse.Namespace) -> int:
    """Entry point of ``vjepa-sim demo``: one verbose reach episode with the shipped model."""
    s = load_settings(args.pipeline, args.workdir)
    model = Path(args.model)
    if not model.is_absolute():
        model = s.path(model) if not model.exists() else model.resolve()
    out = Path(args.out).resolve()
    print(f"demo: reach episode(s) with {model} (sim_node + encoder_node + planner_node over Fast DDS)", flush=True)
    summary = evaluate(s, model, args.episodes, args.seed, "planner", out / "demo.json", args.backend, True,
                       "vjepa-sim " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
    for rec in summary["per_episode"]:
        verdict = "SUCCESS" if rec["success"] else "FAILURE"
        print(f"result: {verdict}: the end effector ended {rec['final_distance'] * 100:.1f} cm from the target "
              f"(started {rec['initial_distance'] * 100:.1f} cm away; success = within "
              f"{s.section('eval')['success_radius'] * 100:.0f} cm) after {rec['steps']} planning steps")
        print(f"pictures: {out / rec['figure']}")
    print(f"report: {out / 'demo.md'}, JSON: {out / 'demo.json'}")
    return 0

"""``vjepa-sim eval`` and ``vjepa-sim demo``: closed-loop episodes through the real ROS 2 graph.

``--task reach`` (the default, described here) runs free-space reaching; ``--task grasp | reach_object |
pick_place`` runs the manipulation tasks (:mod:`.task_eval`, on the same graph and the same policies).

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
the same episodes, the same step budget, targets sent straight to sim_node. ``--policy scripted`` moves
straight at the target in steps of the same bound (the upper bound), stopping within 5 mm of it.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from vjepa_core.msgconv import pose_xyzq_from_msg

from .experimenter import Experimenter, image_array, pose_msg
from .graph import NodeGraph
from .report import summarize, write_episode_figure, write_json, write_report
from .settings import Settings, add_common_arguments, load_settings

__all__ = ["POLICIES", "TASK_NAMES", "add_arguments_demo", "add_arguments_eval", "evaluate", "plan_states",
           "run_demo", "run_eval", "sample_tasks"]

TASK_NAMES = ("reach", "grasp", "reach_object", "pick_place")
POLICIES = ("planner", "random", "scripted")
SCRIPTED_REACH_TOLERANCE = 0.005  # the scripted reach stops within this of the target [m]


def plan_states() -> dict:
    """The PlanStatus states the evaluation acts on, by name from the message's STATE_* constants (never as bare
    numbers): ``executing`` (one planning step done, its action sent) and ``terminal`` (the episode ended)."""
    from vjepa_interfaces.msg import PlanStatus

    return {"executing": PlanStatus.STATE_EXECUTING,
            "terminal": frozenset((PlanStatus.STATE_SUCCEEDED, PlanStatus.STATE_FAILED, PlanStatus.STATE_STOPPED))}


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


#: ``--backend`` value that keeps each node's params-file backend (the shipped sim configs: encoder_node on
#: onnxruntime, planner_node on torch, the faster backend for each here; bench/README.md).
CONFIG_BACKEND = "config"
BACKENDS = (CONFIG_BACKEND, "onnxruntime", "torch")


def graph_nodes(settings: Settings, model_dir: Path | None, backend: str, real_time_factor: float) -> list:
    """Runner node specs of the evaluation graph (sim_node alone when ``model_dir`` is None); ``backend`` is
    :data:`CONFIG_BACKEND` (each node's params file decides) or one backend for encoder_node and planner_node."""
    e = settings.section("eval")
    nodes: list = [{"package": "vjepa_sim", "executable": "sim_node", "name": "sim_node",
                    "parameters": [*settings.sim_params(), {"real_time_factor": float(real_time_factor)}]}]
    if model_dir is not None:
        files = model_files(model_dir)
        if backend != "torch" and not Path(files["onnx_dir"]).is_dir():
            raise ValueError(f"backend {backend} needs {files['onnx_dir']} (run `vjepa-sim export`)")
        model = {**files, "use_sim_time": True}
        if backend != CONFIG_BACKEND:  # otherwise each node's params file says (shipped: onnxruntime encoder,
            model["backend"] = backend  # torch planner)
        if backend == "torch":
            model["onnx_dir"] = ""
        nodes.append({"package": "vjepa_perception", "executable": "encoder_node", "name": "encoder_node",
                      "parameters": [str(settings.path(e["encoder_params"])), model]})
        nodes.append({"package": "vjepa_planner", "executable": "planner_node", "name": "planner_node",
                      "parameters": [*settings.planner_params(), {**model, "max_steps": int(e["max_steps"])}]})
    return nodes


def _run_episode(ex: Experimenter, task: dict, policy: str, e: dict, rng: np.random.Generator,
                 maxnorm: float, verbose: bool) -> tuple:
    """One reach episode; returns (record, start image, goal image, final image)."""
    T = ex.types
    states = plan_states()
    target = np.array(task["target"])
    req = T["ResetSim"].Request()
    req.seed, req.use_start_pose, req.start_pose, req.gripper = task["scene_seed"], True, pose_msg(task["start"]), 0.0
    res = ex.call(ex.reset_cli, req, "/sim_node/reset")
    if not res.success:
        raise RuntimeError(f"episode {task['index']}: reset failed: {res.message}")
    with ex.lock:
        t_reset = ex.clock
    req = T["RenderGoal"].Request()
    req.pose, req.gripper, req.camera = pose_msg(target), 0.0, ""
    goal = ex.call(ex.render_cli, req, "/sim_node/render_goal")
    if not goal.success:
        raise RuntimeError(f"episode {task['index']}: goal not reachable: {goal.message}")
    target = pose_xyzq_from_msg(goal.achieved_pose)[:3]  # the pose the goal image shows
    goal_img = image_array(goal.image)
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
                if m.state == states["executing"] and math.isfinite(m.energy):  # one planning step
                    dist = float(np.linalg.norm(np.array(m.ee_state[:3]) - target))
                    trace.append({"step": len(trace) + 1, "distance": dist, "energy": float(m.energy),
                                  "goal_energy": float(m.goal_energy), "action": [float(v) for v in m.action[:3]],
                                  "planning_time": float(m.planning_time)})
                    if verbose:
                        act = " ".join(f"{v * 100:+5.1f}" for v in m.action[:3])
                        print(f"  step {len(trace):2d}: energy {m.energy:.4f} (current frame {m.goal_energy:.4f})"
                              f"  distance to target {dist * 100:5.1f} cm  action [{act}] cm  "
                              f"plan {m.planning_time:.2f} s", flush=True)
                if m.state in states["terminal"]:
                    done, message = True, m.message
            time.sleep(0.02)
    else:  # random (or scripted) actions of the planner's size bound, sent straight to the simulator
        lo, hi = np.array(e["target_min"]) - 0.05, np.array(e["target_max"]) + 0.05
        for k in range(int(e["max_steps"])):
            with ex.lock:
                pos = ex.pose.copy()
            dist = float(np.linalg.norm(pos - target))
            if policy == "scripted":
                if dist <= SCRIPTED_REACH_TOLERANCE:
                    break
                cmd = pos + np.clip(target - pos, -maxnorm, maxnorm)
            else:
                cmd = np.clip(pos + rng.uniform(-maxnorm, maxnorm, size=3), lo, hi)
            ex.send_target(cmd)
            trace.append({"step": k + 1, "distance": dist, "energy": None, "goal_energy": None,
                          "action": [float(v) for v in cmd - pos], "planning_time": None})
            if verbose:
                print(f"  step {k + 1:2d}: {policy} action, distance to target {dist * 100:5.1f} cm", flush=True)
            try:
                tol = 0.002 if policy == "scripted" else 0.01
                ex.wait(lambda c=cmd, tol=tol: np.linalg.norm(ex.pose - c) < tol, 10.0, "the arm to settle")
            except TimeoutError:
                pass
        message = f"{len(trace)} {policy} steps"
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
             backend: str = CONFIG_BACKEND, verbose: bool = False, command: str = "", task: str = "reach",
             max_steps_per_goal: int | None = None) -> dict:
    """Run ``episodes`` episodes of ``task``; write ``out_json``, ``<stem>.md`` and ``<stem>_episodes/*.png``.

    ``max_steps_per_goal`` caps every sub-goal's step budget of a manipulation task (smoke tests only; the
    budgets are the tasks' own otherwise)."""
    if task not in TASK_NAMES:
        raise ValueError(f"--task must be one of {', '.join(TASK_NAMES)}, got {task!r}")
    if policy not in POLICIES:
        raise ValueError(f"--policy must be one of {', '.join(POLICIES)}, got {policy!r}")
    if episodes < 1:
        raise ValueError("--episodes must be >= 1")
    if policy == "planner" and model_dir is None:
        raise ValueError("--model DIR is required with --policy planner")
    if task != "reach":
        from .task_eval import evaluate_task

        return evaluate_task(settings, task, model_dir, episodes, seed, policy, Path(out_json), backend, verbose,
                             command, max_steps_per_goal)
    e = settings.section("eval")
    tasks = sample_tasks(episodes, seed, e["target_min"], e["target_max"], float(e["min_goal_distance"]))
    out_json = Path(out_json)
    pic_dir = out_json.parent / f"{out_json.stem}_episodes"
    maxnorm = float(settings.planner_param("cem_maxnorm", 0.05))
    rng = np.random.default_rng(seed + 7)
    records: list = []
    nodes = graph_nodes(settings, model_dir if policy == "planner" else None, backend, float(e["real_time_factor"]))
    with NodeGraph(nodes, out_json.parent / f"{out_json.stem}_nodes.log") as graph:
        ex = Experimenter(graph)
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
            run_settings[k] = settings.planner_param(k, None)
    run_settings["task"] = "reach"
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
    parser.add_argument("--task", choices=TASK_NAMES, default="reach",
                        help="reach (free space, the default) or a manipulation task (docs/sim.md)")
    parser.add_argument("--policy", choices=POLICIES, default="planner",
                        help="planner: the world model through planner_node; random: the random-action baseline; "
                             "scripted: the state-based controller (the upper bound)")
    parser.add_argument("--max-steps-per-goal", type=int, default=None,
                        help="cap every sub-goal's step budget (smoke tests; the tasks' budgets otherwise)")
    parser.add_argument("--backend", default=CONFIG_BACKEND, choices=BACKENDS,
                        help="inference backend of encoder_node and planner_node (default: their params files')")
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
                       not args.quiet, "vjepa-sim " + " ".join(shlex.quote(a) for a in sys.argv[1:]), args.task,
                       args.max_steps_per_goal)
    ptime = summary.get("planning_time_median_s")
    print(f"eval {args.task} ({args.policy}): success {summary['successes']}/{summary['episodes']} = "
          f"{summary['success_rate'] * 100:.0f}%, mean final distance {summary['mean_final_distance'] * 100:.1f} cm"
          + (f", median planning time {ptime:.3f} s" if ptime is not None else "")
          + f" ({time.monotonic() - t0:.0f} s) -> {args.json}")
    return 0


def add_arguments_demo(parser: argparse.ArgumentParser) -> None:
    """CLI of ``vjepa-sim demo``."""
    add_common_arguments(parser)
    parser.add_argument("--model", default=None,
                        help="model directory (default models/sim_reach; models/sim_manip for a manipulation task)")
    parser.add_argument("--task", choices=TASK_NAMES, default="reach",
                        help="reach (default) or a manipulation task: grasp, reach_object, pick_place (sub-goals)")
    parser.add_argument("--seed", type=int, default=0, help="episode seed (default 0)")
    parser.add_argument("--episodes", type=int, default=1)
    parser.add_argument("--out", default="runs/demo", help="output directory for the JSON, report and pictures")
    parser.add_argument("--backend", default=CONFIG_BACKEND, choices=BACKENDS,
                        help="inference backend of encoder_node and planner_node (default: their params files')")


def run_demo(args: argparse.Namespace) -> int:
    """Entry point of ``vjepa-sim demo``: verbose episodes of a task with a shipped model."""
    s = load_settings(args.pipeline, args.workdir)
    model = Path(args.model or ("models/sim_reach" if args.task == "reach" else "models/sim_manip"))
    if not model.is_absolute():
        model = s.path(model) if not model.exists() else model.resolve()
    out = Path(args.out).resolve()
    print(f"demo: {args.task} episode(s) with {model} (sim_node + encoder_node + planner_node over Fast DDS)",
          flush=True)
    summary = evaluate(s, model, args.episodes, args.seed, "planner", out / "demo.json", args.backend, True,
                       "vjepa-sim " + " ".join(shlex.quote(a) for a in sys.argv[1:]), args.task)
    for rec in summary["per_episode"]:
        verdict = "SUCCESS" if rec["success"] else "FAILURE"
        if args.task == "reach":
            print(f"result: {verdict}: the end effector ended {rec['final_distance'] * 100:.1f} cm from the target "
                  f"(started {rec['initial_distance'] * 100:.1f} cm away; success = within "
                  f"{s.section('eval')['success_radius'] * 100:.0f} cm) after {rec['steps']} planning steps")
        else:
            print(f"result: {verdict}: {rec['detail']} ({rec['kind']}; steps per sub-goal {rec['steps_per_goal']})")
        print(f"pictures: {out / rec['figure']}")
    print(f"report: {out / 'demo.md'}, JSON: {out / 'demo.json'}")
    return 0

"""``vjepa-sim eval --task grasp | reach_object | pick_place``: manipulation episodes through the real ROS 2 graph.

The graph is the reach evaluation's (:mod:`.eval`): ``sim_node``, and for ``--policy planner`` ``encoder_node`` +
``planner_node``. Per episode (all seeded by ``--seed``) this process

1. resets ``sim_node`` into the task (``ResetSim.task``, scene seed ``10000 + 1000 * seed + i``, object kind
   alternating cup / box, so 20 episodes are 10 trials per object as in the paper's Table 2); the response
   carries the sub-goals, their step budgets and the task's target;
2. renders each sub-goal's image (``RenderGoal.use_task_goal``; the episode is not disturbed);
3. runs the sub-goals in order, each for at most its step budget (a step: one end-effector move of at most
   ``cem_maxnorm`` per axis and/or one gripper command, then the arm settles):

   - ``planner``: :func:`run_planner_subgoals` sends all sub-goal images with their budgets as one
     ``/planner_node/reach_goals`` action goal and follows its feedback; the planner moves to the next sub-goal
     at its energy threshold or when the budget is spent;
   - ``scripted`` / ``random``: the reference policies (:mod:`vjepa_sim.scripted`) read the simulator's task
     state (``/vjepa_sim/task_state``: true object pose, end effector, gripper) and publish end-effector targets
     and gripper commands straight to ``sim_node``;
4. reads the final task state: **success is the task's measure on the simulator's state** (``vjepa_sim.tasks``).

Outputs: ``OUT`` (JSON: ``success_rate``, rates per object kind, planning times p50/p99, and per episode the
success, final measures, steps per sub-goal and the per-step trace), ``OUT.md`` and
``OUT_episodes/episode_NNN.png`` (sub-goal images, the frames where each sub-goal ended, the final state;
object distance and planner energy per step).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vjepa_core.msgconv import pose_xyzq_from_msg

from .. import tasks
from ..scripted import make_policy
from .eval import CONFIG_BACKEND, graph_nodes, plan_states
from .experimenter import Experimenter, image_array, stamp_seconds
from .graph import NodeGraph
from .report import write_json
from .settings import Settings

__all__ = ["episode_specs", "evaluate_task", "run_planner_subgoals", "scene_state", "summarize_tasks",
           "write_task_figure", "write_task_report"]

KINDS = ("cup", "box")
SETTLE_MIN_S = 0.2  # sim time a step lasts at least, and at most (the arm may be blocked) [s]
SETTLE_MAX_S = 3.0
FINAL_REST_S = 0.3  # sim time the final state is read after the last step (a released object lands)


def episode_specs(n: int, seed: int) -> list:
    """``n`` episodes ``{"index", "scene_seed", "kind"}`` of evaluation seed ``seed``: scene seeds never used for
    training or development (10000 + 1000 * seed + i), object kinds alternating cup, box."""
    if n < 1 or seed < 0:
        raise ValueError(f"need n >= 1 episodes and seed >= 0, got {n}, {seed}")
    return [{"index": i, "scene_seed": 10_000 + 1000 * int(seed) + i, "kind": KINDS[i % 2]} for i in range(n)]


def _xyz(pose: Any) -> np.ndarray:
    """The position of a ``geometry_msgs/Pose`` (:func:`vjepa_core.msgconv.pose_xyzq_from_msg`)."""
    return pose_xyzq_from_msg(pose)[:3]


def scene_state(msg: Any, kind: str) -> tasks.SceneState:
    """A :class:`vjepa_sim.tasks.SceneState` from a ``vjepa_interfaces/TaskState`` message."""
    ee, obj = pose_xyzq_from_msg(msg.ee_pose), pose_xyzq_from_msg(msg.object_poses[msg.task_object])
    return tasks.SceneState(ee[:3], ee[3:], float(msg.gripper_width), kind, obj[:3], obj[3:],
                            float(msg.object_speed), tuple(bool(c) for c in msg.finger_contacts))


def _settle(ex: Experimenter, target: np.ndarray | None, t_cmd: float) -> Any:
    """Wait until the arm and fingers stopped after a command sent at sim time ``t_cmd``; the settled task state.

    Stopped (on consecutive task states, 0.1 s apart): the end effector within 3 mm of ``target`` or moved less
    than 0.4 mm, and the opening changed less than 0.4 mm; at least ``SETTLE_MIN_S``, at most ``SETTLE_MAX_S``
    of sim time (the same rule as ``vjepa_sim.scripted.settle`` in the simulator alone)."""
    prev = ex.task_state_after(t_cmd)
    while True:
        cur = ex.task_state_after(stamp_seconds(prev.header.stamp) + 1e-6)
        t = stamp_seconds(cur.header.stamp)
        if t >= t_cmd + SETTLE_MIN_S:
            ee, pee = _xyz(cur.ee_pose), _xyz(prev.ee_pose)
            arm = (target is not None and np.linalg.norm(ee - target) < 0.003) or np.linalg.norm(ee - pee) < 0.0004
            fingers = abs(cur.gripper_width - prev.gripper_width) < 0.0004
            if (arm and fingers) or t >= t_cmd + SETTLE_MAX_S:
                return cur
        prev = cur


def _outcome_names() -> dict:
    """ReachGoals.Result.OUTCOME_* values -> readable names (from the message's constants, never bare numbers)."""
    from vjepa_interfaces.action import ReachGoals

    return {getattr(ReachGoals.Result, c): c[len("OUTCOME_"):].lower().replace("_", " ")
            for c in dir(ReachGoals.Result) if c.startswith("OUTCOME_")}


def run_planner_subgoals(ex: Experimenter, goal_images: list, budgets: list, names: list, label: str,
                         verbose: bool, on_switch: Any, gripper_modes: Sequence[str] = ()) -> tuple:
    """Drive the planner through the sub-goals with one ``/planner_node/reach_goals`` action goal
    (``vjepa_interfaces/action/ReachGoals``): the images with their step budgets and gripper modes (``plan`` /
    ``hold`` per sub-goal, :data:`vjepa_sim.tasks.GRIPPER_MODES`; none: the node's setting), the node's energy
    threshold.

    The planner itself moves from sub-goal ``k`` to ``k + 1`` when ``k``'s energy threshold is reached or its
    budget is spent, as in the paper. Every planning step arrives as feedback (a ``PlanStatus`` with the sub-goal
    index); ``on_switch(k, why)`` is called when the feedback moves past sub-goal ``k`` and, for the rest, when the
    result arrives. Returns (trace: one entry per planning step, messages: why each sub-goal ended).
    """
    T = ex.types
    states = plan_states()
    outcome = _outcome_names()
    trace: list = []
    messages: list = []
    feedback: list = []

    def on_feedback(msg: Any) -> None:  # the executor thread
        with ex.lock:
            feedback.append((msg.feedback.status, ex.task_state))  # the simulator's state when the step went out

    goal = T["ReachGoals"].Goal()
    goal.images = list(goal_images)
    goal.max_steps = [int(b) for b in budgets]
    modes = {"plan": goal.GRIPPER_PLAN, "hold": goal.GRIPPER_HOLD}
    goal.gripper_modes = [modes[m] for m in gripper_modes]
    goal.task = f"{label}: {', '.join(names)}"
    handle = ex.send_action_goal(ex.reach_goals_cli, goal, "/planner_node/reach_goals", on_feedback)
    result_future = handle.get_result_async()
    deadline = time.monotonic() + 60.0 * max(1, sum(budgets)) + 60.0
    seen, current, steps = 0, 0, 0
    while True:
        done = result_future.done()  # read before the feedback: every feedback of a finished goal is then in
        ex.graph.check()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{label}: the planner did not finish its sub-goals\n{ex.graph.tail()}")
        with ex.lock:
            new = feedback[seen:]
            seen = len(feedback)
        for m, ts in new:
            k = int(m.goal_index)
            while current < k:  # the planner moved on
                messages.append(f"planner moved on after {steps} steps")
                on_switch(current, messages[-1])
                current, steps = current + 1, 0
            if m.state == states["executing"] and math.isfinite(m.energy):
                steps += 1
                obj = ts.object_poses[ts.task_object].position
                trace.append({"goal": k, "step": steps, "energy": float(m.energy),
                              "goal_energy": float(m.goal_energy), "action": [float(v) for v in m.action],
                              "ee": [round(float(v), 4) for v in m.ee_state[:3]],
                              "object": [round(float(v), 4) for v in (obj.x, obj.y, obj.z)],
                              "held": bool(ts.held), "distance": float(ts.distance),
                              "planning_time": float(m.planning_time)})
                if verbose:
                    act = " ".join(f"{v * 100:+5.1f}" for v in m.action[:3])
                    print(f"  sub-goal {k + 1} step {steps:2d}: energy {m.energy:.4f} (current frame "
                          f"{m.goal_energy:.4f}) action [{act}] cm, gripper {m.action[6]:+.2f}, "
                          f"plan {m.planning_time:.2f} s", flush=True)
        if done:
            break
        time.sleep(0.02)
    res = result_future.result().result
    _settle(ex, None, ex.now())  # the last step's move finishes before the final state is read
    for k in range(current, len(budgets)):
        why = outcome.get(res.outcomes[k], str(res.outcomes[k])) if k < len(res.outcomes) else "no outcome"
        messages.append(f"{why} after {res.steps[k] if k < len(res.steps) else 0} steps"
                        + (f" ({res.message})" if k == len(budgets) - 1 and res.message else ""))
        on_switch(k, messages[-1])
    return trace, messages


def _run_subgoals_policy(ex: Experimenter, episode: tasks.TaskEpisode, policy: Any, budgets: list, force: float,
                         verbose: bool, on_switch: Any) -> tuple:
    """The scripted or random policy through the graph: per step, read the task state, command, settle."""
    trace: list = []
    messages: list = []
    msg = ex.task_state_after(ex.now())
    for k, (goal, budget) in enumerate(zip(episode.goals, budgets)):
        n, why = 0, f"budget of {budget} steps spent"
        while n < budget:
            state = scene_state(msg, episode.kind)
            if policy.stops_at_goal and tasks.goal_reached(goal, state):
                why = f"sub-goal reached after {n} steps"
                break
            cmd = policy.act(state, k)
            t_cmd = ex.now()
            ex.send_target(cmd.position, cmd.quaternion)
            ex.send_gripper(cmd.gripper, force)
            n += 1
            m = tasks.measure(episode, state)
            trace.append({"goal": k, "step": n, "phase": cmd.phase, "gripper_command": cmd.gripper,
                          "action": [round(float(v), 4) for v in cmd.position - state.ee_position],
                          "ee": [round(float(v), 4) for v in state.ee_position],
                          "object": [round(float(v), 4) for v in state.object_position],
                          "held": m.held, "distance": m.distance, "energy": None, "planning_time": None})
            if verbose:
                act = " ".join(f"{v * 100:+5.1f}" for v in cmd.position - state.ee_position)
                print(f"  sub-goal {k + 1} step {n:2d}: {cmd.phase:8s} action [{act}] cm, gripper "
                      f"{cmd.gripper or '-':5s} held {m.held}, object {m.distance * 100:5.1f} cm from the target",
                      flush=True)
            msg = _settle(ex, cmd.position, t_cmd)
        messages.append(why)
        on_switch(k, why)
    return trace, messages


def _pose_tuple(pose: Any) -> tuple:
    return tuple(round(float(v), 6) for v in pose_xyzq_from_msg(pose))


def _run_task_episode(ex: Experimenter, task: str, spec: dict, policy_name: str, maxnorm: float, force: float,
                      cap: int | None, verbose: bool) -> tuple:
    """One manipulation episode; returns (record, goal images, switch frames, start frame, final frame)."""
    T = ex.types
    label = f"episode {spec['index']} ({task}, {spec['kind']})"
    episode = tasks.make_episode(task, spec["scene_seed"], spec["kind"])
    req = T["ResetSim"].Request()
    req.seed, req.task, req.object_kind = spec["scene_seed"], task, spec["kind"]
    res = ex.call(ex.reset_cli, req, "/sim_node/reset")
    if not res.success:
        raise RuntimeError(f"{label}: reset failed: {res.message}")
    t_reset = ex.now()
    # the simulator built the same episode as this process (same code, same seed): a mismatch is a version skew
    ours = [tuple(round(float(v), 6) for v in (*g.ee_position, *g.ee_quaternion)) for g in episode.goals]
    if ours != [_pose_tuple(p) for p in res.goal_ee_poses]:
        raise RuntimeError(f"{label}: sim_node's sub-goals differ from vjepa_sim.tasks' (different versions?)")
    budgets = [int(b) if cap is None else min(int(b), int(cap)) for b in res.goal_max_steps]
    goal_msgs, goal_imgs = [], []
    for k in range(len(budgets)):
        q = T["RenderGoal"].Request()
        q.use_task_goal, q.goal_index = True, k
        g = ex.call(ex.render_cli, q, "/sim_node/render_goal")
        if not g.success:
            raise RuntimeError(f"{label}: sub-goal {k + 1} not renderable: {g.message}")
        goal_msgs.append(g.image)
        goal_imgs.append(image_array(g.image))
    start_img = ex.image_after(t_reset)
    first = ex.task_state_after(t_reset)
    start_obj = _xyz(first.object_poses[first.task_object])
    switch_frames: list = []
    switch_times: list = []

    def on_switch(k: int, why: str) -> None:
        t = ex.now()
        switch_frames.append(ex.image_after(t))
        switch_times.append(t)
        if verbose:
            print(f"  sub-goal {k + 1} ({res.goal_names[k]}) ended: {why}", flush=True)

    t0 = time.monotonic()
    if policy_name == "planner":
        ex.wait(lambda: ex.latent_stamp >= t_reset, 30.0, "a latent of a frame after the reset")
        trace, messages = run_planner_subgoals(ex, goal_msgs, budgets, list(res.goal_names), label, verbose,
                                               on_switch, tasks.GRIPPER_MODES[episode.task])
    else:
        policy = make_policy(policy_name, episode, seed=spec["scene_seed"], maxnorm=maxnorm)
        trace, messages = _run_subgoals_policy(ex, episode, policy, budgets, force, verbose, on_switch)
    final = ex.task_state_after(ex.now() + FINAL_REST_S)
    final_img = ex.image_after(stamp_seconds(final.header.stamp))
    ptimes = [t["planning_time"] for t in trace if t.get("planning_time") is not None]
    steps_per_goal = [sum(1 for t in trace if t["goal"] == k) for k in range(len(budgets))]
    obj = final.object_poses[final.task_object]
    record = {
        **spec, "task": task, "policy": policy_name, "success": bool(final.success), "detail": final.detail,
        "held": bool(final.held), "lift": float(final.lift), "distance": float(final.distance),
        "distance_xy": float(final.distance_xy), "gripper_open": bool(final.gripper_open),
        "resting": bool(final.resting),
        "target": [round(float(res.target.x), 4), round(float(res.target.y), 4), round(float(res.target.z), 4)],
        "object_start": [round(float(v), 4) for v in start_obj],
        "object_final": [round(float(v), 4) for v in _xyz(obj)],
        "ee_final": [round(float(v), 4) for v in _xyz(final.ee_pose)],
        "goals": [{"name": n, "max_steps": b, "steps": s, "ended": m}
                  for n, b, s, m in zip(res.goal_names, budgets, steps_per_goal, messages)],
        "steps": len(trace), "steps_per_goal": steps_per_goal,
        "planning_time_p50_s": float(np.percentile(ptimes, 50)) if ptimes else None,
        "planning_time_p99_s": float(np.percentile(ptimes, 99)) if ptimes else None,
        "seconds": round(time.monotonic() - t0, 1), "message": "; ".join(messages), "trace": trace,
        "switch_sim_times": [round(t - t_reset, 3) for t in switch_times],
    }
    return record, goal_imgs, switch_frames, start_img, final_img


def summarize_tasks(records: list, task: str, policy: str, settings: dict) -> dict:
    """The JSON summary of a manipulation evaluation: success overall and per object kind, steps, planning times."""
    n = len(records)
    ptimes = [t["planning_time"] for r in records for t in r["trace"] if t.get("planning_time") is not None]
    by_kind = {}
    for kind in sorted({r["kind"] for r in records}):
        rs = [r for r in records if r["kind"] == kind]
        ok = sum(bool(r["success"]) for r in rs)
        by_kind[kind] = {"episodes": len(rs), "successes": ok, "success_rate": ok / len(rs)}
    successes = sum(bool(r["success"]) for r in records)
    return {
        "task": task, "policy": policy, "episodes": n, "successes": successes,
        "success_rate": successes / n if n else 0.0, "by_kind": by_kind,
        "mean_final_distance": float(np.mean([r["distance"] for r in records])) if n else None,
        "mean_final_distance_xy": float(np.mean([r["distance_xy"] for r in records])) if n else None,
        "mean_steps": float(np.mean([r["steps"] for r in records])) if n else None,
        "planning_time_mean_s": float(np.mean(ptimes)) if ptimes else None,
        "planning_time_median_s": float(np.median(ptimes)) if ptimes else None,
        "planning_time_p50_s": float(np.percentile(ptimes, 50)) if ptimes else None,
        "planning_time_p99_s": float(np.percentile(ptimes, 99)) if ptimes else None,
        "settings": settings, "per_episode": records,
    }


def write_task_figure(path: Path, record: dict, goal_images: list, switch_frames: list, start: np.ndarray,
                      final: np.ndarray) -> None:
    """One PNG strip per episode: start and sub-goal images; the frame where each sub-goal ended and the final
    state; the task object's distance to the target and the planner's energy per step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(goal_images)
    cols = max(n + 1, len(switch_frames) + 1, 2)
    fig = plt.figure(figsize=(2.6 * cols, 8))
    grid = fig.add_gridspec(3, cols, height_ratios=[1, 1, 1.1])
    names = [g["name"] for g in record["goals"]]
    row1 = [(start, "start")] + [(img, f"sub-goal {k + 1}: {names[k]}") for k, img in enumerate(goal_images)]
    row2 = [(img, f"end of sub-goal {k + 1} ({record['goals'][k]['steps']} steps)")
            for k, img in enumerate(switch_frames)]
    row2.append((final, "final state"))
    for r, row in enumerate((row1, row2)):
        for c, (img, title) in enumerate(row):
            ax = fig.add_subplot(grid[r, c])
            ax.imshow(img)
            ax.set_title(title, fontsize=8)
            ax.axis("off")
    trace = record["trace"]
    x = np.arange(1, len(trace) + 1)
    bounds = np.cumsum(record["steps_per_goal"])[:-1] + 0.5
    half = max(1, cols // 2)
    ax = fig.add_subplot(grid[2, :half])
    dist = [t.get("distance") for t in trace]
    if any(d is not None for d in dist):
        ax.plot(x, [d * 100 if d is not None else np.nan for d in dist], "o-", label="object to target (at step)")
    ax.scatter([len(trace) + 1], [record["distance"] * 100], color="k", zorder=3, label="final")
    for b in bounds:
        ax.axvline(b, color="grey", ls=":")
    ax.set_xlabel("step (dotted: sub-goal switch)")
    ax.set_ylabel("distance [cm]")
    ax.legend(fontsize=7)
    ax = fig.add_subplot(grid[2, half:])
    if any(t.get("energy") is not None for t in trace):
        ax.plot(x, [t.get("energy") for t in trace], "o-", label="energy of chosen action")
        ax.plot(x, [t.get("goal_energy") for t in trace], "s--", label="energy of current frame")
        for b in bounds:
            ax.axvline(b, color="grey", ls=":")
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, f"no energy ({record['policy']} policy)", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("step")
    ax.set_ylabel("energy (L1 to sub-goal latent)")
    verdict = "SUCCESS" if record["success"] else "failure"
    fig.suptitle(f"{record['task']} episode {record['index']} ({record['kind']}, {record['policy']}): {verdict}: "
                 f"{record['detail']}", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=72)
    plt.close(fig)


def write_task_report(path: Path, summary: dict, command: str = "") -> Path:
    """Markdown report: headline numbers, per-kind rates and a per-episode table with links to the strips."""
    s = summary
    lines = [f"# {s['task']} evaluation: {s['policy']}", "", f"Command: `{command}`" if command else "", "",
             f"- success: **{s['successes']} / {s['episodes']} = {s['success_rate'] * 100:.0f}%**"
             f" ({tasks.__name__}.measure on the simulator's final state)"]
    for kind, v in s["by_kind"].items():
        lines.append(f"- {kind}: {v['successes']} / {v['episodes']} = {v['success_rate'] * 100:.0f}%")
    if s["episodes"]:
        lines.append(f"- steps per episode: {s['mean_steps']:.1f} on average (budgets "
                     f"{s['settings'].get('budgets')})")
    if s.get("planning_time_p50_s") is not None:
        lines.append(f"- planning time per step: p50 {s['planning_time_p50_s']:.3f} s, p99 "
                     f"{s['planning_time_p99_s']:.3f} s")
    lines += ["", "| episode | scene seed | object | steps per sub-goal | held | lift [cm] | to target [cm] | "
                  "xy [cm] | result | picture |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in s["per_episode"]:
        pic = r.get("figure", "")
        lines.append(f"| {r['index']} | {r['scene_seed']} | {r['kind']} | {r['steps_per_goal']} | {r['held']} | "
                     f"{r['lift'] * 100:.1f} | {r['distance'] * 100:.1f} | {r['distance_xy'] * 100:.1f} | "
                     f"{'success' if r['success'] else 'failure'} | {f'[png]({pic})' if pic else ''} |")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def evaluate_task(settings: Settings, task: str, model_dir: Path | None, episodes: int, seed: int, policy: str,
                  out_json: Path, backend: str = CONFIG_BACKEND, verbose: bool = False, command: str = "",
                  max_steps_per_goal: int | None = None) -> dict:
    """Run ``episodes`` episodes of manipulation ``task`` with ``policy``; write the JSON, report and strips."""
    if task not in tasks.TASKS:
        raise ValueError(f"unknown manipulation task {task!r} (known: {', '.join(tasks.TASKS)})")
    if max_steps_per_goal is not None and max_steps_per_goal < 1:
        raise ValueError("--max-steps-per-goal must be >= 1")
    e = settings.section("eval")
    specs = episode_specs(episodes, seed)
    maxnorm = float(settings.planner_param("cem_maxnorm", 0.05))
    force = 0.0  # sim_node's default grasp force (gripper_force)
    out_json = Path(out_json)
    pic_dir = out_json.parent / f"{out_json.stem}_episodes"
    records: list = []
    nodes = graph_nodes(settings, model_dir if policy == "planner" else None, backend, float(e["real_time_factor"]))
    with NodeGraph(nodes, out_json.parent / f"{out_json.stem}_nodes.log") as graph:
        ex = Experimenter(graph)
        try:
            for spec in specs:
                if verbose:
                    print(f"episode {spec['index']}: {task} with a {spec['kind']}, scene seed {spec['scene_seed']}, "
                          f"policy {policy}", flush=True)
                rec, goals, switches, start, final = _run_task_episode(ex, task, spec, policy, maxnorm, force,
                                                                       max_steps_per_goal, verbose)
                fig = pic_dir / f"episode_{spec['index']:03d}.png"
                write_task_figure(fig, rec, goals, switches, start, final)
                rec["figure"] = str(fig.relative_to(out_json.parent))
                records.append(rec)
                print(f"episode {spec['index']} ({spec['kind']}): {'SUCCESS' if rec['success'] else 'failure'}: "
                      f"{rec['detail']}; steps {rec['steps_per_goal']}, {rec['seconds']:.0f} s", flush=True)
        finally:
            ex.close()
    run_settings = {"seed": seed, "model": str(model_dir) if model_dir else None, "backend": backend,
                    "cem_maxnorm": maxnorm, "real_time_factor": e["real_time_factor"],
                    "budgets": list(tasks.BUDGETS[task]), "max_steps_per_goal": max_steps_per_goal,
                    "gripper_modes": list(tasks.GRIPPER_MODES[task]),
                    "success": {"lift": tasks.LIFT_SUCCESS, "radius": tasks.RADIUS_SUCCESS}}
    if policy == "planner":
        for k in ("cem_samples", "cem_iterations", "cem_topk", "cem_horizon", "cem_sample_gripper",
                  "energy_threshold"):
            run_settings[k] = settings.planner_param(k, None)
    summary = summarize_tasks(records, task, policy, run_settings)
    summary["command"] = command
    write_json(out_json, summary)
    write_task_report(out_json.with_suffix(".md"), summary, command)
    return summary

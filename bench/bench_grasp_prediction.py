"""Does a sim model foresee a grasp? Its predicted consequences of closing the gripper, beside the real ones.

For development scenes (scene seeds 19000.., evaluation seed 9's: never evaluated on), the arm hovers 5 cm
above a cup or box with the gripper open. Two three-step action sequences run in the simulator and in the
model (open loop from the hover frame):

- ``grasp``:  down 5 cm, close, up 5 cm (the object comes up in the fingers);
- ``no grasp``: the same moves without the close (the object stays on the table).

Reported per model (latent L1 of layer-normed tokens, the planner's energy):

- ``real effect``: distance between the two real final frames (what closing the gripper changes);
- ``predicted effect``: distance between the two predicted final frames (what the model thinks it changes);
- ``prediction error``: predicted vs real final frame (grasp sequence);
- ``prefers grasp``: toward a goal image of the object held 5 cm up, the grasp sequence's predicted energy is
  below the no-grasp one's (what a planner needs to choose the grasp);
- ``scripted grasp energies``: along the scripted controller's grasp of the task episode (approach, descend,
  close, lift), the energy of each real frame to the task's goal image, by phase (the landscape a greedy,
  horizon-1 planner would have to descend).

    python bench/bench_grasp_prediction.py [--scenes 6] [--out bench/results/grasp_prediction.json]

Default models: models/sim_manip (two exterior views, config/sim_pipeline/manip.yaml) and
models/sim_manip_wrist (exterior + wrist view, config/sim_pipeline/manip_wrist.yaml) when present.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from _common import write_result  # noqa: E402

MODELS = (("sim_manip", "config/sim_pipeline/manip.yaml"), ("sim_manip_wrist", "config/sim_pipeline/manip_wrist.yaml"))
HOVER = 0.05  # start this far above the grasp height [m] (one planner step)
OFFSETS = (-0.04, -0.02, -0.01, 0.0, 0.01, 0.02, 0.04)  # sideways shifts of the grasp [m], along x and along y


def _episode_frames(sim: object, episode: object, hover: np.ndarray, close: bool,
                    offset: tuple[float, float] = (0.0, 0.0)) -> tuple[list, list, bool]:
    """Reset into the hover state, run down (shifted by ``offset`` in xy) / (close) / up; frames and 7-D states
    before and after each step, and whether the object ends up held."""
    from vjepa_sim import tasks
    from vjepa_sim.scripted import StepCommand, apply_command, settle

    tasks.reset_sim(sim, replace(episode, start_position=tuple(hover)))
    settle(sim, hover)
    q = np.asarray(episode.start_quaternion)
    frames, states = [sim.render()], [sim.ee_state()]
    shift = np.array([offset[0], offset[1], 0.0])
    low = hover - [0.0, 0.0, HOVER] + shift
    for pos, grip in ((low, None), (low, "close" if close else None), (hover + shift, None)):
        cmd = StepCommand(np.asarray(pos), q, grip)
        apply_command(sim, cmd)
        settle(sim, cmd.position)
        frames.append(sim.render())
        states.append(sim.ee_state())
    return frames, states, tasks.is_held(tasks.observe(sim, episode))


def _scripted_energies(settings: object, episode: object, seed: int, enc: object, dist: object) -> list:
    """(phase, energy to the task's goal image) of each real frame along the scripted grasp of ``episode``."""
    from vjepa_sim import tasks
    from vjepa_sim.scene import FrankaSim
    from vjepa_sim.scripted import ScriptedPolicy, run_task, settle

    sim = FrankaSim(replace(settings.sim_config(), seed=seed))
    try:
        tasks.reset_sim(sim, episode)
        settle(sim, np.asarray(episode.start_position))
        goal = enc([tasks.render_goal(sim, episode, 0).image])[0]
        out = [("start", dist(enc([sim.render()])[0], goal))]
        run_task(sim, episode, ScriptedPolicy(episode), reset=False,
                 after_step=lambda cmd: out.append((cmd.phase, dist(enc([sim.render()])[0], goal))))
        return out
    finally:
        sim.close()


def _alignment(settings: object, wm: object, episode: object, seed: int, hover: np.ndarray, goal: object,
               enc: object, dist: object, aligned: dict) -> list[dict]:
    """The grasp ("down, close, up") from the hover above the object, shifted sideways by each of OFFSETS: does the
    object end up held, the real final frame's energy to the goal image, and the model's predicted one (open loop
    from the aligned hover frame, as the planner scores a candidate). A planner can only centre the grasp if
    these energies are lowest at no shift. ``aligned``: the unshifted grasp's cell, already measured by the
    caller (not simulated again)."""
    import torch

    from vjepa_sim.scene import FrankaSim

    sim = FrankaSim(replace(settings.sim_config(), seed=seed))
    out = []
    z0 = None  # every shifted grasp starts from the same hover frame: encoded once
    try:
        for axis in (0, 1):
            for d in OFFSETS:
                if d == 0.0:
                    if axis == 0:
                        out.append(aligned)
                    continue
                off = (d, 0.0) if axis == 0 else (0.0, d)
                frames, states, held = _episode_frames(sim, episode, hover, True, off)
                st = torch.as_tensor(np.stack(states), dtype=torch.float32)
                acts = wm.context_actions(st)
                acts[:, 3:6] = 0.0
                z0 = enc(frames[:1]) if z0 is None else z0
                pred = wm.unroll(z0, st[:1], acts[None])[0]
                out.append({"offset": [float(off[0]), float(off[1])], "held": bool(held),
                            "real_energy": dist(enc(frames[-1:])[0], goal), "predicted_energy": dist(pred, goal)})
    finally:
        sim.close()
    return out


def _alignment_summary(rows: list[dict]) -> list[dict]:
    """Per sideways shift: held count, mean real and predicted energy over the scenes, and in how many scenes the
    shifted grasp's predicted (real) energy is below the aligned one's (a planner would prefer the miss)."""
    if not rows or not rows[0]["alignment"]:
        return []
    summary = []
    aligned = [next(c for c in r["alignment"] if c["offset"] == [0.0, 0.0]) for r in rows]
    for k, cell in enumerate(rows[0]["alignment"]):
        cells = [r["alignment"][k] for r in rows]
        summary.append({
            "offset": cell["offset"], "held": sum(c["held"] for c in cells),
            "real_energy": float(np.mean([c["real_energy"] for c in cells])),
            "predicted_energy": float(np.mean([c["predicted_energy"] for c in cells])),
            "predicted_below_aligned": sum(c["predicted_energy"] < a["predicted_energy"]
                                           for c, a in zip(cells, aligned)),
            "real_below_aligned": sum(c["real_energy"] < a["real_energy"] for c, a in zip(cells, aligned))})
    return summary


def plot_alignment(record: dict, path: Path) -> None:
    """Energy landscape of the sideways-shifted grasp: real and predicted energy per shift (x and y), per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = [m for m in record["models"] if m["alignment"]]
    if not models:
        return
    fig, axes = plt.subplots(1, len(models), figsize=(5.5 * len(models), 3.8), squeeze=False)
    for ax, m in zip(axes[0], models):
        for axis, style in ((0, "-"), (1, "--")):
            cells = sorted((c for c in m["alignment"] if c["offset"][1 - axis] == 0.0), key=lambda c: c["offset"][axis])
            d = [100 * c["offset"][axis] for c in cells]
            name = "xy"[axis]
            ax.plot(d, [c["real_energy"] for c in cells], "o" + style, color="tab:blue", label=f"real, shift in {name}")
            ax.plot(d, [c["predicted_energy"] for c in cells], "s" + style, color="tab:orange",
                    label=f"predicted, shift in {name}")
        n = len(m["scenes"])
        held = ", ".join(f"{100 * c['offset'][0]:+.0f}:{c['held']}" for c in m["alignment"] if c["offset"][1] == 0.0)
        ax.set_title(f"{m['model']} ({n} scenes)\nheld after the grasp by x shift [cm]: {held}", fontsize=8)
        ax.set_xlabel("sideways shift of the grasp [cm]")
        ax.set_ylabel("energy to the held-object goal (mean)")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def measure_model(name: str, pipeline: str, scenes: int, alignment: bool = True) -> dict:
    """The four measures on ``scenes`` development scenes for one model directory + its pipeline settings."""
    import torch

    from vjepa_core.loading import load_world_model
    from vjepa_core.planning.energy import l1_energy
    from vjepa_core.preprocessing import preprocess_frames
    from vjepa_sim import tasks
    from vjepa_sim.objects import grasp_height, held_object_position
    from vjepa_sim.pipeline.eval import model_files
    from vjepa_sim.pipeline.settings import load_settings
    from vjepa_sim.scene import FrankaSim

    settings = load_settings(str(ROOT / pipeline))
    files = model_files(ROOT / "models" / name)
    wm = load_world_model(files["checkpoint"], files["model_config"], checkpoint_key="target_encoder",
                          backend="torch").world_model
    size = int(settings.section("build")["image_size"])

    def enc(imgs: list) -> torch.Tensor:
        return wm.encode(preprocess_frames(np.stack(imgs), size=size)[:, :, 0])

    def dist(a: torch.Tensor, b: torch.Tensor) -> float:
        return float(l1_energy(a[None], b[None], normalize=False)[0])

    rows = []
    with torch.no_grad():
        for i in range(scenes):
            seed, kind = 19_000 + i, ("cup", "box")[i % 2]
            ep = tasks.make_episode("grasp", seed, kind)
            o = ep.objects[0]
            hover = np.array([o.position[0], o.position[1], grasp_height(kind) + HOVER])
            sim = FrankaSim(replace(settings.sim_config(), seed=seed))
            try:
                out = {}
                for close in (True, False):
                    frames, states, held = _episode_frames(sim, ep, hover, close)
                    st = torch.as_tensor(np.stack(states), dtype=torch.float32)
                    acts = wm.context_actions(st)  # pose differences, as in the training data
                    acts[:, 3:6] = 0.0  # rotation fixed, as the planner's CEM
                    z = enc(frames)
                    pred = wm.unroll(z[:1], st[:1], acts[None])[0]
                    out[close] = (z[-1], pred, held)
                held_goal = [(tuple(held_object_position(hover)), ep.goals[0].object_poses[0][1])]
                goal = enc([sim.render_goal(hover, ep.start_quaternion, ep.goals[0].gripper,
                                            objects=held_goal).image])[0]
            finally:
                sim.close()
            phases = _scripted_energies(settings, ep, seed, enc, dist)
            (rz1, pz1, held1), (rz0, pz0, _) = out[True], out[False]
            centred = {"offset": [0.0, 0.0], "held": bool(held1), "real_energy": dist(rz1, goal),
                       "predicted_energy": dist(pz1, goal)}  # the grasp above: the alignment table's centre
            align = _alignment(settings, wm, ep, seed, hover, goal, enc, dist, centred) if alignment else []
            rows.append({"scene_seed": seed, "kind": kind, "held_after_grasp": bool(held1),
                         "real_effect": dist(rz1, rz0), "predicted_effect": dist(pz1, pz0),
                         "prediction_error": dist(pz1, rz1),
                         "energy_grasp": dist(pz1, goal), "energy_no_grasp": dist(pz0, goal),
                         "real_energy_grasp": dist(rz1, goal), "real_energy_no_grasp": dist(rz0, goal),
                         "scripted_grasp_energies": phases, "alignment": align})
    mean = {k: float(np.mean([r[k] for r in rows])) for k in
            ("real_effect", "predicted_effect", "prediction_error", "energy_grasp", "energy_no_grasp")}
    by_phase: dict = {}
    for r in rows:
        for ph, e in r["scripted_grasp_energies"]:
            by_phase.setdefault(ph, []).append(e)
    return {"model": f"models/{name}", "pipeline": pipeline, "scenes": rows, "mean": mean,
            "alignment": _alignment_summary(rows),
            "scripted_grasp_energy_by_phase": {ph: [float(min(v)), float(max(v))] for ph, v in by_phase.items()},
            "predicted_over_real_effect": mean["predicted_effect"] / max(mean["real_effect"], 1e-12),
            "prefers_grasp": int(sum(r["energy_grasp"] < r["energy_no_grasp"] for r in rows)),
            "held_after_grasp": int(sum(r["held_after_grasp"] for r in rows))}


def markdown(record: dict) -> str:
    """The result as a markdown table (bench/README.md's section is generated from the JSON by make_readme)."""
    lines = ["| model | real effect | predicted effect (ratio) | prediction error | prefers the grasp | "
             "scripted grasp: energy by phase (min-max) |", "|---|---|---|---|---|---|"]
    for m in record["models"]:
        n = len(m["scenes"])
        phases = ", ".join(f"{ph} {lo:.3f}-{hi:.3f}" for ph, (lo, hi) in m["scripted_grasp_energy_by_phase"].items())
        lines.append(f"| {m['model']} | {m['mean']['real_effect']:.4f} | {m['mean']['predicted_effect']:.4f} "
                     f"({m['predicted_over_real_effect']:.2f}) | {m['mean']['prediction_error']:.4f} | "
                     f"{m['prefers_grasp']}/{n} | {phases} |")
    models = [m for m in record["models"] if m.get("alignment")]
    if models:
        lines += ["", "| model | shift [cm] (x, y) | held | real energy | predicted energy | "
                  "scenes where the shifted grasp is predicted below the aligned one (real) |",
                  "|---|---|---|---|---|---|"]
        for m in models:
            n = len(m["scenes"])
            for c in m["alignment"]:
                lines.append(f"| {m['model']} | {100 * c['offset'][0]:+.0f}, {100 * c['offset'][1]:+.0f} | "
                             f"{c['held']}/{n} | {c['real_energy']:.3f} | {c['predicted_energy']:.3f} | "
                             f"{c['predicted_below_aligned']}/{n} ({c['real_below_aligned']}/{n}) |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenes", type=int, default=6, help="development scenes (cups and boxes alternate)")
    ap.add_argument("--models", default=",".join(n for n, _ in MODELS),
                    help="comma-separated model names under models/ (known: sim_manip, sim_manip_wrist)")
    ap.add_argument("--no-alignment", action="store_true", help="skip the sideways-shifted grasps (13 per scene)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "grasp_prediction.json")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(2)
    known = dict(MODELS)
    record = {"benchmark": "grasp_prediction", "scenes": args.scenes, "hover_m": HOVER, "models": [],
              "date": time.strftime("%Y-%m-%d"),
              "machine": f"{os.cpu_count()} CPU cores ({platform.machine()}), python {platform.python_version()}"}
    for name in args.models.split(","):
        if name not in known:
            raise SystemExit(f"unknown model {name!r} (known: {', '.join(known)})")
        if not (ROOT / "models" / name / "vjepa2_sim.pt").is_file():
            print(f"skipping models/{name}: not there")
            continue
        record["models"].append(measure_model(name, known[name], args.scenes, not args.no_alignment))
    write_result(args.out, record, markdown(record))
    plot_alignment(record, args.out.with_name("grasp_alignment.png"))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

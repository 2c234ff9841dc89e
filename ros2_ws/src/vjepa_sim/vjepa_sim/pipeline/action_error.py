"""``vjepa-sim action-error``: action inference on held-out simulator transitions (no ROS).

For transitions (frame t, state t) -> frame t+1 of ``WORKDIR/dataset_heldout`` (episodes never trained on), plan
one step with CEM from frame t toward frame t+1 as the goal, using the planner's settings
(``config/sim_pipeline/planner.yaml``: samples, iterations, top-k, step bound), and compare the planned position
delta with the true one (the recorded pose difference). Reports the mean position error [cm] beside the
zero-action baseline (the mean true step length), and as a diagnostic of the energy landscape the Spearman rank
correlation between the latent L1 distance of frame pairs and the distance of their end-effector positions.

It also reports the energy profile: the mean latent L1 distance between goal images rendered a given distance
apart (training scenes, the eval box). Its 1 cm level is the planner's ``energy_threshold`` (stop when the current
frame is as close to the goal as images 1 cm apart are to each other): calibrated without evaluation episodes.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .eval import model_files
from .settings import Settings, add_common_arguments, load_settings

__all__ = ["action_error", "add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """CLI of ``vjepa-sim action-error``."""
    add_common_arguments(parser)
    parser.add_argument("--model", required=True, help="model directory from `vjepa-sim export`")
    parser.add_argument("--dataset", default=None, help="dataset directory (default WORKDIR/dataset_heldout)")
    parser.add_argument("--transitions", type=int, default=200, help="held-out transitions to plan (default 200)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", default="onnxruntime", choices=("onnxruntime", "torch"))
    parser.add_argument("--no-profile", dest="profile", action="store_false",
                        help="skip the energy profile (it depends on the encoder only, not on the backend)")
    parser.add_argument("--json", default=None, help="write the result here")


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


PROFILE_DISPLACEMENTS_CM = (0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0)


def energy_profile(settings: Settings, encode: Callable, positions: int = 60, scenes: int = 3,
                   seed: int = 0) -> list[dict]:
    """Energy (latent L1) between goal images rendered ``d`` cm apart, for each d of :data:`PROFILE_DISPLACEMENTS_CM`.

    For ``positions`` random end-effector positions in the eval box (gripper down) of ``scenes`` training scenes
    (seeds ``collect.seed + k``, never evaluation scenes), renders the goal image there and at a displacement of
    ``d`` in a random direction and along each camera's optical axis (the simulator's ``render_goal``, exactly
    how evaluation goals are made), encodes them with ``encode`` (uint8 [N, H, W, 3] -> tokens [N, T, D]) and
    averages the energy. A model blind to depth along a camera's axis shows it here: its "view axis" energies
    stay far below the random-direction ones. Returns ``[{"direction", "displacement_cm", "energy_mean",
    "energy_std", "pairs"}]``, direction ``"random"`` or ``"<camera> axis"``.
    """
    from dataclasses import replace

    from ..scene import DOWN_QUAT, FrankaSim

    base = settings.sim_config()
    ev = settings.section("eval")
    lo, hi = np.array(ev["target_min"], float), np.array(ev["target_max"], float)
    rng = np.random.default_rng(seed)
    axes = {f"{c.name} axis": (np.array(c.target, float) - np.array(c.eye, float)) for c in base.cameras
            if not c.mount}  # a hand-mounted camera's axis moves with the arm: no fixed direction to test
    energies: dict = {}
    for k in range(scenes):
        sim = FrankaSim(replace(base, seed=int(settings.section("collect")["seed"]) + k))
        try:
            for _ in range(positions // scenes):
                p0 = rng.uniform(lo, hi)
                imgs, keys = [sim.render_goal(p0, DOWN_QUAT).image], []
                for d in PROFILE_DISPLACEMENTS_CM:
                    dirs = {"random": rng.normal(size=3),
                            **{name: axis * rng.choice((-1.0, 1.0)) for name, axis in axes.items()}}
                    for name, u in dirs.items():
                        imgs.append(sim.render_goal(p0 + u / np.linalg.norm(u) * d / 100.0, DOWN_QUAT).image)
                        keys.append((name, d))
                tok = np.asarray(encode(np.stack(imgs)))
                for j, key in enumerate(keys):
                    energies.setdefault(key, []).append(float(np.abs(tok[0] - tok[j + 1]).mean()))
        finally:
            sim.close()
    return [{"direction": name, "displacement_cm": d, "energy_mean": float(np.mean(e)), "energy_std": float(np.std(e)),
             "pairs": len(e)} for (name, d), e in energies.items()]


def action_error(settings: Settings, model_dir: Path, dataset: Path, transitions: int, seed: int,
                 backend: str = "onnxruntime", profile: bool = True) -> dict:
    """Plan ``transitions`` held-out steps; return errors, baseline, the energy rank correlation and (unless
    ``profile`` is false: ``energy_profile`` [] and ``energy_at_1cm`` None) the energy profile."""
    import torch

    from vjepa_core.loading import load_world_model
    from vjepa_core.planning import CEMConfig, CEMPlanner
    from vjepa_core.preprocessing import preprocess_frames

    index = json.loads((dataset / "index.json").read_text()) if (dataset / "index.json").is_file() else None
    if index is None:
        raise ValueError(f"no dataset at {dataset} (run `vjepa-sim build`)")
    files = model_files(model_dir)
    loaded = load_world_model(files["checkpoint"], files["model_config"], encoder=True, predictor=True,
                              checkpoint_key="target_encoder", backend=backend,
                              export_dir=files["onnx_dir"] if backend != "torch" else None)
    wm = loaded.world_model
    img = loaded.encoder_cfg.img_size
    size = img if isinstance(img, int) else img[0]
    cem = CEMConfig(samples=int(settings.planner_param("cem_samples", 200)),
                    iterations=int(settings.planner_param("cem_iterations", 5)),
                    topk=int(settings.planner_param("cem_topk", 10)), horizon=1,
                    maxnorm=float(settings.planner_param("cem_maxnorm", 0.05)), sample_gripper=False, seed=seed)
    planner = CEMPlanner.for_world_model(wm, cem)
    # every (episode, t) with a successor in the same episode
    pairs = []
    for ep in index["episodes"]:
        pairs += [(ep["shard"], ep["start"] + t) for t in range(ep["length"] - 1)]
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(pairs), size=min(transitions, len(pairs)), replace=False)
    shards: dict = {}

    def arrays(shard: str) -> tuple:
        if shard not in shards:
            d = dataset / "shards" / shard
            shards[shard] = tuple(np.load(d / f"{k}.npy", mmap_mode="r") for k in ("frames", "states", "actions"))
        return shards[shard]

    errors, true_len, planned, truth, times = [], [], [], [], []
    all_tokens, all_pos = [], []
    with torch.no_grad():
        for i in pick:
            shard, row = pairs[i]
            frames, states, actions = arrays(shard)
            x = preprocess_frames(np.array(frames[row: row + 2]), size=size)[:, :, 0]  # [2, 3, S, S]
            tok = wm.encode(x)  # [2, N, D]
            st = torch.as_tensor(np.asarray(states[row], dtype=np.float32)).reshape(1, 7)
            t0 = time.perf_counter()
            res = planner.plan(tok[:1], st, tok[1])  # context [1, N, D], state [1, 7], goal [N, D]
            times.append(time.perf_counter() - t0)
            a_plan = res.actions[0].double().numpy()[:3]
            a_true = np.asarray(actions[row], dtype=np.float64)[:3]
            errors.append(float(np.linalg.norm(a_plan - a_true)))
            true_len.append(float(np.linalg.norm(a_true)))
            planned.append(a_plan.tolist())
            truth.append(a_true.tolist())
            all_tokens.append(tok[0].numpy())
            all_pos.append(np.asarray(states[row][:3], dtype=np.float64))
    toks, pos = np.stack(all_tokens), np.stack(all_pos)
    ia, ib = rng.integers(len(toks), size=2000), rng.integers(len(toks), size=2000)
    energy = np.abs(toks[ia] - toks[ib]).mean(axis=(1, 2))
    dist = np.linalg.norm(pos[ia] - pos[ib], axis=1)
    err = np.array(errors)

    def encode(images: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return wm.encode(preprocess_frames(images, size=size)[:, :, 0]).numpy()

    rows = energy_profile(settings, encode, seed=seed) if profile else []
    one_cm = next((r["energy_mean"] for r in rows if r["displacement_cm"] == 1.0 and r["direction"] == "random"),
                  None)
    planned_a, truth_a = np.array(planned), np.array(truth)
    return {
        "transitions": len(err),
        "mean_position_error_cm": float(err.mean() * 100),
        "median_position_error_cm": float(np.median(err) * 100),
        "per_axis_mean_abs_error_cm": (np.abs(planned_a - truth_a).mean(0) * 100).round(3).tolist(),
        "zero_action_baseline_cm": float(np.mean(true_len) * 100),
        "mean_true_step_cm": float(np.mean(true_len) * 100),
        "cosine_mean": float(np.mean(np.sum(planned_a * truth_a, 1) / (
            np.linalg.norm(planned_a, axis=1) * np.linalg.norm(truth_a, axis=1) + 1e-9))),
        "energy_distance_spearman": _spearman(energy, dist),
        "energy_profile": rows,
        "energy_at_1cm": one_cm,
        "planning_time_mean_s": float(np.mean(times)),
        "planning_time_median_s": float(np.median(times)),
        "cem": {"samples": cem.samples, "iterations": cem.iterations, "topk": cem.topk, "maxnorm": cem.maxnorm},
        "backend": backend,
        "dataset": str(dataset),
        "model": str(model_dir),
    }


def _print_profile(rows: list[dict], one_cm: float) -> None:
    """The energy profile as a table: one line per displacement, one column per direction."""
    print("energy profile (goal images rendered d apart, training scenes), mean +- std per direction:")
    directions = list(dict.fromkeys(r["direction"] for r in rows))
    print("  " + " " * 8 + "".join(f"{d:>22}" for d in directions))
    for d in PROFILE_DISPLACEMENTS_CM:
        cells = {r["direction"]: f"{r['energy_mean']:.4f} +- {r['energy_std']:.4f}"
                 for r in rows if r["displacement_cm"] == d}
        print(f"  {d:5.1f} cm" + "".join(f"{cells.get(k, ''):>22}" for k in directions))
    print(f"energy at 1 cm: {one_cm:.4f}  <- calibrates the planner's energy_threshold")


def run(args: argparse.Namespace) -> int:
    """Entry point of ``vjepa-sim action-error``."""
    s = load_settings(args.pipeline, args.workdir)
    dataset = Path(args.dataset).resolve() if args.dataset else s.heldout_dataset
    out = action_error(s, Path(args.model).resolve(), dataset, args.transitions, args.seed, args.backend,
                       args.profile)
    print(f"action-error: {out['transitions']} held-out transitions: mean position error "
          f"{out['mean_position_error_cm']:.2f} cm (median {out['median_position_error_cm']:.2f}; zero-action "
          f"baseline {out['zero_action_baseline_cm']:.2f} cm), per axis {out['per_axis_mean_abs_error_cm']} cm, "
          f"cosine {out['cosine_mean']:.2f}; energy/distance rank correlation {out['energy_distance_spearman']:.2f}; "
          f"planning {out['planning_time_median_s']:.3f} s per step (median, {args.backend})")
    if out["energy_profile"]:
        _print_profile(out["energy_profile"], out["energy_at_1cm"])
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0

"""``vjepa-bench``: planner and encoder benchmarks that run unchanged on CPU and GPU.

``vjepa-bench planner`` times one CEM plan (``ms_per_plan_median``) with our world model (torch backend:
KV cache, precomputed RoPE, cache-sized chunks, optional ``torch.compile``; or an ONNX Runtime export) and,
with ``--compare-reference``, side by side a straightforward re-implementation of the reference loop
(whole-sequence recompute per horizon step, CPU numpy pose updates, all samples in one call), with the same
CEM settings and seed, so plan quality is compared too; ``--compare-backend NAME`` times the same plan with other
backends in the same run, interleaved (e.g. onnxruntime with its KV-cached step graphs beside torch).
``vjepa-bench encoder`` times per-frame encoding
(``ms_per_frame_median``, ``frames_per_s``). Both record the device name. ``vjepa-bench landscape`` sweeps a
dx/dy/dz action grid on a real (frame, next frame, state) transition, writes the energy heat map (PNG) and
reports the grid argmin against the true action (:mod:`vjepa_core.planning.landscape`).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..tokens import normalize_tokens

__all__ = ["ReferenceRollout", "load_bench_config", "main", "run_encoder_bench", "run_landscape", "run_planner_bench"]

_FIXTURES_TINY = Path("tests/fixtures/parity_tiny_a")
_FIXTURES_TRAJ = Path("tests/fixtures/franka_example_traj.npz")


def _find_fixture(rel: Path) -> Path | None:
    """A shared fixture, searched upward from the CWD and this file."""
    for base in [Path.cwd(), *Path.cwd().parents, *Path(__file__).resolve().parents]:
        cand = base / rel
        if cand.exists():
            return cand
    return None


def _find_tiny() -> Path | None:
    """The shared tiny fixture directory, searched upward from the CWD and this file."""
    d = _find_fixture(_FIXTURES_TINY)
    return d if d is not None and d.is_dir() else None


def load_bench_config(spec: str) -> tuple[dict, Path | None]:
    """``--config``: a JSON path with ``encoder``/``predictor`` dicts (random weights), a model directory with a
    ``model.json`` (e.g. ``models/sim_reach``: its config and checkpoint), or a preset name: ``tiny`` (the shared
    tiny fixture, with its checkpoint), ``vitl`` / ``vitg`` (released encoder with the released AC predictor,
    random weights: timing only). Returns (config, checkpoint or None)."""
    from ..config import ACPredictorConfig, EncoderConfig

    if spec == "tiny":
        d = _find_tiny()
        if d is None:
            raise SystemExit("error: preset 'tiny' needs tests/fixtures/parity_tiny_a (run from the repo root)")
        return json.loads((d / "config.json").read_text()), d / "checkpoint.pt"
    presets = {"vitl": "vit_large", "vitg": "vit_giant"}
    if spec in presets:
        enc = EncoderConfig.preset(presets[spec]).to_dict()
        pred = ACPredictorConfig.preset("vit_giant", embed_dim=enc["embed_dim"], num_frames=8).to_dict()
        return {"encoder": enc, "predictor": pred}, None
    p = Path(spec)
    if p.is_dir() and (p / "model.json").is_file():  # a model directory (e.g. models/sim_reach): real weights
        meta = json.loads((p / "model.json").read_text())
        cfg = json.loads((p / meta.get("config", "config.json")).read_text())
        return {k: v for k, v in cfg.items() if k in ("encoder", "predictor")}, p / meta["checkpoint"]
    if not p.is_file():
        raise SystemExit(f"error: --config {spec!r} is neither a preset (tiny, vitl, vitg), a model directory "
                         "with model.json, nor a JSON file")
    cfg = json.loads(p.read_text())
    return {k: v for k, v in cfg.items() if k in ("encoder", "predictor")}, None


def _device_info(device: torch.device) -> dict:
    info = {"device": str(device), "cpu": platform.processor() or platform.machine(),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__}
    if device.type == "cuda":
        info["device_name"] = torch.cuda.get_device_name(device)
    else:
        info["device_name"] = f"CPU ({platform.machine()}, {torch.get_num_threads()} threads)"
    return info


def _build(cfg: dict, ckpt: Path | None, encoder: bool, predictor: bool) -> tuple[Any, Any]:
    if ckpt is not None:
        from ..export import load_models

        enc, pred, _ = load_models(ckpt, cfg, with_encoder=encoder, with_predictor=predictor)
        return enc, pred
    from ..models import build_ac_predictor, build_encoder

    return (build_encoder(cfg["encoder"]) if encoder else None,
            build_ac_predictor(cfg["predictor"]) if predictor else None)


class ReferenceRollout:
    """The reference rollout (``world_model_wrapper.step_predictor`` inside ``mpc_utils.cem``): at horizon
    step h run the predictor over all h+1 frames, keep the last frame, layer-norm it, and update poses with
    numpy on the CPU (a host round trip per step). No KV cache, no chunking."""

    def __init__(self, predictor: torch.nn.Module, normalize: bool = True) -> None:
        self.predictor = predictor
        self.normalize = normalize
        self.n = predictor.grid_h * predictor.grid_w

    @torch.no_grad()
    def unroll(self, context_tokens: torch.Tensor, context_states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Final imagined frame ``[S, N, D]`` (one context frame, like the reference)."""
        from ..pose import compute_new_pose

        s, h = actions.shape[:2]
        frames = context_tokens[-1:][None].repeat(s, 1, 1, 1)  # [S, 1, N, D]
        poses = context_states[-1:][None].repeat(s, 1, 1)  # [S, 1, 7]
        for k in range(h):
            out = self.predictor(frames.flatten(1, 2), actions[:, : k + 1], poses)[:, -self.n:]
            if self.normalize:
                out = normalize_tokens(out)
            frames = torch.cat([frames, out[:, None]], dim=1)
            new = compute_new_pose(poses[:, -1].cpu().numpy(), actions[:, k].cpu().numpy())
            poses = torch.cat([poses, torch.from_numpy(new).to(poses)[:, None]], dim=1)
        return frames[:, -1]


def _time_plans(planner: Any, args: tuple, repeats: int, warmup: int = 1) -> tuple[list[float], Any]:
    res = None
    for _ in range(warmup):
        planner.reset()
        res = planner.plan(*args)
    times = []
    for _ in range(repeats):
        planner.reset()  # same seed every repeat: identical work, comparable plans
        if args[0].device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        res = planner.plan(*args)
        if args[0].device.type == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - t) * 1e3)
    return times, res


def _key(name: str) -> str:
    return name.replace("-", "_")


def run_planner_bench(config: str = "tiny", samples: int = 800, iterations: int = 10, topk: int = 10,
                      horizon: int = 2, backend: str = "torch", repeats: int = 3, compare_reference: bool = True,
                      compile: bool = False, precision: str = "auto", chunk_size: int | None = None,
                      device: str | None = None, seed: int = 0, ablation: bool = False,
                      compare_backends: Sequence[str] = ()) -> dict:
    """Time CEM plans; see the module docstring. Returns the JSON record.

    ``backend`` is timed as ``ours``; each of ``compare_backends`` (default settings: KV cache when the backend
    has it) is timed beside it, interleaved, under ``ms_per_plan_median_<name>`` (``-`` -> ``_``), with its ratio
    to ``ours`` in ``ratio_vs_ours_<name>``."""
    from ..inference import WorldModel, make_backend
    from ..inference.torch_backend import native_bf16, resolve_precision
    from ..planning import CEMConfig, CEMPlanner

    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    cfg, ckpt = load_bench_config(config)
    _, pred = _build(cfg, ckpt, encoder=False, predictor=True)
    pred = pred.to(dev)
    n, d = pred.grid_h * pred.grid_w, pred.cfg.embed_dim
    g = torch.Generator().manual_seed(1234)
    ctx = normalize_tokens(torch.randn(1, n, d, generator=g)).to(dev)
    goal = normalize_tokens(torch.randn(n, d, generator=g)).to(dev)
    state = torch.tensor([[0.45, 0.0, 0.35, 3.1, 0.05, -0.1, 0.2]], device=dev)
    cem = CEMConfig(samples=samples, iterations=iterations, topk=topk, horizon=horizon, seed=seed)
    # Every planner gets its energy from CEMPlanner.for_world_model, as planner_node does: the rollouts here
    # (WorldModel, ReferenceRollout) layer-norm their predictions, so the energy does not norm them again (the
    # reference's own energy is a plain mean |a - b| of normed predictions).
    plan_args = (ctx, state, goal)

    export: list[Path] = []

    def build(name: str, **torch_kwargs: Any) -> Any:
        if name == "torch":
            return make_backend("torch", predictor=pred, device=str(dev), **torch_kwargs)
        if name == "tensorrt":
            raise ValueError("the planner benchmark supports torch and onnxruntime* backends")
        if not export:  # one export (graphs per frame count + KV-cached step graphs) for every onnx backend
            from ..export import export_onnx

            tmp = Path(tempfile.mkdtemp(prefix="vjepa_bench_"))
            export_onnx(tmp, None, pred.cpu(), predictor_frames=tuple(range(1, horizon + 1)), config=cfg)
            pred.to(dev)
            export.append(tmp)
        return make_backend(name, export_dir=export[0], threads=torch.get_num_threads())

    precision = resolve_precision(precision, dev) if backend == "torch" else "fp32"
    be = build(backend, precision=precision, compile=compile)
    wm = WorldModel(be, chunk_size=chunk_size)
    ours = CEMPlanner.for_world_model(wm, cem)
    record: dict[str, Any] = {
        "benchmark": "planner", "config": config, "samples": samples, "iterations": iterations, "topk": topk,
        "horizon": horizon, "backend": backend, "precision": precision, "compile": compile,
        "kv_cache": wm.use_kv_cache, "chunk_size": wm.auto_chunk_size(samples, horizon),
        "tokens_per_frame": n, "predictor": {k: cfg["predictor"][k] for k in
                                             ("predictor_embed_dim", "depth", "num_heads", "embed_dim")},
        "repeats": repeats, "weights": "random" if ckpt is None else str(ckpt), **_device_info(dev),
    }
    t0 = time.perf_counter()
    planners = {"ours": ours}
    for name in compare_backends:
        if name == backend:
            continue
        other = WorldModel(build(name), chunk_size=chunk_size)
        record[f"kv_cache_{_key(name)}"] = other.use_kv_cache
        record[f"chunk_size_{_key(name)}"] = other.auto_chunk_size(samples, horizon)
        planners[_key(name)] = CEMPlanner.for_world_model(other, cem)
    if compare_reference:
        planners["reference"] = CEMPlanner.for_world_model(ReferenceRollout(pred), cem)
    if ablation and backend == "torch" and (precision != "fp32" or native_bf16(dev)):
        other = "fp32" if precision != "fp32" else "bf16"  # the other precision, side by side
        planners[f"ours_{other}"] = CEMPlanner.for_world_model(
            WorldModel(build("torch", precision=other, compile=compile), chunk_size=chunk_size), cem)
    if ablation:
        planners["ours_no_chunking"] = CEMPlanner.for_world_model(WorldModel(be, chunk_size=samples), cem)
        if backend == "torch":  # the first block's context-frame work once per plan step vs once per sample
            unshared = build("torch", precision=precision, compile=compile)
            unshared.stepper.share_context = False
            planners["ours_no_shared_context"] = CEMPlanner.for_world_model(
                WorldModel(unshared, chunk_size=chunk_size), cem)
        planners["ours_no_kv_cache"] = CEMPlanner.for_world_model(
            WorldModel(make_backend("torch", predictor=pred, device=str(dev), precision=precision),
                       use_kv_cache=False, chunk_size=chunk_size), cem)
        if "onnxruntime" in compare_backends and backend != "onnxruntime":  # the step graphs' share of it
            planners["onnxruntime_no_kv_cache"] = CEMPlanner.for_world_model(
                WorldModel(build("onnxruntime"), use_kv_cache=False, chunk_size=chunk_size), cem)
            record["kv_cache_onnxruntime_no_kv_cache"] = False
    times: dict[str, list[float]] = {k: [] for k in planners}
    results: dict[str, Any] = {}
    for p in planners.values():  # warm-up (compilation, allocator)
        _time_plans(p, plan_args, 0, warmup=1)
    record["warmup_s"] = time.perf_counter() - t0
    for _ in range(repeats):  # interleaved, so background load hits every variant alike
        for k, p in planners.items():
            ts, results[k] = _time_plans(p, plan_args, 1, warmup=0)
            times[k] += ts
    exact = WorldModel(make_backend("torch", predictor=pred, device=str(dev)), chunk_size=chunk_size)
    objective = CEMPlanner.for_world_model(exact, cem).objective

    def plan_energy(actions: torch.Tensor) -> float:
        pred_final = exact.unroll(ctx, state, actions[None].to(dev))
        return float(objective(pred_final, goal)[0])

    for k in planners:
        record[f"ms_per_plan_{k}"] = times[k]
        record[f"ms_per_plan_median_{k}"] = statistics.median(times[k])
        record[f"plan_{k}"] = results[k].actions.cpu().tolist()
        record[f"plan_energy_{k}"] = plan_energy(results[k].actions)
    record["ms_per_plan_median"] = record["ms_per_plan_median_ours"]
    for name in compare_backends:
        if name != backend:
            record[f"ratio_vs_ours_{_key(name)}"] = (record[f"ms_per_plan_median_{_key(name)}"]
                                                      / record["ms_per_plan_median"])
    if compare_reference:
        record["speedup_vs_reference"] = record["ms_per_plan_median_reference"] / record["ms_per_plan_median"]
        diff = (results["ours"].actions - results["reference"].actions).abs().max().item()
        record["plan_max_abs_diff_vs_reference_m"] = diff
        for k in planners:  # every variant's plan against the reference's (exact variants agree to rounding)
            record[f"plan_max_abs_diff_vs_reference_m_{k}"] = (
                results[k].actions - results["reference"].actions).abs().max().item()
        record["plan_energy_rel_diff"] = abs(record["plan_energy_ours"] - record["plan_energy_reference"]) / max(
            abs(record["plan_energy_reference"]), 1e-12)
    return record


def _export_encoder(enc: Any, cfg: dict, export_dir: Path | None) -> Path:
    """An ONNX export of ``enc`` (1-frame graph): reuse ``export_dir`` when it already holds one, else write it
    there (or to a fresh temp folder). Big encoders get external weights and an all-core parity check."""
    from ..export import export_onnx

    if export_dir is not None and (export_dir / "manifest.json").is_file():
        if "1" in json.loads((export_dir / "manifest.json").read_text()).get("encoder", {}):
            return export_dir
    out = export_dir or Path(tempfile.mkdtemp(prefix="vjepa_bench_"))
    export_onnx(out, enc, None, encoder_frames=(1,), config=cfg, tolerance=1e-3, check_batches=(1, 2),
                check_threads=0)
    return out


def run_encoder_bench(config: str = "tiny", backend: str = "torch", repeats: int = 10, batch: int = 1,
                      precision: str = "fp32", compile: bool = False, device: str | None = None,
                      export_dir: Path | None = None) -> dict:
    """Time encoding of ``batch`` single frames (each one duplicated tubelet); returns the JSON record.
    ``export_dir``: where the ONNX export of the non-torch backends lives (reused when present, so ONNX Runtime
    and TensorRT time the same graph and a ViT-g is exported once)."""
    from ..inference import make_backend

    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    cfg, ckpt = load_bench_config(config)
    enc, _ = _build(cfg, ckpt, encoder=True, predictor=False)
    s = enc.cfg.img_size
    hw = (s, s) if isinstance(s, int) else tuple(s)
    if backend == "torch":
        be = make_backend("torch", encoder=enc, device=str(dev), precision=precision, compile=compile)
    elif backend == "tensorrt":
        from ..export import build_trt_engines

        tmp = _export_encoder(enc, cfg, export_dir)
        build_trt_engines(tmp, precision="fp16" if precision != "fp32" else "fp32", max_batch=max(batch, 1))
        be = make_backend("tensorrt", export_dir=tmp)
    else:
        tmp = _export_encoder(enc, cfg, export_dir)
        be = make_backend(backend, export_dir=tmp, threads=torch.get_num_threads())
    x = torch.randn(batch, 1, 3, hw[0], hw[1], device=be.device)
    be.encode(x)  # warm-up
    times = []
    for _ in range(repeats):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        be.encode(x)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - t) * 1e3 / batch)
    med = statistics.median(times)
    return {"benchmark": "encoder", "config": config, "backend": backend, "precision": precision,
            "compile": compile, "batch": batch, "img_size": list(hw), "ms_per_frame": times,
            "weights": "random" if ckpt is None else str(ckpt),
            "ms_per_frame_median": med, "frames_per_s": 1e3 / med, "repeats": repeats, **_device_info(dev)}


def run_landscape(checkpoint: str | None, config: str = "", traj: str | None = None, grid: int = 9,
                  range_m: float = 0.075, episode: int = 0, step: int = 0, sweep_z: bool = True,
                  fill: str = "zero", backend: str = "torch", device: str = "cpu", export_dir: str | None = None,
                  png: Path | None = None) -> dict:
    """Energy landscape of ``checkpoint`` on step ``step`` of episode ``episode`` of a trajectory ``.npz``
    (``observations [E, T, H, W, 3]`` uint8, ``states [E, T, 7]``; default the shared
    ``franka_example_traj.npz``). ``config``: a preset, a JSON file with ``encoder``/``predictor`` dicts, ``tiny``
    (the shared tiny fixture, checkpoint included) or empty (configs embedded in our checkpoints)."""
    import numpy as np

    from ..loading import load_world_model
    from ..planning.landscape import energy_landscape, plot_landscape

    if config == "tiny":
        d = _find_tiny()
        if d is None:
            raise ValueError("config 'tiny' needs tests/fixtures/parity_tiny_a (run from the repo root)")
        config, checkpoint = str(d / "config.json"), checkpoint or str(d / "checkpoint.pt")
    if not checkpoint:
        raise ValueError("--checkpoint is required (a released V-JEPA 2-AC .pt or one of ours)")
    if traj is None:
        found = _find_fixture(_FIXTURES_TRAJ)
        if found is None:
            raise ValueError("no --traj given and tests/fixtures/franka_example_traj.npz not found")
        traj = str(found)
    try:
        with np.load(traj) as data:
            obs, states = data["observations"], data["states"]
    except (OSError, KeyError, ValueError) as exc:
        raise ValueError(f"cannot read a trajectory (observations, states) from {traj}: {exc}") from exc
    if obs.ndim != 5 or states.ndim != 3 or obs.shape[:2] != states.shape[:2] or states.shape[-1] != 7:
        raise ValueError(f"{traj}: expected observations [E,T,H,W,3] and states [E,T,7], got "
                         f"{obs.shape} and {states.shape}")
    if not (0 <= episode < obs.shape[0]) or not (0 <= step < obs.shape[1] - 1):
        raise ValueError(f"{traj} has {obs.shape[0]} episode(s) of {obs.shape[1]} frames: episode {episode}, "
                         f"step {step} (needs step + 1 < {obs.shape[1]}) is out of range")
    loaded = load_world_model(checkpoint, config, backend=backend, device=device, export_dir=export_dir)
    res = energy_landscape(loaded.world_model, obs[episode, step], obs[episode, step + 1], states[episode, step],
                           states[episode, step + 1], grid=grid, range_m=range_m, sweep_z=sweep_z, fill=fill)
    rec = {"benchmark": "landscape", "checkpoint": str(checkpoint), "config": config, "traj": str(traj),
           "episode": episode, "step": step, "backend": backend, "predictor_id": loaded.predictor_id,
           **_device_info(torch.device(device)), **res.to_dict()}
    if png is not None:
        rec["png"] = str(plot_landscape(res, png, title=f"{loaded.predictor_id} on {Path(traj).name} "
                                                        f"ep {episode} step {step}"))
    return rec


def _landscape_line(rec: dict) -> str:
    a, t = rec["argmin_action"], rec["true_action"]
    line = (f"landscape: {rec['num_actions']} actions ({rec['grid']} per axis, +-{rec['range_m']} m) in "
            f"{rec['seconds'] * 1e3:.0f} ms; argmin ({a[0]:+.3f}, {a[1]:+.3f}, {a[2]:+.3f}) m, energy "
            f"{rec['argmin_energy']:.4f}")
    if t is not None:
        outside = "" if rec["true_in_range"] else "; true action outside the grid"
        line += (f"; true action ({t[0]:+.3f}, {t[1]:+.3f}, {t[2]:+.3f}) m, energy {rec['true_energy']:.4f}; "
                 f"argmin error {rec['error_m'] * 100:.1f} cm (best the grid allows "
                 f"{rec['nearest_grid_error_m'] * 100:.1f} cm{outside})")
    if rec.get("png"):
        line += f"; heat map {rec['png']}"
    return line


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="vjepa-bench", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("planner", "encoder"):
        p = sub.add_parser(name, help=f"time the {name}")
        p.add_argument("--config", default="tiny", help="JSON with encoder/predictor dicts, or tiny|vitl|vitg")
        p.add_argument("--backend", default="torch",
                       choices=["torch", "onnxruntime", "onnxruntime-cuda", "onnxruntime-trt", "tensorrt"])
        p.add_argument("--repeats", type=int, default=3 if name == "planner" else 10)
        p.add_argument("--precision", default="auto" if name == "planner" else "fp32",
                       choices=["auto", "fp32", "bf16", "fp16"],
                       help="torch backend: auto = bf16 where the device computes it natively (AVX-512 BF16/AMX "
                            "CPUs, CUDA), else fp32" + (" (default)" if name == "planner" else ""))
        p.add_argument("--compile", action="store_true", help="torch.compile the hot path")
        p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
        p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
        p.add_argument("--json", type=Path, default=None, help="write the record here")
    pl = sub.choices["planner"]
    pl.add_argument("--samples", type=int, default=800)
    pl.add_argument("--iterations", type=int, default=10)
    pl.add_argument("--topk", type=int, default=10)
    pl.add_argument("--horizon", type=int, default=1)
    pl.add_argument("--chunk-size", type=int, default=None)
    pl.add_argument("--compare-reference", action="store_true", help="also time the reference loop")
    pl.add_argument("--ablation", action="store_true", help="also time without chunking / without KV cache")
    pl.add_argument("--compare-backend", action="append", default=[], metavar="NAME",
                    choices=["torch", "onnxruntime", "onnxruntime-cuda", "onnxruntime-trt"],
                    help="also time this backend in the same run, interleaved (repeatable)")
    sub.choices["encoder"].add_argument("--batch", type=int, default=1)
    sub.choices["encoder"].add_argument("--export-dir", type=Path, default=None,
                                        help="ONNX export to reuse (or write) for non-torch backends")
    la = sub.add_parser("landscape", help="energy heat map over a dx/dy/dz grid vs the true action")
    la.add_argument("--checkpoint", default=None, help="V-JEPA 2-AC checkpoint (.pt) with encoder and predictor")
    la.add_argument("--config", default="",
                    help="preset, JSON with encoder/predictor dicts, 'tiny' (shared fixture), or empty (embedded)")
    la.add_argument("--traj", default=None, help="npz with observations [E,T,H,W,3] uint8 and states [E,T,7] "
                                                 "(default: tests/fixtures/franka_example_traj.npz)")
    la.add_argument("--episode", type=int, default=0)
    la.add_argument("--step", type=int, default=0, help="frame index t: transition t -> t+1")
    la.add_argument("--grid", type=int, default=9, help="points per axis")
    la.add_argument("--range", type=float, default=0.075, dest="range_m", help="sweep +-RANGE metres per axis")
    la.add_argument("--no-z", action="store_true", help="sweep dx/dy only (dz fixed at the true dz)")
    la.add_argument("--fill", default="zero", choices=["zero", "true"],
                    help="rotation/gripper deltas of grid actions: zero (reference notebook) or the true action's")
    la.add_argument("--backend", default="torch", choices=["torch", "onnxruntime", "onnxruntime-cuda",
                                                           "onnxruntime-trt", "tensorrt"])
    la.add_argument("--onnx-dir", default=None, help="export directory for non-torch backends")
    la.add_argument("--device", default="cpu")
    la.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    la.add_argument("--png", type=Path, default=None, help="write the heat map here")
    la.add_argument("--json", type=Path, default=None, help="write the record here")
    return ap


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``vjepa-bench``."""
    args = _parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        if args.cmd == "landscape":
            rec = run_landscape(args.checkpoint, args.config, args.traj, args.grid, args.range_m, args.episode,
                                args.step, not args.no_z, args.fill, args.backend, args.device, args.onnx_dir,
                                args.png)
            line = _landscape_line(rec)
        elif args.cmd == "planner":
            if args.backend == "tensorrt":
                raise SystemExit("error: the planner benchmark supports torch and onnxruntime* backends")
            rec = run_planner_bench(args.config, args.samples, args.iterations, args.topk, args.horizon,
                                    args.backend, args.repeats, args.compare_reference, args.compile,
                                    args.precision, args.chunk_size, args.device, ablation=args.ablation,
                                    compare_backends=args.compare_backend)
            line = f"planner: {rec['ms_per_plan_median']:.1f} ms per plan ({args.backend}) on {rec['device_name']}"
            if "speedup_vs_reference" in rec:
                line += (f"; reference loop {rec['ms_per_plan_median_reference']:.1f} ms "
                         f"-> {rec['speedup_vs_reference']:.2f}x")
            for name in args.compare_backend:
                if name != args.backend:
                    line += (f"; {name} {rec[f'ms_per_plan_median_{_key(name)}']:.1f} ms "
                             f"({rec[f'ratio_vs_ours_{_key(name)}']:.2f}x)")
        else:
            rec = run_encoder_bench(args.config, args.backend, args.repeats, args.batch, args.precision,
                                    args.compile, args.device, args.export_dir)
            line = (f"encoder: {rec['ms_per_frame_median']:.2f} ms per frame "
                    f"({rec['frames_per_s']:.1f} frames/s) on {rec['device_name']}")
    except (ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(line)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rec, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

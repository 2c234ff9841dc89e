"""``vjepa-sim export``: package the trained encoder + AC predictor as a deployable model directory.

``WORKDIR/model`` (or ``--out``) receives:

- ``vjepa2_sim.pt``: the frozen EMA encoder (as ``encoder`` and ``target_encoder``) and the AC predictor in the
  released layout, configs embedded (no optimizer state: small enough to ship in ``models/``);
- ``config.json``: ``encoder`` / ``predictor`` dicts (``model_config`` of encoder_node and planner_node);
- ``onnx/``: ``vjepa-export onnx`` graphs (encoder 1 frame, predictor ``export.frames``), parity-checked against
  torch by the exporter, for the ``onnxruntime`` backend;
- ``model.json``: what produced it (training runs, steps, final losses, dataset size) for the model card.

Re-running overwrites the directory's files (the export is fast and deterministic).
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import time
from pathlib import Path

from .settings import Settings, add_common_arguments, load_settings

__all__ = ["add_arguments", "export_model", "run", "CHECKPOINT_NAME"]

CHECKPOINT_NAME = "vjepa2_sim.pt"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """CLI of ``vjepa-sim export``."""
    add_common_arguments(parser)
    parser.add_argument("--out", default=None, help="model directory (default WORKDIR/model)")


def _last_metrics(run: Path) -> dict:
    path = run / "metrics.csv"
    if not path.is_file():
        return {}
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return {}
    keep = ("step", "loss", "loss_tf", "loss_rollout", "target_std")
    return {k: float(v) for k, v in rows[-1].items() if k in keep and v not in ("", None)}


def export_model(settings: Settings, out: Path) -> dict:
    """Write the model directory ``out`` from the post-training run; returns ``model.json``'s content."""
    from vjepa_core.checkpoint import load_official, read_checkpoint, save
    from vjepa_core.export import export_onnx

    run = settings.posttrain_run
    ckpt = run / "latest.pt"
    if not ckpt.is_file():
        raise ValueError(f"{ckpt} missing: run `vjepa-sim posttrain` first")
    raw = read_checkpoint(ckpt, mmap=True)
    meta = raw.get("vjepa2_ros") or {}
    enc_cfg, pred_cfg = meta.get("encoder_config"), meta.get("predictor_config")
    if not enc_cfg or not pred_cfg:
        raise ValueError(f"{ckpt} embeds no encoder/predictor configs (not a vjepa-train posttrain checkpoint?)")
    step = int(raw.get("step", 0) or 0)
    del raw
    encoder, predictor = load_official(ckpt, enc_cfg, pred_cfg, encoder_key="target_encoder")
    out.mkdir(parents=True, exist_ok=True)
    path = save(out / CHECKPOINT_NAME, encoder.eval(), predictor.eval(), epoch=0)
    config = {"encoder": encoder.cfg.to_dict(), "predictor": predictor.cfg.to_dict()}
    (out / "config.json").write_text(json.dumps(config, indent=1))
    onnx_dir = out / "onnx"
    if onnx_dir.exists():
        shutil.rmtree(onnx_dir)
    frames = [int(f) for f in settings.section("export")["frames"]]
    export_onnx(onnx_dir, encoder, predictor, predictor_frames=frames, encoder_frames=[1], config=config)
    collect = settings.bags / "collect.json"
    build = {name: json.loads((d / "build_summary.json").read_text())
             for name, d in (("train", settings.dataset), ("heldout", settings.heldout_dataset))
             if (d / "build_summary.json").is_file()}
    info = {
        "checkpoint": CHECKPOINT_NAME,
        "config": "config.json",
        "onnx_dir": "onnx",
        "encoder_params": sum(p.numel() for p in encoder.parameters()),
        "predictor_params": sum(p.numel() for p in predictor.parameters()),
        "posttrain_step": step,
        "pretrain_last": _last_metrics(settings.pretrain_run),
        "posttrain_last": _last_metrics(run),
        "collected_episodes": len(json.loads(collect.read_text())["episodes"]) if collect.is_file() else None,
        "dataset": {k: {"episodes": v.get("episodes"), "frames": v.get("frames")} for k, v in build.items()},
        "exported": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    (out / "model.json").write_text(json.dumps(info, indent=1))
    print(f"export: {path} ({path.stat().st_size / 1e6:.1f} MB), config.json, onnx/ ({len(frames)} predictor graphs)")
    return info


def run(args: argparse.Namespace) -> int:
    """Entry point of ``vjepa-sim export``."""
    s = load_settings(args.pipeline, args.workdir)
    out = Path(args.out).resolve() if args.out else s.model_dir
    t0 = time.monotonic()
    export_model(s, out)
    print(f"export: {out} in {time.monotonic() - t0:.0f} s")
    return 0

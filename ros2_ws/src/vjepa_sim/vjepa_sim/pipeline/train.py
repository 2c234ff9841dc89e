"""``vjepa-sim pretrain`` and ``vjepa-sim posttrain``: the suite's own training on the simulator data.

- ``pretrain``: ``vjepa-train pretrain`` (V-JEPA 2 mask-denoising, EMA target) of a small encoder on the sim
  video in ``WORKDIR/dataset``, from scratch: no downloaded weights.
- ``posttrain``: caches the frozen encoder's latents (what ``vjepa-dataset encode`` does, EMA
  ``target_encoder``), then ``vjepa-train posttrain`` (V-JEPA 2-AC: teacher forcing + 2-step rollout) of the
  action-conditioned predictor.

Both call the training package's Python API (the same functions as the CLIs) with the config from
``config/train/sim_*.yaml`` and the pipeline's paths set on the config objects; both resume from ``latest.pt``
when re-run, and the latent cache is resumable per shard.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

from .settings import Settings, add_common_arguments, load_settings

__all__ = ["add_arguments_posttrain", "add_arguments_pretrain", "encoder_config_path", "posttrain", "pretrain",
           "run_posttrain", "run_pretrain"]


def _train_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument("--max-steps", type=int, default=None,
                        help="stop at this step (the LR schedule still spans the config's total_steps; rerun "
                             "without it to continue)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="extra vjepa-train config override (repeatable)")


add_arguments_pretrain = _train_arguments
add_arguments_posttrain = _train_arguments


def _train(kind: str, config: Path, out: Path, dataset: Path, overrides: list, max_steps: int | None,
           model: dict | None = None, threads: int | None = None) -> dict:
    """Load ``config`` (plus the user's ``--set`` overrides), point it at the pipeline's dataset and run
    directory, and run the training in-process (resumes from ``out/latest.pt``). Returns its summary.

    ``threads`` (``vjepa-sim --threads``) replaces the config's ``threads`` (0: torch's default, untouched), so
    the training does not change the thread count the command line chose; None keeps the config's."""
    from vjepa_training.train.config import PosttrainConfig, PretrainConfig, SourceConfig, load_config

    cls = PretrainConfig if kind == "pretrain" else PosttrainConfig
    cfg = load_config(config, cls, list(overrides))
    data = replace(cfg.data, sources=[SourceConfig(kind="shards", path=str(dataset))])
    changes: dict = {"out": str(out), "data": data}
    if max_steps is not None:
        changes["max_steps"] = max_steps
    if threads is not None:
        changes["threads"] = threads
    if model:
        changes["model"] = replace(cfg.model, **model)
    cfg = replace(cfg, **changes)  # __post_init__ validates the combined config again
    if kind == "pretrain":
        from vjepa_training.train.pretrain import main as run_task
    else:
        from vjepa_training.train.posttrain import main as run_task
    return run_task(cfg)


def pretrain(settings: Settings, max_steps: int | None = None, overrides: list | None = None,
             threads: int | None = None) -> Path:
    """Pretrain the encoder into ``WORKDIR/pretrain`` (resumes). Returns the run directory. ``threads``: torch CPU
    threads of the training (replaces the config's; None keeps it)."""
    dataset = settings.dataset
    if not (dataset / "index.json").is_file():
        raise ValueError(f"no dataset at {dataset} (run `vjepa-sim build` first)")
    run = settings.pretrain_run
    _train("pretrain", settings.path(settings.section("pretrain")["config"]), run, dataset, overrides or [],
           max_steps, threads=threads)
    return run


def encoder_config_path(settings: Settings) -> Path:
    """``encoder.json`` written by pretraining (the encoder architecture)."""
    path = settings.pretrain_run / "encoder.json"
    if not path.is_file():
        raise ValueError(f"{path} missing: run `vjepa-sim pretrain` first")
    return path


def posttrain(settings: Settings, max_steps: int | None = None, overrides: list | None = None,
              threads: int | None = None) -> Path:
    """Cache latents of the frozen pretrained encoder, then post-train the AC predictor (resumes). ``threads``: torch
    CPU threads of the training (replaces the config's; None keeps it)."""
    from vjepa_training.data.latents import encode_dataset, encoder_from_checkpoint

    ckpt = settings.pretrain_run / "latest.pt"
    if not ckpt.is_file():
        raise ValueError(f"{ckpt} missing: run `vjepa-sim pretrain` first")
    encoder = json.loads(encoder_config_path(settings).read_text())
    encoder = encoder.get("encoder", encoder)
    dataset = settings.dataset
    t0 = time.monotonic()
    encode_fn, identity = encoder_from_checkpoint(ckpt, encoder, encoder_key="target_encoder")
    encode_dataset(dataset, encode_fn, identity, batch_size=64, progress=False)
    print(f"posttrain: latent cache ready in {time.monotonic() - t0:.0f} s")
    run = settings.posttrain_run
    _train("posttrain", settings.path(settings.section("posttrain")["config"]), run, dataset, overrides or [],
           max_steps, model={"encoder_checkpoint": str(ckpt), "encoder": encoder, "encoder_key": "target_encoder"},
           threads=threads)
    return run


def run_pretrain(args: argparse.Namespace) -> int:
    """Entry point of ``vjepa-sim pretrain``."""
    s = load_settings(args.pipeline, args.workdir)
    t0 = time.monotonic()
    run = pretrain(s, args.max_steps, args.overrides, threads=args.threads)
    print(f"pretrain: {run} ({time.monotonic() - t0:.0f} s)")
    return 0


def run_posttrain(args: argparse.Namespace) -> int:
    """Entry point of ``vjepa-sim posttrain``."""
    s = load_settings(args.pipeline, args.workdir)
    t0 = time.monotonic()
    run = posttrain(s, args.max_steps, args.overrides, threads=args.threads)
    print(f"posttrain: {run} ({time.monotonic() - t0:.0f} s)")
    return 0

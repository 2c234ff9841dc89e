"""``vjepa-sim pretrain`` and ``vjepa-sim posttrain``: the suite's own training on the simulator data.

- ``pretrain``: ``vjepa-train pretrain`` (V-JEPA 2 mask-denoising, EMA target) of a small encoder on the sim
  video in ``WORKDIR/dataset``, from scratch: no downloaded weights.
- ``posttrain``: caches the frozen encoder's latents (``vjepa-dataset encode``, EMA ``target_encoder``), then
  ``vjepa-train posttrain`` (V-JEPA 2-AC: teacher forcing + 2-step rollout) of the action-conditioned predictor.

Both are the project's training CLIs called in-process with the config from ``config/train/sim_*.yaml`` and
the pipeline's paths; both resume from ``latest.pt`` when re-run (the CLIs' own resume), and the latent cache
is resumable per shard.
"""

from __future__ import annotations

import argparse
import json
import time
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


def _train(kind: str, config: Path, out: Path, overrides: list, max_steps: int | None) -> None:
    from vjepa_training.train_cli import main as train_main

    argv = [kind, "--config", str(config), "--out", str(out)]
    for o in overrides:
        argv += ["--set", o]
    if max_steps is not None:
        argv += ["--max-steps", str(max_steps)]
    rc = train_main(argv)
    if rc:
        raise RuntimeError(f"vjepa-train {kind} failed with exit code {rc}")


def pretrain(settings: Settings, max_steps: int | None = None, overrides: list | None = None) -> Path:
    """Pretrain the encoder into ``WORKDIR/pretrain`` (resumes). Returns the run directory."""
    dataset = settings.dataset
    if not (dataset / "index.json").is_file():
        raise ValueError(f"no dataset at {dataset} (run `vjepa-sim build` first)")
    run = settings.pretrain_run
    _train("pretrain", settings.path(settings.section("pretrain")["config"]), run,
           [f"data.sources=[{{kind: shards, path: '{dataset}'}}]", *(overrides or [])], max_steps)
    return run


def encoder_config_path(settings: Settings) -> Path:
    """``encoder.json`` written by pretraining (the encoder architecture)."""
    path = settings.pretrain_run / "encoder.json"
    if not path.is_file():
        raise ValueError(f"{path} missing: run `vjepa-sim pretrain` first")
    return path


def posttrain(settings: Settings, max_steps: int | None = None, overrides: list | None = None) -> Path:
    """Cache latents of the frozen pretrained encoder, then post-train the AC predictor (resumes)."""
    import yaml

    from vjepa_training.dataset_cli import main as dataset_main

    ckpt = settings.pretrain_run / "latest.pt"
    if not ckpt.is_file():
        raise ValueError(f"{ckpt} missing: run `vjepa-sim pretrain` first")
    enc_json = encoder_config_path(settings)
    dataset = settings.dataset
    t0 = time.monotonic()
    rc = dataset_main(["encode", str(dataset), "--checkpoint", str(ckpt), "--encoder", str(enc_json),
                       "--encoder-key", "target_encoder", "--batch-size", "64", "--quiet"])
    if rc:
        raise RuntimeError(f"vjepa-dataset encode failed with exit code {rc}")
    print(f"posttrain: latent cache ready in {time.monotonic() - t0:.0f} s")
    encoder = json.loads(enc_json.read_text())
    encoder = encoder.get("encoder", encoder)
    run = settings.posttrain_run
    _train("posttrain", settings.path(settings.section("posttrain")["config"]), run,
           [f"data.sources=[{{kind: shards, path: '{dataset}'}}]", f"model.encoder_checkpoint={ckpt}",
            # YAML, not JSON: the CLI parses values as YAML, where JSON's 1e-06 would be a string
            f"model.encoder={yaml.safe_dump(encoder, default_flow_style=True).strip()}", *(overrides or [])],
           max_steps)
    return run


def run_pretrain(args: argparse.Namespace) -> int:
    """Entry point of ``vjepa-sim pretrain``."""
    s = load_settings(args.pipeline, args.workdir)
    t0 = time.monotonic()
    run = pretrain(s, args.max_steps, args.overrides)
    print(f"pretrain: {run} ({time.monotonic() - t0:.0f} s)")
    return 0


def run_posttrain(args: argparse.Namespace) -> int:
    """Entry point of ``vjepa-sim posttrain``."""
    s = load_settings(args.pipeline, args.workdir)
    t0 = time.monotonic()
    run = posttrain(s, args.max_steps, args.overrides)
    print(f"posttrain: {run} ({time.monotonic() - t0:.0f} s)")
    return 0

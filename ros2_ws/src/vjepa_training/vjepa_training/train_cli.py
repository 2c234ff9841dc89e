"""``vjepa-train``: V-JEPA 2 pretraining, V-JEPA 2-AC post-training and training plots.

    vjepa-train pretrain  --config config/train/pretrain_tiny.yaml [--out RUN] [--max-steps N] [--set k=v ...]
    vjepa-train posttrain --config config/train/posttrain_tiny.yaml [--out RUN] [--max-steps N] [--set k=v ...]
    vjepa-train plot RUN [--out DIR]
    vjepa-train probe --checkpoint ENC.pt --train TRAIN --val VAL [--test TEST] --out RUN ...

Several processes / machines: ``torchrun --nproc_per_node=N -m vjepa_training.train_cli pretrain ...``
(see docs/training.md). A run directory with a ``latest.pt`` is resumed automatically (``--no-resume`` to
refuse, i.e. fail instead of resuming); with ``checkpoint.resume: false`` it is an error unless
``--overwrite`` asks to start over at step 0 and replace the old checkpoints. Inputs (config, data sources,
latent cache, checkpoints) are all checked before the run directory is created or touched.

Exit status: 0 done, 2 bad config or input (one ``vjepa-train <command>: error: ...`` line on stderr), 1 a
failure during training or an internal error (``--debug`` or ``VJEPA_DEBUG=1`` shows the traceback).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .cli_errors import run_guarded

__all__ = ["main"]


def _train_parser(sub: argparse._SubParsersAction, name: str, help_text: str) -> None:
    p = sub.add_parser(name, help=help_text, description=help_text)
    p.add_argument("--config", "-c", required=True, help="YAML config (see config/train/)")
    p.add_argument("--out", help="run directory (overrides the config's `out`)")
    p.add_argument("--max-steps", type=int, help="stop after this step (the LR schedule still spans "
                                                 "optim.total_steps); resume later to continue")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set optim.lr=1e-3 --set data.batch_size=4")
    once = p.add_mutually_exclusive_group()
    once.add_argument("--no-resume", action="store_true", help="error out if RUN already holds a checkpoint")
    once.add_argument("--overwrite", action="store_true",
                      help="start over at step 0 even if RUN holds a checkpoint, removing RUN/latest.pt and "
                           "RUN/checkpoints/step_*.pt (needed to restart a run with checkpoint.resume: false)")
    p.add_argument("--debug", action="store_true", help="show the traceback of any error (also VJEPA_DEBUG=1)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (subcommands pretrain, posttrain, plot, probe)."""
    parser = argparse.ArgumentParser(prog="vjepa-train", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    _train_parser(sub, "pretrain", "V-JEPA 2 pretraining (mask denoising, EMA target encoder)")
    _train_parser(sub, "posttrain", "V-JEPA 2-AC post-training (frozen encoder, teacher forcing + rollout)")
    p = sub.add_parser("plot", help="write PNG curves of RUN/metrics.csv")
    p.add_argument("run", help="run directory")
    p.add_argument("--out", help="output folder (default RUN/plots)")
    p.add_argument("--debug", action="store_true", help="show the traceback of any error (also VJEPA_DEBUG=1)")
    from .probe_cli import add_arguments as add_probe_arguments

    add_probe_arguments(sub)  # attentive probes on a frozen encoder (video understanding)
    return parser


class _InvalidConfig(ValueError):
    """The config file or an override is invalid (reported as such)."""


def _train(args: argparse.Namespace) -> int:
    from .train.config import PosttrainConfig, PretrainConfig, TrainConfigError, load_config

    cls = PretrainConfig if args.command == "pretrain" else PosttrainConfig
    overrides = list(args.overrides)
    if args.out:
        overrides.append(f"out={args.out}")
    if args.max_steps is not None:
        overrides.append(f"max_steps={args.max_steps}")
    try:
        cfg = load_config(args.config, cls, overrides)
    except TrainConfigError as e:
        raise _InvalidConfig(f"invalid config: {e}") from None
    if args.no_resume and (Path(cfg.out) / "latest.pt").exists():
        raise _InvalidConfig(f"{cfg.out}/latest.pt exists and --no-resume was given")
    if args.command == "pretrain":
        from .train.pretrain import main as run_task
    else:
        from .train.posttrain import main as run_task
    summary = run_task(cfg, overwrite=args.overwrite)
    if summary.get("collapse_warnings"):
        print(f"vjepa-train: {summary['collapse_warnings']} collapse warnings (see log)", file=sys.stderr)
    return 0


def _plot(args: argparse.Namespace) -> int:
    from .train.plot import plot_run

    for p in plot_run(args.run, args.out):
        print(p)
    return 0


def _status(exc: BaseException) -> int:
    """Bad config or input: 2; a run that went wrong while training (the loss became NaN): 1."""
    return 1 if isinstance(exc, FloatingPointError) else 2


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``vjepa-train`` console script; every failure ends with one ``error:`` line."""
    args = build_parser().parse_args(argv)
    if args.command == "probe":
        from .probe_cli import run as run_probe

        return run_probe(args)
    fn = _plot if args.command == "plot" else _train
    return run_guarded(f"vjepa-train {args.command}", lambda: fn(args), debug=args.debug, status=_status)


if __name__ == "__main__":
    sys.exit(main())

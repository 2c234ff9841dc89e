"""``vjepa-train``: V-JEPA 2 pretraining, V-JEPA 2-AC post-training and training plots.

    vjepa-train pretrain  --config config/train/pretrain_tiny.yaml [--out RUN] [--max-steps N] [--set k=v ...]
    vjepa-train posttrain --config config/train/posttrain_tiny.yaml [--out RUN] [--max-steps N] [--set k=v ...]
    vjepa-train plot RUN [--out DIR]

Several processes / machines: ``torchrun --nproc_per_node=N -m vjepa_training.train_cli pretrain ...``
(see docs/training.md). A run directory with a ``latest.pt`` is resumed automatically (``--no-resume`` to
refuse, i.e. fail instead of resuming).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["main"]


def _train_parser(sub: argparse._SubParsersAction, name: str, help_text: str) -> None:
    p = sub.add_parser(name, help=help_text, description=help_text)
    p.add_argument("--config", "-c", required=True, help="YAML config (see config/train/)")
    p.add_argument("--out", help="run directory (overrides the config's `out`)")
    p.add_argument("--max-steps", type=int, help="stop after this step (the LR schedule still spans "
                                                 "optim.total_steps); resume later to continue")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set optim.lr=1e-3 --set data.batch_size=4")
    p.add_argument("--no-resume", action="store_true", help="error out if RUN already holds a checkpoint")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (subcommands pretrain, posttrain, plot)."""
    parser = argparse.ArgumentParser(prog="vjepa-train", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    _train_parser(sub, "pretrain", "V-JEPA 2 pretraining (mask denoising, EMA target encoder)")
    _train_parser(sub, "posttrain", "V-JEPA 2-AC post-training (frozen encoder, teacher forcing + rollout)")
    p = sub.add_parser("plot", help="write PNG curves of RUN/metrics.csv")
    p.add_argument("run", help="run directory")
    p.add_argument("--out", help="output folder (default RUN/plots)")
    return parser


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
        print(f"vjepa-train {args.command}: invalid config: {e}", file=sys.stderr)
        return 2
    if args.no_resume and (Path(cfg.out) / "latest.pt").exists():
        print(f"vjepa-train: {cfg.out}/latest.pt exists and --no-resume was given", file=sys.stderr)
        return 2
    if args.command == "pretrain":
        from .train.pretrain import main as run_task
    else:
        from .train.posttrain import main as run_task
    summary = run_task(cfg)
    if summary.get("collapse_warnings"):
        print(f"vjepa-train: {summary['collapse_warnings']} collapse warnings (see log)", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``vjepa-train`` console script."""
    args = build_parser().parse_args(argv)
    if args.command == "plot":
        from .train.plot import plot_run

        try:
            paths = plot_run(args.run, args.out)
        except (FileNotFoundError, ValueError) as e:
            print(f"vjepa-train plot: {e}", file=sys.stderr)
            return 2
        for p in paths:
            print(p)
        return 0
    return _train(args)


if __name__ == "__main__":
    sys.exit(main())

"""``vjepa-train probe``: train an attentive probe (video classification or action anticipation) on a frozen
V-JEPA 2 encoder.

    vjepa-train probe --checkpoint ENC.pt [--model-config CFG] --train TRAIN --val VAL [--test TEST] --out RUN \\
        [--frames-per-clip 16 --frame-step 4 --segments 2 --views 3] [--epochs 20 --batch-size 16] \\
        [--lrs ...] [--wds ...] [--linear-baseline] [--seed 0]
    vjepa-train probe --task anticipation --checkpoint ENC.pt --predictor-config vit_large \\
        --train TRAIN --val VAL --out RUN --frames-per-clip 32 --frame-step 1 --frames-per-second 8 \\
        --anticipation-time 1.0

``TRAIN`` / ``VAL`` / ``TEST`` (each repeatable) are a CSV of ``path label`` lines (the reference's format: video
files PyAV decodes, ``.npy`` / ``.npz`` arrays ``[T, H, W, 3]`` uint8, or folders of images; labels are class ids
or text), or a dataset directory of ``vjepa-dataset build`` (episodes labelled by the recorder's task text, or
by ``--clip-labels CSV`` of ``episode_id start label`` lines). The encoder's tokens of every clip are cached once
(``RUN/features`` or ``--cache``), then one probe per (lr, weight decay) of the grid trains on them in one pass
and the best by validation top-1 is written to ``RUN/probe.pt`` (released probe format); ``--test`` is only
evaluated. See docs/probes.md ("Training a probe").

``--task anticipation`` trains EK100-style anticipation probes: CSV lines ``path verb noun action`` (or clip labels
``episode_id start verb noun action``), features = the encoder's tokens of the clip ending at the video's last
frame plus the pretraining predictor's tokens ``--anticipation-time`` seconds later, loss = the sum of the verb,
noun and action cross-entropies, and the head kept by validation action mean-class recall@5.

Exit status: 0 done, 2 bad input (one ``vjepa-train probe: error: ...`` line), 1 an internal error.

Until ``vjepa-train`` registers it, the same command runs as ``python -m vjepa_training.probe_cli ...``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

from .cli_errors import run_guarded

__all__ = ["add_arguments", "build_parser", "config_from_args", "main", "run"]

HELP = ("train an attentive probe (video classification or action anticipation) on a frozen encoder, several "
        "lr/wd heads at once")


def _fill(p: argparse.ArgumentParser) -> None:
    from .train.probe import DEFAULT_LRS, DEFAULT_WDS, TASKS, ProbeTrainConfig

    d = ProbeTrainConfig(checkpoint="", train=[], val=[], out="")
    g = p.add_argument_group("encoder")
    g.add_argument("--checkpoint", required=True, help="encoder checkpoint (.pt: released or ours)")
    g.add_argument("--model-config", default="", help="encoder preset (vit_large, ...) or JSON/YAML file with an "
                                                      "'encoder' mapping; empty: the configs our checkpoints embed")
    g.add_argument("--checkpoint-key", default=d.checkpoint_key, choices=("target_encoder", "encoder"),
                   help="checkpoint section (the reference's evaluations use the EMA target_encoder)")
    g = p.add_argument_group("data")
    g.add_argument("--train", action="append", required=True, metavar="SRC",
                   help="training videos: CSV of 'path label' lines, or a vjepa-dataset directory (repeatable)")
    g.add_argument("--val", action="append", required=True, metavar="SRC",
                   help="validation videos (choose the best head); same kinds as --train")
    g.add_argument("--test", action="append", default=[], metavar="SRC",
                   help="held-out videos, only evaluated with the chosen head")
    g.add_argument("--clip-labels", metavar="CSV", help="for dataset sources: 'episode_id start label' lines "
                                                         "(default: each episode's task text)")
    g.add_argument("--window-stride", type=int, help="dataset sources labelled by task: frames between windows "
                                                     "(default: the window length, no overlap)")
    g.add_argument("--num-classes", type=int, help="integer labels: number of classes (default: largest id + 1)")
    g.add_argument("--task", default=d.task, choices=TASKS,
                   help="classification ('path label' lines) or anticipation ('path verb noun action' lines)")
    g = p.add_argument_group("clips (the reference's evaluation sampling)")
    g.add_argument("--frames-per-clip", type=int, default=d.frames_per_clip)
    g.add_argument("--frame-step", type=int, default=d.frame_step, help="take every Nth frame of the video")
    g.add_argument("--segments", type=int, default=d.num_segments, help="temporal segments per video")
    g.add_argument("--views", type=int, default=d.num_views, help="spatial views per segment (1 or 3 in the "
                                                                   "reference)")
    g.add_argument("--clips-per-video", type=int, default=d.clips_per_video,
                   help="start offsets per video (temporal jitter; every split)")
    g.add_argument("--crop", default=d.crop, choices=("eval", "center", "resize"),
                   help="one view: eval = short side to size*256/224 then centre crop (reference); center = "
                        "largest centred square; resize = stretch")
    g.add_argument("--out-layers", type=int, nargs="+", help="encoder blocks whose tokens feed the probe "
                                                             "(multi-level features, as the Diving-48 probes)")
    g = p.add_argument_group("anticipation (--task anticipation; the reference's EK100 protocol)")
    g.add_argument("--anticipation-time", type=float, default=d.anticipation_time,
                   help="seconds between the end of the observed clip (the video's last frame) and the action")
    g.add_argument("--frames-per-second", type=float, default=d.frames_per_second,
                   help="frame rate of the sampled clip (the video's fps / --frame-step): turns the anticipation "
                        "time into predictor positions")
    g.add_argument("--num-output-frames", type=int, default=d.num_output_frames,
                   help="frames the predictor fills in (reference: 2, one tubelet)")
    g.add_argument("--num-steps", type=int, default=d.num_steps, help="predictor steps (reference: 1)")
    g.add_argument("--predictor-config", default=d.predictor_config,
                   help="pretraining predictor: an encoder preset (vit_large, ...: the EK100 predictor) or a "
                        "JSON/YAML file with a 'pretrain_predictor' mapping; empty: --model-config's "
                        "'pretrain_predictor', else the config our pretraining checkpoints embed")
    g.add_argument("--predictor-checkpoint", default=d.predictor_checkpoint,
                   help="checkpoint with the 'predictor' section (default: --checkpoint)")
    for head in ("verb", "noun", "action"):
        g.add_argument(f"--{head}-classes", type=int, help=f"integer {head} ids: number of {head} classes "
                                                          "(default: largest id + 1)")
    g = p.add_argument_group("probe and optimisation (reference recipe)")
    g.add_argument("--num-heads", type=int, default=d.num_heads, help="attention heads of the probe")
    g.add_argument("--depth", type=int, default=d.depth, help="probe blocks (num_probe_blocks)")
    g.add_argument("--epochs", type=int, default=d.epochs)
    g.add_argument("--batch-size", type=int, default=d.batch_size)
    g.add_argument("--lrs", type=float, nargs="+", default=list(DEFAULT_LRS), help="learning-rate grid")
    g.add_argument("--wds", type=float, nargs="+", default=list(DEFAULT_WDS), help="weight-decay grid")
    g.add_argument("--warmup-epochs", type=float, default=d.warmup_epochs)
    g.add_argument("--linear-baseline", action="store_true",
                   help="also train linear probes on mean-pooled tokens (same grid and selection)")
    g.add_argument("--seed", type=int, default=d.seed)
    g = p.add_argument_group("run")
    g.add_argument("--out", required=True, help="run directory (probe.pt, results.json, metrics.csv, PNGs)")
    g.add_argument("--cache", help="feature cache directory (default RUN/features)")
    g.add_argument("--device", default=d.device, help="cpu | cuda | cuda:N | auto")
    g.add_argument("--threads", type=int, default=d.threads, help="CPU threads (0: library default)")
    g.add_argument("--encode-batch", type=int, default=d.encode_batch, help="videos per encoder batch")
    g.add_argument("--no-tensorboard", action="store_true", help="no TensorBoard logs (RUN/tb)")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    g.add_argument("--debug", action="store_true", help="show the traceback of any error (also VJEPA_DEBUG=1)")


def add_arguments(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``probe`` subcommand to ``vjepa-train``'s subparsers; returns its parser."""
    p = subparsers.add_parser("probe", help=HELP, description=__doc__.split("\n\n")[0] + "\n\n" +
                              __doc__.split("\n\n")[2], formatter_class=argparse.RawDescriptionHelpFormatter)
    _fill(p)
    return p


def config_from_args(args: argparse.Namespace) -> Any:
    """The :class:`~vjepa_training.train.probe.ProbeTrainConfig` of parsed arguments."""
    from .train.probe import ProbeTrainConfig

    return ProbeTrainConfig(
        checkpoint=args.checkpoint, model_config=args.model_config, checkpoint_key=args.checkpoint_key,
        train=list(args.train), val=list(args.val), test=list(args.test), out=args.out,
        clip_labels=args.clip_labels, window_stride=args.window_stride, num_classes=args.num_classes,
        frames_per_clip=args.frames_per_clip, frame_step=args.frame_step, num_segments=args.segments,
        num_views=args.views, clips_per_video=args.clips_per_video, crop=args.crop,
        out_layers=tuple(args.out_layers) if args.out_layers else None, num_heads=args.num_heads, depth=args.depth,
        epochs=args.epochs, batch_size=args.batch_size, lrs=tuple(args.lrs), wds=tuple(args.wds),
        warmup_epochs=args.warmup_epochs, linear_baseline=args.linear_baseline, seed=args.seed,
        device=args.device, threads=args.threads, cache=args.cache, encode_batch=args.encode_batch,
        tensorboard=not args.no_tensorboard, progress=not args.no_progress, task=args.task,
        anticipation_time=args.anticipation_time, frames_per_second=args.frames_per_second,
        num_output_frames=args.num_output_frames, num_steps=args.num_steps, predictor_config=args.predictor_config,
        predictor_checkpoint=args.predictor_checkpoint, verb_classes=args.verb_classes,
        noun_classes=args.noun_classes, action_classes=args.action_classes)


def _summary(results: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers printed at the end (the full report is RUN/results.json)."""
    out: dict[str, Any] = {"probe": results["probe"], "chance": results["chance"]}
    anticipation = results.get("task") == "anticipation"
    for kind in ("attentive", "linear"):
        if kind in results:
            r = results[kind]
            out[kind] = {"head": f"lr {r['lr']:g} wd {r['weight_decay']:g}"}
            for s in ("val", "test"):
                if s not in r:
                    continue
                if anticipation:  # mean-class recall@5 (EK100's metric) and top-1 per head
                    out[kind].update({f"{s}_{h}_{m}": round(r[s][f"{h}_{m}"], 4)
                                      for h in ("action", "verb", "noun") for m in ("recall5", "top1")})
                else:
                    out[kind][f"{s}_top1"] = round(r[s]["top1"], 4)
    out["seconds"] = results["seconds"]
    return out


def _run(args: argparse.Namespace) -> int:
    from .train.probe import run_probe_training

    logging.basicConfig(level=logging.INFO, format="[%(asctime)s probe] %(levelname)s %(message)s",
                        datefmt="%H:%M:%S")
    results = run_probe_training(config_from_args(args))
    print(json.dumps(_summary(results), indent=1))
    return 0


def run(args: argparse.Namespace) -> int:
    """Run a parsed ``vjepa-train probe`` command; every failure ends with one ``error:`` line and status 2 (bad
    input) or 1 (internal error)."""
    return run_guarded("vjepa-train probe", lambda: _run(args), debug=args.debug)


def build_parser() -> argparse.ArgumentParser:
    """A stand-alone parser (``python -m vjepa_training.probe_cli``) with the same flags as ``vjepa-train probe``."""
    parser = argparse.ArgumentParser(prog="vjepa-train probe", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    _fill(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """``python -m vjepa_training.probe_cli`` (the same as ``vjepa-train probe``)."""
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

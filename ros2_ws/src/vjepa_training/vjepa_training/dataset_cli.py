"""``vjepa-dataset``: turn rosbags and DROID raw episodes into training clips, cache latents, recover bags.

Usage::

    vjepa-dataset build BAG_OR_DIR... --out DIR [--fps 4] [--image-topic T] [--pose-topic T]
                        [--gripper-topic T] [--image-size 256] [--summary-json PATH]
    vjepa-dataset import-droid RAW_DIR... --out DIR [--fps 4] [--camera left_mp4_path]
                        [--convention physical|droid] [--sampling time|legacy-stride] [--crop center|droid]
    vjepa-dataset encode DATASET --checkpoint CKPT --encoder vit_giant|config.json [--encoder-key target_encoder]
    vjepa-dataset recover BAG [--out NEW_BAG]
    vjepa-dataset info DATASET

Exit status: 0 done (skipped sources are listed in the summary), 1 nothing could be built or recovered
(or an unreadable bag), 2 bad arguments or input. Every failure ends with one ``vjepa-dataset <command>:
error: ...`` line on stderr (``--debug`` or ``VJEPA_DEBUG=1`` shows the traceback). See docs/data.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .cli_errors import run_guarded

__all__ = ["NothingBuilt", "build_parser", "main"]


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, type=Path, help="dataset directory (created; resumed if it exists)")
    p.add_argument("--fps", type=float, default=4.0, help="frames per second to sample (default 4)")
    p.add_argument("--image-size", type=int, default=256, help="square frame size in pixels (default 256)")
    p.add_argument("--no-crop", action="store_true", help="resize to a square without the centre crop")
    p.add_argument("--frame-tolerance", type=float, default=None,
                   help="max seconds between a chosen frame and its ideal time (default a quarter period)")
    p.add_argument("--min-frames", type=int, default=2, help="drop episodes shorter than this (default 2)")
    p.add_argument("--shard-frames", type=int, default=2048, help="frames per shard (default 2048)")
    p.add_argument("--summary-json", type=Path, default=None, help="also write the summary to this file")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_debug(p: argparse.ArgumentParser) -> None:
    p.add_argument("--debug", action="store_true", help="show the traceback of any error (also VJEPA_DEBUG=1)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for docs and tests)."""
    from vjepa_core.franka import MAX_GRIPPER_WIDTH

    from .data.build import DEFAULT_GRIPPER_TOPIC, DEFAULT_IMAGE_TOPIC, DEFAULT_POSE_TOPIC
    from .data.latents import DEFAULT_ENCODER_KEY

    parser = argparse.ArgumentParser(prog="vjepa-dataset", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    b = sub.add_parser("build", help="rosbags (mcap/sqlite3) -> clip dataset")
    b.add_argument("inputs", nargs="+", type=Path, help="bag directories, .mcap/.db3 files, or folders of bags")
    _add_common(b)
    b.add_argument("--image-topic", default=DEFAULT_IMAGE_TOPIC,
                   help="Image or CompressedImage topic (<topic>/compressed is tried too)")
    b.add_argument("--pose-topic", default=DEFAULT_POSE_TOPIC, help="end-effector PoseStamped topic")
    b.add_argument("--gripper-topic", default=DEFAULT_GRIPPER_TOPIC,
                   help="gripper JointState (or Float32/64 closedness) topic; '' for none")
    b.add_argument("--max-skew", type=float, default=0.1,
                   help="oldest pose/gripper sample allowed before a frame, seconds (default 0.1)")
    b.add_argument("--gripper-max-width", type=float, default=MAX_GRIPPER_WIDTH,
                   help=f"open gripper width, m (default {MAX_GRIPPER_WIDTH}, the Franka Hand)")
    b.add_argument("--time-source", choices=("header", "bag"), default="header",
                   help="align on message header stamps (default) or bag receive times")

    d = sub.add_parser("import-droid", help="DROID raw episodes -> clip dataset")
    d.add_argument("inputs", nargs="+", type=Path, help="episode directories (with trajectory.h5) or parents")
    _add_common(d)
    d.add_argument("--camera", default="left_mp4_path",
                   help="metadata key of the video (default left_mp4_path, as V-JEPA 2-AC), or ext1/ext2/wrist")
    d.add_argument("--convention", choices=("physical", "droid"), default="physical",
                   help="physical (default): --fps frames per physical second, square centre crop; droid: what "
                        "the released V-JEPA 2-AC was trained on, for fine-tuning from it (= --sampling "
                        "legacy-stride --crop droid)")
    d.add_argument("--sampling", choices=("time", "legacy-stride"), default=None,
                   help="time: sample on the control clock; legacy-stride: every ceil(container_fps/fps)-th row, "
                        "as the reference loader (15 rows, ~1 s, per step for 60 fps MP4s at --fps 4; vjepa2#183)")
    d.add_argument("--crop", choices=("center", "droid"), default=None,
                   help="center: largest square; droid: the reference AC training crop (full height x 1.35 height, "
                        "stretched to the square)")

    e = sub.add_parser("encode", help="cache frozen-encoder tokens for every frame of a dataset")
    e.add_argument("dataset", type=Path)
    e.add_argument("--checkpoint", required=True, type=Path, help="V-JEPA 2 .pt checkpoint")
    e.add_argument("--encoder", required=True,
                   help="encoder preset (vit_large, vit_huge, vit_giant, vit_giant_384) or a JSON file with "
                        "EncoderConfig fields (or an 'encoder' section)")
    e.add_argument("--encoder-key", default=DEFAULT_ENCODER_KEY,
                   help=f"checkpoint section to encode with: {DEFAULT_ENCODER_KEY} (default; the EMA encoder "
                        "post-training uses) or encoder. Part of the cache key")
    e.add_argument("--batch-size", type=int, default=8)
    e.add_argument("--dtype", choices=("float16", "float32"), default="float16")
    e.add_argument("--layer-norm", action="store_true", help="store layer-normed tokens")
    e.add_argument("--name", default=None,
                   help="cache name (default: model id, section, image size, dtype, e.g. "
                        "vit_giant_1a2b3c4d5e6f.target_encoder.256px.f16)")
    e.add_argument("--device", default="cpu")
    e.add_argument("--quiet", action="store_true")

    r = sub.add_parser("recover", help="salvage a bag left unclosed by a killed recorder")
    r.add_argument("bag", type=Path)
    r.add_argument("--out", type=Path, default=None, help="new bag directory (default <bag>_recovered)")

    i = sub.add_parser("info", help="print a dataset's episodes and frames")
    i.add_argument("dataset", type=Path)
    for p in (b, d, e, r, i):
        _add_debug(p)
    return parser


class NothingBuilt(Exception):
    """No episode at all could be built: every source was skipped (exit status 1)."""


def _finish(summary: dict[str, Any], path: Path | None) -> int:
    text = json.dumps(summary, indent=1)
    print(text)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n", encoding="utf-8")
    if summary["episodes"] > 0:
        return 0
    skipped = summary.get("skipped", [])
    if skipped:
        first = skipped[0]
        raise NothingBuilt(f"nothing built: {len(skipped)} source(s) skipped, e.g. {first['source']}: "
                           f"{first['reason']}")
    raise NothingBuilt("nothing built: no episode in the sources")


def _cmd_build(a: argparse.Namespace) -> int:
    from .data.build import BuildConfig, build_dataset

    cfg = BuildConfig(fps=a.fps, image_size=a.image_size, crop=not a.no_crop, image_topic=a.image_topic,
                      pose_topic=a.pose_topic, gripper_topic=a.gripper_topic, max_skew_s=a.max_skew,
                      frame_tolerance_s=a.frame_tolerance, min_frames=a.min_frames,
                      gripper_max_width=a.gripper_max_width, time_source=a.time_source,
                      shard_frames=a.shard_frames)
    return _finish(build_dataset(a.inputs, a.out, cfg, progress=not a.quiet), a.summary_json)


def _cmd_droid(a: argparse.Namespace) -> int:
    from .data.droid import CONVENTIONS, DroidConfig, import_droid

    sampling, crop_style = CONVENTIONS[a.convention]
    if a.no_crop and a.crop is None:
        crop_style = "center"  # --no-crop: no crop at all, whatever the convention's crop
    cfg = DroidConfig(fps=a.fps, image_size=a.image_size, crop=not a.no_crop, camera=a.camera,
                      frame_tolerance_s=a.frame_tolerance, min_frames=a.min_frames, shard_frames=a.shard_frames,
                      sampling=a.sampling or sampling, crop_style=a.crop or crop_style)
    return _finish(import_droid(a.inputs, a.out, cfg, progress=not a.quiet), a.summary_json)


def _cmd_encode(a: argparse.Namespace) -> int:
    from .data.latents import encode_dataset, encoder_from_checkpoint

    enc: str | dict[str, Any] = a.encoder
    if a.encoder.endswith(".json"):
        try:
            enc = json.loads(Path(a.encoder).read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"--encoder {a.encoder} is not valid JSON: {exc}") from None
        enc = enc.get("encoder", enc)
    from .data.shards import load_index

    load_index(a.dataset)  # a missing or bad dataset fails before the (possibly slow) model load
    fn, ident = encoder_from_checkpoint(a.checkpoint, enc, encoder_key=a.encoder_key, device=a.device)
    out = encode_dataset(a.dataset, fn, ident, batch_size=a.batch_size, dtype=a.dtype, layer_norm=a.layer_norm,
                         name=a.name, progress=not a.quiet)
    print(json.dumps({"cache": str(out), "name": out.name, "model_id": ident.model_id,
                      "encoder_key": ident.encoder_key, "image_size": ident.image_size,
                      "normalized": a.layer_norm, "dtype": a.dtype}))
    return 0


def _cmd_recover(a: argparse.Namespace) -> int:
    from .data.bagio import recover_bag

    rep = recover_bag(a.bag, a.out)
    print(json.dumps({"output": str(rep.output), "messages": rep.messages, "counts": rep.counts,
                      "notes": rep.notes}, indent=1))
    if not rep.messages:
        raise NothingBuilt(f"nothing recovered from {a.bag}" + (f": {rep.notes[-1]}" if rep.notes else ""))
    return 0


def _cmd_info(a: argparse.Namespace) -> int:
    from .data.shards import load_index

    index = load_index(a.dataset)
    eps = index["episodes"]
    print(json.dumps({"config": index["config"], "shards": len(index["shards"]), "episodes": len(eps),
                      "frames": sum(e["length"] for e in eps),
                      "skipped": {k: v["reason"] for k, v in index["sources"].items() if v["status"] == "skipped"},
                      "tasks": sorted({e.get("task", "") for e in eps})}, indent=1))
    return 0


def _status(exc: BaseException) -> int:
    """Nothing built or recovered, or an unreadable bag: 1; other bad arguments or input: 2."""
    from .data.bagio import BagError

    return 1 if isinstance(exc, (NothingBuilt, BagError)) else 2


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``vjepa-dataset``; every failure ends with one ``error:`` line on stderr."""
    from .data.bagio import BagError

    args = build_parser().parse_args(argv)
    handlers = {"build": _cmd_build, "import-droid": _cmd_droid, "encode": _cmd_encode,
                "recover": _cmd_recover, "info": _cmd_info}
    return run_guarded(f"vjepa-dataset {args.command}", lambda: handlers[args.command](args), debug=args.debug,
                       expected=(BagError, NothingBuilt), status=_status)


if __name__ == "__main__":
    sys.exit(main())

"""``vjepa-export``: ONNX export with parity check, TensorRT engines with an explicit cache, checkpoint
inspection.

    vjepa-export onnx --checkpoint CKPT --config CONFIG.json --out DIR [--frames 1 2 3] [--encoder-frames 1]
                      [--step-frames N] [--external-data auto|yes|no] [--check-threads N]
    vjepa-export trt DIR [--precision fp16] [--cache-dir D] [--force-rebuild] [--max-batch 800]
    vjepa-export inspect CKPT [--encoder PRESET|JSON] [--predictor PRESET|JSON]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["main"]


def _cfg_arg(value: str | None) -> object:
    """A preset name or a JSON file / inline JSON dict."""
    if value is None:
        return None
    p = Path(value)
    if p.is_file():
        return json.loads(p.read_text())
    if value.lstrip().startswith("{"):
        return json.loads(value)
    return value


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="vjepa-export", description="Export V-JEPA 2 / V-JEPA 2-AC for fast inference.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    o = sub.add_parser("onnx", help="export encoder / AC predictor to ONNX and check parity with torch")
    o.add_argument("--checkpoint", required=True, type=Path, help=".pt checkpoint (released format)")
    o.add_argument("--config", required=True, type=Path, help="JSON with 'encoder' and 'predictor' dicts")
    o.add_argument("--out", required=True, type=Path, help="output directory")
    o.add_argument("--frames", type=int, nargs="+", default=[1, 2, 3], help="predictor frame counts (one graph each)")
    o.add_argument("--encoder-frames", type=int, nargs="+", default=[1], help="frames per encoder graph")
    o.add_argument("--no-encoder", action="store_true")
    o.add_argument("--no-predictor", action="store_true")
    o.add_argument("--opset", type=int, default=17)
    o.add_argument("--tolerance", type=float, default=1e-4, help="max abs error onnxruntime vs torch")
    o.add_argument("--step-frames", type=int, default=None,
                   help="KV-cached step graphs for frame indices 0..N-1 (default: the largest --frames; 0: none)")
    o.add_argument("--external-data", choices=["auto", "yes", "no"], default="auto",
                   help="weights in <graph>.onnx.data beside each graph (auto: graphs over 1.5 GB, e.g. ViT-g)")
    o.add_argument("--check-threads", type=int, default=1,
                   help="onnxruntime CPU threads for the parity check (0 = all cores)")
    t = sub.add_parser("trt", help="build TensorRT engines for an ONNX export directory (cached)")
    t.add_argument("export_dir", type=Path)
    t.add_argument("--precision", choices=["fp16", "fp32"], default="fp16")
    t.add_argument("--cache-dir", type=Path, default=None, help="engine cache (default: EXPORT_DIR/trt_cache)")
    t.add_argument("--force-rebuild", action="store_true", help="rebuild even if a cached engine matches")
    t.add_argument("--max-batch", type=int, default=800, help="largest batch (CEM samples per call)")
    i = sub.add_parser("inspect", help="describe a checkpoint (keys, sizes, detected architecture)")
    i.add_argument("checkpoint", type=Path)
    i.add_argument("--encoder", default=None, help="encoder preset or JSON to check against")
    i.add_argument("--predictor", default=None, help="AC predictor preset or JSON to check against")
    return ap


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``vjepa-export``; returns the exit status (2 on a clear, expected error)."""
    args = _parser().parse_args(argv)
    from ..inference.base import BackendError

    try:
        if args.cmd == "onnx":
            from ..export import export_onnx, load_models

            enc, pred, cfg = load_models(args.checkpoint, args.config, not args.no_encoder, not args.no_predictor)
            manifest = export_onnx(args.out, enc, pred, predictor_frames=args.frames,
                                   encoder_frames=args.encoder_frames, opset=args.opset, tolerance=args.tolerance,
                                   config=cfg, step_frames=args.step_frames,
                                   external_data={"auto": None, "yes": True, "no": False}[args.external_data],
                                   check_threads=args.check_threads)
            n = len(manifest["encoder"]) + len(manifest["predictor"]) + len(manifest["predictor_step"])
            print(f"wrote {n} graph(s) and manifest.json to {args.out}")
        elif args.cmd == "trt":
            from ..export import build_trt_engines

            index = build_trt_engines(args.export_dir, args.precision, args.cache_dir, args.force_rebuild,
                                      args.max_batch)
            print(f"{len(index)} engine(s) listed in {args.export_dir / 'engines.json'}")
        else:
            from ..inspect_ckpt import format_report, inspect_checkpoint

            if not args.checkpoint.is_file():
                raise FileNotFoundError(f"checkpoint {args.checkpoint} not found")
            rep = inspect_checkpoint(args.checkpoint, _cfg_arg(args.encoder), _cfg_arg(args.predictor))
            print(format_report(rep))
    except (BackendError, RuntimeError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

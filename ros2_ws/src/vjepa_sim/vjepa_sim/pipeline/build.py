"""``vjepa-sim build``: turn the collected bags into a clip dataset (what ``vjepa-dataset build`` does).

Calls the project's dataset builder (``vjepa_training.data.build.build_dataset``, the code behind the
``vjepa-dataset`` CLI) on ``WORKDIR/bags``: frames on
a fixed ``fps`` grid, nearest-before states, actions = pose differences, resized to ``image_size``. The
builder is resumable (bags already in a committed shard are not rebuilt), so re-running after more
``collect`` episodes only adds the new ones. The last ``heldout_episodes`` bags (by collect index) go to a
separate dataset, ``WORKDIR/dataset_heldout``, used by ``vjepa-sim action-error``; training never sees them.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from .settings import Settings, add_common_arguments, load_settings

__all__ = ["add_arguments", "build", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """CLI of ``vjepa-sim build``."""
    add_common_arguments(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def build(settings: Settings, quiet: bool = False) -> dict:
    """Build (or extend) ``WORKDIR/dataset`` (training bags) and ``WORKDIR/dataset_heldout`` (the last
    ``heldout_episodes`` bags by collect index). Returns ``{"train": summary, "heldout": summary}``."""
    b = settings.section("build")
    bags = settings.bags
    manifest_path = bags / "collect.json"
    if not manifest_path.is_file():
        raise ValueError(f"no collected episodes in {bags} (run `vjepa-sim collect` first)")
    manifest = json.loads(manifest_path.read_text())["episodes"]
    inputs = [str(bags / manifest[k]["bag"]) for k in sorted(manifest, key=int)]
    held = int(b["heldout_episodes"])
    if len(inputs) <= held:
        raise ValueError(f"{len(inputs)} collected episodes but heldout_episodes is {held}: collect more")
    cut = len(inputs) - held
    out = {"train": _build_one(inputs[:cut], settings.dataset, b, quiet)}
    if held > 0:
        out["heldout"] = _build_one(inputs[cut:], settings.heldout_dataset, b, quiet)
    return out


def _build_one(inputs: list, dataset: Path, b: dict, quiet: bool) -> dict:
    """One dataset build (resumable; the ``vjepa-dataset build`` code); returns its summary, also written to
    ``dataset/build_summary.json`` for ``vjepa-sim export``'s provenance."""
    from vjepa_training.data.build import BuildConfig, build_dataset

    cfg = BuildConfig(fps=float(b["fps"]), image_size=int(b["image_size"]), min_frames=8)
    summary = build_dataset(inputs, dataset, cfg, progress=not quiet)
    if summary.get("episodes", 0) == 0:
        raise RuntimeError(f"dataset build {dataset}: no episode built from {len(inputs)} bags "
                           f"(skipped: {summary.get('skipped', [])[:3]})")
    (dataset / "build_summary.json").write_text(json.dumps(summary, indent=1, default=str))
    return summary


def run(args: argparse.Namespace) -> int:
    """Entry point of ``vjepa-sim build``."""
    s = load_settings(args.pipeline, args.workdir)
    t0 = time.monotonic()
    summaries = build(s, args.quiet)
    for name, summary in summaries.items():
        print(f"build: {name}: {summary['episodes']} episodes, {summary['frames']} frames in {summary['out']} "
              f"({len(summary.get('skipped', []))} bags skipped)")
    print(f"build: done in {time.monotonic() - t0:.0f} s")
    return 0

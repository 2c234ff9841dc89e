"""``vjepa-sim build``: turn the collected bags into a clip dataset with ``vjepa-dataset build``.

Runs the project's dataset builder (the same code as the ``vjepa-dataset`` CLI) on ``WORKDIR/bags``: frames on
a fixed ``fps`` grid, nearest-before states, actions = pose differences, resized to ``image_size``. The
builder is resumable (bags already in a committed shard are not rebuilt), so re-running after more
``collect`` episodes only adds the new ones. ``split.json`` names the held-out episodes (the last
``heldout_episodes`` bags by collect index) used by ``vjepa-sim action-error``; training uses all others.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from .settings import Settings, add_common_arguments, load_settings

__all__ = ["add_arguments", "build", "run", "load_split"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """CLI of ``vjepa-sim build``."""
    add_common_arguments(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def build(settings: Settings, quiet: bool = False) -> dict:
    """Build (or extend) ``WORKDIR/dataset`` from ``WORKDIR/bags``; write ``split.json``. Returns the summary."""
    from vjepa_training.dataset_cli import main as dataset_main

    b = settings.section("build")
    bags = settings.bags
    manifest_path = bags / "collect.json"
    if not manifest_path.is_file():
        raise ValueError(f"no collected episodes in {bags} (run `vjepa-sim collect` first)")
    manifest = json.loads(manifest_path.read_text())["episodes"]
    inputs = [str(bags / manifest[k]["bag"]) for k in sorted(manifest, key=int)]
    if not inputs:
        raise ValueError(f"{manifest_path} lists no episodes")
    out = settings.dataset
    summary_path = out.parent / "build_summary.json"
    argv = ["build", *inputs, "--out", str(out), "--fps", str(b["fps"]), "--image-size", str(b["image_size"]),
            "--summary-json", str(summary_path), "--min-frames", "8"]
    if quiet:
        argv.append("--quiet")
    rc = dataset_main(argv)
    if rc != 0:
        raise RuntimeError(f"vjepa-dataset build failed with exit code {rc}")
    summary = json.loads(summary_path.read_text())
    write_split(out, inputs, int(b["heldout_episodes"]))
    return summary


def write_split(dataset: Path, bags_in_order: list, heldout: int) -> dict:
    """``split.json``: dataset episode ids of the train and held-out bags (held out = the last ``heldout``)."""
    index = json.loads((dataset / "index.json").read_text())
    held_bags = {Path(p).name for p in bags_in_order[len(bags_in_order) - heldout:]} if heldout > 0 else set()
    train, held = [], []
    for ep in index["episodes"]:
        bag = Path(str(ep.get("source", ""))).name
        bag_dir = Path(str(ep.get("source", ""))).parent.name
        (held if (bag in held_bags or bag_dir in held_bags) else train).append(ep["id"])
    if heldout > 0 and not held:
        raise RuntimeError("no dataset episode matches the held-out bags (check the index's 'source' fields)")
    split = {"train": train, "heldout": held, "heldout_bags": sorted(held_bags)}
    (dataset / "split.json").write_text(json.dumps(split, indent=1))
    return split


def load_split(dataset: Path) -> dict:
    """The ``split.json`` written by :func:`build`."""
    path = Path(dataset) / "split.json"
    if not path.is_file():
        raise ValueError(f"{path} missing: run `vjepa-sim build` first")
    return json.loads(path.read_text())


def run(args: argparse.Namespace) -> int:
    """Entry point of ``vjepa-sim build``."""
    s = load_settings(args.pipeline, args.workdir)
    t0 = time.monotonic()
    summary = build(s, args.quiet)
    split = load_split(s.dataset)
    print(f"build: {summary['episodes']} episodes, {summary['frames']} frames in {s.dataset} "
          f"({len(split['heldout'])} held out; {len(summary.get('skipped', []))} skipped) "
          f"in {time.monotonic() - t0:.0f} s")
    return 0

"""Dataset pipeline speed: bag -> dataset build throughput and clip loading throughput, on this machine.

    .venv/bin/python bench/bench_data.py [--seconds 20] [--load-batches 30] [--out bench/results/data.json]

Build: synthetic recordings (rgb8 640x480 camera at 15 Hz, pose at 100 Hz, gripper at 30 Hz, jitter) written
as real mcap and sqlite3 bags with the rosbags writer, then `build_dataset` at 4 fps, 256 px; rows report
dataset frames per second of build time (bag reading, decoding, alignment, resize, shard writing) and bag
messages per second. A PNG CompressedImage bag is measured beside the raw one.
Load: the training loader itself (``vjepa_training.train.datasets``: ``ShardClips`` in a ``MixtureDataset``
through ``make_loader``, the resumable global order ``vjepa-train`` reads with), 8-frame clips at 256 px as
post-training reads them (ImageNet-normalised float frames, states, actions), batch 8, with 2 workers and with
0 beside it; rows report clips per second.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(HERE, "..", "ros2_ws", "src", "vjepa_training"),
                os.path.join(HERE, "..", "ros2_ws", "src", "vjepa_core")]

import torch  # noqa: E402

from vjepa_training.data.build import BuildConfig, build_dataset  # noqa: E402
from vjepa_training.data.synthetic import write_synthetic_bag  # noqa: E402
from vjepa_training.train.datasets import MixtureDataset, ShardClips, make_loader  # noqa: E402


def bench_build(tmp: str, storage: str, compressed: str, seconds: float) -> tuple[dict, str]:
    bag = os.path.join(tmp, f"bag_{storage}_{compressed or 'raw'}")
    write_synthetic_bag(bag, storage, seconds=seconds, camera_hz=15, pose_hz=100, gripper_hz=30,
                        compressed=compressed, image_size=(480, 640), seed=1)
    out = os.path.join(tmp, f"ds_{storage}_{compressed or 'raw'}")
    t0 = time.perf_counter()
    summary = build_dataset([bag], out, BuildConfig(fps=4, image_size=256), progress=False)
    dt = time.perf_counter() - t0
    msgs = int(seconds * (15 + 100 + 30))
    row = {"case": f"build {storage} {'CompressedImage png' if compressed else 'Image rgb8'} 640x480",
           "frames": summary["frames"], "seconds": round(dt, 3), "frames_per_s": round(summary["frames"] / dt, 1),
           "bag_msgs_per_s": round(msgs / dt, 1), "bag_mb": round(sum(
               os.path.getsize(os.path.join(bag, f)) for f in os.listdir(bag)) / 1e6, 1)}
    return row, out


def bench_load(root: str, workers: int, batches: int) -> dict:
    ds = MixtureDataset([ShardClips(root, num_frames=8, frame_step=1, output="float")], [1.0])
    loader, _ = make_loader(ds, batch_size=8, seed=0, num_workers=workers)
    it = iter(loader)  # endless: the sampler yields the micro-batches of step 0, 1, 2, ...
    next(it)  # start the workers
    n, t0 = 0, time.perf_counter()
    for _ in range(batches):
        n += next(it)["frames"].shape[0]
    dt = time.perf_counter() - t0
    del it, loader
    return {"case": f"training loader (make_loader): 8x256px clips, batch 8, {workers} workers", "clips": n,
            "seconds": round(dt, 3),
            "clips_per_s": round(n / dt, 1), "dataset_clips": len(ds)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="length of each synthetic recording")
    ap.add_argument("--load-batches", type=int, default=30, help="batches timed per loader case")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "data.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    tmp = tempfile.mkdtemp(prefix="bench_data_")
    try:
        rows = []
        for storage, comp in (("mcap", ""), ("sqlite3", ""), ("mcap", "png")):
            row, out = bench_build(tmp, storage, comp, args.seconds)
            rows.append(row)
            if storage == "mcap" and not comp:
                ds_root = out
        load_rows = [bench_load(ds_root, w, args.load_batches) for w in (0, 2)]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                          "python": platform.python_version()},
              "recording_seconds": args.seconds, "build": rows, "load": load_rows}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
    print("| case | frames | s | frames/s | bag msgs/s | bag MB |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['case']} | {r['frames']} | {r['seconds']} | {r['frames_per_s']} | {r['bag_msgs_per_s']} "
              f"| {r['bag_mb']} |")
    print("\n| case | clips | s | clips/s |\n|---|---|---|---|")
    for r in load_rows:
        print(f"| {r['case']} | {r['clips']} | {r['seconds']} | {r['clips_per_s']} |")


if __name__ == "__main__":
    main()

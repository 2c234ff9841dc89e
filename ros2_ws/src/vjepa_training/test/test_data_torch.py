"""Torch clip datasets over built shards, multi-worker/distributed sampling, and the latent cache."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vjepa_core.pose import poses_to_diff
from vjepa_training.data.build import BuildConfig, build_dataset
from vjepa_training.data.latents import encode_dataset
from vjepa_training.data.shards import DatasetIndex
from vjepa_training.data.synthetic import write_synthetic_bag
from vjepa_training.data.torch_data import ClipDataset, RandomClipStream, make_clip_loader
from vjepa_training.dataset_cli import main as cli_main

REPO = Path(__file__).resolve().parents[4]
FIXTURES = REPO / "tests" / "fixtures"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    for i, seconds in enumerate((4.0, 3.0)):
        write_synthetic_bag(root / "bags" / f"ep{i}", "mcap", seconds=seconds, seed=i)
    summary = build_dataset([root / "bags"], root / "ds", BuildConfig(image_size=32, shard_frames=1),
                            progress=False)
    assert summary["episodes"] == 2
    return root / "ds"


def test_clip_contents(dataset):
    torch.set_num_threads(1)
    ds = ClipDataset(dataset, frames_per_clip=4)
    ix = DatasetIndex(dataset)
    lengths = [e["length"] for e in ix.episodes]
    assert len(ds) == sum(n - 3 for n in lengths)
    item = ds[5]
    assert item["frames"].shape == (4, 3, 32, 32) and item["frames"].dtype == torch.uint8
    assert item["states"].shape == (4, 7) and item["actions"].shape == (3, 7)
    ep, start = item["episode_index"], item["start"]
    states = np.asarray(ix.episode_rows(ep, "states"))[start: start + 4]
    np.testing.assert_allclose(item["states"].numpy(), states, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(item["actions"].numpy(), poses_to_diff(states[:-1], states[1:]), atol=1e-6)
    frames = np.asarray(ix.episode_rows(ep, "frames"))[start: start + 4]
    np.testing.assert_array_equal(item["frames"].permute(0, 2, 3, 1).numpy(), frames)
    assert item["timestamps"][0] == 0 and abs(float(item["timestamps"][1]) - 0.25) < 0.07
    # frame_step 2 gives actions between every other frame; float output is ImageNet-normalised.
    d2 = ClipDataset(dataset, frames_per_clip=3, frame_step=2, output="float")
    it = d2[0]
    s = np.asarray(ix.episode_rows(0, "states"))[[0, 2, 4]]
    np.testing.assert_allclose(it["actions"].numpy(), poses_to_diff(s[:-1], s[1:]), atol=1e-6)
    assert it["frames"].dtype == torch.float32 and abs(float(it["frames"].mean())) < 3
    with pytest.raises(ValueError, match="no episode has"):
        ClipDataset(dataset, frames_per_clip=100)


def test_loader_two_workers_and_distributed_split(dataset):
    ds = ClipDataset(dataset, frames_per_clip=4, clip_stride=2)
    loader = make_clip_loader(ds, batch_size=2, shuffle=True, num_workers=2, drop_last=False)
    seen = []
    for batch in loader:
        assert batch["frames"].shape[1:] == (4, 3, 32, 32) and batch["actions"].shape[1:] == (3, 7)
        seen += list(zip(batch["episode_index"].tolist(), batch["start"].tolist()))
    assert sorted(seen) == sorted(map(tuple, ds.starts.tolist()))
    parts = []
    for rank in range(2):
        ld = make_clip_loader(ds, batch_size=1, shuffle=True, num_workers=0, rank=rank, world_size=2)
        parts.append({(int(b["episode_index"]), int(b["start"])) for b in ld})
    assert parts[0].isdisjoint(parts[1]) and len(parts[0] | parts[1]) >= len(ds) - 1


def test_random_stream_distinct_per_worker_and_reproducible(dataset):
    stream = RandomClipStream(dataset, frames_per_clip=4, clips_per_epoch=12, seed=3, rank=0, world_size=1)
    a = [(int(b["episode_index"]), int(b["start"])) for b in make_clip_loader(stream, 1, num_workers=2)]
    b = [(int(x["episode_index"]), int(x["start"])) for x in make_clip_loader(stream, 1, num_workers=2)]
    assert len(a) == 12 and a == b
    other = RandomClipStream(dataset, frames_per_clip=4, clips_per_epoch=12, seed=3, rank=1, world_size=2)
    c = [(int(x["episode_index"]), int(x["start"])) for x in other]
    assert len(c) == 6 and c != a[:6]


def test_latent_cache_with_callable_encoder(dataset):
    def encode(frames):  # a deterministic stand-in encoder: 2 tokens of 3 dims per frame
        f = frames.astype(np.float32)
        return np.stack([f.mean(axis=(1, 2)), f.std(axis=(1, 2))], axis=1)

    out = encode_dataset(dataset, encode, "toy@1", batch_size=5, dtype="float32", progress=False)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["tokens_per_frame"] == 2 and meta["dim"] == 3
    ds = ClipDataset(dataset, frames_per_clip=4, latents=out.name)
    item = ds[3]
    assert "frames" not in item and item["tokens"].shape == (4, 2, 3)
    ix = DatasetIndex(dataset)
    frames = np.asarray(ix.episode_rows(item["episode_index"], "frames"))[item["start"]: item["start"] + 4]
    np.testing.assert_allclose(item["tokens"].numpy(), encode(frames), rtol=1e-5)
    with pytest.raises(ValueError, match="holds tokens of"):
        encode_dataset(dataset, encode, "other@2", name=out.name, progress=False)


def test_encode_cli_with_tiny_checkpoint(dataset):
    ckpt = FIXTURES / "parity_tiny_a" / "checkpoint.pt"
    assert ckpt.exists(), f"fixture missing: {ckpt}"
    torch.set_num_threads(1)
    rc = cli_main(["encode", str(dataset), "--checkpoint", str(ckpt), "--encoder",
                   str(FIXTURES / "parity_tiny_a" / "config.json"), "--name", "tiny", "--quiet"])
    assert rc == 0
    ds = ClipDataset(dataset, frames_per_clip=2, latents="tiny")
    tok = ds[0]["tokens"]
    assert tok.shape == (2, 16, 96) and torch.isfinite(tok).all()  # 64 px crop / 16 = 4x4 tokens, dim 96
    assert tok.std() > 0

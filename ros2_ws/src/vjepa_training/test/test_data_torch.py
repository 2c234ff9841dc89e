"""Clips of built shards through the one training loader (workers, processes, resume), the benchmark on it,
and the latent cache (keyed by model, checkpoint section, size, normalization, dtype)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vjepa_core.pose import poses_to_diff
from vjepa_core.tokens import normalize_tokens
from vjepa_training.data.build import BuildConfig, build_dataset
from vjepa_training.data.latents import EncoderIdentity, LatentCacheError, encode_dataset, read_cache_key
from vjepa_training.data.shards import DatasetIndex
from vjepa_training.data.synthetic import write_synthetic_bag
from vjepa_training.data.torch_data import ClipDataset
from vjepa_training.dataset_cli import main as cli_main
from vjepa_training.train.datasets import MixtureDataset, ShardClips, make_loader

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
    # One definition of the ImageNet statistics: the clip reader and the pretraining transform use vjepa_core's.
    from vjepa_core import preprocessing
    from vjepa_training.data import torch_data
    from vjepa_training.train import datasets

    assert torch_data.IMAGENET_MEAN is preprocessing.IMAGENET_MEAN is datasets.IMAGENET_MEAN
    assert torch_data.IMAGENET_STD is preprocessing.IMAGENET_STD is datasets.IMAGENET_STD


def _keys(batch) -> list[tuple[int, int]]:
    return list(zip(batch["episode_index"].tolist(), batch["start"].tolist()))


def _clips(dataset, **kw) -> MixtureDataset:
    """Shard clips as training reads them (ShardClips in a MixtureDataset), with the clip ids kept."""

    class Keyed(ShardClips):
        def get(self, i, g):
            item = self.clips[i]
            return {**{k: v for k, v in item.items() if isinstance(v, torch.Tensor)},
                    "episode_index": torch.tensor(item["episode_index"]), "start": torch.tensor(item["start"])}

    return MixtureDataset([Keyed(str(dataset), num_frames=4, frame_step=1, output="float", **kw)], [1.0])


def test_training_loader_workers_distributed_and_resume(dataset):
    """The one training loader (make_loader): what a step reads depends only on the step, not on workers, the
    number of processes or a restart."""
    ds = _clips(dataset, clip_stride=2)
    n = len(ds)
    loader, sampler = make_loader(ds, batch_size=2, seed=5, num_workers=0)
    it = iter(loader)
    single = [next(it) for _ in range(n)]  # n steps of 2 clips: two epochs
    del it
    for batch in single[:2]:
        assert batch["frames"].shape == (2, 4, 3, 32, 32) and batch["frames"].dtype == torch.float32
        assert batch["states"].shape == (2, 4, 7) and batch["actions"].shape == (2, 3, 7)
    keys = [k for b in single for k in _keys(b)]
    first_epoch, second_epoch = keys[:n], keys[n:]
    assert sorted(first_epoch) == sorted(second_epoch) and len(set(first_epoch)) == n  # a permutation per epoch
    assert first_epoch != second_epoch
    # Two workers: the same batches in the same order.
    loader2, _ = make_loader(ds, batch_size=2, seed=5, num_workers=2)
    it2 = iter(loader2)
    two = [next(it2) for _ in range(4)]
    del it2
    assert [_keys(b) for b in two] == [_keys(b) for b in single[:4]]
    assert all(torch.equal(a["frames"], b["frames"]) for a, b in zip(two, single))
    # Two processes of batch 1: rank r reads row r of the global batch of 2.
    for rank in range(2):
        ld, _ = make_loader(ds, batch_size=1, seed=5, world_size=2, rank=rank)
        it_r = iter(ld)
        assert [_keys(next(it_r))[0] for _ in range(4)] == [_keys(b)[rank] for b in single[:4]]
    # Resume at step 3: exactly the batches steps 3, 4, ... of the uninterrupted order.
    resumed, _ = make_loader(ds, batch_size=2, seed=5, start_step=3)
    it3 = iter(resumed)
    assert [_keys(next(it3)) for _ in range(3)] == [_keys(b) for b in single[3:6]]
    assert sampler.global_batch == 2


def test_bench_data_measures_the_training_loader(tmp_path):
    """bench/bench_data.py loads through make_loader (the loader vjepa-train uses) and still runs."""
    out = tmp_path / "data.json"
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "bench_data.py"), "--seconds", "2.5",
                           "--load-batches", "3", "--out", str(out)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert [r["case"] for r in result["load"]] == [
        "training loader (make_loader): 8x256px clips, batch 8, 0 workers",
        "training loader (make_loader): 8x256px clips, batch 8, 2 workers"]
    assert all(r["clips"] == 24 and r["clips_per_s"] > 0 for r in result["load"])
    assert len(result["build"]) == 3 and all(r["frames"] > 0 for r in result["build"])


def test_latent_cache_with_callable_encoder(dataset):
    def encode(frames):  # a deterministic stand-in encoder: 2 tokens of 3 dims per frame
        f = frames.astype(np.float32)
        return np.stack([f.mean(axis=(1, 2)), f.std(axis=(1, 2))], axis=1)

    toy = EncoderIdentity("toy@1", "target_encoder", 32)
    out = encode_dataset(dataset, encode, toy, batch_size=5, dtype="float32", progress=False)
    assert out.name == "toy_1.target_encoder.32px.f32"
    meta = json.loads((out / "meta.json").read_text())
    assert meta["tokens_per_frame"] == 2 and meta["dim"] == 3
    assert (meta["model_id"], meta["encoder_key"], meta["image_size"], meta["normalized"], meta["dtype"]) == (
        "toy@1", "target_encoder", 32, False, "float32")
    ds = ClipDataset(dataset, frames_per_clip=4, latents=out.name)
    item = ds[3]
    assert "frames" not in item and item["tokens"].shape == (4, 2, 3)
    ix = DatasetIndex(dataset)
    frames = np.asarray(ix.episode_rows(item["episode_index"], "frames"))[item["start"]: item["start"] + 4]
    np.testing.assert_allclose(item["tokens"].numpy(), encode(frames), rtol=1e-5)
    with pytest.raises(LatentCacheError, match="holds tokens of toy@1 \\[target_encoder\\]"):
        encode_dataset(dataset, encode, EncoderIdentity("other@2", "target_encoder", 32), name=out.name,
                       progress=False)
    with pytest.raises(LatentCacheError, match="holds tokens of"):  # same weights, other section: refused too
        encode_dataset(dataset, encode, EncoderIdentity("toy@1", "encoder", 32), name=out.name, dtype="float32",
                       progress=False)


def test_layer_normed_cache_uses_the_one_token_normalization(dataset):
    """--layer-norm stores vjepa_core.tokens.normalize_tokens(tokens) (eps 1e-5, as training normalizes)."""
    def encode(frames):  # small-variance tokens, where the epsilon matters
        f = frames.astype(np.float32) / 255.0
        return np.stack([f.mean(axis=(1, 2)) * 1e-2, f.std(axis=(1, 2)) * 1e-2], axis=1)

    toy = EncoderIdentity("toy@ln", "target_encoder", 32)
    raw = encode_dataset(dataset, encode, toy, dtype="float32", progress=False)
    ln = encode_dataset(dataset, encode, toy, dtype="float32", layer_norm=True, progress=False)
    assert ln.name == raw.name + ".ln" and read_cache_key(ln).normalized
    a = np.load(raw / "shard_00000.npy")
    b = np.load(ln / "shard_00000.npy")
    np.testing.assert_allclose(b, normalize_tokens(a), rtol=0, atol=1e-6)


def test_encode_cli_with_tiny_checkpoint(dataset, capsys):
    ckpt = FIXTURES / "parity_tiny_a" / "checkpoint.pt"
    assert ckpt.exists(), f"fixture missing: {ckpt}"
    torch.set_num_threads(1)
    config = str(FIXTURES / "parity_tiny_a" / "config.json")
    # The default section is target_encoder (what post-training uses); this fixture only has "encoder".
    assert cli_main(["encode", str(dataset), "--checkpoint", str(ckpt), "--encoder", config, "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("vjepa-dataset encode: error: ") and "'target_encoder'" in err[0]
    rc = cli_main(["encode", str(dataset), "--checkpoint", str(ckpt), "--encoder", config, "--encoder-key",
                   "encoder", "--name", "tiny", "--quiet"])
    assert rc == 0
    assert read_cache_key(dataset / "latents" / "tiny").encoder_key == "encoder"
    ds = ClipDataset(dataset, frames_per_clip=2, latents="tiny")
    tok = ds[0]["tokens"]
    assert tok.shape == (2, 16, 96) and torch.isfinite(tok).all()  # 64 px crop / 16 = 4x4 tokens, dim 96
    assert tok.std() > 0

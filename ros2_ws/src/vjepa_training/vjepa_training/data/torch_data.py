"""PyTorch datasets over built clip datasets (frames or cached encoder tokens, states, actions).

Sample format (one clip of ``T = frames_per_clip`` frames, ``frame_step`` dataset frames apart)::

    {
      "frames":  uint8 [T, 3, H, W]   RGB (only when latents is None), or float32 ImageNet-normalised
                                      when output="float"
      "tokens":  float32 [T, N, D]    cached frozen-encoder tokens per frame (only when latents is given)
      "states":  float32 [T, 7]       x, y, z, extrinsic "xyz" Euler (rad), gripper closedness in [0, 1]
      "actions": float32 [T-1, 7]     actions[t] = poses_to_diff(states[t], states[t+1]): the move between
                                      consecutive frames, as in the reference DROID loader (T states,
                                      T-1 actions; the AC predictor gets actions[t] and states[t] for frames t<T-1)
      "timestamps": float64 [T]       seconds since the episode's first frame
      "episode": str                  episode id (e.g. "<bag name>#0" or "<DROID uuid>#0")
      "episode_index": int, "start": int   position in the index, first frame row in the episode
    }

The default collate stacks these into ``[B, T, ...]`` tensors (and lists for strings). The encoder expects
``[B, 3, T, H, W]``: ``frames.permute(0, 2, 1, 3, 4)`` after normalisation.

Sampling:
- :class:`ClipDataset` (map-style) enumerates clip starts every ``clip_stride`` frames of every episode.
  Random sampling = ``DataLoader(shuffle=True)``; distributed = ``DistributedSampler`` (see
  :func:`make_clip_loader`). Worker-safe: shard arrays are memory-mapped lazily in each worker.
- :class:`RandomClipStream` (iterable) draws clips uniformly over all valid starts forever, with a distinct,
  reproducible random stream per (rank, worker, epoch).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, get_worker_info

from vjepa_core.pose import poses_to_diff

from .shards import DatasetIndex

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "ClipDataset", "RandomClipStream", "make_clip_loader"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class _ClipSource:
    """Shared clip reading for both dataset kinds."""

    def __init__(self, root: str | Path, frames_per_clip: int = 8, frame_step: int = 1,
                 latents: str | None = None, output: str = "uint8", episodes: list[str] | None = None) -> None:
        if frames_per_clip < 2:
            raise ValueError("frames_per_clip must be >= 2 (a clip needs at least one action)")
        if frame_step < 1:
            raise ValueError("frame_step must be >= 1")
        if output not in ("uint8", "float"):
            raise ValueError(f"output must be 'uint8' or 'float', got {output!r}")
        self.index = DatasetIndex(root)
        self.frames_per_clip = frames_per_clip
        self.frame_step = frame_step
        self.output = output
        self.span = (frames_per_clip - 1) * frame_step + 1
        wanted = set(episodes) if episodes is not None else None
        self.episode_ids = [i for i, e in enumerate(self.index.episodes)
                            if (wanted is None or e["id"] in wanted) and e["length"] >= self.span]
        if not self.episode_ids:
            raise ValueError(f"{root}: no episode has the {self.span} frames a clip of {frames_per_clip} frames "
                             f"every {frame_step} needs")
        self.latents = latents
        if latents is not None:
            meta_path = self.index.root / "latents" / latents / "meta.json"
            if not meta_path.exists():
                raise FileNotFoundError(f"no latent cache {latents!r} in {root}; run `vjepa-dataset encode`")
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            missing = [s["name"] for s in self.index.index["shards"] if s["name"] not in meta["shards_done"]]
            if missing:
                raise ValueError(f"latent cache {latents!r} is incomplete (missing {missing[:3]}); rerun encode")
        self._mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255.0
        self._std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255.0

    def _tokens(self, shard: str) -> np.ndarray:
        key = (shard, f"latents/{self.latents}")
        idx = self.index
        if key not in idx._maps:
            idx.array(shard, "stamps")  # resets maps after a fork
            idx._maps[key] = np.load(idx.root / "latents" / self.latents / f"{shard}.npy", mmap_mode="r")
        return idx._maps[key]

    def read(self, ep_i: int, start: int) -> dict[str, Any]:
        """The clip of episode ``ep_i`` (index position) starting at episode frame ``start``."""
        ep = self.index.episodes[ep_i]
        if not 0 <= start <= ep["length"] - self.span:
            raise IndexError(f"clip start {start} out of range for episode {ep['id']} of {ep['length']} frames")
        rows = ep["start"] + start + np.arange(self.frames_per_clip) * self.frame_step
        lo, hi = int(rows[0]), int(rows[-1]) + 1
        sel = rows - lo
        states = np.asarray(self.index.array(ep["shard"], "states")[lo:hi])[sel]
        stamps = np.asarray(self.index.array(ep["shard"], "stamps")[lo:hi])[sel]
        out: dict[str, Any] = {
            "states": torch.from_numpy(states.astype(np.float32)),
            "actions": torch.from_numpy(poses_to_diff(states[:-1], states[1:]).astype(np.float32)),
            "timestamps": torch.from_numpy((stamps - stamps[0]).astype(np.float64) / 1e9),
            "episode": ep["id"], "episode_index": ep_i, "start": start,
        }
        if self.latents is not None:
            tok = np.asarray(self._tokens(ep["shard"])[lo:hi])[sel]
            out["tokens"] = torch.from_numpy(tok.astype(np.float32))
        else:
            frames = torch.from_numpy(np.ascontiguousarray(
                np.asarray(self.index.array(ep["shard"], "frames")[lo:hi])[sel])).permute(0, 3, 1, 2)
            if self.output == "float":
                frames = (frames.float() - self._mean) / self._std
            out["frames"] = frames.contiguous()
        return out


class ClipDataset(Dataset):
    """Map-style dataset of all clips ``frames_per_clip`` long, starting every ``clip_stride`` frames.

    Args:
        root: dataset directory (``index.json``).
        frames_per_clip: T (the reference AC config uses 8 at 4 fps).
        frame_step: take every ``frame_step``-th dataset frame (e.g. a 4 fps dataset with step 2 -> 2 fps).
        clip_stride: distance between consecutive clip starts (default 1: every start).
        latents: name of a latent cache (``latents/<name>``) to return ``tokens`` instead of ``frames``.
        output: "uint8" frames, or "float" ImageNet-normalised frames.
        episodes: restrict to these episode ids (e.g. a train/val split).
    """

    def __init__(self, root: str | Path, frames_per_clip: int = 8, frame_step: int = 1, clip_stride: int = 1,
                 latents: str | None = None, output: str = "uint8", episodes: list[str] | None = None) -> None:
        if clip_stride < 1:
            raise ValueError("clip_stride must be >= 1")
        self.source = _ClipSource(root, frames_per_clip, frame_step, latents, output, episodes)
        starts = []
        for ep_i in self.source.episode_ids:
            n_starts = self.source.index.episodes[ep_i]["length"] - self.source.span + 1
            starts.extend((ep_i, s) for s in range(0, n_starts, clip_stride))
        self.starts = np.asarray(starts, dtype=np.int64).reshape(-1, 2)

    def __len__(self) -> int:
        return int(self.starts.shape[0])

    def __getitem__(self, i: int) -> dict[str, Any]:
        ep_i, start = self.starts[i]
        return self.source.read(int(ep_i), int(start))


class RandomClipStream(IterableDataset):
    """Endless uniformly random clips, reproducible per ``seed``, distinct per rank, worker and epoch.

    Args:
        clips_per_epoch: clips one iteration yields in total over all ranks and workers (each gets its share).
        rank, world_size: distributed position (default: from ``torch.distributed`` when initialised).
        Other arguments as :class:`ClipDataset`.
    """

    def __init__(self, root: str | Path, frames_per_clip: int = 8, frame_step: int = 1,
                 latents: str | None = None, output: str = "uint8", episodes: list[str] | None = None,
                 clips_per_epoch: int = 1000, seed: int = 0, rank: int | None = None,
                 world_size: int | None = None) -> None:
        self.source = _ClipSource(root, frames_per_clip, frame_step, latents, output, episodes)
        counts = np.array([self.source.index.episodes[i]["length"] - self.source.span + 1
                           for i in self.source.episode_ids], dtype=np.float64)
        self.weights = counts / counts.sum()  # uniform over all valid clip starts
        self.counts = counts.astype(np.int64)
        self.clips_per_epoch = clips_per_epoch
        self.seed = seed
        self.rank, self.world_size = _dist_position(rank, world_size)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Change the random stream (call once per epoch, like ``DistributedSampler.set_epoch``)."""
        self.epoch = epoch

    def __iter__(self) -> Any:
        info = get_worker_info()
        wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        stream = self.rank * nw + wid
        n_streams = self.world_size * nw
        n = self.clips_per_epoch // n_streams + (1 if stream < self.clips_per_epoch % n_streams else 0)
        rng = np.random.default_rng([self.seed, self.epoch, stream])
        for _ in range(n):
            k = int(rng.choice(len(self.weights), p=self.weights))
            start = int(rng.integers(0, self.counts[k]))
            yield self.source.read(self.source.episode_ids[k], start)


def _dist_position(rank: int | None, world_size: int | None) -> tuple[int, int]:
    if rank is not None and world_size is not None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} not in [0, {world_size})")
        return rank, world_size
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def make_clip_loader(dataset: Dataset, batch_size: int, shuffle: bool = True, num_workers: int = 2,
                     seed: int = 0, rank: int | None = None, world_size: int | None = None,
                     drop_last: bool = True, **kwargs: Any) -> DataLoader:
    """A DataLoader over a :class:`ClipDataset` (sharded with ``DistributedSampler`` when world_size > 1)
    or a :class:`RandomClipStream` (which shards itself)."""
    if isinstance(dataset, IterableDataset):
        return DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, drop_last=drop_last,
                          persistent_workers=num_workers > 0, **kwargs)
    rank, world_size = _dist_position(rank, world_size)
    sampler = None
    if world_size > 1:
        from torch.utils.data.distributed import DistributedSampler

        sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed,
                                     drop_last=drop_last)
    gen = torch.Generator()
    gen.manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle if sampler is None else False,
                      sampler=sampler, num_workers=num_workers, drop_last=drop_last, generator=gen,
                      persistent_workers=num_workers > 0, **kwargs)


def clips_in(length: int, frames_per_clip: int, frame_step: int = 1) -> int:
    """Number of clip starts an episode of ``length`` frames has."""
    return max(0, length - ((frames_per_clip - 1) * frame_step + 1) + 1) if length else 0


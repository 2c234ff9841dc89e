"""The clip reader of built datasets (frames or cached encoder tokens, states, actions) that training uses.

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

The encoder expects ``[B, 3, T, H, W]``: ``frames.permute(0, 2, 1, 3, 4)`` after normalisation.

:class:`ClipDataset` (map-style) enumerates clip starts every ``clip_stride`` frames of every episode; shard
arrays are memory-mapped lazily in each worker. It is read through the one training loader,
``vjepa_training.train.datasets`` (``ShardClips`` -> ``MixtureDataset`` -> ``make_loader``: resumable global
order, distributed micro-batches), which ``vjepa-train`` and ``bench/bench_data.py`` both use.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from vjepa_core.pose import poses_to_diff
from vjepa_core.preprocessing import IMAGENET_MEAN, IMAGENET_STD

from .shards import DatasetIndex

__all__ = ["ClipDataset"]


class _ClipSource:
    """Clip reading: episode selection, latent cache check, one clip's arrays."""

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

"""On-disk clip dataset format: shards of memory-mappable ``.npy`` arrays plus one ``index.json``.

Layout of a dataset directory::

    index.json                     format, build config, shards, episodes, per-source status
    shards/shard_00000/frames.npy  uint8   [M, S, S, 3]  RGB frames, resized/cropped to S x S
    shards/shard_00000/states.npy  float64 [M, 7]        x, y, z, extrinsic "xyz" Euler (rad), gripper closedness
    shards/shard_00000/actions.npy float64 [M, 7]        row i = poses_to_diff(state i, state i+1) inside an
                                                          episode; the last row of every episode is 0 (unused)
    shards/shard_00000/stamps.npy  int64   [M]           frame time, ns (ROS time / DROID control time)
    latents/<model>/shard_00000.npy float16 [M, N, D]    optional frozen-encoder tokens per frame

Each episode is a contiguous row range ``[start, start + length)`` of one shard. A shard holds whole
sources (bags / DROID episodes) and is written to a temporary directory then renamed, and ``index.json`` is
replaced atomically after it, so an interrupted build resumes from the last committed shard.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["FORMAT", "VERSION", "DatasetIndex", "Episode", "ShardWriter", "load_index", "write_json_atomic"]

FORMAT = "vjepa2_ros.clips"
VERSION = 1
ARRAYS = ("frames", "states", "actions", "stamps")


@dataclass
class Episode:
    """One aligned episode before it is written: frames, 7-D states, actions between consecutive frames."""

    episode_id: str
    frames: np.ndarray   # uint8 [N,S,S,3]
    states: np.ndarray   # float64 [N,7]
    actions: np.ndarray  # float64 [N-1,7]
    stamps_ns: np.ndarray  # int64 [N]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.frames)
        if self.frames.ndim != 4 or self.frames.shape[-1] != 3 or self.frames.dtype != np.uint8:
            raise ValueError(f"frames must be uint8 [N,S,S,3], got {self.frames.dtype} {self.frames.shape}")
        if self.states.shape != (n, 7):
            raise ValueError(f"states must be [{n},7], got {self.states.shape}")
        if self.actions.shape != (max(n - 1, 0), 7):
            raise ValueError(f"actions must be [{n - 1},7], got {self.actions.shape}")
        if self.stamps_ns.shape != (n,):
            raise ValueError(f"stamps must be [{n}], got {self.stamps_ns.shape}")
        if not (np.all(np.isfinite(self.states)) and np.all(np.isfinite(self.actions))):
            raise ValueError(f"episode {self.episode_id}: non-finite states or actions")


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON to ``path`` through a temporary file and an atomic rename."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1), encoding="utf-8")
    os.replace(tmp, path)


def load_index(root: str | Path) -> dict[str, Any]:
    """Read and check ``index.json`` of a dataset directory."""
    path = Path(root) / "index.json"
    if not path.exists():
        raise FileNotFoundError(f"{root}: no index.json; build the dataset with `vjepa-dataset build` first")
    index = json.loads(path.read_text(encoding="utf-8"))
    if index.get("format") != FORMAT or index.get("version") != VERSION:
        raise ValueError(f"{path}: not a {FORMAT} v{VERSION} index (format={index.get('format')!r}, "
                         f"version={index.get('version')!r})")
    return index


class DatasetIndex:
    """Read-only view of a built dataset: episodes and lazily memory-mapped shard arrays.

    Memory maps are opened on first use in each process, so an instance can be pickled into DataLoader
    workers (fork or spawn) before any array is touched.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.index = load_index(self.root)
        self.episodes: list[dict[str, Any]] = self.index["episodes"]
        self._maps: dict[tuple[str, str], np.ndarray] = {}
        self._pid = os.getpid()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_maps"] = {}
        return state

    def array(self, shard: str, name: str) -> np.ndarray:
        """The memory-mapped array ``name`` (frames/states/actions/stamps) of ``shard``."""
        if os.getpid() != self._pid:
            self._maps, self._pid = {}, os.getpid()
        key = (shard, name)
        arr = self._maps.get(key)
        if arr is None:
            arr = np.load(self.root / "shards" / shard / f"{name}.npy", mmap_mode="r")
            self._maps[key] = arr
        return arr

    def episode_rows(self, i: int, name: str) -> np.ndarray:
        """All rows of array ``name`` for episode ``i`` (a view into the memory map)."""
        ep = self.episodes[i]
        return self.array(ep["shard"], name)[ep["start"]: ep["start"] + ep["length"]]

    @property
    def image_size(self) -> int:
        """Frame side length in pixels."""
        return int(self.index["config"]["image_size"])

    @property
    def fps(self) -> float:
        """Sampling rate the dataset was built at."""
        return float(self.index["config"]["fps"])


class ShardWriter:
    """Accumulates episodes of whole sources and commits them as shards, keeping ``index.json`` current.

    Args:
        root: dataset directory (created; an existing dataset is resumed if its config matches).
        config: build parameters stored in the index; ``fps`` and ``image_size`` must match on resume.
        shard_frames: a shard is committed once it holds at least this many frames (at a source boundary).
    """

    def __init__(self, root: str | Path, config: dict[str, Any], shard_frames: int = 2048) -> None:
        self.root = Path(root)
        self.shard_frames = int(shard_frames)
        (self.root / "shards").mkdir(parents=True, exist_ok=True)
        path = self.root / "index.json"
        if path.exists():
            self.index = load_index(self.root)
            old = self.index["config"]
            for key in ("fps", "image_size", "crop"):
                if key in config and key in old and old[key] != config[key]:
                    raise ValueError(f"{self.root} was built with {key}={old[key]!r}, not {config[key]!r}; "
                                     "use another --out directory")
        else:
            self.index = {"format": FORMAT, "version": VERSION, "created": time.time(), "config": dict(config),
                          "shards": [], "episodes": [], "sources": {}}
        # Remove leftovers of an interrupted commit.
        committed = {s["name"] for s in self.index["shards"]}
        for d in (self.root / "shards").iterdir():
            if d.name not in committed:
                shutil.rmtree(d, ignore_errors=True)
        self._pending: list[Episode] = []
        self._pending_sources: dict[str, dict[str, Any]] = {}

    def is_done(self, key: str, fingerprint: str) -> bool:
        """True if source ``key`` with this fingerprint is already in a committed shard."""
        src = self.index["sources"].get(key)
        return bool(src and src.get("status") == "built" and src.get("fingerprint") == fingerprint)

    def add_source(self, key: str, fingerprint: str, episodes: list[Episode], notes: list[str]) -> None:
        """Queue all episodes of one source; commits a shard when enough frames are pending."""
        self._pending.extend(episodes)
        self._pending_sources[key] = {"status": "built", "fingerprint": fingerprint, "notes": notes,
                                      "episodes": [e.episode_id for e in episodes]}
        if sum(len(e.frames) for e in self._pending) >= self.shard_frames:
            self.commit()

    def skip_source(self, key: str, fingerprint: str, reason: str) -> None:
        """Record that a source was skipped (it is retried on the next build)."""
        self.index["sources"][key] = {"status": "skipped", "fingerprint": fingerprint, "reason": reason}
        write_json_atomic(self.root / "index.json", self.index)

    def commit(self) -> None:
        """Write pending episodes as a new shard and update ``index.json``."""
        if not self._pending and not self._pending_sources:
            return
        if self._pending:
            name = f"shard_{len(self.index['shards']):05d}"
            tmp = self.root / "shards" / (name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
            arrays = {
                "frames": np.concatenate([e.frames for e in self._pending]),
                "states": np.concatenate([e.states for e in self._pending]).astype(np.float64),
                "actions": np.concatenate([np.concatenate([e.actions, np.zeros((1, 7))]) for e in self._pending]),
                "stamps": np.concatenate([e.stamps_ns for e in self._pending]).astype(np.int64),
            }
            for key, arr in arrays.items():
                np.save(tmp / f"{key}.npy", arr)
            os.replace(tmp, self.root / "shards" / name)
            start = 0
            for e in self._pending:
                n = len(e.frames)
                self.index["episodes"].append({
                    "id": e.episode_id, "shard": name, "start": start, "length": n,
                    "start_time_ns": int(e.stamps_ns[0]), "end_time_ns": int(e.stamps_ns[-1]), **e.meta})
                start += n
            self.index["shards"].append({"name": name, "frames": start})
        self.index["sources"].update(self._pending_sources)
        write_json_atomic(self.root / "index.json", self.index)
        self._pending, self._pending_sources = [], {}

    def close(self) -> None:
        """Commit whatever is pending."""
        self.commit()

"""Training data: video files, image folders and the project's clip shards, with a resumable global order.

Every sample is drawn at a *global position* ``p`` (0, 1, 2, ... over the whole run): step ``s``, micro-step
``a`` and rank ``r`` read positions ``s*G + (a*W + r)*B + i`` (G global batch, W processes, B per-process
batch). Position ``p`` maps to a dataset index through a per-epoch permutation seeded by (seed, epoch), and
its augmentation uses a generator seeded by (seed, p). The data a step sees therefore depends only on the
step, never on worker scheduling, the number of processes or a restart: the "data position" of a checkpoint
is simply its step, and a resumed run reads exactly what the uninterrupted run would have.

Datasets return dicts; pretraining clips are ``{"video": float32 [3, T, S, S]}`` (ImageNet-normalised),
post-training clips follow ``vjepa_training.data.torch_data`` (``tokens`` or ``frames``, ``states``,
``actions``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from vjepa_core.preprocessing import IMAGENET_MEAN, IMAGENET_STD

from .config import DataConfig, SourceConfig

__all__ = [
    "VIDEO_EXTS",
    "IMAGE_EXTS",
    "ClipTransform",
    "GlobalOrder",
    "ImageFolderClips",
    "MicroBatchSampler",
    "MixtureDataset",
    "PositionedDataset",
    "ShardClips",
    "VideoFolderClips",
    "build_pretrain_dataset",
    "make_loader",
]

VIDEO_EXTS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v")
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def position_generator(seed: int, position: int) -> torch.Generator:
    """The augmentation generator of global position ``position``."""
    g = torch.Generator()
    g.manual_seed((int(seed) * 2_654_435_761 + int(position) * 40503 + 97) % (2**63 - 1))
    return g


class ClipTransform:
    """Pretraining augmentation (reference ``make_transforms``): random resized crop (area ``scale``, aspect
    ``ratio``), horizontal flip, resize to ``size``, ImageNet normalisation. uint8 ``[T, 3, H, W]`` ->
    float32 ``[3, T, size, size]``."""

    def __init__(self, size: int, scale: list[float] | tuple[float, float] = (0.3, 1.0),
                 ratio: list[float] | tuple[float, float] = (0.75, 1.35), flip: bool = True,
                 augment: bool = True) -> None:
        self.size = int(size)
        self.scale = tuple(scale)
        self.ratio = tuple(ratio)
        self.flip = flip
        self.augment = augment
        self.mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255.0
        self.std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255.0

    def crop_box(self, h: int, w: int, g: torch.Generator) -> tuple[int, int, int, int]:
        """Inception-style crop (top, left, height, width); falls back to a centre crop after 10 tries."""
        area = h * w
        log_r = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            r = torch.rand(4, generator=g).tolist()
            target = area * (self.scale[0] + r[0] * (self.scale[1] - self.scale[0]))
            ar = math.exp(log_r[0] + r[1] * (log_r[1] - log_r[0]))
            cw = int(round(math.sqrt(target * ar)))
            ch = int(round(math.sqrt(target / ar)))
            if 0 < cw <= w and 0 < ch <= h:
                return int(r[2] * (h - ch + 1)), int(r[3] * (w - cw + 1)), ch, cw
        in_ratio = w / h
        if in_ratio < self.ratio[0]:
            cw, ch = w, int(round(w / self.ratio[0]))
        elif in_ratio > self.ratio[1]:
            ch, cw = h, int(round(h * self.ratio[1]))
        else:
            ch, cw = h, w
        return (h - ch) // 2, (w - cw) // 2, ch, cw

    def __call__(self, frames: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """Augment one clip ``uint8 [T, 3, H, W]`` -> ``float32 [3, T, S, S]``."""
        x = frames.float()
        h, w = x.shape[-2:]
        if self.augment:
            top, left, ch, cw = self.crop_box(h, w, g)
            x = x[..., top:top + ch, left:left + cw]
            if self.flip and bool(torch.rand(1, generator=g) < 0.5):
                x = x.flip(-1)
        if x.shape[-2:] != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True)
        x = (x - self.mean) / self.std
        return x.permute(1, 0, 2, 3).contiguous()  # [T,3,S,S] -> [3,T,S,S]


def _list_files(path: str, exts: tuple[str, ...], what: str) -> list[Path]:
    root = Path(path)
    if root.is_file():
        files = [root]
    elif root.is_dir():
        files = sorted(p for p in root.rglob("*") if p.suffix.lower() in exts and p.is_file())
    else:
        raise FileNotFoundError(f"{what} source {root} does not exist")
    if not files:
        raise ValueError(f"{what} source {root} holds no files with extensions {list(exts)}")
    return files


class VideoFolderClips(Dataset):
    """Clips of ``num_frames`` frames, ``frame_step`` apart, from video files decoded with PyAV.

    One sample per file; the clip start is random (from the position generator). A video shorter than the
    clip span is read with a smaller step, and if still too short its last frame is repeated.
    """

    def __init__(self, path: str, num_frames: int, frame_step: int, transform: ClipTransform) -> None:
        self.files = _list_files(path, VIDEO_EXTS, "video")
        self.num_frames = num_frames
        self.frame_step = frame_step
        self.transform = transform
        self._counts: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self.files)

    def _frame_count(self, i: int) -> int:
        if i not in self._counts:
            import av

            with av.open(str(self.files[i])) as c:
                n = int(c.streams.video[0].frames or 0)
                if n <= 0:
                    n = sum(1 for _ in c.decode(video=0))
            self._counts[i] = n
        return self._counts[i]

    def read_frames(self, i: int, wanted: list[int]) -> np.ndarray:
        """Decode frames ``wanted`` (sorted indices) of file ``i`` -> uint8 ``[len, H, W, 3]``."""
        import av

        out: list[np.ndarray] = []
        want = set(wanted)
        last = max(wanted)
        try:
            with av.open(str(self.files[i])) as c:
                for k, frame in enumerate(c.decode(video=0)):
                    if k in want:
                        out.append(frame.to_ndarray(format="rgb24"))
                    if k >= last:
                        break
        except Exception as e:  # PyAV raises its own error hierarchy
            raise RuntimeError(f"cannot decode video {self.files[i]}: {e}") from e
        if not out:
            raise RuntimeError(f"video {self.files[i]} has no decodable frames")
        while len(out) < len(wanted):
            out.append(out[-1])
        return np.stack(out)

    def get(self, i: int, g: torch.Generator) -> dict[str, Any]:
        """The clip of file ``i`` -> ``{"video": [3, T, S, S]}``."""
        n = self._frame_count(i)
        step = self.frame_step
        while step > 1 and (self.num_frames - 1) * step + 1 > n:
            step -= 1
        span = (self.num_frames - 1) * step + 1
        start = int(torch.randint(0, max(1, n - span + 1), (1,), generator=g))
        idx = [start + k * step for k in range(self.num_frames)]
        frames = torch.from_numpy(self.read_frames(i, idx)).permute(0, 3, 1, 2)  # [T,3,H,W]
        return {"video": self.transform(frames, g)}


class ImageFolderClips(Dataset):
    """Images as clips: each image repeated ``num_frames`` times in time (paper: images duplicated temporally)."""

    def __init__(self, path: str, num_frames: int, transform: ClipTransform) -> None:
        self.files = _list_files(path, IMAGE_EXTS, "image")
        self.num_frames = num_frames
        self.transform = transform

    def __len__(self) -> int:
        return len(self.files)

    def get(self, i: int, g: torch.Generator) -> dict[str, Any]:
        """The image ``i`` as a static clip -> ``{"video": [3, T, S, S]}``."""
        from PIL import Image

        try:
            with Image.open(self.files[i]) as im:
                arr = np.array(im.convert("RGB"))
        except OSError as e:
            raise RuntimeError(f"cannot read image {self.files[i]}: {e}") from e
        frames = torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).expand(self.num_frames, -1, -1, -1)
        return {"video": self.transform(frames, g)}


class ShardClips(Dataset):
    """Adapter: clips of a ``vjepa-dataset build`` directory (``data.torch_data.ClipDataset``) for pretraining
    (frames through :class:`ClipTransform`) or post-training (tokens/frames, states, actions as-is)."""

    def __init__(self, path: str, num_frames: int, frame_step: int, clip_stride: int = 1,
                 transform: ClipTransform | None = None, latents: str | None = None,
                 output: str = "uint8") -> None:
        from ..data.torch_data import ClipDataset

        self.clips = ClipDataset(path, frames_per_clip=num_frames, frame_step=frame_step, clip_stride=clip_stride,
                                 latents=latents, output=output)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.clips)

    def get(self, i: int, g: torch.Generator) -> dict[str, Any]:
        """Clip ``i``: ``{"video"}`` for pretraining, the ClipDataset sample (minus strings) otherwise."""
        item = self.clips[i]
        if self.transform is not None:
            return {"video": self.transform(item["frames"], g)}
        return {k: v for k, v in item.items() if isinstance(v, torch.Tensor)}


class MixtureDataset(Dataset):
    """Several sources behind one flat index (source ``k`` occupies ``[offsets[k], offsets[k+1])``)."""

    def __init__(self, parts: list[Any], weights: list[float]) -> None:
        self.parts = parts
        self.weights = [float(w) for w in weights]
        self.sizes = [len(p) for p in parts]
        for p, n in zip(parts, self.sizes):
            if n == 0:
                raise ValueError(f"data source {p} is empty")
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)]).astype(np.int64)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def get(self, i: int, g: torch.Generator) -> dict[str, Any]:
        """Item ``i`` of the flat index."""
        k = int(np.searchsorted(self.offsets, i, side="right") - 1)
        return self.parts[k].get(int(i - self.offsets[k]), g)


class PositionedDataset(Dataset):
    """Map-style view taking ``(index, position)`` keys: the position seeds the sample's augmentation."""

    def __init__(self, base: Any, seed: int) -> None:
        self.base = base
        self.seed = seed

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        index, position = key
        return self.base.get(int(index), position_generator(self.seed, position))


class GlobalOrder:
    """Global position -> dataset index: a permutation per epoch seeded by (seed, epoch); with unequal
    source weights, a weighted draw (with replacement) of one epoch's worth of indices instead."""

    def __init__(self, dataset: MixtureDataset, seed: int) -> None:
        self.n = len(dataset)
        self.seed = int(seed)
        w = np.concatenate([np.full(s, wt / s) for s, wt in zip(dataset.sizes, dataset.weights)])
        uniform = len(set(dataset.weights)) == 1 or len(dataset.sizes) == 1
        self.probs = None if uniform else torch.from_numpy(w / w.sum())
        self._epoch = -1
        self._order = torch.empty(0, dtype=torch.long)

    def epoch_order(self, epoch: int) -> torch.Tensor:
        """Dataset indices of epoch ``epoch`` in sampling order."""
        if epoch != self._epoch:
            g = torch.Generator()
            g.manual_seed(self.seed * 1_000_033 + epoch)
            if self.probs is None:
                self._order = torch.randperm(self.n, generator=g)
            else:
                self._order = torch.multinomial(self.probs, self.n, replacement=True, generator=g)
            self._epoch = epoch
        return self._order

    def index(self, position: int) -> int:
        """Dataset index at global position ``position``."""
        return int(self.epoch_order(position // self.n)[position % self.n])


class MicroBatchSampler:
    """Batch sampler yielding this rank's micro-batches of ``(index, position)`` keys from ``start_step`` on,
    forever (the training loop stops it)."""

    def __init__(self, order: GlobalOrder, batch_size: int, world_size: int, rank: int, accumulation: int,
                 start_step: int = 0) -> None:
        self.order = order
        self.batch_size = batch_size
        self.world_size = world_size
        self.rank = rank
        self.accumulation = accumulation
        self.start_step = start_step

    @property
    def global_batch(self) -> int:
        """Samples per optimizer step over all processes and micro-steps."""
        return self.batch_size * self.world_size * self.accumulation

    def rows(self, micro: int) -> slice:
        """Rows of the global batch that micro-step ``micro`` of this rank reads."""
        lo = (micro * self.world_size + self.rank) * self.batch_size
        return slice(lo, lo + self.batch_size)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        step = self.start_step
        while True:
            for a in range(self.accumulation):
                r = self.rows(a)
                base = step * self.global_batch
                yield [(self.order.index(base + p), base + p) for p in range(r.start, r.stop)]
            step += 1


def _collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {k: torch.stack([it[k] for it in items]) for k in items[0]}


def make_loader(dataset: MixtureDataset, *, batch_size: int, seed: int, world_size: int = 1, rank: int = 0,
                accumulation: int = 1, start_step: int = 0, num_workers: int = 0,
                pin_memory: bool = False) -> tuple[torch.utils.data.DataLoader, MicroBatchSampler]:
    """The training data loader: rank ``rank``'s micro-batches (``batch_size`` samples) of every optimizer step
    from ``start_step`` on, forever, in the resumable global order (:class:`GlobalOrder` seeded by ``seed``).

    Batches are dicts of stacked tensors (``video`` for pretraining; ``tokens`` or ``frames``, ``states``,
    ``actions`` ... for post-training). What a step reads depends only on the step, not on ``num_workers`` or
    restarts. Training (``engine.build_loader``) and ``bench/bench_data.py`` both load through this function.
    """
    sampler = MicroBatchSampler(GlobalOrder(dataset, seed), batch_size, world_size, rank, accumulation, start_step)
    loader = torch.utils.data.DataLoader(
        PositionedDataset(dataset, seed), batch_sampler=sampler, num_workers=num_workers, collate_fn=_collate,
        pin_memory=pin_memory, persistent_workers=False, prefetch_factor=4 if num_workers > 0 else None)
    return loader, sampler


def _transform(cfg: DataConfig, augment: bool = True) -> ClipTransform:
    return ClipTransform(cfg.img_size, cfg.random_resize_scale, cfg.random_resize_aspect_ratio,
                         cfg.horizontal_flip, augment=augment)


def _source(src: SourceConfig, cfg: DataConfig) -> Any:
    tf = _transform(cfg)
    if src.kind == "video":
        return VideoFolderClips(src.path, cfg.num_frames, cfg.frame_step, tf)
    if src.kind == "images":
        return ImageFolderClips(src.path, cfg.num_frames, tf)
    return ShardClips(src.path, cfg.num_frames, cfg.frame_step, cfg.clip_stride, transform=tf)


def build_pretrain_dataset(cfg: DataConfig) -> MixtureDataset:
    """All pretraining sources of ``cfg`` as one mixture (video files, image folders, clip shards)."""
    if not cfg.sources:
        raise ValueError("data.sources is empty: give at least one {kind, path} source")
    return MixtureDataset([_source(s, cfg) for s in cfg.sources], [s.weight for s in cfg.sources])

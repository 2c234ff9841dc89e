"""Attentive-probe training on a frozen V-JEPA 2 encoder (``vjepa-train probe``), with the reference's recipe.

The reference (``facebookresearch/vjepa2`` ``evals/video_classification_frozen/eval.py``) trains several attentive
probes at once on the same batches of a frozen encoder's tokens, one per (learning rate, weight decay) pair of a
grid (its configs: lr 0.005 / 0.003 / 0.001 / 0.0003 / 0.0001 x weight decay 0.01 / 0.1 / 0.4 / 0.8, 20 heads), each
with its own AdamW, a warmup-cosine learning rate and a cosine weight decay schedule stepped every iteration, a
cross-entropy loss per spatial view, and top-1 of the softmax averaged over views; the best head is the result.
This module does the same, with two differences that make it cheap on small machines:

- **features are computed once** (:func:`encode_split`): the encoder is frozen, so every clip's tokens are cached
  on disk (float16 memory maps, keyed by the encoder's identity, the sampling settings and the list of clips,
  resumable, like the latent cache of AC post-training), and the heads train on the cache. The reference
  re-encodes every epoch because it augments the training clips (random resized crops, RandAugment, random
  erasing); here the training clips are the evaluation protocol's clips (no augmentation). Temporal jitter is
  available as ``clips_per_video`` (several start offsets per video).
- the best head is chosen by **validation** top-1 at the end of training, and a separate **test** split (if
  given) is only evaluated with that head, so held-out numbers never steer a choice.

Data: a list of :class:`Item` (a video or a window of a dataset episode, with a label). Videos come from a CSV of
``path label`` lines (the reference's format; :func:`read_csv_items`) and may be video files (PyAV), ``.npy`` /
``.npz`` arrays ``[T, H, W, 3]`` uint8, or folders of images; the suite's own datasets (``vjepa-dataset build`` of
rosbags) give windows of episodes labelled by the recorder's task text or by a CSV of ``episode_id start label``
lines (:func:`dataset_items`). Clips are sampled as the reference's evaluation does (segments x views,
:func:`clip_indices`, :func:`clip_views`).

Outputs: ``probe.pt`` (the best head in the released probe format, :func:`vjepa_core.probes.save_probe`, with the
training settings under ``probe_training``), ``labels.json`` (``{"0": name, ...}``) for text labels,
``results.json``, ``metrics.csv`` (+ TensorBoard when installed), and confusion-matrix PNGs. A linear probe on
mean-pooled tokens (same grid, same selection) can be trained beside it as a baseline.

**Anticipation** (``task="anticipation"``, the reference's ``evals/action_anticipation_frozen``): every sample
is labelled ``(verb, noun, action)`` (a CSV of ``path verb noun action`` lines, or dataset windows labelled by a
clip-labels CSV of ``episode_id start verb noun action`` lines). The cached features are
:func:`vjepa_core.probes.anticipation_features` of the clip that ends at the video's last frame (the encoder's
tokens followed by the pretraining predictor's tokens ``anticipation_time`` seconds later), the heads are
:class:`~vjepa_core.models.attentive_pooler.AnticipationClassifier` probes trained on the sum of the verb, noun
and action cross-entropies (the reference's loss), and the head is chosen by the validation **mean-class
recall@5 of the action head** (the reference's ``ClassMeanRecall(k=5)``, EK100's metric; ties: action top-1,
then the first head). The probe file has the released ``ek100-*.pt`` layout.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shlex
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from vjepa_core.probes import ProbeConfig

__all__ = [
    "CACHE_VERSION",
    "DEFAULT_LRS",
    "DEFAULT_WDS",
    "FeatureSet",
    "HeadSpec",
    "Item",
    "MeanPoolLinear",
    "ProbeDataError",
    "SamplingConfig",
    "clip_indices",
    "clip_views",
    "dataset_items",
    "AnticipationSpec",
    "MeanPoolAnticipation",
    "anticipation_clip_indices",
    "encode_split",
    "evaluate",
    "head_grid",
    "label_ids",
    "mean_class_recall",
    "predict_anticipation",
    "read_csv_items",
    "read_video",
    "save_confusion_png",
    "train_heads",
]

log = logging.getLogger("vjepa_train")

#: The reference's grid (``configs/eval/vitl/ssv2.yaml`` ``multihead_kwargs``): 5 learning rates x 4 weight decays.
DEFAULT_LRS = (0.005, 0.003, 0.001, 0.0003, 0.0001)
DEFAULT_WDS = (0.01, 0.1, 0.4, 0.8)
#: Bumped when the cache layout changes (old caches are then rebuilt, never misread).
CACHE_VERSION = 1
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}


class ProbeDataError(ValueError):
    """A data source, label or setting of probe training is invalid (the message says which and why)."""


# ---------------------------------------------------------------------------------------------------------------
# Labelled videos

@dataclass(frozen=True)
class Item:
    """One labelled video: ``key`` (unique, for the cache and error messages), ``label`` (int id or text; for
    anticipation a ``(verb, noun, action)`` tuple of those) and ``load()`` giving its frames ``[T, H, W, 3]``
    uint8. ``size`` feeds the cache key (a changed file is re-encoded)."""

    key: str
    label: int | str | tuple[int | str, ...]
    load: Callable[[], np.ndarray] = field(compare=False, repr=False)
    size: int = 0


def read_video(path: str | os.PathLike[str]) -> np.ndarray:
    """All frames of a video as uint8 ``[T, H, W, 3]`` RGB.

    Supported: ``.npy`` (an array ``[T, H, W, 3]`` uint8), ``.npz`` (its ``frames`` array, or its only array), a
    folder of images (``.png``, ``.jpg``, ... in name order, Pillow), and any container/codec PyAV decodes
    (``.mp4``, ``.webm``, ``.avi``, ...). Raises :class:`ProbeDataError` naming the file and the problem.
    """
    p = Path(path)
    if not p.exists():
        raise ProbeDataError(f"{p}: no such video file or folder")
    try:
        if p.is_dir():
            files = sorted(f for f in p.iterdir() if f.suffix.lower() in _IMAGE_SUFFIXES)
            if not files:
                raise ProbeDataError(f"{p}: a folder without images ({', '.join(sorted(_IMAGE_SUFFIXES))})")
            from PIL import Image

            frames = []
            for f in files:
                with Image.open(f) as img:
                    frames.append(np.asarray(img.convert("RGB"), dtype=np.uint8))
            if len({fr.shape for fr in frames}) != 1:
                raise ProbeDataError(f"{p}: the images have different sizes")
            arr = np.stack(frames)
        elif p.suffix == ".npy":
            arr = np.load(p, mmap_mode="r")
        elif p.suffix == ".npz":
            with np.load(p) as z:
                names = list(z.files)
                key = "frames" if "frames" in names else (names[0] if len(names) == 1 else None)
                if key is None:
                    raise ProbeDataError(f"{p}: an .npz needs a 'frames' array (it holds {names})")
                arr = z[key]
        else:
            arr = _decode_av(p)
    except ProbeDataError:
        raise
    except Exception as exc:  # corrupt archives, undecodable images, container errors: name the file
        raise ProbeDataError(f"{p}: cannot read the video: {type(exc).__name__}: {exc}") from exc
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3 or arr.shape[0] < 1:
        raise ProbeDataError(f"{p}: expected uint8 frames [T, H, W, 3], got {arr.dtype} {list(arr.shape)}")
    return arr


def _decode_av(path: Path) -> np.ndarray:
    try:
        import av
    except ImportError as exc:
        raise ProbeDataError(f"{path}: decoding video files needs PyAV (pip install av); or give .npy/.npz "
                             "arrays or folders of images") from exc
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise ProbeDataError(f"{path}: no video stream")
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    if not frames:
        raise ProbeDataError(f"{path}: the video stream has no frames")
    return np.stack(frames)


def _parse_label(text: str) -> int | str:
    return int(text) if text.lstrip("-").isdigit() else text


def read_csv_items(csv_path: str | os.PathLike[str], anticipation: bool = False) -> list[Item]:
    """Videos of a CSV in the reference's format: one ``path label`` line per video (space separated; a label or
    path with spaces in quotes, shell style). Relative paths are relative to the CSV's folder. Labels are class
    ids (integers) or text. Blank lines and ``#`` comments are skipped.

    ``anticipation``: ``path verb noun action`` lines (exactly four fields; quote a field with spaces); the label
    is the ``(verb, noun, action)`` tuple and the video is the observed part, ending where the anticipation
    horizon starts."""
    csv_path = Path(csv_path)
    try:
        text = csv_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProbeDataError(f"{csv_path}: cannot read the video list: {exc.strerror or exc}") from exc
    items = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            parts = shlex.split(line)
        except ValueError as exc:
            raise ProbeDataError(f"{csv_path}:{n}: {exc}: {line!r}") from exc
        if anticipation and len(parts) != 4:
            raise ProbeDataError(f"{csv_path}:{n}: expected 'path verb noun action' (4 fields), got {line!r}")
        if len(parts) < 2:
            raise ProbeDataError(f"{csv_path}:{n}: expected 'path label', got {line!r}")
        path = Path(parts[0]).expanduser()
        path = path if path.is_absolute() else csv_path.parent / path
        if not path.exists():
            raise ProbeDataError(f"{csv_path}:{n}: {path}: no such video file or folder")
        label: int | str | tuple[int | str, ...] = (tuple(_parse_label(x) for x in parts[1:]) if anticipation
                                                     else _parse_label(" ".join(parts[1:])))
        size = path.stat().st_size if path.is_file() else 0
        items.append(Item(str(path), label, lambda p=path: read_video(p), size))
    if not items:
        raise ProbeDataError(f"{csv_path}: no videos listed")
    return items


def dataset_items(root: str | os.PathLike[str], window: int, stride: int | None = None,
                  clip_labels: str | os.PathLike[str] | None = None, anticipation: bool = False) -> list[Item]:
    """Windows of ``window`` frames of the episodes of a ``vjepa-dataset build`` dataset, with labels.

    Without ``clip_labels``: every episode is labelled by its task text (the recorder's ``task`` parameter, kept
    in ``episode.json`` and the index) and cut into windows every ``stride`` frames (default ``window``: no
    overlap). With ``clip_labels`` (a CSV of ``episode_id start label`` lines, ``start`` a frame row of that
    episode): one window per line; lines naming episodes of other datasets are left to them (the caller checks
    that every line was used, see :func:`check_clip_labels_used`).

    ``anticipation``: the clip labels are ``episode_id start verb noun action`` lines (a task text is one label,
    so anticipation needs them); the window is the observed clip.
    """
    from ..data.shards import DatasetIndex

    try:
        ds = DatasetIndex(root)
    except (OSError, ValueError) as exc:
        raise ProbeDataError(f"{root}: not a vjepa-dataset dataset: {exc}") from exc
    ids = {ep["id"]: i for i, ep in enumerate(ds.episodes)}
    stride = window if stride is None else stride
    if window < 1 or stride < 1:
        raise ProbeDataError(f"window and stride must be >= 1, got {window}, {stride}")

    def loader(i: int, start: int) -> Callable[[], np.ndarray]:
        return lambda: np.asarray(ds.episode_rows(i, "frames")[start:start + window])

    items = []
    if clip_labels is None and anticipation:
        raise ProbeDataError(f"{root}: anticipation needs (verb, noun, action) per clip: give --clip-labels with "
                             "'episode_id start verb noun action' lines (a task text is a single label)")
    if clip_labels is None:
        untasked = [ep["id"] for ep in ds.episodes if not str(ep.get("task", "")).strip()]
        if untasked:
            more = " ..." if len(untasked) > 5 else ""
            raise ProbeDataError(f"{root}: episodes without task text: {untasked[:5]}{more}; set the recorder's "
                                 "task parameter when recording, or label clips with a clip-labels CSV")
        for i, ep in enumerate(ds.episodes):
            for start in range(0, max(1, ep["length"] - window + 1), stride):
                items.append(Item(f"{root}#{ep['id']}@{start}", str(ep["task"]).strip(), loader(i, start),
                                  int(ep["length"])))
        return items
    for n, (ep_id, start, label) in enumerate(_read_clip_labels(clip_labels, anticipation), 1):
        if ep_id not in ids:
            continue
        length = int(ds.episodes[ids[ep_id]]["length"])
        if not 0 <= start < length:
            raise ProbeDataError(f"{clip_labels}: line {n}: start {start} is outside episode {ep_id!r} "
                                 f"({length} frames)")
        items.append(Item(f"{root}#{ep_id}@{start}", label, loader(ids[ep_id], start), length))
    return items


def _read_clip_labels(path: str | os.PathLike[str], anticipation: bool = False
                      ) -> list[tuple[str, int, int | str | tuple[int | str, ...]]]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ProbeDataError(f"{path}: cannot read the clip labels: {exc.strerror or exc}") from exc
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = shlex.split(line)
        if anticipation and (len(parts) != 5 or not parts[1].isdigit()):
            raise ProbeDataError(f"{path}:{n}: expected 'episode_id start verb noun action', got {line!r}")
        if len(parts) < 3 or not parts[1].isdigit():
            raise ProbeDataError(f"{path}:{n}: expected 'episode_id start label', got {line!r}")
        label = tuple(_parse_label(x) for x in parts[2:]) if anticipation else _parse_label(" ".join(parts[2:]))
        rows.append((parts[0], int(parts[1]), label))
    if not rows:
        raise ProbeDataError(f"{path}: no clip labels")
    return rows


def check_clip_labels_used(path: str | os.PathLike[str], roots: Sequence[str | os.PathLike[str]]) -> None:
    """Every episode named in a clip-labels CSV exists in one of the datasets (a typo is an error, not a gap)."""
    from ..data.shards import DatasetIndex

    known = {ep["id"] for r in roots for ep in DatasetIndex(r).episodes}
    missing = sorted({ep for ep, _, _ in _read_clip_labels(path)} - known)
    if missing:
        raise ProbeDataError(f"{path}: episodes not in any dataset given: {missing[:5]}")


def label_ids(splits: dict[str, list[Item]], num_classes: int | None = None) -> tuple[list[str] | None, int,
                                                                                     dict[str, np.ndarray]]:
    """Class ids per split: ``(names or None, num_classes, {split: ids})``.

    Integer labels are class ids (``num_classes`` defaults to the largest + 1). Text labels become ids in sorted
    order of the training labels (so ids do not depend on file order); a validation or test label that never
    occurs in training is an error.
    """
    train = splits["train"]
    if all(isinstance(it.label, int) for items in splits.values() for it in items):
        top = max(it.label for items in splits.values() for it in items)
        if min(it.label for items in splits.values() for it in items) < 0:
            raise ProbeDataError("class ids must be >= 0")
        n = int(num_classes) if num_classes else top + 1
        if top >= n:
            raise ProbeDataError(f"class id {top} does not fit num_classes {n}")
        return None, n, {k: np.array([it.label for it in v], dtype=np.int64) for k, v in splits.items()}
    names = sorted({str(it.label) for it in train})
    index = {name: i for i, name in enumerate(names)}
    if num_classes and num_classes != len(names):
        raise ProbeDataError(f"num_classes {num_classes} given, but the training labels name {len(names)} classes")
    out = {}
    for split, items in splits.items():
        unknown = sorted({str(it.label) for it in items} - set(index))
        if unknown:
            raise ProbeDataError(f"{split} labels never seen in training: {unknown[:5]}")
        out[split] = np.array([index[str(it.label)] for it in items], dtype=np.int64)
    return names, len(names), out


#: The heads of an anticipation probe, in the column order of its labels.
ANTICIPATION_HEADS = ("verb", "noun", "action")


def anticipation_label_ids(splits: dict[str, list[Item]], counts: Sequence[int | None] = (None, None, None)
                           ) -> tuple[dict[str, list[str] | None], dict[str, int], dict[str, np.ndarray]]:
    """Class ids of ``(verb, noun, action)`` labels: ``({head: names or None}, {head: num_classes},
    {split: ids [N, 3]})``.

    Each column is mapped as :func:`label_ids` maps a classification label (integer ids as given, text ids in
    sorted order of the training labels; an unseen validation/test label is an error); ``counts`` are the
    optional class counts per head (``--verb-classes`` ...). The reference derives its action ids from the
    (verb, noun) pairs of the training CSV; here the action column is given, so any action vocabulary works.
    """
    names: dict[str, list[str] | None] = {}
    nums: dict[str, int] = {}
    cols: dict[str, list[np.ndarray]] = {split: [] for split in splits}
    for j, head in enumerate(ANTICIPATION_HEADS):
        part = {split: [Item(it.key, it.label[j], it.load, it.size) for it in items]  # type: ignore[index]
                for split, items in splits.items()}
        try:
            names[head], nums[head], ids = label_ids(part, counts[j])
        except ProbeDataError as exc:
            raise ProbeDataError(f"{head} labels: {exc}") from None
        for split in splits:
            cols[split].append(ids[split])
    return names, nums, {split: np.stack(c, axis=1) for split, c in cols.items()}


# ---------------------------------------------------------------------------------------------------------------
# Clip sampling (the reference's evaluation protocol)

@dataclass(frozen=True)
class SamplingConfig:
    """How clips are cut from a video and fed to the encoder (part of the feature cache key)."""

    frames_per_clip: int = 16
    frame_step: int = 4
    num_segments: int = 1
    num_views: int = 1
    clips_per_video: int = 1
    crop: str = "eval"
    size: int = 256
    out_layers: tuple[int, ...] | None = None

    def validate(self, tubelet: int) -> None:
        """Raise :class:`ProbeDataError` naming an impossible setting."""
        from vjepa_core.preprocessing import CROP_POLICIES

        if self.frames_per_clip < 1 or self.frames_per_clip % tubelet:
            raise ProbeDataError(f"frames_per_clip must be a positive multiple of the encoder's tubelet size "
                                 f"{tubelet}, got {self.frames_per_clip}")
        for name in ("frame_step", "num_segments", "num_views", "clips_per_video", "size"):
            if getattr(self, name) < 1:
                raise ProbeDataError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.crop not in CROP_POLICIES:
            raise ProbeDataError(f"crop must be one of {CROP_POLICIES}, got {self.crop!r}")


def clip_indices(num_frames: int, frames_per_clip: int, frame_step: int, num_segments: int = 1,
                 clips_per_video: int = 1) -> np.ndarray:
    """Frame indices ``[clips_per_video, num_segments, frames_per_clip]`` of a video of ``num_frames`` frames.

    The video is split into ``num_segments`` equal parts; segment ``s`` takes ``frames_per_clip`` frames every
    ``frame_step`` frames from the start of part ``s`` (the reference's evaluation sampling). ``clips_per_video >
    1`` shifts that start by evenly spaced offsets within the part's slack (temporal jitter). Indices past the
    end repeat the last frame (short videos).
    """
    if num_frames < 1:
        raise ProbeDataError("a video needs at least one frame")
    span = (frames_per_clip - 1) * frame_step + 1
    part = num_frames / num_segments
    slack = max(0.0, part - span)
    offsets = [0] if clips_per_video == 1 else [int(math.floor(o)) for o in np.linspace(0.0, slack, clips_per_video)]
    base = np.arange(frames_per_clip) * frame_step
    out = np.empty((clips_per_video, num_segments, frames_per_clip), dtype=np.int64)
    for k, off in enumerate(offsets):
        for s in range(num_segments):
            out[k, s] = int(math.floor(s * part)) + off + base
    return np.minimum(out, num_frames - 1)


def anticipation_clip_indices(num_frames: int, frames_per_clip: int, frame_step: int) -> np.ndarray:
    """Frame indices ``[1, 1, frames_per_clip]`` of the observed clip for anticipation: ``frames_per_clip`` frames
    every ``frame_step`` frames, **ending at the video's last frame** (the anticipated action starts
    ``anticipation_time`` seconds after it, as the reference's EK100 clips end at the anticipation point).
    A short video repeats its first frame at the start."""
    if num_frames < 1:
        raise ProbeDataError("a video needs at least one frame")
    idx = num_frames - 1 - (frames_per_clip - 1 - np.arange(frames_per_clip)) * frame_step
    return np.maximum(idx, 0).astype(np.int64).reshape(1, 1, frames_per_clip)


def clip_views(frames: np.ndarray, size: int, crop: str = "eval", num_views: int = 1) -> list[torch.Tensor]:
    """``num_views`` normalised clips ``[3, T, size, size]`` of uint8 frames ``[T, H, W, 3]``.

    One view: :func:`vjepa_core.preprocessing.preprocess_clip` with ``crop`` (``"eval"``: the reference's
    single-view eval transform). Several views: the reference's multi-view eval transform: the short side resized
    to ``size``, then ``num_views`` square crops at evenly spaced offsets along the long side (left, centre, right
    for 3), ImageNet mean/std.
    """
    from vjepa_core.preprocessing import IMAGENET_MEAN, IMAGENET_STD, preprocess_clip

    if num_views == 1:
        return [preprocess_clip(np.ascontiguousarray(frames), size, crop)]
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).to(torch.float32) / 255.0  # [T,3,H,W]
    h, w = x.shape[-2:]
    nh, nw = (size, max(size, round(w * size / h))) if h <= w else (max(size, round(h * size / w)), size)
    if (nh, nw) != (h, w):
        x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False, antialias=True).clamp_(0, 1)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    x = (x - mean) / std
    long_side = max(nh, nw)
    views = []
    for v in range(num_views):
        off = round(v * (long_side - size) / (num_views - 1))
        crop_x = x[:, :, off:off + size, :size] if nh > nw else x[:, :, :size, off:off + size]
        views.append(crop_x.permute(1, 0, 2, 3).contiguous())
    return views


# ---------------------------------------------------------------------------------------------------------------
# Feature cache

@dataclass
class FeatureSet:
    """Cached probe inputs of one split: ``tokens [N, V, L, D]`` float16 (N samples = videos x clips_per_video;
    V views; L tokens per view), ``labels [N]``, and the item key of each sample."""

    tokens: np.ndarray
    labels: np.ndarray
    keys: list[str]
    path: Path | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, idx: np.ndarray | slice) -> torch.Tensor:
        """float32 ``[B, V, L, D]`` of samples ``idx`` (sorted for a fast read of the memory map)."""
        return torch.from_numpy(np.asarray(self.tokens[idx], dtype=np.float32))


@dataclass(frozen=True)
class AnticipationSpec:
    """How the anticipation features are made (:func:`vjepa_core.probes.anticipation_features`): the frozen
    pretraining ``predictor`` (``predictor_id`` names its weights for the cache key) fills in the tokens
    ``time`` seconds after the clip, the clip's frames being ``frames_per_second`` apart."""

    predictor: nn.Module = field(compare=False, repr=False)
    predictor_id: str
    time: float = 1.0
    frames_per_second: float = 8.0
    num_output_frames: int = 2
    num_steps: int = 1

    def key(self) -> dict[str, Any]:
        """The settings that change the features (part of the cache key, and of the probe file's metadata)."""
        from vjepa_core.probes import ANTICIPATION_MASK_INDEX

        return {"predictor": self.predictor_id, "time": self.time, "frames_per_second": self.frames_per_second,
                "num_output_frames": self.num_output_frames, "num_steps": self.num_steps,
                "mask_index": ANTICIPATION_MASK_INDEX, "clip": "ends at the last frame"}


def _cache_key(encoder_id: str, checkpoint_key: str, sampling: SamplingConfig, items: Sequence[Item],
               labels: np.ndarray, anticipation: AnticipationSpec | None = None) -> dict[str, Any]:
    listing = hashlib.sha256()
    for it, y in zip(items, labels):
        y_text = ",".join(str(int(v)) for v in np.atleast_1d(y))  # one id: as before (existing caches stay valid)
        listing.update(f"{it.key}\t{y_text}\t{it.size}\n".encode())
    key = {"version": CACHE_VERSION, "encoder": encoder_id, "checkpoint_key": checkpoint_key,
           "sampling": {**asdict(sampling), "out_layers": list(sampling.out_layers or [])},
           "items": len(items), "listing_sha256": listing.hexdigest()}
    if anticipation is not None:
        key["anticipation"] = anticipation.key()
    return key


def encode_split(name: str, items: Sequence[Item], labels: np.ndarray, encoder: nn.Module, encoder_id: str,
                 checkpoint_key: str, sampling: SamplingConfig, cache_root: str | os.PathLike[str],
                 batch_size: int = 8, progress: bool = True,
                 anticipation: AnticipationSpec | None = None) -> FeatureSet:
    """Encode every clip of ``items`` once into ``cache_root/<name>-<key hash>/`` (resumable), or reuse it.

    The cache key is the encoder id (architecture + checkpoint hash), the checkpoint section, the sampling
    settings and the (item, label, file size) listing: any change gives a new cache directory, never a stale
    one. Tokens are stored as the encoder returns them (its final norm included), float16. With
    ``anticipation`` the stored tokens are the anticipation features (context + predicted tokens; the predictor
    and the horizon are part of the key) of the clip ending at each video's last frame; ``labels`` are then
    ``[N, 3]`` (verb, noun, action).
    """
    key = _cache_key(encoder_id, checkpoint_key, sampling, items, labels, anticipation)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    folder = Path(cache_root) / f"{name}-{digest}"
    folder.mkdir(parents=True, exist_ok=True)
    meta_path = folder / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else None
    k = sampling.clips_per_video
    n = len(items) * k
    if meta is None or meta.get("key") != key:
        # one sample tells the token count per view: [V, L, D]
        probe_tokens = _encode_items(items[:1], encoder, sampling, batch_size, anticipation)[0]
        shape = (n, *probe_tokens.shape)
        tokens = np.lib.format.open_memmap(folder / "tokens.npy", mode="w+", dtype=np.float16, shape=shape)
        del tokens
        np.save(folder / "labels.npy", np.repeat(labels, k, axis=0))
        meta = {"key": key, "shape": list(shape), "done_items": 0}
        (folder / "keys.json").write_text(json.dumps([it.key for it in items]))
        _write_json(meta_path, meta)
    done = int(meta["done_items"])
    if done < len(items):
        tokens = np.lib.format.open_memmap(folder / "tokens.npy", mode="r+")
        bar = _bar(len(items), done, f"encoding {name}", progress)
        t0 = time.perf_counter()
        for start in range(done, len(items), batch_size):
            chunk = items[start:start + batch_size]
            tokens[start * k:(start + len(chunk)) * k] = _encode_items(chunk, encoder, sampling, batch_size,
                                                                       anticipation)
            tokens.flush()
            meta["done_items"] = start + len(chunk)
            _write_json(meta_path, meta)
            if bar is not None:
                bar.update(len(chunk))
        if bar is not None:
            bar.close()
        del tokens
        log.info("%s: encoded %d clips of %d videos in %.1f s -> %s", name, n, len(items),
                 time.perf_counter() - t0, folder)
    else:
        log.info("%s: reusing the feature cache %s (%d clips)", name, folder, n)
    return FeatureSet(np.load(folder / "tokens.npy", mmap_mode="r"), np.load(folder / "labels.npy"),
                      [it.key for it in items for _ in range(k)], folder)


def _encode_items(items: Sequence[Item], encoder: nn.Module, s: SamplingConfig, batch_size: int,
                  anticipation: AnticipationSpec | None = None) -> np.ndarray:
    """float16 ``[len(items) * clips_per_video, V, L, D]`` probe inputs (sample order: item-major)."""
    from vjepa_core.probes import anticipation_features, clip_features

    per_sample: list[list[list[torch.Tensor]]] = []  # sample -> segment -> view
    for it in items:
        frames = it.load()
        if anticipation is not None:
            idx = anticipation_clip_indices(len(frames), s.frames_per_clip, s.frame_step)
        else:
            idx = clip_indices(len(frames), s.frames_per_clip, s.frame_step, s.num_segments, s.clips_per_video)
        for k in range(idx.shape[0]):
            per_sample.append([clip_views(np.asarray(frames[idx[k, seg]]), s.size, s.crop, s.num_views)
                               for seg in range(s.num_segments)])
    shapes = {tuple(v.shape) for sample in per_sample for seg in sample for v in seg}
    if len(shapes) != 1:
        raise ProbeDataError(f"clips of different shapes {sorted(shapes)} in one batch (items "
                             f"{[it.key for it in items]})")
    clips = [[torch.stack([sample[seg][v] for sample in per_sample]) for v in range(s.num_views)]
             for seg in range(s.num_segments)]
    if anticipation is not None:  # one segment; every view is its own observed clip
        a = anticipation
        feats = [anticipation_features(encoder, a.predictor, view, a.time, a.frames_per_second,
                                       num_output_frames=a.num_output_frames, num_steps=a.num_steps)
                 for view in clips[0]]                                                   # V x [B, N + n, D]
        return torch.stack(feats, dim=1).float().cpu().numpy().astype(np.float16)
    feats = clip_features(encoder, clips, out_layers=s.out_layers, batch_size=batch_size)  # V x [B, L, D]
    return torch.stack(feats, dim=1).float().cpu().numpy().astype(np.float16)


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def _bar(total: int, initial: int, desc: str, enabled: bool) -> Any:
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    import sys

    return tqdm(total=total, initial=initial, desc=desc, unit="video", file=sys.stderr, dynamic_ncols=True,
                mininterval=0.5)


# ---------------------------------------------------------------------------------------------------------------
# Heads and their optimisation (the reference's multi-head recipe)

@dataclass(frozen=True)
class HeadSpec:
    """One head's optimisation (the reference's ``multihead_kwargs`` entry)."""

    lr: float
    weight_decay: float
    start_lr: float | None = None     # default: lr (no warmup ramp)
    final_lr: float = 0.0
    final_weight_decay: float | None = None   # default: weight_decay (constant)
    warmup_epochs: float = 0.0

    def describe(self) -> str:
        return f"lr {self.lr:g} wd {self.weight_decay:g}"


def head_grid(lrs: Sequence[float] = DEFAULT_LRS, wds: Sequence[float] = DEFAULT_WDS,
              warmup_epochs: float = 0.0) -> list[HeadSpec]:
    """Every (weight decay, lr) pair, weight decay major (the reference configs' order)."""
    return [HeadSpec(lr, wd, warmup_epochs=warmup_epochs) for wd in wds for lr in lrs]


def _lr_at(spec: HeadSpec, step: int, total: int, warmup: int) -> float:
    """The reference ``WarmupCosineLRSchedule`` after ``step`` calls of ``step()``."""
    start = spec.lr if spec.start_lr is None else spec.start_lr
    if step < warmup:
        return start + step / max(1, warmup) * (spec.lr - start)
    progress = (step - warmup) / max(1, total - warmup)
    return max(spec.final_lr, spec.final_lr + (spec.lr - spec.final_lr) * 0.5 * (1.0 + math.cos(math.pi * progress)))


def _wd_at(spec: HeadSpec, step: int, total: int) -> float:
    """The reference ``CosineWDSchedule`` after ``step`` calls of ``step()``."""
    final = spec.weight_decay if spec.final_weight_decay is None else spec.final_weight_decay
    wd = final + (spec.weight_decay - final) * 0.5 * (1.0 + math.cos(math.pi * step / max(1, total)))
    return max(final, wd) if final <= spec.weight_decay else min(final, wd)


class MeanPoolLinear(nn.Module):
    """The baseline: a linear classifier on the mean of the tokens (``[B, N, D] -> [B, C]``)."""

    def __init__(self, dim: int, num_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, num_classes)
        nn.init.trunc_normal_(self.linear.weight, std=0.02)
        nn.init.zeros_(self.linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.mean(dim=1))


class MeanPoolAnticipation(nn.Module):
    """The anticipation baseline: verb / noun / action linear classifiers on the mean of the tokens
    (``[B, N, D] -> {"verb", "noun", "action"}``)."""

    def __init__(self, dim: int, verb_classes: int, noun_classes: int, action_classes: int) -> None:
        super().__init__()
        self.verb_classifier = nn.Linear(dim, verb_classes)
        self.noun_classifier = nn.Linear(dim, noun_classes)
        self.action_classifier = nn.Linear(dim, action_classes)
        for lin in (self.verb_classifier, self.noun_classifier, self.action_classifier):
            nn.init.trunc_normal_(lin.weight, std=0.02)
            nn.init.zeros_(lin.bias)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        m = x.mean(dim=1)
        return {"verb": self.verb_classifier(m), "noun": self.noun_classifier(m),
                "action": self.action_classifier(m)}


@torch.no_grad()
def predict(head: nn.Module, data: FeatureSet, batch_size: int = 64, device: str | torch.device = "cpu"
            ) -> np.ndarray:
    """Class probabilities ``[N, C]``: the head on every view, softmax averaged over views (reference eval)."""
    head.eval()
    out = []
    for start in range(0, len(data), batch_size):
        x = data.batch(slice(start, start + batch_size)).to(device)  # [B, V, L, D]
        probs = sum(F.softmax(head(x[:, v]), dim=1) for v in range(x.shape[1])) / x.shape[1]
        out.append(probs.float().cpu().numpy())
    return np.concatenate(out)


@torch.no_grad()
def predict_anticipation(head: nn.Module, data: FeatureSet, batch_size: int = 64,
                         device: str | torch.device = "cpu") -> dict[str, np.ndarray]:
    """``{"verb", "noun", "action"}`` probabilities ``[N, C]`` of an anticipation head: softmax of each head's
    logits, averaged over views (one view in the reference's EK100 protocol)."""
    head.eval()
    out: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(data), batch_size):
        x = data.batch(slice(start, start + batch_size)).to(device)  # [B, V, L, D]
        per_view = [head(x[:, v]) for v in range(x.shape[1])]
        for name in per_view[0]:
            probs = sum(F.softmax(o[name], dim=1) for o in per_view) / len(per_view)
            out.setdefault(name, []).append(probs.float().cpu().numpy())
    return {name: np.concatenate(parts) for name, parts in out.items()}


def mean_class_recall(scores: np.ndarray, labels: np.ndarray, k: int = 5) -> float:
    """Mean-class recall@k (EK100's anticipation metric, the reference's ``ClassMeanRecall``): for every class
    that occurs in ``labels``, the fraction of its samples whose class is among the ``k`` highest ``scores``
    ``[N, C]``; the mean over those classes (classes without samples do not count). ``k`` is capped at C.

    Unlike top-k accuracy, every class weighs the same, however rare: a model that only gets the frequent
    actions right scores low."""
    labels = np.asarray(labels)
    if scores.ndim != 2 or len(scores) != len(labels) or len(labels) == 0:
        raise ValueError(f"scores must be [N, C] with N = len(labels) > 0; got {list(scores.shape)} and "
                         f"{len(labels)} labels")
    k = min(k, scores.shape[1])
    topk = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    hit = (topk == labels[:, None]).any(1)
    return float(np.mean([hit[labels == c].mean() for c in np.unique(labels)]))


def evaluate(probs: np.ndarray, labels: np.ndarray, num_classes: int, confusion: bool = True) -> dict[str, Any]:
    """top-1, top-5, mean-class recall (top-1 and @5), per-class recall and the confusion matrix (rows: true;
    ``None`` with ``confusion=False``, for vocabularies too large to store one)."""
    pred = probs.argmax(1)
    k = min(5, num_classes)
    topk = np.argsort(-probs, axis=1)[:, :k]
    hit5 = (topk == labels[:, None]).any(1)
    conf = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(conf, (labels, pred), 1)
    support = conf.sum(1)
    present = support > 0
    recall = np.where(present, np.diag(conf) / np.maximum(support, 1), np.nan)
    return {"top1": float((pred == labels).mean()), "top5": float(hit5.mean()),
            "mean_class_recall": float(np.nanmean(recall)), "mean_class_recall_at5": mean_class_recall(probs, labels),
            "per_class_recall": [None if np.isnan(r) else round(float(r), 4) for r in recall],
            "confusion": conf.tolist() if confusion else None, "samples": int(len(labels))}


def evaluate_anticipation(probs: dict[str, np.ndarray], labels: np.ndarray, counts: dict[str, int],
                          confusion_limit: int = 200) -> dict[str, Any]:
    """:func:`evaluate` per head (``labels`` ``[N, 3]``: verb, noun, action) plus the headline numbers
    ``action_recall5`` (the selection metric), ``verb_recall5``, ``noun_recall5`` and the three top-1s.
    Confusion matrices are kept for heads of at most ``confusion_limit`` classes (EK100 has 3,568 actions)."""
    out: dict[str, Any] = {}
    for j, head in enumerate(ANTICIPATION_HEADS):
        if head in probs:
            r = evaluate(probs[head], labels[:, j], counts[head], confusion=counts[head] <= confusion_limit)
            out[head] = r
            out[f"{head}_recall5"] = r["mean_class_recall_at5"]
            out[f"{head}_top1"] = r["top1"]
    out["samples"] = int(len(labels))
    return out


def anticipation_loss(out: dict[str, torch.Tensor], y: torch.Tensor) -> torch.Tensor:
    """The reference's anticipation loss: the sum of the verb, noun and action cross-entropies (``y`` ``[B, 3]``;
    an action-only head gives its action term only)."""
    return sum(F.cross_entropy(out[h], y[:, j]) for j, h in enumerate(ANTICIPATION_HEADS) if h in out)


def train_heads(train: FeatureSet, val: FeatureSet, make_head: Callable[[], nn.Module], specs: Sequence[HeadSpec],
                epochs: int, batch_size: int, seed: int, num_classes: int, *, device: str | torch.device = "cpu",
                logger: Any = None, name: str = "probe",
                loss_fn: Callable[[Any, torch.Tensor], torch.Tensor] | None = None,
                score_fn: Callable[[nn.Module], dict[str, float]] | None = None,
                ) -> tuple[list[nn.Module], list[dict[str, Any]]]:
    """Train one head per spec on the same shuffled batches (the reference's multi-head loop); returns the heads
    and per-epoch history (``train_loss`` and ``val_top1`` per head; ``val_<metric>`` for a ``score_fn``).

    Per iteration: every head's LR and weight decay are set from its schedules, the cross-entropy of every view
    is back-propagated (summed, as the reference's per-view backward), and its AdamW steps. Deterministic for a
    seed: heads are initialised in order after ``torch.manual_seed(seed)``, batches shuffled by a generator
    seeded with ``seed``.

    Anticipation passes ``loss_fn`` (:func:`anticipation_loss`, per view) and ``score_fn`` (head -> validation
    metrics, e.g. ``{"action_recall5": ..., "action_top1": ...}``); the history then holds ``val_<metric>`` per
    head for each of them, and the first one is logged as the epoch's headline.
    """
    criterion = loss_fn if loss_fn is not None else F.cross_entropy

    def top1(h: nn.Module) -> dict[str, float]:
        return {"top1": evaluate(predict(h, val, device=device), val.labels, num_classes)["top1"]}

    scorer = score_fn if score_fn is not None else top1
    if len(train) == 0 or len(val) == 0:
        raise ProbeDataError("the training and validation splits must not be empty")
    torch.manual_seed(seed)
    heads = [make_head().to(device).train() for _ in specs]
    opts = [torch.optim.AdamW(h.parameters(), lr=s.lr, weight_decay=s.weight_decay) for h, s in zip(heads, specs)]
    ipe = max(1, math.ceil(len(train) / batch_size))
    total = epochs * ipe
    gen = torch.Generator().manual_seed(seed)
    history = []
    step = 0
    for epoch in range(1, epochs + 1):
        for h in heads:
            h.train()
        order = torch.randperm(len(train), generator=gen).numpy()
        sums = np.zeros(len(heads))
        for it in range(ipe):
            idx = np.sort(order[it * batch_size:(it + 1) * batch_size])
            x = train.batch(idx).to(device)                       # [B, V, L, D]
            y = torch.from_numpy(train.labels[idx]).to(device)
            step += 1                                             # the reference steps its schedules first
            for j, (h, opt, spec) in enumerate(zip(heads, opts, specs)):
                warmup = int(spec.warmup_epochs * ipe)
                for g in opt.param_groups:
                    g["lr"] = _lr_at(spec, step, total, warmup)
                    g["weight_decay"] = _wd_at(spec, step, total)
                loss = sum(criterion(h(x[:, v]), y) for v in range(x.shape[1]))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sums[j] += float(loss.detach()) / x.shape[1]
            if logger is not None:
                logger.progress(1, {"epoch": f"{epoch}/{epochs}", "loss": f"{sums.min() / (it + 1):.3f}"})
        scores = [scorer(h) for h in heads]
        metrics = list(scores[0])
        rec: dict[str, Any] = {"epoch": epoch, "train_loss": (sums / ipe).tolist()}
        for m in metrics:
            rec[f"val_{m}"] = [float(sc[m]) for sc in scores]
        history.append(rec)
        best = _best_head(rec, metrics)
        headline = rec[f"val_{metrics[0]}"]
        if logger is not None:
            logger.log(step, {"epoch": epoch, f"{name}_train_loss_best_head": float(sums[best] / ipe),
                              f"{name}_val_{metrics[0]}_best": float(headline[best]),
                              f"{name}_val_{metrics[0]}_mean": float(np.mean(headline)),
                              f"{name}_val_{metrics[0]}_min": float(np.min(headline)), f"{name}_best_head": best})
        log.info("%s epoch %d/%d: val %s best %.3f (head %d: %s), mean %.3f", name, epoch, epochs, metrics[0],
                 headline[best], best, specs[best].describe(), float(np.mean(headline)))
    for h in heads:
        h.eval()
    return heads, history


def _best_head(record: dict[str, Any], metrics: Sequence[str]) -> int:
    """Index of the best head of one history record: highest ``val_<metrics[0]>``, ties broken by the next
    metrics in order, then the first head."""
    keys = [tuple(record[f"val_{m}"][i] for m in metrics) for i in range(len(record[f"val_{metrics[0]}"]))]
    return max(range(len(keys)), key=lambda i: (keys[i], -i))


def save_confusion_png(confusion: Sequence[Sequence[int]], names: Sequence[str], path: str | os.PathLike[str],
                       title: str) -> Path:
    """Row-normalised confusion matrix (rows: true class, columns: predicted) with counts, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conf = np.asarray(confusion, dtype=np.float64)
    norm = conf / np.maximum(conf.sum(1, keepdims=True), 1)
    n = len(names)
    side = max(4.0, 0.55 * n + 2.0)
    fig, ax = plt.subplots(figsize=(side + 1.0, side), dpi=110)
    im = ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0)
    if n <= 40:
        ax.set_xticks(range(n), names, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(n), names, fontsize=8)
        for i in range(n):
            for j in range(n):
                if conf[i, j]:
                    ax.text(j, i, int(conf[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


# ---------------------------------------------------------------------------------------------------------------
# A whole run

@dataclass
class ProbeTrainConfig:
    """Everything ``vjepa-train probe`` needs (see ``vjepa_training.probe_cli`` for the flags)."""

    checkpoint: str
    train: list[str]
    val: list[str]
    out: str
    test: list[str] = field(default_factory=list)
    model_config: str = ""
    checkpoint_key: str = "target_encoder"
    clip_labels: str | None = None
    window_stride: int | None = None
    num_classes: int | None = None
    frames_per_clip: int = 16
    frame_step: int = 4
    num_segments: int = 1
    num_views: int = 1
    clips_per_video: int = 1
    crop: str = "eval"
    out_layers: tuple[int, ...] | None = None
    num_heads: int = 16
    depth: int = 4
    epochs: int = 20
    batch_size: int = 16
    lrs: tuple[float, ...] = DEFAULT_LRS
    wds: tuple[float, ...] = DEFAULT_WDS
    warmup_epochs: float = 0.0
    linear_baseline: bool = False
    seed: int = 0
    device: str = "cpu"
    threads: int = 0
    cache: str | None = None
    encode_batch: int = 8
    tensorboard: bool = True
    progress: bool = True
    # anticipation (task="anticipation"; the reference's evals/action_anticipation_frozen)
    task: str = "classification"
    anticipation_time: float = 1.0
    frames_per_second: float = 8.0
    num_output_frames: int = 2
    num_steps: int = 1
    predictor_config: str = ""
    predictor_checkpoint: str = ""
    verb_classes: int | None = None
    noun_classes: int | None = None
    action_classes: int | None = None


TASKS = ("classification", "anticipation")


def _split_items(sources: Sequence[str], cfg: ProbeTrainConfig, split: str) -> list[Item]:
    """Items of one split: CSV video lists and dataset directories (``index.json``), in the order given."""
    items: list[Item] = []
    span = (cfg.frames_per_clip - 1) * cfg.frame_step + 1
    window = cfg.num_segments * (span + cfg.clips_per_video - 1)
    for src in sources:
        p = Path(src).expanduser()
        if p.is_dir() and (p / "index.json").is_file():
            got = dataset_items(p, window, cfg.window_stride, cfg.clip_labels,
                                anticipation=cfg.task == "anticipation")
        elif p.is_dir():
            raise ProbeDataError(f"{split} source {p}: a folder without index.json: give a vjepa-dataset dataset "
                                 "or a CSV of 'path label' lines")
        else:
            got = read_csv_items(p, anticipation=cfg.task == "anticipation")
        if not got:
            raise ProbeDataError(f"{split} source {p}: no labelled clips (no episode matches the clip labels?)")
        items += got
    keys = [it.key for it in items]
    if len(set(keys)) != len(keys):
        dup = sorted({k for k in keys if keys.count(k) > 1})[:3]
        raise ProbeDataError(f"{split}: the same clip is listed twice: {dup}")
    return items


def _resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ProbeDataError(f"device {device!r}: {exc}") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ProbeDataError(f"device {device!r} requested but CUDA is not available (use --device cpu)")
    return dev


def load_frozen_encoder(checkpoint: str, model_config: str, checkpoint_key: str,
                        device: torch.device) -> tuple[nn.Module, Any, str]:
    """(encoder in eval mode on ``device``, its EncoderConfig, its id ``<arch>@<sha256 prefix>``)."""
    from vjepa_core.checkpoint import load_official, model_id
    from vjepa_core.loading import ModelLoadError, resolve_model_config

    if not Path(checkpoint).is_file():
        raise ProbeDataError(f"checkpoint {checkpoint!r} does not exist")
    try:
        enc_dict, _ = resolve_model_config(model_config or None, checkpoint)
    except ModelLoadError as exc:  # a RuntimeError in vjepa_core; here it is bad input
        raise ProbeDataError(str(exc)) from None
    if enc_dict is None:
        raise ProbeDataError(f"model config {model_config!r} has no encoder config")
    encoder, _ = load_official(checkpoint, enc_dict, None, encoder_key=checkpoint_key)
    for p in encoder.parameters():
        p.requires_grad_(False)
    return encoder.to(device).eval(), encoder.cfg, model_id(encoder.cfg, checkpoint)


def _read_mapping(path: Path) -> dict[str, Any]:
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise ProbeDataError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ProbeDataError(f"{path}: expected a mapping")
    return data


def _pretrain_predictor_config(cfg: ProbeTrainConfig, enc_cfg: Any) -> Any:
    """The :class:`~vjepa_core.config.PretrainPredictorConfig` for anticipation, from ``--predictor-config``: a
    released encoder preset name (the EK100 evaluations' predictor: 64 frames, width 384, depth 12, 12 heads,
    10 mask tokens, at the encoder's resolution), or a JSON/YAML file with a ``pretrain_predictor`` (or
    ``predictor``) mapping; empty: the ``pretrain_predictor`` mapping of ``--model-config``, else the config
    that our pretraining checkpoints embed."""
    from vjepa_core.checkpoint import read_checkpoint
    from vjepa_core.config import ENCODER_PRESETS, PretrainPredictorConfig
    from vjepa_core.probes import PROBE_PRESETS

    source = cfg.predictor_config
    try:
        if source in ENCODER_PRESETS:
            ek100 = PROBE_PRESETS["ek100-vitl-256.pt"]["predictor"]
            return PretrainPredictorConfig.preset(source, img_size=enc_cfg.img_size, **ek100)
        if source:
            if not Path(source).is_file():
                raise ProbeDataError(f"predictor config {source!r} is neither an encoder preset "
                                     f"({', '.join(sorted(ENCODER_PRESETS))}) nor a file")
            data = _read_mapping(Path(source))
            return PretrainPredictorConfig.from_dict(data.get("pretrain_predictor", data.get("predictor", data)))
        if cfg.model_config and Path(cfg.model_config).is_file():
            data = _read_mapping(Path(cfg.model_config))
            if isinstance(data.get("pretrain_predictor"), dict):
                return PretrainPredictorConfig.from_dict(data["pretrain_predictor"])
        meta = read_checkpoint(cfg.predictor_checkpoint or cfg.checkpoint, mmap=True).get("vjepa2_ros") or {}
        if meta.get("predictor_type") == "PretrainPredictorConfig" and isinstance(meta.get("predictor_config"), dict):
            return PretrainPredictorConfig.from_dict(meta["predictor_config"])
    except ProbeDataError:
        raise
    except (TypeError, ValueError) as exc:   # ConfigError is a ValueError
        raise ProbeDataError(f"predictor config: {exc}") from exc
    raise ProbeDataError("anticipation needs the pretraining predictor's config: --predictor-config PRESET "
                         "(vit_large, ...: the EK100 predictor) or a JSON/YAML file with a 'pretrain_predictor' "
                         "mapping (or a --model-config file that has one)")


def load_frozen_predictor(cfg: ProbeTrainConfig, enc_cfg: Any, device: torch.device) -> tuple[nn.Module, str]:
    """(the frozen pretraining predictor on ``device``, its id ``<arch>@<sha256 prefix>``) for anticipation, from
    ``--predictor-checkpoint`` (default: the encoder checkpoint), section ``predictor``. Checks before anything
    is encoded that it fits the encoder and that the horizon lies within its frames."""
    from vjepa_core.checkpoint import load_official, model_id

    pred_cfg = _pretrain_predictor_config(cfg, enc_cfg)
    path = cfg.predictor_checkpoint or cfg.checkpoint
    if not Path(path).is_file():
        raise ProbeDataError(f"predictor checkpoint {path!r} does not exist")
    if (tuple(pred_cfg.grid_hw) != tuple(enc_cfg.grid_hw) or pred_cfg.embed_dim != enc_cfg.embed_dim
            or pred_cfg.tubelet_size != enc_cfg.tubelet_size):
        raise ProbeDataError(f"the predictor (img_size {pred_cfg.img_size}, embed_dim {pred_cfg.embed_dim}, tubelet "
                             f"{pred_cfg.tubelet_size}) does not fit the encoder (img_size {enc_cfg.img_size}, "
                             f"embed_dim {enc_cfg.embed_dim}, tubelet {enc_cfg.tubelet_size})")
    tub = int(enc_cfg.tubelet_size)
    needed = (cfg.frames_per_clip // tub + int(cfg.anticipation_time * cfg.frames_per_second / tub)
              + max(cfg.num_output_frames, tub) // tub)
    if needed > pred_cfg.num_frames // tub:
        raise ProbeDataError(f"anticipation {cfg.anticipation_time:g} s ahead of a {cfg.frames_per_clip}-frame clip "
                             f"at {cfg.frames_per_second:g} fps needs {needed} latent frames, past the predictor's "
                             f"num_frames {pred_cfg.num_frames} ({pred_cfg.num_frames // tub} latent frames): use "
                             "a shorter horizon or clip, or a predictor config with more num_frames")
    _, predictor = load_official(path, None, pred_cfg)
    for prm in predictor.parameters():
        prm.requires_grad_(False)
    return predictor.to(device).eval(), model_id(pred_cfg, path)


def _check_anticipation_settings(cfg: ProbeTrainConfig) -> None:
    if cfg.num_segments != 1 or cfg.clips_per_video != 1:
        raise ProbeDataError("anticipation reads one observed clip per video (ending at its last frame): use "
                             "--segments 1 and --clips-per-video 1")
    if cfg.out_layers:
        raise ProbeDataError("anticipation feeds the encoder's last layer to the predictor: --out-layers is not "
                             "supported")
    if not (cfg.frames_per_second > 0 and math.isfinite(cfg.anticipation_time) and cfg.anticipation_time >= 0):
        raise ProbeDataError(f"anticipation needs --frames-per-second > 0 and --anticipation-time >= 0 seconds; "
                             f"got {cfg.frames_per_second:g} and {cfg.anticipation_time:g}")
    if cfg.num_output_frames < 1 or cfg.num_steps < 1:
        raise ProbeDataError("--num-output-frames and --num-steps must be >= 1")


def _train_head_grid(cfg: ProbeTrainConfig, out: Path, feats: dict[str, FeatureSet], probe_cfg: ProbeConfig,
                     num_classes: int, device: torch.device, metric: str, **train_kw: Any
                     ) -> tuple[list[HeadSpec], list[nn.Module], list[dict[str, Any]], float]:
    """Train the recipe's grid of heads (learning rates x weight decays) in one pass over the cached features,
    logging ``metric`` on validation per epoch (CSV, TensorBoard, progress bar). Returns (specs, heads, history,
    training seconds); both probe tasks share it, only their metric, loss and scorer differ (``train_kw``)."""
    from vjepa_core.probes import build_probe

    from .metrics import MetricsLogger

    specs = head_grid(cfg.lrs, cfg.wds, cfg.warmup_epochs)
    ipe = math.ceil(len(feats["train"]) / cfg.batch_size)
    columns = ["epoch", "probe_train_loss_best_head", f"probe_val_{metric}_best", f"probe_val_{metric}_mean",
               f"probe_val_{metric}_min", "probe_best_head"]
    metrics = MetricsLogger(out, columns, enabled=True, total_steps=cfg.epochs * ipe, tensorboard=cfg.tensorboard,
                            progress_bar=cfg.progress)
    t0 = time.perf_counter()
    try:
        heads, history = train_heads(feats["train"], feats["val"], lambda: build_probe(probe_cfg, init=True), specs,
                                     cfg.epochs, cfg.batch_size, cfg.seed, num_classes, device=device,
                                     logger=metrics, name="probe", **train_kw)
    finally:
        metrics.close()
    return specs, heads, history, time.perf_counter() - t0


def run_probe_training(cfg: ProbeTrainConfig) -> dict[str, Any]:
    """Cache features, train the heads, keep the best by validation top-1 (anticipation: action mean-class
    recall@5), evaluate, write the outputs.

    Returns the results dict also written to ``OUT/results.json``. Raises :class:`ProbeDataError` (a
    ``ValueError``) or a checkpoint error for bad input, before the output directory is created.
    """
    from vjepa_core.probes import ProbeConfig, save_probe


    t_start = time.perf_counter()
    if cfg.epochs < 1 or cfg.batch_size < 1 or not cfg.lrs or not cfg.wds:
        raise ProbeDataError("epochs and batch_size must be >= 1, and the lr / wd grids non-empty")
    if cfg.task not in TASKS:
        raise ProbeDataError(f"task must be one of {TASKS}, got {cfg.task!r}")
    if cfg.task == "anticipation":
        return _run_anticipation(cfg, t_start)
    if cfg.clip_labels is not None:
        check_clip_labels_used(cfg.clip_labels, [s for s in [*cfg.train, *cfg.val, *cfg.test]
                                                 if (Path(s) / "index.json").is_file()])
    splits = {"train": _split_items(cfg.train, cfg, "train"), "val": _split_items(cfg.val, cfg, "val")}
    if cfg.test:
        splits["test"] = _split_items(cfg.test, cfg, "test")
    overlap = {k for it in splits["train"] for k in [it.key]} & {it.key for s in ("val", "test") if s in splits
                                                                for it in splits[s]}
    if overlap:
        raise ProbeDataError(f"clips in both training and validation/test: {sorted(overlap)[:3]}")
    names, num_classes, ids = label_ids(splits, cfg.num_classes)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    device = _resolve_device(cfg.device)
    encoder, enc_cfg, encoder_id = load_frozen_encoder(cfg.checkpoint, cfg.model_config, cfg.checkpoint_key, device)
    size = int(enc_cfg.img_size[0] if isinstance(enc_cfg.img_size, (tuple, list)) else enc_cfg.img_size)
    sampling = SamplingConfig(cfg.frames_per_clip, cfg.frame_step, cfg.num_segments, cfg.num_views,
                              cfg.clips_per_video, cfg.crop, size, tuple(cfg.out_layers) if cfg.out_layers else None)
    sampling.validate(int(enc_cfg.tubelet_size))
    probe_cfg = ProbeConfig(embed_dim=int(enc_cfg.embed_dim), num_heads=cfg.num_heads, depth=cfg.depth,
                            num_classes=num_classes)                      # raises ConfigError (a ValueError)

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    cache_root = Path(cfg.cache) if cfg.cache else out / "features"
    log.info("probe: encoder %s (%s), %d classes, splits %s; clips of %d frames every %d, %d segment(s) x %d "
             "view(s), %d per video, crop %s at %d px", encoder_id, cfg.checkpoint_key, num_classes,
             {k: len(v) for k, v in splits.items()}, cfg.frames_per_clip, cfg.frame_step, cfg.num_segments,
             cfg.num_views, cfg.clips_per_video, cfg.crop, size)
    t0 = time.perf_counter()
    feats = {k: encode_split(k, v, ids[k], encoder, encoder_id, cfg.checkpoint_key, sampling, cache_root,
                             cfg.encode_batch, cfg.progress) for k, v in splits.items()}
    t_encode = time.perf_counter() - t0
    del encoder

    specs, heads, history, t_train = _train_head_grid(cfg, out, feats, probe_cfg, num_classes, device, "top1")
    attentive = _select_and_report(heads, history, specs, feats, num_classes, device)
    best = heads[attentive["best_head"]].cpu()
    best.cfg = probe_cfg
    spec = specs[attentive["best_head"]]
    training_meta = {
        "encoder_id": encoder_id, "checkpoint": str(cfg.checkpoint), "checkpoint_key": cfg.checkpoint_key,
        "sampling": {**asdict(sampling), "out_layers": list(sampling.out_layers or [])},
        "labels": names, "num_classes": num_classes, "head": {"lr": spec.lr, "weight_decay": spec.weight_decay},
        "val_top1": attentive["val"]["top1"], "epochs": cfg.epochs, "seed": cfg.seed,
    }
    opt_meta = [{"lr": s.lr, "weight_decay": s.weight_decay, "final_lr": s.final_lr,
                 "warmup_epochs": s.warmup_epochs} for s in [spec]]
    save_probe(out / "probe.pt", best, epoch=cfg.epochs, batch_size=cfg.batch_size, opt=opt_meta,
               extra={"probe_training": training_meta})
    if names is not None:
        (out / "labels.json").write_text(json.dumps({str(i): n for i, n in enumerate(names)}, indent=1) + "\n")
    label_names = names or [str(i) for i in range(num_classes)]
    results: dict[str, Any] = {
        "encoder_id": encoder_id, "checkpoint": str(cfg.checkpoint), "checkpoint_key": cfg.checkpoint_key,
        "probe": str(out / "probe.pt"), "probe_config": probe_cfg.to_dict(), "num_classes": num_classes,
        "labels": names, "sampling": training_meta["sampling"],
        "splits": {k: {"videos": len(splits[k]), "clips": len(feats[k]),
                       "class_counts": np.bincount(feats[k].labels, minlength=num_classes).tolist()}
                   for k in splits},
        "chance": {"uniform": 1.0 / num_classes},
        "recipe": {"epochs": cfg.epochs, "batch_size": cfg.batch_size, "lrs": list(cfg.lrs), "wds": list(cfg.wds),
                   "warmup_epochs": cfg.warmup_epochs, "seed": cfg.seed, "selection": "val top-1, last epoch"},
        "attentive": attentive,
    }
    for split in ("val", "test"):
        if split in feats:
            counts = np.bincount(feats[split].labels, minlength=num_classes)
            results["chance"][f"majority_{split}"] = float(counts.max() / counts.sum())
    seconds = {"encode": round(t_encode, 1), "train_attentive": round(t_train, 1)}
    if cfg.linear_baseline:
        t0 = time.perf_counter()
        dim = int(enc_cfg.embed_dim)
        lin_heads, lin_hist = train_heads(feats["train"], feats["val"], lambda: MeanPoolLinear(dim, num_classes),
                                          specs, cfg.epochs, cfg.batch_size, cfg.seed, num_classes, device=device,
                                          name="linear")
        results["linear"] = _select_and_report(lin_heads, lin_hist, specs, feats, num_classes, device)
        seconds["train_linear"] = round(time.perf_counter() - t0, 1)
    pictures = {}
    for split in ("val", "test"):
        if split in attentive:
            title = (f"attentive probe, {split}: top-1 {attentive[split]['top1']:.3f} "
                     f"({attentive[split]['samples']} clips)")
            pictures[split] = str(save_confusion_png(attentive[split]["confusion"], label_names,
                                                     out / f"confusion_{split}.png", title))
    results["pictures"] = pictures
    seconds["total"] = round(time.perf_counter() - t_start, 1)
    results["seconds"] = seconds
    _write_json(out / "results.json", results)
    return results


def _select_and_report(heads: Sequence[nn.Module], history: list[dict[str, Any]], specs: Sequence[HeadSpec],
                       feats: dict[str, FeatureSet], num_classes: int, device: torch.device) -> dict[str, Any]:
    """The head with the best last-epoch validation top-1 (ties: the first), evaluated on val and test."""
    last = history[-1]["val_top1"]
    best = int(np.argmax(last))
    report: dict[str, Any] = {
        "best_head": best, "lr": specs[best].lr, "weight_decay": specs[best].weight_decay,
        "heads": [{"lr": s.lr, "weight_decay": s.weight_decay, "val_top1": round(float(a), 4),
                   "train_loss": round(float(loss), 4)} for s, a, loss in zip(specs, last, history[-1]["train_loss"])],
        "val_top1_per_epoch": [round(float(h["val_top1"][best]), 4) for h in history],
    }
    for split in ("val", "test"):
        if split in feats:
            report[split] = evaluate(predict(heads[best], feats[split], device=device), feats[split].labels,
                                     num_classes)
    return report


# ---------------------------------------------------------------------------------------------------------------
# Anticipation (the reference's evals/action_anticipation_frozen)

#: Validation metrics of an anticipation head, in selection order: the action head's mean-class recall@5 (EK100's
#: metric and the reference's), ties broken by its top-1.
ANTICIPATION_SELECTION = ("action_recall5", "action_top1")
#: Confusion-matrix pictures are drawn for heads of at most this many classes (more is unreadable).
CONFUSION_PNG_LIMIT = 60


def _select_and_report_anticipation(heads: Sequence[nn.Module], history: list[dict[str, Any]],
                                    specs: Sequence[HeadSpec], feats: dict[str, FeatureSet],
                                    counts: dict[str, int], device: torch.device) -> dict[str, Any]:
    """The head with the best last-epoch validation action recall@5 (ties: action top-1, then the first),
    evaluated on val and test (verb / noun / action: top-1, top-5, mean-class recall and recall@5)."""
    last = history[-1]
    best = _best_head(last, ANTICIPATION_SELECTION)
    report: dict[str, Any] = {
        "best_head": best, "lr": specs[best].lr, "weight_decay": specs[best].weight_decay,
        "heads": [{"lr": s.lr, "weight_decay": s.weight_decay,
                   **{f"val_{m}": round(float(last[f"val_{m}"][i]), 4) for m in ANTICIPATION_SELECTION},
                   "train_loss": round(float(last["train_loss"][i]), 4)} for i, s in enumerate(specs)],
        "val_action_recall5_per_epoch": [round(float(h["val_action_recall5"][best]), 4) for h in history],
    }
    for split in ("val", "test"):
        if split in feats:
            report[split] = evaluate_anticipation(predict_anticipation(heads[best], feats[split], device=device),
                                                  feats[split].labels, counts)
    return report


def _run_anticipation(cfg: ProbeTrainConfig, t_start: float) -> dict[str, Any]:
    """:func:`run_probe_training` for ``task="anticipation"``: (verb, noun, action) labels, anticipation
    features (encoder + pretraining predictor ``anticipation_time`` ahead) cached once, the multi-head recipe
    with the sum of the three cross-entropies, the head chosen by validation action mean-class recall@5, the
    best written in the released ``ek100-*.pt`` layout."""
    from vjepa_core.probes import ProbeConfig, save_probe


    _check_anticipation_settings(cfg)
    if cfg.clip_labels is not None:
        check_clip_labels_used(cfg.clip_labels, [s for s in [*cfg.train, *cfg.val, *cfg.test]
                                                 if (Path(s) / "index.json").is_file()])
    splits = {"train": _split_items(cfg.train, cfg, "train"), "val": _split_items(cfg.val, cfg, "val")}
    if cfg.test:
        splits["test"] = _split_items(cfg.test, cfg, "test")
    overlap = {it.key for it in splits["train"]} & {it.key for s in ("val", "test") if s in splits
                                                    for it in splits[s]}
    if overlap:
        raise ProbeDataError(f"clips in both training and validation/test: {sorted(overlap)[:3]}")
    names, counts, ids = anticipation_label_ids(splits, (cfg.verb_classes, cfg.noun_classes, cfg.action_classes))
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    device = _resolve_device(cfg.device)
    encoder, enc_cfg, encoder_id = load_frozen_encoder(cfg.checkpoint, cfg.model_config, cfg.checkpoint_key, device)
    size = int(enc_cfg.img_size[0] if isinstance(enc_cfg.img_size, (tuple, list)) else enc_cfg.img_size)
    sampling = SamplingConfig(cfg.frames_per_clip, cfg.frame_step, 1, cfg.num_views, 1, cfg.crop, size, None)
    sampling.validate(int(enc_cfg.tubelet_size))
    predictor, predictor_id = load_frozen_predictor(cfg, enc_cfg, device)
    spec_a = AnticipationSpec(predictor, predictor_id, float(cfg.anticipation_time), float(cfg.frames_per_second),
                              int(cfg.num_output_frames), int(cfg.num_steps))
    probe_cfg = ProbeConfig(embed_dim=int(enc_cfg.embed_dim), num_heads=cfg.num_heads, depth=cfg.depth,
                            verb_classes=counts["verb"], noun_classes=counts["noun"],
                            action_classes=counts["action"])             # raises ConfigError (a ValueError)

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    cache_root = Path(cfg.cache) if cfg.cache else out / "features"
    log.info("anticipation probe: encoder %s (%s), predictor %s, %g s ahead at %g fps; verb/noun/action classes "
             "%d/%d/%d, splits %s; clips of %d frames every %d ending at the last frame, %d view(s), crop %s at "
             "%d px", encoder_id, cfg.checkpoint_key, predictor_id, cfg.anticipation_time, cfg.frames_per_second,
             counts["verb"], counts["noun"], counts["action"], {k: len(v) for k, v in splits.items()},
             cfg.frames_per_clip, cfg.frame_step, cfg.num_views, cfg.crop, size)
    t0 = time.perf_counter()
    feats = {k: encode_split(k, v, ids[k], encoder, encoder_id, cfg.checkpoint_key, sampling, cache_root,
                             cfg.encode_batch, cfg.progress, anticipation=spec_a) for k, v in splits.items()}
    t_encode = time.perf_counter() - t0
    anticipation_meta = {**spec_a.key(), "predictor_checkpoint": str(cfg.predictor_checkpoint or cfg.checkpoint)}
    del encoder, predictor, spec_a

    def scorer(h: nn.Module) -> dict[str, float]:
        r = evaluate_anticipation(predict_anticipation(h, feats["val"], device=device), feats["val"].labels,
                                  counts, confusion_limit=0)
        return {m: r[m] for m in ANTICIPATION_SELECTION}

    specs, heads, history, t_train = _train_head_grid(cfg, out, feats, probe_cfg, counts["action"], device,
                                                      "action_recall5", loss_fn=anticipation_loss, score_fn=scorer)
    attentive = _select_and_report_anticipation(heads, history, specs, feats, counts, device)
    best = heads[attentive["best_head"]].cpu()
    best.cfg = probe_cfg
    spec = specs[attentive["best_head"]]
    sampling_meta = {**asdict(sampling), "out_layers": []}
    training_meta = {
        "task": "anticipation", "encoder_id": encoder_id, "checkpoint": str(cfg.checkpoint),
        "checkpoint_key": cfg.checkpoint_key, "sampling": sampling_meta, "anticipation": anticipation_meta,
        "labels": {h: names[h] for h in ANTICIPATION_HEADS}, "classes": counts,
        "head": {"lr": spec.lr, "weight_decay": spec.weight_decay},
        "val_action_recall5": attentive["val"]["action_recall5"], "epochs": cfg.epochs, "seed": cfg.seed,
    }
    opt_meta = [{"lr": spec.lr, "weight_decay": spec.weight_decay, "final_lr": spec.final_lr,
                 "warmup_epochs": spec.warmup_epochs}]
    save_probe(out / "probe.pt", best, epoch=cfg.epochs, batch_size=cfg.batch_size, opt=opt_meta,
               extra={"probe_training": training_meta})
    # the action node's labels_file / verb_labels_file / noun_labels_file
    for head, fname in (("action", "labels.json"), ("verb", "verb_labels.json"), ("noun", "noun_labels.json")):
        if names[head] is not None:
            (out / fname).write_text(json.dumps({str(i): n for i, n in enumerate(names[head])}, indent=1) + "\n")
    results: dict[str, Any] = {
        "task": "anticipation", "encoder_id": encoder_id, "checkpoint": str(cfg.checkpoint),
        "checkpoint_key": cfg.checkpoint_key, "probe": str(out / "probe.pt"), "probe_config": probe_cfg.to_dict(),
        "classes": counts, "labels": training_meta["labels"], "sampling": sampling_meta,
        "anticipation": anticipation_meta,
        "splits": {k: {"videos": len(splits[k]), "clips": len(feats[k]),
                       **{f"{h}_class_counts": np.bincount(feats[k].labels[:, j], minlength=counts[h]).tolist()
                          for j, h in enumerate(ANTICIPATION_HEADS)}} for k in splits},
        "chance": {f"{h}_recall5_uniform": min(1.0, 5.0 / counts[h]) for h in ANTICIPATION_HEADS},
        "recipe": {"epochs": cfg.epochs, "batch_size": cfg.batch_size, "lrs": list(cfg.lrs), "wds": list(cfg.wds),
                   "warmup_epochs": cfg.warmup_epochs, "seed": cfg.seed,
                   "loss": "verb + noun + action cross-entropy",
                   "selection": "val action mean-class recall@5 (ties: action top-1), last epoch"},
        "attentive": attentive,
    }
    results["chance"].update({f"{h}_top1_uniform": 1.0 / counts[h] for h in ANTICIPATION_HEADS})
    seconds = {"encode": round(t_encode, 1), "train_attentive": round(t_train, 1)}
    if cfg.linear_baseline:
        t0 = time.perf_counter()
        dim = int(enc_cfg.embed_dim)
        lin_heads, lin_hist = train_heads(
            feats["train"], feats["val"],
            lambda: MeanPoolAnticipation(dim, counts["verb"], counts["noun"], counts["action"]), specs, cfg.epochs,
            cfg.batch_size, cfg.seed, counts["action"], device=device, name="linear", loss_fn=anticipation_loss,
            score_fn=scorer)
        results["linear"] = _select_and_report_anticipation(lin_heads, lin_hist, specs, feats, counts, device)
        seconds["train_linear"] = round(time.perf_counter() - t0, 1)
    pictures: dict[str, str] = {}
    for split in ("val", "test"):
        if split not in attentive:
            continue
        for head in ANTICIPATION_HEADS:
            r = attentive[split].get(head)
            if r is None or r["confusion"] is None or counts[head] > CONFUSION_PNG_LIMIT:
                continue
            label_names = names[head] or [str(i) for i in range(counts[head])]
            title = (f"anticipation probe, {head}, {split}: top-1 {r['top1']:.3f}, mean-class recall@5 "
                     f"{r['mean_class_recall_at5']:.3f} ({r['samples']} clips)")
            pictures[f"{split}_{head}"] = str(save_confusion_png(r["confusion"], label_names,
                                                                 out / f"confusion_{split}_{head}.png", title))
    results["pictures"] = pictures
    seconds["total"] = round(time.perf_counter() - t_start, 1)
    results["seconds"] = seconds
    _write_json(out / "results.json", results)
    return results

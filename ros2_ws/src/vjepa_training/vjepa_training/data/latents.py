"""Latent cache: frozen-encoder tokens for every dataset frame, computed once (``vjepa-dataset encode``).

AC post-training encodes each frame on its own (the frame repeated into one 2-frame tubelet, as the
reference ``forward_target`` does) with a frozen encoder, so per-frame tokens can be cached and the
encoder never runs again during training. Layout::

    latents/<name>/meta.json        the cache key (below), tokens_per_frame, dim, shards_done
    latents/<name>/shard_00000.npy  float16 [M, N, D]  (row i = tokens of frame row i of that shard)

A cache is keyed by everything that changes its content (:class:`LatentKey`): the encoder's architecture and
checkpoint hash (``model_id``), the checkpoint *section* that was encoded (``encoder_key``: the EMA
``target_encoder`` that AC post-training uses, or the online ``encoder``), the crop size fed to it
(``image_size``), whether the tokens were layer-normed (``normalized``) and the storage ``dtype``. The default
directory name spells the key out (:meth:`LatentKey.name`); ``meta.json`` records it, a cache is only resumed
for the same key, and :func:`find_cache` / :func:`check_cache` (``data.latents`` of post-training) refuse a cache
made for something else, saying what differs.

Tokens are stored as the encoder returns them (``normalized: false``) unless ``layer_norm=True``
(``vjepa_core.tokens.normalize_tokens``); the reference AC training applies that same layer norm to them
(``normalize_reps: true``). Encoding is resumable per shard; ``ClipDataset(root, latents=<name>)`` reads the cache.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vjepa_core.tokens import normalize_tokens

from .shards import DatasetIndex, write_json_atomic

__all__ = [
    "DEFAULT_ENCODER_KEY",
    "EncoderIdentity",
    "LatentCacheError",
    "LatentKey",
    "cache_name",
    "check_cache",
    "encode_dataset",
    "encoder_from_checkpoint",
    "find_cache",
    "read_cache_key",
]

EncodeFn = Callable[[np.ndarray], np.ndarray]  # uint8 [B,S,S,3] -> float [B,N,D]

#: The checkpoint section a cache is made from unless told otherwise: the EMA target encoder, which is what
#: AC post-training (reference ``app/vjepa_droid``, ``model.encoder_key`` here) encodes frames with.
DEFAULT_ENCODER_KEY = "target_encoder"
DTYPES = ("float16", "float32")


class LatentCacheError(ValueError):
    """A latent cache that cannot be used for the request (made by another encoder/section/size, incomplete)."""


@dataclass(frozen=True)
class EncoderIdentity:
    """What encodes the frames: weights (``model_id`` = ``<arch>@<checkpoint sha256 prefix>``), the checkpoint
    section they come from, and the square crop size the frames are resized to."""

    model_id: str
    encoder_key: str
    image_size: int


@dataclass(frozen=True)
class LatentKey:
    """Everything that changes a cache's content; two caches with equal keys hold the same tokens."""

    model_id: str
    encoder_key: str
    image_size: int
    normalized: bool
    dtype: str = "float16"

    @classmethod
    def of(cls, encoder: EncoderIdentity, normalized: bool, dtype: str = "float16") -> LatentKey:
        """The key of ``encoder``'s tokens stored with this normalization and dtype."""
        return cls(encoder.model_id, encoder.encoder_key, int(encoder.image_size), bool(normalized), dtype)

    def name(self) -> str:
        """Default cache directory name, e.g. ``vit_giant_1a2b3c4d5e6f.target_encoder.256px.f16`` (``.ln`` when
        normalized)."""
        parts = [cache_name(self.model_id), self.encoder_key, f"{self.image_size}px",
                 "f16" if self.dtype == "float16" else "f32"]
        if self.normalized:
            parts.append("ln")
        return ".".join(parts)

    def describe(self) -> str:
        """Human-readable key, for messages."""
        return (f"{self.model_id} [{self.encoder_key}] at {self.image_size} px, "
                f"{'layer-normed' if self.normalized else 'raw'} {self.dtype}")

    def differences(self, want: EncoderIdentity, normalized_ok: bool) -> list[str]:
        """Why this cache does not hold ``want``'s tokens (empty: it does). ``normalized_ok``: layer-normed
        tokens are acceptable (the consumer layer-norms anyway, which leaves them unchanged up to rounding)."""
        out = []
        if self.model_id != want.model_id:
            out.append(f"model {self.model_id}, not {want.model_id}")
        if self.encoder_key != want.encoder_key:
            out.append(f"checkpoint section {self.encoder_key!r}, not {want.encoder_key!r}")
        if self.image_size != want.image_size:
            out.append(f"image size {self.image_size} px, not {want.image_size} px")
        if self.normalized and not normalized_ok:
            out.append("layer-normed tokens, but raw ones are needed (normalize_reps is false)")
        return out


def cache_name(model_id: str) -> str:
    """Directory-safe form of ``model_id`` (e.g. ``vit_giant@1a2b`` -> ``vit_giant_1a2b``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", model_id)


def read_cache_key(cache: str | Path) -> LatentKey:
    """The :class:`LatentKey` recorded in ``cache/meta.json``.

    Raises:
        LatentCacheError: no ``meta.json``, or one written before caches recorded their key (section, size):
            such a cache cannot be told apart from another encoder's and is re-made with ``vjepa-dataset encode``.
    """
    path = Path(cache) / "meta.json"
    if not path.is_file():
        raise LatentCacheError(f"{Path(cache)} is not a latent cache (no meta.json); run `vjepa-dataset encode`")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LatentCacheError(f"{path} is unreadable ({exc}); delete the cache and encode again") from None
    missing = [k for k in ("model_id", "encoder_key", "image_size", "normalized", "dtype") if k not in meta]
    if missing:
        raise LatentCacheError(f"latent cache {Path(cache).name!r} does not record its {', '.join(missing)} (made "
                               "by an older vjepa-dataset encode): which encoder section and size made it is "
                               "unknown; delete it and run `vjepa-dataset encode` again")
    return LatentKey(str(meta["model_id"]), str(meta["encoder_key"]), int(meta["image_size"]),
                     bool(meta["normalized"]), str(meta["dtype"]))


def _complete(root: Path, cache: Path) -> list[str]:
    """Shards of dataset ``root`` that ``cache`` lacks."""
    meta = json.loads((cache / "meta.json").read_text(encoding="utf-8"))
    done = set(meta.get("shards_done", []))
    return [s["name"] for s in DatasetIndex(root).index["shards"] if s["name"] not in done]


def check_cache(root: str | Path, name: str, want: EncoderIdentity, normalized_ok: bool = True) -> LatentKey:
    """Check that cache ``name`` of dataset ``root`` holds ``want``'s tokens for every shard; returns its key.

    Raises:
        LatentCacheError: the cache is absent, records no key, was made for something else (what differs is
            named), or is incomplete.
    """
    cache = Path(root) / "latents" / name
    if not cache.is_dir():
        raise LatentCacheError(f"no latent cache {name!r} in {root}; run `vjepa-dataset encode`")
    key = read_cache_key(cache)
    diff = key.differences(want, normalized_ok)
    if diff:
        raise LatentCacheError(f"latent cache {name!r} in {root} does not hold the tokens this run needs: "
                               f"{'; '.join(diff)}. Encode them with `vjepa-dataset encode --encoder-key "
                               f"{want.encoder_key}` (or set data.latents: auto / null)")
    missing = _complete(Path(root), cache)
    if missing:
        raise LatentCacheError(f"latent cache {name!r} in {root} is incomplete (missing {missing[:3]}); rerun "
                               "`vjepa-dataset encode` to finish it")
    return key


def find_cache(root: str | Path, want: EncoderIdentity, normalized_ok: bool = True) -> tuple[str | None, list[str]]:
    """The complete cache of dataset ``root`` holding ``want``'s tokens, if any, and why each other cache of
    the dataset was refused (``"<name>: <reasons>"``).

    Raw tokens are preferred over layer-normed ones, then the default name (:meth:`LatentKey.name`).
    """
    base = Path(root) / "latents"
    found: list[tuple[int, str]] = []
    refused: list[str] = []
    for cache in sorted(p for p in base.iterdir() if p.is_dir()) if base.is_dir() else []:
        try:
            key = read_cache_key(cache)
        except LatentCacheError as exc:
            refused.append(f"{cache.name}: {exc}")
            continue
        diff = key.differences(want, normalized_ok)
        if not diff:
            missing = _complete(Path(root), cache)
            if missing:
                diff = [f"incomplete (missing {missing[:3]})"]
        if diff:
            refused.append(f"{cache.name}: {'; '.join(diff)}")
        else:
            found.append((int(key.normalized) * 2 + int(cache.name != key.name()), cache.name))
    return (min(found)[1] if found else None), refused


def encode_dataset(root: str | Path, encode_fn: EncodeFn, encoder: EncoderIdentity, batch_size: int = 8,
                   dtype: str = "float16", layer_norm: bool = False, name: str | None = None,
                   progress: bool = True) -> Path:
    """Run ``encode_fn`` over every frame of the dataset and store the tokens per shard (resumable).

    Args:
        root: dataset directory.
        encode_fn: uint8 frames [B,S,S,3] -> tokens [B,N,D] (numpy or torch).
        encoder: what ``encode_fn`` is (weights, checkpoint section, crop size; :func:`encoder_from_checkpoint`
            returns it); with ``layer_norm`` and ``dtype`` it makes the cache's :class:`LatentKey`, recorded in
            ``meta.json``. A cache is only resumed for the same key.
        batch_size: frames per ``encode_fn`` call.
        dtype: storage dtype ("float16" or "float32").
        layer_norm: store layer-normed tokens (``vjepa_core.tokens.normalize_tokens``).
        name: cache directory name (default :meth:`LatentKey.name`).
    Returns:
        the cache directory.
    Raises:
        LatentCacheError: ``name`` holds a cache with another key.
    """
    if not isinstance(encoder, EncoderIdentity):
        raise TypeError(f"encoder must be an EncoderIdentity (model id, checkpoint section, image size), got "
                        f"{type(encoder).__name__}")
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be float16 or float32, got {dtype!r}")
    key = LatentKey.of(encoder, layer_norm, dtype)
    index = DatasetIndex(root)
    out = index.root / "latents" / (name or key.name())
    meta_path = out / "meta.json"
    if meta_path.exists():
        old = read_cache_key(out)
        if old != key:
            raise LatentCacheError(f"{out} holds tokens of {old.describe()}, not {key.describe()}; "
                                   "choose another --name")
        meta: dict[str, Any] = json.loads(meta_path.read_text(encoding="utf-8"))
    else:
        meta = {}
    out.mkdir(parents=True, exist_ok=True)
    meta.update({**asdict(key), "shards_done": meta.get("shards_done", [])})
    shards = index.index["shards"]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=sum(s["frames"] for s in shards), desc="encode", unit="frame", file=sys.stderr)
    for shard in shards:
        if shard["name"] in meta["shards_done"]:
            if bar is not None:
                bar.update(shard["frames"])
            continue
        frames = index.array(shard["name"], "frames")
        store = None
        tmp = out / f"{shard['name']}.tmp.npy"
        for lo in range(0, len(frames), batch_size):
            tok = encode_fn(np.array(frames[lo: lo + batch_size]))  # a writable copy of the memmap rows
            tok = tok.detach().cpu().float().numpy() if hasattr(tok, "detach") else np.asarray(tok, np.float32)
            if tok.ndim != 3 or tok.shape[0] != min(batch_size, len(frames) - lo):
                raise ValueError(f"encode_fn returned shape {tok.shape}, expected [B,N,D]")
            if layer_norm:
                tok = normalize_tokens(tok)
            if store is None:
                store = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype,
                                                  shape=(len(frames),) + tok.shape[1:])
                meta["tokens_per_frame"], meta["dim"] = int(tok.shape[1]), int(tok.shape[2])
            store[lo: lo + len(tok)] = tok
            if bar is not None:
                bar.update(len(tok))
        if store is not None:
            store.flush()
            del store
            os.replace(tmp, out / f"{shard['name']}.npy")
        meta["shards_done"].append(shard["name"])
        write_json_atomic(meta_path, meta)
    if bar is not None:
        bar.close()
    return out


def encoder_from_checkpoint(checkpoint: str | Path, encoder_config: str | dict[str, Any],
                            encoder_key: str = DEFAULT_ENCODER_KEY, device: str = "cpu",
                            image_size: int | None = None) -> tuple[EncodeFn, EncoderIdentity]:
    """An ``encode_fn`` (frozen V-JEPA 2 encoder, per-frame tubelets, ImageNet normalisation) and its identity.

    Args:
        checkpoint: released or project ``.pt`` file.
        encoder_config: preset name (``vit_giant``...) or a dict of ``EncoderConfig`` fields.
        encoder_key: checkpoint section (``target_encoder``, the default and what post-training uses, or
            ``encoder``).
        device: torch device.
        image_size: crop size fed to the encoder (default: the config's image size).
    """
    import torch

    from vjepa_core.checkpoint import load_official, model_id
    from vjepa_core.config import EncoderConfig
    from vjepa_core.preprocessing import preprocess_frames

    cfg = EncoderConfig.preset(encoder_config) if isinstance(encoder_config, str) \
        else EncoderConfig.from_dict(encoder_config)
    encoder, _ = load_official(checkpoint, cfg, None, encoder_key=encoder_key)
    size = image_size
    if size is None:
        size = int(cfg.img_size[0] if isinstance(cfg.img_size, (tuple, list)) else cfg.img_size)
    tubelet = int(cfg.tubelet_size)
    encoder = encoder.to(device).eval()
    identity = EncoderIdentity(model_id(cfg, checkpoint), encoder_key, int(size))

    @torch.no_grad()
    def encode(frames: np.ndarray) -> np.ndarray:
        x = preprocess_frames(frames, size=size, tubelet_size=tubelet).to(device)  # [B,3,t,S,S]
        return encoder(x).float().cpu().numpy()

    return encode, identity

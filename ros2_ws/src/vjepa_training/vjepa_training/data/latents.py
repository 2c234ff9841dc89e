"""Latent cache: frozen-encoder tokens for every dataset frame, computed once (``vjepa-dataset encode``).

AC post-training encodes each frame on its own (the frame repeated into one 2-frame tubelet, as the
reference ``forward_target`` does) with a frozen encoder, so per-frame tokens can be cached and the
encoder never runs again during training. Layout::

    latents/<name>/meta.json        model_id, tokens_per_frame, dim, dtype, normalized, shards_done
    latents/<name>/shard_00000.npy  float16 [M, N, D]  (row i = tokens of frame row i of that shard)

Tokens are stored as the encoder returns them (``normalized: false``) unless ``layer_norm=True``; the
reference AC training applies ``F.layer_norm`` over D to them (``normalize_reps: true``).
Encoding is resumable per shard; ``ClipDataset(root, latents=<name>)`` reads the cache.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .shards import DatasetIndex, write_json_atomic

__all__ = ["cache_name", "encode_dataset", "encoder_from_checkpoint"]

EncodeFn = Callable[[np.ndarray], np.ndarray]  # uint8 [B,S,S,3] -> float [B,N,D]


def cache_name(model_id: str) -> str:
    """Directory-safe name of a cache for ``model_id`` (e.g. ``vit_giant@1a2b`` -> ``vit_giant_1a2b``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", model_id)


def encode_dataset(root: str | Path, encode_fn: EncodeFn, model_id: str, batch_size: int = 8,
                   dtype: str = "float16", layer_norm: bool = False, name: str | None = None,
                   progress: bool = True) -> Path:
    """Run ``encode_fn`` over every frame of the dataset and store the tokens per shard (resumable).

    Args:
        root: dataset directory.
        encode_fn: uint8 frames [B,S,S,3] -> tokens [B,N,D] (numpy or torch).
        model_id: recorded in ``meta.json``; a cache is only resumed for the same model id.
        batch_size: frames per ``encode_fn`` call.
        dtype: storage dtype ("float16" or "float32").
        layer_norm: store layer-normed tokens (over D, no affine).
        name: cache directory name (default :func:`cache_name` of ``model_id``).
    Returns:
        the cache directory.
    """
    if dtype not in ("float16", "float32"):
        raise ValueError(f"dtype must be float16 or float32, got {dtype!r}")
    index = DatasetIndex(root)
    out = index.root / "latents" / (name or cache_name(model_id))
    out.mkdir(parents=True, exist_ok=True)
    meta_path = out / "meta.json"
    meta: dict[str, Any] = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.exists() else {}
    if meta and (meta.get("model_id") != model_id or meta.get("normalized") != layer_norm):
        raise ValueError(f"{out} holds tokens of {meta.get('model_id')!r} (normalized={meta.get('normalized')}); "
                         "choose another --name")
    meta.update({"model_id": model_id, "dtype": dtype, "normalized": layer_norm,
                 "shards_done": meta.get("shards_done", [])})
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
                mu = tok.mean(-1, keepdims=True)
                tok = (tok - mu) / np.sqrt(tok.var(-1, keepdims=True) + 1e-6)
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
                            encoder_key: str = "encoder", device: str = "cpu",
                            image_size: int | None = None) -> tuple[EncodeFn, str]:
    """An ``encode_fn`` (frozen V-JEPA 2 encoder, per-frame tubelets, ImageNet normalisation) and model id.

    Args:
        checkpoint: released or project ``.pt`` file.
        encoder_config: preset name (``vit_giant``...) or a dict of ``EncoderConfig`` fields.
        encoder_key: checkpoint section (``encoder`` or ``target_encoder``).
        device: torch device.
        image_size: crop size fed to the encoder (default: the config's image size).
    """
    import torch

    from vjepa_core.checkpoint import load_official, model_id
    from vjepa_core.preprocessing import preprocess_frames

    encoder, _ = load_official(checkpoint, encoder_config, None, encoder_key=encoder_key)
    cfg = encoder_config
    size = image_size
    if size is None:
        img = cfg.get("img_size", 256) if isinstance(cfg, dict) else getattr(encoder, "img_size", 256)
        size = int(img[0] if isinstance(img, (tuple, list)) else img)
    tubelet = int(cfg.get("tubelet_size", 2)) if isinstance(cfg, dict) else 2
    encoder = encoder.to(device).eval()
    if isinstance(cfg, dict):
        from vjepa_core.config import EncoderConfig

        cfg = EncoderConfig.from_dict(cfg)
    mid = model_id(cfg, checkpoint)

    @torch.no_grad()
    def encode(frames: np.ndarray) -> np.ndarray:
        x = preprocess_frames(frames, size=size, tubelet_size=tubelet).to(device)  # [B,3,t,S,S]
        return encoder(x).float().cpu().numpy()

    return encode, mid

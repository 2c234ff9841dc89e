"""Camera frames -> V-JEPA 2 token grids, without ROS: preprocessing + the loaded encoder.

``frames_per_clip == 1`` (the planner's path, as V-JEPA 2-AC does it): every camera frame is encoded on its
own, repeated into one tubelet, giving a [1, h, w, D] grid. ``frames_per_clip > 1`` (video features): the last
``frames_per_clip`` frames form a clip, giving [frames_per_clip / tubelet, h, w, D]. Tokens are layer-normed when
the model was loaded with ``normalize=True`` (the AC predictor consumes normalized latents): by
``WorldModel.encode`` (single frames) and ``WorldModel.encode_clip`` (clips), once, with
:func:`vjepa_core.tokens.normalize_tokens`.
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass

import numpy as np
import torch

from vjepa_core.loading import LoadedModel
from vjepa_core.preprocessing import CROP_POLICIES, preprocess_clip, preprocess_frames

__all__ = ["EncodedFrame", "FrameEncoder"]


@dataclass
class EncodedFrame:
    """Tokens [frames, h, w, D] float32 and the time spent (preprocessing + inference), seconds."""

    tokens: np.ndarray
    inference_time: float


class FrameEncoder:
    """Encodes RGB uint8 frames with a loaded encoder. Not thread-safe: serialize calls (the node holds a lock)."""

    def __init__(self, model: LoadedModel, crop: str = "center", frames_per_clip: int = 1) -> None:
        cfg = model.encoder_cfg
        if cfg is None:
            raise ValueError("the loaded model has no encoder")
        if crop not in CROP_POLICIES:
            raise ValueError(f"crop must be one of {CROP_POLICIES}, got {crop!r}")
        if frames_per_clip < 1 or (frames_per_clip > 1 and frames_per_clip % cfg.tubelet_size):
            raise ValueError(f"frames_per_clip must be 1 or a multiple of the tubelet size {cfg.tubelet_size}, "
                             f"got {frames_per_clip}")
        if frames_per_clip > 1 and not model.world_model.supports_clips:
            raise ValueError("frames_per_clip > 1 (video clips) needs the torch backend: this model's backend "
                             "encodes single frames only")
        self.model = model
        self.cfg = cfg
        self.crop = crop
        self.frames_per_clip = frames_per_clip
        self.size = cfg.grid_hw[0] * cfg.patch_size
        self.grid = (1 if frames_per_clip == 1 else frames_per_clip // cfg.tubelet_size,
                     cfg.grid_hw[0], cfg.grid_hw[1], cfg.embed_dim)
        self._clip: collections.deque[np.ndarray] = collections.deque(maxlen=frames_per_clip)

    def push(self, rgb: np.ndarray) -> EncodedFrame | None:
        """Add a frame; encode and return the newest grid (None while a clip is still filling)."""
        if self.frames_per_clip == 1:
            return self.encode_single(rgb)
        self._clip.append(rgb)
        if len(self._clip) < self.frames_per_clip:
            return None
        return self._encode_clip(np.stack(list(self._clip)))

    @torch.no_grad()
    def encode_single(self, rgb: np.ndarray) -> EncodedFrame:
        """One frame (any size) -> [1, h, w, D] tokens."""
        t0 = time.perf_counter()
        x = preprocess_frames(rgb[None], self.size, self.crop, tubelet_size=1)[:, :, 0]  # [1, 3, S, S]
        tokens = self.model.world_model.encode(x)  # [1, N, D]
        out = tokens.float().cpu().numpy().reshape(self.grid)
        return EncodedFrame(np.ascontiguousarray(out, dtype=np.float32), time.perf_counter() - t0)

    @torch.no_grad()
    def _encode_clip(self, frames: np.ndarray) -> EncodedFrame:
        t0 = time.perf_counter()
        wm = self.model.world_model
        x = preprocess_clip(frames, self.size, self.crop)[None]  # [1, 3, T, S, S]
        tokens = wm.encode_clip(x)  # [1, T/t * h * w, D], normalised by the world model when it normalises
        out = tokens.float().cpu().numpy().reshape(self.grid)
        return EncodedFrame(np.ascontiguousarray(out, dtype=np.float32), time.perf_counter() - t0)

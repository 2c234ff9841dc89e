"""Token normalization, written once: the layer norm over the feature dimension (no affine) that the reference
applies to encoder tokens before the AC predictor and the planning energy (``normalize_reps``)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["TOKEN_NORM_EPS", "normalize_tokens"]

TOKEN_NORM_EPS = 1e-5  # F.layer_norm's default, as the reference calls it


def normalize_tokens(tokens: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
    """Layer-norm ``tokens [..., D]`` over ``D`` without affine parameters; numpy in, numpy out (same dtype)."""
    if isinstance(tokens, np.ndarray):
        t = torch.from_numpy(np.ascontiguousarray(tokens, dtype=np.float32))
        return F.layer_norm(t, (t.shape[-1],), eps=TOKEN_NORM_EPS).numpy().astype(tokens.dtype, copy=False)
    return F.layer_norm(tokens, (tokens.shape[-1],), eps=TOKEN_NORM_EPS)

"""Building blocks shared by the V-JEPA 2 encoder and predictors: 3D RoPE, attention, MLP, transformer block.

RoPE follows the reference (``src/models/utils/modules.py``) exactly, including its frequency-layout quirk:
sin/cos tables are laid out ``[f0..f_{n-1}, f0..f_{n-1}]`` (``repeat``) while the rotation pairs adjacent
dims ``(2k, 2k+1)``. The released weights were trained with it, so it must stay.

Attention takes explicit per-token positions ``pos[..., N, 3]`` = (frame, row, column) so callers (the
encoder, the masked pretraining predictor, the AC predictor and a later key/value cache) decide positions;
the attention itself is: qkv -> RoPE -> SDPA(mask) -> proj.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..config import mlp_hidden_dim

__all__ = ["Attention", "Block", "MLP", "apply_rope_3d", "grid_positions", "make_blocks", "rope_segment_dim", "rotate"]


def rope_segment_dim(head_dim: int) -> int:
    """Width of each of the T/H/W RoPE segments: ``2 * ((head_dim // 3) // 2)`` (20 for head_dim 64)."""
    return 2 * ((head_dim // 3) // 2)


def rotate(x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """Reference 1D rotary embedding of ``x[..., N, D]`` at positions ``pos[..., N]`` (base 10000).

    ``pos`` broadcasts against ``x``'s leading dims (e.g. ``[N]``, ``[B, 1, N]``). Angles are computed in
    float32 for any input dtype, then cast back.
    """
    d = x.shape[-1]
    omega = torch.arange(d // 2, dtype=torch.float32, device=x.device) / (d / 2.0)
    omega = 1.0 / (10000.0**omega)  # [D/2]
    freq = pos.to(torch.float32).unsqueeze(-1) * omega  # [..., N, D/2]
    # Reference quirk: tables repeated as [f0..f_{n-1}, f0..f_{n-1}], not interleaved.
    emb_sin = torch.cat([freq.sin(), freq.sin()], dim=-1).to(x.dtype)  # [..., N, D]
    emb_cos = torch.cat([freq.cos(), freq.cos()], dim=-1).to(x.dtype)
    y = x.unflatten(-1, (-1, 2))  # [..., N, D/2, 2] adjacent pairs
    y1, y2 = y.unbind(dim=-1)
    y = torch.stack((-y2, y1), dim=-1).flatten(-2)  # [..., N, D]
    return x * emb_cos + y * emb_sin


def apply_rope_3d(x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """Rotate segments [0:s), [s:2s), [2s:3s) of ``x[B, heads, N, hd]`` by frame/row/column positions.

    ``pos`` is ``[N, 3]`` or ``[B, N, 3]`` (float or int). Dims past ``3s`` stay unrotated. A token whose
    row/column position is 0 gets identity rotation there, which is how conditioning tokens receive
    temporal-only RoPE.
    """
    s = rope_segment_dim(x.shape[-1])
    if pos.dim() == 3:
        pos = pos.unsqueeze(1)  # [B, 1, N, 3]: broadcast over heads
    parts = [rotate(x[..., i * s:(i + 1) * s], pos[..., i]) for i in range(3)]
    if 3 * s < x.shape[-1]:
        parts.append(x[..., 3 * s:])
    return torch.cat(parts, dim=-1)


def grid_positions(ids: torch.Tensor, grid_h: int, grid_w: int) -> torch.Tensor:
    """Token indices (row-major over [T, H, W]) -> positions ``[..., 3]`` = (frame, row, column), float32."""
    per_frame = grid_h * grid_w
    frame = torch.div(ids, per_frame, rounding_mode="floor")
    rem = ids - frame * per_frame
    row = torch.div(rem, grid_w, rounding_mode="floor")
    col = rem - row * grid_w
    return torch.stack([frame, row, col], dim=-1).to(torch.float32)


class Attention(nn.Module):
    """Multi-head self-attention with fused qkv (q, k, v row order), 3D RoPE and SDPA."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, use_rope: bool = True) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.use_rope = use_rope
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def qkv_heads(self, x: torch.Tensor, pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Project ``x[B, N, C]`` to rotated q, k and plain v, each ``[B, heads, N, hd]``."""
        qkv = self.qkv(x).unflatten(-1, (3, self.num_heads, -1)).permute(2, 0, 3, 1, 4)  # [3, B, h, N, hd]
        q, k, v = qkv[0], qkv[1], qkv[2]
        if self.use_rope:
            q = apply_rope_3d(q, pos)
            k = apply_rope_3d(k, pos)
        return q, k, v

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
               attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        """SDPA over ``[B, h, N, hd]`` (boolean mask: True = may attend) and output projection -> ``[B, N, C]``."""
        x = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # [B, h, Nq, hd]
        x = x.transpose(1, 2).flatten(2)  # [B, Nq, C]
        return self.proj(x)

    def forward(self, x: torch.Tensor, pos: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``x[B, N, C]`` with positions ``pos[N, 3]`` or ``[B, N, 3]`` -> ``[B, N, C]``."""
        q, k, v = self.qkv_heads(x, pos)
        return self.attend(q, k, v, attn_mask)


class MLP(nn.Module):
    """fc1 -> GELU -> fc2."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., dim] -> [..., dim]``."""
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm1(x))`` then ``x + mlp(norm2(x))``."""

    def __init__(self, dim: int, num_heads: int, mlp_hidden: int, qkv_bias: bool = True,
                 eps: float = 1e-6, use_rope: bool = True) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias, use_rope=use_rope)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = MLP(dim, mlp_hidden)

    def forward(self, x: torch.Tensor, pos: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``x[B, N, C]`` -> ``[B, N, C]``."""
        x = x + self.attn(self.norm1(x), pos, attn_mask)
        return x + self.mlp(self.norm2(x))


def make_blocks(width: int, cfg: Any) -> nn.ModuleList:
    """``cfg.depth`` pre-norm RoPE blocks of ``width`` (heads, MLP ratio, qkv bias, eps from ``cfg``), the trunk
    shared by the encoder and both predictors."""
    hidden = mlp_hidden_dim(width, cfg.mlp_ratio)
    return nn.ModuleList([
        Block(width, cfg.num_heads, hidden, qkv_bias=cfg.qkv_bias, eps=cfg.layer_norm_eps, use_rope=True)
        for _ in range(cfg.depth)
    ])


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """Reference init: trunc-normal(std) Linear/Conv weights, zero biases, unit LayerNorm."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv3d, nn.Conv2d)):
            nn.init.trunc_normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def rescale_blocks(blocks: nn.ModuleList) -> None:
    """Reference per-layer rescale: divide ``attn.proj`` / ``mlp.fc2`` weights by sqrt(2 * layer_id)."""
    with torch.no_grad():
        for layer_id, blk in enumerate(blocks, start=1):
            blk.attn.proj.weight.div_(math.sqrt(2.0 * layer_id))
            blk.mlp.fc2.weight.div_(math.sqrt(2.0 * layer_id))

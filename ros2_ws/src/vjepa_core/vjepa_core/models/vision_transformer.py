"""V-JEPA 2 video encoder: ViT with 3D tubelet patch embedding (2x16x16), 3D RoPE, no CLS token.

Parameter names equal the reference ``VisionTransformer`` (``patch_embed.proj``, ``blocks.{i}.{norm1, attn.qkv,
attn.proj, norm2, mlp.fc1, mlp.fc2}``, ``norm``), so released ``.pt`` state dicts load with ``strict=True``.
Config: :class:`vjepa_core.config.EncoderConfig`.
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import EncoderConfig
from .modules import grid_positions, init_weights, make_blocks, rescale_blocks

__all__ = ["PatchEmbed3D", "VisionTransformer"]


class PatchEmbed3D(nn.Module):
    """Conv3d tubelet embedding: ``[B, 3, T, H, W] -> [B, (T/t)*(H/p)*(W/p), D]``."""

    def __init__(self, patch_size: int, tubelet_size: int, embed_dim: int, in_chans: int = 3) -> None:
        super().__init__()
        k = (tubelet_size, patch_size, patch_size)
        self.proj = nn.Conv3d(in_chans, embed_dim, kernel_size=k, stride=k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Embed a clip; returns tokens in (frame, row, column) row-major order."""
        return self.proj(x).flatten(2).transpose(1, 2)  # [B, D, T', H', W'] -> [B, N, D]


class VisionTransformer(nn.Module):
    """The V-JEPA 2 encoder. ``forward(video[B,3,T,H,W]) -> tokens[B, N, D]`` (final LayerNorm applied).

    A 4-D image ``[B,3,H,W]`` is repeated into one 2-frame tubelet first (as the planner encodes frames).
    Any T divisible by the tubelet size and any H, W divisible by the patch size are accepted (RoPE
    positions come from the input's own grid, like the reference with ``handle_nonsquare_inputs``).
    """

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.embed_dim
        self.patch_size = cfg.patch_size
        self.tubelet_size = cfg.tubelet_size
        self.embed_dim = d
        self.patch_embed = PatchEmbed3D(cfg.patch_size, cfg.tubelet_size, d)
        self.blocks = make_blocks(d, cfg)
        self.norm = nn.LayerNorm(d, eps=cfg.layer_norm_eps)

    def init_weights(self, std: float = 0.02) -> None:
        """Fresh reference-style initialisation (for training from scratch)."""
        init_weights(self, std)
        rescale_blocks(self.blocks)

    def token_grid(self, video_shape: tuple[int, ...] | torch.Size) -> tuple[int, int, int]:
        """(T', H', W') token grid for an input of shape [B,3,T,H,W] (or [B,3,H,W], one tubelet)."""
        if len(video_shape) == 4:
            t = 1
        else:
            t = video_shape[2] // self.tubelet_size
        return (t, video_shape[-2] // self.patch_size, video_shape[-1] // self.patch_size)

    def forward(self, video: torch.Tensor, masks: torch.Tensor | list[torch.Tensor] | None = None,
                out_layers: list[int] | None = None) -> torch.Tensor | list[torch.Tensor]:
        """Encode ``video[B,3,T,H,W]`` (or ``[B,3,H,W]``) into ``[B, N, D]`` normalised tokens.

        ``masks[B, K]`` (token indices to keep, as in pretraining's context encoder; a list of M of them
        gives ``[M*B, K, D]`` like the reference ``apply_masks``) selects tokens after the patch embedding;
        their RoPE positions are their original grid positions. ``out_layers`` returns the normalised
        outputs of those blocks instead (multi-layer probes).
        """
        if video.dim() == 4:
            video = video.unsqueeze(2).repeat(1, 1, self.tubelet_size, 1, 1)  # [B,3,H,W] -> [B,3,t,H,W]
        _, gh, gw = self.token_grid(video.shape)
        x = self.patch_embed(video)  # [B, N, D]
        if masks is None:
            ids = torch.arange(x.shape[1], device=x.device)
            pos = grid_positions(ids, gh, gw)  # [N, 3]
        else:
            masks = list(masks) if isinstance(masks, (list, tuple)) else [masks]  # reference: one per mask
            x = torch.cat([torch.gather(x, 1, m.unsqueeze(-1).expand(-1, -1, x.shape[-1])) for m in masks])  # [MB,K,D]
            pos = grid_positions(torch.cat(masks), gh, gw)  # [M*B, K, 3]
        outs = []
        for i, blk in enumerate(self.blocks):
            x = blk(x, pos)
            if out_layers is not None and i in out_layers:
                outs.append(self.norm(x))
        if out_layers is not None:
            return outs
        return self.norm(x)

"""V-JEPA 2 pretraining predictor: predicts masked-token representations from context tokens.

Context tokens (already encoded, ``[B, Nc, D]``) are projected to the predictor width, learnable mask tokens
are placed at the target positions, everything is sorted into grid order, run through RoPE blocks (positions
from the token indices), normalised, and the target tokens are projected back to the encoder width.

Parameter names equal the reference ``VisionTransformerPredictor`` (``predictor_embed``,
``mask_tokens.{k}``, ``predictor_blocks.{i}``, ``predictor_norm``, ``predictor_proj``).
Config: :class:`vjepa_core.config.PretrainPredictorConfig`.
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import PretrainPredictorConfig
from .modules import grid_positions, init_weights, make_blocks, rescale_blocks

__all__ = ["PretrainPredictor"]


def _gather_tokens(x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """``x[B, N, C]``, ``ids[B, K]`` -> ``x[b, ids[b]]`` of shape ``[B, K, C]``."""
    return torch.gather(x, 1, ids.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


class PretrainPredictor(nn.Module):
    """``forward(ctx[M*B, Nc, D], masks_x, masks_y, mask_index) -> [M*B, Nt, D]`` predictions for targets.

    ``masks_x`` / ``masks_y`` are ``[B, Nc]`` / ``[B, Nt]`` token-index tensors, or M-long lists of them
    paired up (context mask m with target mask m); ``ctx`` is the context encoder output for the
    concatenated ``masks_x``. ``mask_index`` picks the learnable mask token (one per mask generator).
    """

    def __init__(self, cfg: PretrainPredictorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d, pd = cfg.embed_dim, cfg.predictor_embed_dim
        self.grid_h, self.grid_w = cfg.grid_hw
        self.num_patches = cfg.num_patches
        self.predictor_embed = nn.Linear(d, pd)
        self.mask_tokens = nn.ParameterList([nn.Parameter(torch.zeros(1, 1, pd)) for _ in range(cfg.num_mask_tokens)])
        self.predictor_blocks = make_blocks(pd, cfg)
        self.predictor_norm = nn.LayerNorm(pd, eps=cfg.layer_norm_eps)
        self.predictor_proj = nn.Linear(pd, d)

    def init_weights(self, std: float = 0.02) -> None:
        """Fresh reference-style initialisation; mask tokens zero (``zero_init_mask_tokens``) or trunc-normal."""
        init_weights(self, std)
        rescale_blocks(self.predictor_blocks)
        with torch.no_grad():
            for tok in self.mask_tokens:
                if self.cfg.zero_init_mask_tokens:
                    tok.zero_()
                else:
                    nn.init.trunc_normal_(tok, std=std)

    def forward(self, ctx: torch.Tensor, masks_x: torch.Tensor | list[torch.Tensor],
                masks_y: torch.Tensor | list[torch.Tensor], mask_index: int = 0) -> torch.Tensor:
        """Predict the target tokens; output rows follow ``masks_y`` order."""
        masks_x = list(masks_x) if isinstance(masks_x, (list, tuple)) else [masks_x]
        masks_y = list(masks_y) if isinstance(masks_y, (list, tuple)) else [masks_y]
        if len(masks_x) != len(masks_y):
            raise ValueError(f"masks_x and masks_y must pair up: {len(masks_x)} vs {len(masks_y)} masks")
        x = self.predictor_embed(ctx)  # [M*B, Nc, pd]
        n_ctx, pd = x.shape[1], x.shape[2]
        ids_x = torch.cat(masks_x, dim=0)  # [M*B, Nc]
        ids_y = torch.cat(masks_y, dim=0)  # [M*B, Nt]
        token = self.mask_tokens[mask_index % len(self.mask_tokens)]  # [1, 1, pd]
        pred = token.to(x.dtype).expand(ids_y.shape[0], ids_y.shape[1], pd)  # [M*B, Nt, pd]
        x = torch.cat([x, pred], dim=1)  # [B', Nc+Nt, pd]
        ids = torch.cat([ids_x, ids_y], dim=1)  # [B', Nc+Nt]
        order = torch.argsort(ids, dim=1)
        x = _gather_tokens(x, order)  # grid order
        pos = grid_positions(torch.gather(ids, 1, order), self.grid_h, self.grid_w)  # [B', N, 3]
        for blk in self.predictor_blocks:
            x = blk(x, pos)
        x = self.predictor_norm(x)
        x = _gather_tokens(x, torch.argsort(order, dim=1))[:, n_ctx:]  # back to input order, targets only
        return self.predictor_proj(x)

"""V-JEPA 2-AC: the action-conditioned predictor (world model) over frozen encoder latents.

Per latent frame t the sequence holds ``[action a_t, state s_t, (extrinsics e_t), h*w patch tokens of z_t]``;
attention is block-causal over frames (a frame sees itself and all earlier frames). Patch tokens get 3D RoPE
(frame, row, column); conditioning tokens get only the temporal rotation (row = column = 0 is the identity
rotation, which is exactly the reference's "temporal-only" RoPE). The output drops the conditioning tokens;
the output at frame t's patches predicts z_{t+1}.

Parameter names equal the reference ``VisionTransformerPredictorAC`` (``predictor_embed``, ``action_encoder``,
``state_encoder``, ``extrinsics_encoder``, ``predictor_blocks.{i}``, ``predictor_norm``, ``predictor_proj``).
Config: :class:`vjepa_core.config.ACPredictorConfig`.
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import ACPredictorConfig
from .modules import init_weights, make_blocks, rescale_blocks

__all__ = ["ACPredictor", "build_block_causal_mask", "frame_token_positions"]


def build_block_causal_mask(T: int, tokens_per_frame: int, cond_tokens: int,  # noqa: N803
                            device: torch.device | str | None = None) -> torch.Tensor:
    """Boolean ``[N, N]`` mask (True = may attend), ``N = T * (cond_tokens + tokens_per_frame)``.

    Token i may attend token j iff frame(j) <= frame(i); all tokens of one frame (conditioning included)
    see each other. Built for exactly ``T`` frames (never the configured maximum), without Python loops.
    """
    block = cond_tokens + tokens_per_frame
    frame = torch.div(torch.arange(T * block, device=device), block, rounding_mode="floor")  # [N]
    return frame.unsqueeze(1) >= frame.unsqueeze(0)  # [N, N]


def frame_token_positions(T: int, grid_h: int, grid_w: int, cond_tokens: int, frame_offset: int = 0,
                          device: torch.device | str | None = None) -> torch.Tensor:
    """RoPE positions ``[T*(cond+h*w), 3]`` of the interleaved sequence, frames starting at ``frame_offset``.

    Conditioning tokens: (t, 0, 0) -> temporal rotation only. Patch tokens: (t, row, column).
    """
    per_frame = grid_h * grid_w
    t = torch.arange(T, device=device, dtype=torch.float32) + frame_offset
    rows = torch.arange(grid_h, device=device, dtype=torch.float32)
    cols = torch.arange(grid_w, device=device, dtype=torch.float32)
    patch_hw = torch.stack(torch.meshgrid(rows, cols, indexing="ij"), dim=-1).reshape(per_frame, 2)  # [hw, 2]
    hw = torch.cat([torch.zeros(cond_tokens, 2, device=device), patch_hw], dim=0)  # [K+hw, 2]
    hw = hw.unsqueeze(0).expand(T, -1, -1)  # [T, K+hw, 2]
    tt = t.view(T, 1, 1).expand(-1, cond_tokens + per_frame, 1)  # [T, K+hw, 1]
    return torch.cat([tt, hw], dim=-1).reshape(T * (cond_tokens + per_frame), 3)


class ACPredictor(nn.Module):
    """``forward(tokens[B, T*h*w, D], actions[B,T,A], states[B,T,A]) -> [B, T*h*w, D]``.

    ``T`` may be anything from 1 to ``cfg.max_frames``; the mask is built for that ``T``.
    """

    def __init__(self, cfg: ACPredictorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d, pd = cfg.embed_dim, cfg.predictor_embed_dim
        self.grid_h, self.grid_w = cfg.grid_hw
        self.cond_tokens = cfg.cond_tokens
        self.is_frame_causal = cfg.is_frame_causal
        self.use_extrinsics = cfg.use_extrinsics
        self.predictor_embed = nn.Linear(d, pd)
        self.action_encoder = nn.Linear(cfg.action_embed_dim, pd)
        self.state_encoder = nn.Linear(cfg.action_embed_dim, pd)
        self.extrinsics_encoder = nn.Linear(cfg.action_embed_dim - 1, pd)  # present even when unused
        self.predictor_blocks = make_blocks(pd, cfg)
        self.predictor_norm = nn.LayerNorm(pd, eps=cfg.layer_norm_eps)
        self.predictor_proj = nn.Linear(pd, d)

    def init_weights(self, std: float = 0.02) -> None:
        """Fresh reference-style initialisation (for training from scratch)."""
        init_weights(self, std)
        rescale_blocks(self.predictor_blocks)

    def embed(self, tokens: torch.Tensor, actions: torch.Tensor, states: torch.Tensor,
              extrinsics: torch.Tensor | None = None) -> torch.Tensor:
        """Interleave per-frame conditioning and patch tokens: -> ``[B, T*(K+h*w), pd]``."""
        x = self.predictor_embed(tokens)  # [B, T*hw, pd]
        b, _, pd = x.shape
        t = actions.shape[1]
        x = x.view(b, t, self.grid_h * self.grid_w, pd)  # [B, T, hw, pd]
        cond = [self.action_encoder(actions).unsqueeze(2), self.state_encoder(states).unsqueeze(2)]  # [B,T,1,pd]
        if self.use_extrinsics:
            if extrinsics is None:
                raise ValueError("this predictor was configured with use_extrinsics=True: pass extrinsics[B,T,6]")
            cond.append(self.extrinsics_encoder(extrinsics).unsqueeze(2))
        return torch.cat([*cond, x], dim=2).flatten(1, 2)  # [B, T*(K+hw), pd]

    def head(self, x: torch.Tensor, T: int) -> torch.Tensor:  # noqa: N803
        """Drop conditioning tokens, norm and project: ``[B, T*(K+hw), pd] -> [B, T*hw, D]``."""
        b = x.shape[0]
        x = x.view(b, T, self.cond_tokens + self.grid_h * self.grid_w, -1)  # [B, T, K+hw, pd]
        x = x[:, :, self.cond_tokens:, :].flatten(1, 2)  # [B, T*hw, pd]
        return self.predictor_proj(self.predictor_norm(x))

    def forward(self, tokens: torch.Tensor, actions: torch.Tensor, states: torch.Tensor,
                extrinsics: torch.Tensor | None = None) -> torch.Tensor:
        """Predict next-frame latents for every input frame (teacher forcing / one rollout step)."""
        T = actions.shape[1]  # noqa: N806
        if not torch.jit.is_tracing():
            self._check_inputs(tokens, actions, states)
        x = self.embed(tokens, actions, states, extrinsics)
        pos = frame_token_positions(T, self.grid_h, self.grid_w, self.cond_tokens, device=x.device)
        mask = None
        if self.is_frame_causal:
            mask = build_block_causal_mask(T, self.grid_h * self.grid_w, self.cond_tokens, x.device)
        for blk in self.predictor_blocks:
            x = blk(x, pos, mask)
        return self.head(x, T)

    def _check_inputs(self, tokens: torch.Tensor, actions: torch.Tensor, states: torch.Tensor) -> None:
        """Clear errors for shape mistakes (skipped while tracing for export)."""
        hw = self.grid_h * self.grid_w
        b, t = actions.shape[0], actions.shape[1]
        if tokens.dim() != 3 or tokens.shape[1] != t * hw or tokens.shape[0] != b:
            raise ValueError(f"tokens must be [B, T*{hw}, D] with B={b}, T={t} from actions; got "
                             f"{tuple(tokens.shape)}")
        if states.shape[:2] != actions.shape[:2]:
            raise ValueError(f"states {tuple(states.shape)} and actions {tuple(actions.shape)} differ in [B, T]")
        if not 1 <= t <= self.cfg.max_frames:
            raise ValueError(f"T={t} frames, but this predictor takes 1..{self.cfg.max_frames}")

"""Attentive probes of V-JEPA 2: a cross-attention pooler over frozen encoder tokens, with linear heads.

Built as the reference builds them (``src/models/attentive_pooler.py``, ``evals/action_anticipation_frozen/
models.py``), with the same parameter names, so the released probe files (``ssv2-*.pt``, ``diving48-*.pt``,
``ek100-*.pt``) load with strict key checking once their DDP ``module.`` prefix is stripped:

- :class:`AttentivePooler`: learned ``query_tokens`` [1, Q, D]; ``depth - 1`` ordinary pre-norm self-attention
  ``blocks`` (no RoPE: the probe sees an unordered set of tokens) applied to the input tokens first, then one
  ``cross_attention_block`` in which the queries attend to the tokens: ``q + xattn(q, norm1(x))`` followed by
  ``q + mlp(norm2(q))``. The cross-attention has separate ``q`` and ``kv`` projections and no output projection.
  The probe's LayerNorms use torch's default eps (1e-5), not the encoder's 1e-6.
- :class:`AttentiveClassifier`: one query and a ``linear`` head (video classification: SSv2, Diving-48).
- :class:`AnticipationClassifier`: three queries with ``verb_classifier``, ``noun_classifier`` and
  ``action_classifier`` heads (EK100 action anticipation); one query and only the action head when there are no
  verb classes, as in the reference.

The probe has no position information of its own: permuting the input tokens does not change its output.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..config import mlp_hidden_dim
from .modules import MLP, Block

__all__ = ["AnticipationClassifier", "AttentiveClassifier", "AttentivePooler", "CrossAttention", "CrossAttentionBlock"]

#: LayerNorm eps of the probes (the reference builds them with a plain ``nn.LayerNorm``).
PROBE_LAYER_NORM_EPS = 1e-5


class CrossAttention(nn.Module):
    """Multi-head attention of queries ``q[B, Q, C]`` over tokens ``x[B, N, C]``; no output projection."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"CrossAttention: dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, dim * 2, bias=qkv_bias)

    def forward(self, q: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``q[B, Q, C]``, ``x[B, N, C]`` -> ``[B, Q, C]``."""
        b, nq, c = q.shape
        q = self.q(q).unflatten(-1, (self.num_heads, -1)).transpose(1, 2)  # [B, h, Q, hd]
        kv = self.kv(x).unflatten(-1, (2, self.num_heads, -1)).permute(2, 0, 3, 1, 4)  # [2, B, h, N, hd]
        out = F.scaled_dot_product_attention(q, kv[0], kv[1])  # [B, h, Q, hd]
        return out.transpose(1, 2).reshape(b, nq, c)


class CrossAttentionBlock(nn.Module):
    """``q + xattn(q, norm1(x))`` then ``q + mlp(norm2(q))`` (the queries themselves are not normalised)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 eps: float = PROBE_LAYER_NORM_EPS) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.xattn = CrossAttention(dim, num_heads, qkv_bias=qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = MLP(dim, mlp_hidden_dim(dim, mlp_ratio))

    def forward(self, q: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``q[B, Q, C]``, ``x[B, N, C]`` -> updated queries ``[B, Q, C]``."""
        q = q + self.xattn(q, self.norm1(x))
        return q + self.mlp(self.norm2(q))


class AttentivePooler(nn.Module):
    """``tokens[B, N, D] -> [B, num_queries, D]``: ``depth - 1`` self-attention blocks, then cross-attention."""

    def __init__(self, num_queries: int, embed_dim: int, num_heads: int, depth: int, mlp_ratio: float = 4.0,
                 qkv_bias: bool = True) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"AttentivePooler: depth must be >= 1 (the cross-attention block), got {depth}")
        self.query_tokens = nn.Parameter(torch.zeros(1, num_queries, embed_dim))
        self.cross_attention_block = CrossAttentionBlock(embed_dim, num_heads, mlp_ratio, qkv_bias)
        hidden = mlp_hidden_dim(embed_dim, mlp_ratio)
        # An empty list when depth == 1: no ``blocks.*`` keys, like the reference's ``blocks = None``.
        self.blocks = nn.ModuleList([
            Block(embed_dim, num_heads, hidden, qkv_bias=qkv_bias, eps=PROBE_LAYER_NORM_EPS, use_rope=False)
            for _ in range(depth - 1)
        ])

    def init_weights(self, std: float = 0.02) -> None:
        """Reference init: trunc-normal query tokens and Linear weights, zero biases, unit LayerNorms; the
        self-attention blocks' ``attn.proj``/``mlp.fc2`` divided by sqrt(2 * layer_id), and the cross-attention
        block's ``mlp.fc2`` by the same factor as the last self-attention block (sqrt(2) when there is none)."""
        with torch.no_grad():
            nn.init.trunc_normal_(self.query_tokens, std=std)
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    nn.init.trunc_normal_(m.weight, std=std)
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)
                elif isinstance(m, nn.LayerNorm):
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)
            layer_id = 1
            for layer_id, blk in enumerate(self.blocks, start=1):
                blk.attn.proj.weight.div_(math.sqrt(2.0 * layer_id))
                blk.mlp.fc2.weight.div_(math.sqrt(2.0 * layer_id))
            self.cross_attention_block.mlp.fc2.weight.div_(math.sqrt(2.0 * layer_id))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pool ``x[B, N, D]`` into ``[B, num_queries, D]``."""
        for blk in self.blocks:
            x = blk(x, None)
        q = self.query_tokens.expand(x.shape[0], -1, -1)
        return self.cross_attention_block(q, x)


class AttentiveClassifier(nn.Module):
    """Video classification probe: ``tokens[B, N, D] -> logits[B, num_classes]`` (one query, ``linear`` head)."""

    def __init__(self, embed_dim: int, num_heads: int, depth: int, num_classes: int, mlp_ratio: float = 4.0,
                 qkv_bias: bool = True) -> None:
        super().__init__()
        self.pooler = AttentivePooler(1, embed_dim, num_heads, depth, mlp_ratio, qkv_bias)
        self.linear = nn.Linear(embed_dim, num_classes)

    def init_weights(self, std: float = 0.02) -> None:
        """Fresh reference initialisation (the head keeps torch's default Linear init, as in the reference)."""
        self.pooler.init_weights(std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, num_classes]``."""
        return self.linear(self.pooler(x).squeeze(1))


class AnticipationClassifier(nn.Module):
    """Action anticipation probe: ``tokens[B, N, D] -> {"verb", "noun", "action"}`` logits.

    Queries 0, 1, 2 feed the verb, noun and action heads. With ``verb_classes == 0`` (action-only, as the
    reference allows) there is one query and the output holds only ``"action"``.
    """

    def __init__(self, embed_dim: int, num_heads: int, depth: int, verb_classes: int, noun_classes: int,
                 action_classes: int, mlp_ratio: float = 4.0, qkv_bias: bool = True) -> None:
        super().__init__()
        self.action_only = verb_classes == 0
        self.pooler = AttentivePooler(1 if self.action_only else 3, embed_dim, num_heads, depth, mlp_ratio,
                                      qkv_bias)
        if not self.action_only:
            self.verb_classifier = nn.Linear(embed_dim, verb_classes)
            self.noun_classifier = nn.Linear(embed_dim, noun_classes)
        self.action_classifier = nn.Linear(embed_dim, action_classes)

    def init_weights(self, std: float = 0.02) -> None:
        """Fresh reference initialisation (heads keep torch's default Linear init, as in the reference)."""
        self.pooler.init_weights(std)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"verb": [B, V], "noun": [B, Nn], "action": [B, A]}`` (only ``"action"`` when action-only)."""
        q = self.pooler(x)  # [B, Q, D]
        if self.action_only:
            return {"action": self.action_classifier(q[:, 0])}
        return {"verb": self.verb_classifier(q[:, 0]), "noun": self.noun_classifier(q[:, 1]),
                "action": self.action_classifier(q[:, 2])}

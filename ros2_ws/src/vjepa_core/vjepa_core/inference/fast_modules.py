"""Static-shape, export-friendly re-wirings of the V-JEPA 2 encoder and AC predictor, plus the exact
frame-level key/value cache used for multi-step rollouts.

They reuse the original modules' parameters (no copies) and compute exactly the same function; what changes:

* **RoPE tables are precomputed** once per graph (buffers ``rope_cos``/``rope_sin`` of shape [N, head_dim])
  instead of recomputing angles, sin and cos in every layer. The three T/H/W segments and the unrotated
  tail are merged into one full-width table (tail: cos = 1, sin = 0), so RoPE is one fused
  ``x * cos + pairswap(x) * sin`` on q and k. The tables keep the reference's ``repeat`` layout quirk.
* **Fixed frame count per graph**: the block-causal mask is a constant buffer for exactly ``T`` frames.
* **KV cache** (:class:`ACStepper`): because attention is block-causal over frames, the keys/values of
  frames already processed never change when a new frame is appended. A rollout step therefore only runs
  the new frame's ``cond + h*w`` tokens against the cached keys/values (no mask needed: the newest frame
  may see everything), instead of re-running every earlier frame as the reference does.
  :class:`ACStepGraph` is the same step for one fixed frame index with the cache as explicit per-layer
  inputs/outputs, the form exported to ONNX / TensorRT (one graph per frame index).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..models.ac_predictor import build_block_causal_mask, frame_token_positions
from ..models.modules import grid_positions, rope_segment_dim

__all__ = [
    "ACStepGraph",
    "ACStepper",
    "FastACPredictor",
    "FramesEncoder",
    "KVCache",
    "ac_step",
    "apply_rope_tables",
    "block_forward",
    "rope_tables",
]

#: Per layer ``(k, v)``, each ``[B, heads, P, head_dim]`` for the ``P`` tokens processed so far.
KVCache = list
KVPair = tuple[torch.Tensor, torch.Tensor]


def rope_tables(pos: torch.Tensor, head_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Full-width cos/sin tables ``[N, head_dim]`` (float32) for positions ``pos[N, 3]``.

    Same angles as :func:`vjepa_core.models.modules.rotate` per segment: ``omega_i = 10000^(-i/(s/2))``,
    tables laid out ``[f_0..f_{s/2-1}, f_0..f_{s/2-1}]``; unrotated tail dims get cos 1 / sin 0.
    """
    s = rope_segment_dim(head_dim)
    n = pos.shape[0]
    omega = torch.arange(s // 2, dtype=torch.float32, device=pos.device) / (s / 2.0)
    omega = 1.0 / (10000.0**omega)  # [s/2]
    cos_parts, sin_parts = [], []
    for i in range(3):
        freq = pos[:, i].to(torch.float32).unsqueeze(-1) * omega  # [N, s/2]
        cos_parts += [freq.cos(), freq.cos()]
        sin_parts += [freq.sin(), freq.sin()]
    tail = head_dim - 3 * s
    if tail:
        cos_parts.append(torch.ones(n, tail, device=pos.device))
        sin_parts.append(torch.zeros(n, tail, device=pos.device))
    return torch.cat(cos_parts, dim=-1), torch.cat(sin_parts, dim=-1)


def apply_rope_tables(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """``x[..., N, hd] * cos + pairswap(x) * sin`` where pairswap maps pairs (a, b) -> (-b, a)."""
    y = x.unflatten(-1, (-1, 2))
    y1, y2 = y.unbind(dim=-1)
    y = torch.stack((-y2, y1), dim=-1).flatten(-2)
    return x * cos.to(x.dtype) + y * sin.to(x.dtype)


def block_forward(
    blk: nn.Module,
    x: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    mask: torch.Tensor | None = None,
    past: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """One pre-norm transformer block of the project's models with precomputed RoPE and optional past K/V.

    Args:
        blk: a ``vjepa_core.models.modules.Block`` (norm1, attn.qkv, attn.proj, norm2, mlp).
        x: ``[B, n, C]`` the new tokens.
        cos, sin: ``[n, head_dim]`` RoPE tables of the new tokens.
        mask: optional boolean ``[n, P + n]`` (True = may attend).
        past: optional ``(k, v)`` ``[B, heads, P, hd]`` of earlier tokens (already rotated).
    Returns:
        ``(x_out [B, n, C], (k_all, v_all))`` with the new tokens' keys/values appended.
    """
    attn = blk.attn
    b, n, _ = x.shape
    qkv = attn.qkv(blk.norm1(x)).unflatten(-1, (3, attn.num_heads, -1)).permute(2, 0, 3, 1, 4)  # [3,B,h,n,hd]
    q = apply_rope_tables(qkv[0], cos, sin)
    k = apply_rope_tables(qkv[1], cos, sin)
    v = qkv[2]
    if past is not None:
        k = torch.cat([past[0], k], dim=2)
        v = torch.cat([past[1], v], dim=2)
    o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # [B, h, n, hd]
    x = x + attn.proj(o.transpose(1, 2).flatten(2))
    x = x + blk.mlp(blk.norm2(x))
    return x, (k, v)


class FramesEncoder(nn.Module):
    """``frames[B, F, 3, H, W] -> tokens[B, F, N, D]``: each frame encoded independently as one tubelet
    (the image repeated ``tubelet_size`` times), as V-JEPA 2-AC encodes observations and goals.

    ``F`` (frames per graph), ``H`` and ``W`` are fixed at construction; the batch is free.
    """

    def __init__(self, encoder: nn.Module, frames: int, img_hw: tuple[int, int]) -> None:
        super().__init__()
        self.encoder = encoder
        self.frames = int(frames)
        self.img_hw = (int(img_hw[0]), int(img_hw[1]))
        p = encoder.patch_size
        gh, gw = self.img_hw[0] // p, self.img_hw[1] // p
        pos = grid_positions(torch.arange(gh * gw), gh, gw)  # one tubelet: frame index 0
        head_dim = encoder.embed_dim // encoder.blocks[0].attn.num_heads
        cos, sin = rope_tables(pos, head_dim)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Encode ``[B, F, 3, H, W]`` (normalised pixels) -> ``[B, F, N, D]`` (final LayerNorm applied)."""
        b = frames.shape[0]
        x = frames.reshape(b * self.frames, 3, self.img_hw[0], self.img_hw[1])  # [B*F, 3, H, W]
        x = x.unsqueeze(2).expand(-1, -1, self.encoder.tubelet_size, -1, -1)  # [B*F, 3, t, H, W]
        x = self.encoder.patch_embed(x)  # [B*F, N, D]
        for blk in self.encoder.blocks:
            x, _ = block_forward(blk, x, self.rope_cos, self.rope_sin)
        x = self.encoder.norm(x)
        return x.reshape(b, self.frames, x.shape[1], x.shape[2])


class FastACPredictor(nn.Module):
    """The AC predictor for exactly ``T`` frames with a constant mask and precomputed RoPE tables.

    ``forward(tokens[B, T*hw, D], actions[B, T, 7], states[B, T, 7]) -> [B, T*hw, D]``, equal to
    ``ACPredictor.forward``. Used for ONNX/TensorRT export (one graph per ``T``) and by the torch backend.
    """

    def __init__(self, predictor: nn.Module, frames: int) -> None:
        super().__init__()
        if predictor.use_extrinsics:
            raise ValueError("export of predictors with use_extrinsics=True is not supported")
        self.predictor = predictor
        self.frames = int(frames)
        if not 1 <= self.frames <= predictor.cfg.max_frames:
            raise ValueError(f"frames={frames}: this predictor takes 1..{predictor.cfg.max_frames} frames")
        hw = predictor.grid_h * predictor.grid_w
        k = predictor.cond_tokens
        pos = frame_token_positions(self.frames, predictor.grid_h, predictor.grid_w, k)
        head_dim = predictor.cfg.predictor_embed_dim // predictor.cfg.num_heads
        cos, sin = rope_tables(pos, head_dim)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        mask = build_block_causal_mask(self.frames, hw, k) if predictor.is_frame_causal else None
        if mask is not None and self.frames == 1:
            mask = None  # one frame: every token sees every token
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, tokens: torch.Tensor, actions: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """Block-causal prediction for every input frame."""
        p = self.predictor
        x = p.embed(tokens, actions, states)  # [B, T*(K+hw), pd]
        for blk in p.predictor_blocks:
            x, _ = block_forward(blk, x, self.rope_cos, self.rope_sin, self.mask)
        return p.head(x, self.frames)


def _pairswap_rows(t: torch.Tensor) -> torch.Tensor:
    """Rows of ``P @ t`` for the RoPE pair swap ``P``: ``(P y)[2i] = -y[2i+1]``, ``(P y)[2i+1] = y[2i]``."""
    t2 = t.unflatten(0, (-1, 2))
    return torch.stack((-t2[:, 1], t2[:, 0]), dim=1).flatten(0, 1)


class _FoldedBlock:
    """One block's weights for :class:`ACStepper`, with RoPE's pair swap folded into the qkv projection.

    RoPE is ``x * cos + P x * sin`` with a fixed signed permutation ``P``; since ``q = W_q h + b_q``,
    ``P q = (P W_q) h + P b_q``. One matmul with the rows ``[W_q; W_k; P W_q; P W_k; W_v]`` therefore yields
    everything rotary attention needs, and the rotation becomes one ``addcmul`` instead of the unbind / negate /
    stack / two multiplies / add of :func:`apply_rope_tables` on strided heads (exactly the same numbers up to
    float rounding). Weights are cast once to the compute dtype (no per-call autocast casts).
    """

    def __init__(self, blk: nn.Module, dtype: torch.dtype) -> None:
        a = blk.attn
        c = a.qkv.out_features // 3
        w = a.qkv.weight.detach()
        b = a.qkv.bias.detach() if a.qkv.bias is not None else torch.zeros(3 * c, device=w.device)
        self.c = c
        self.heads = a.num_heads
        self.qkv_w = torch.cat([w[: 2 * c], _pairswap_rows(w[:c]), _pairswap_rows(w[c: 2 * c]), w[2 * c:]]).to(dtype)
        self.qkv_b = torch.cat([b[: 2 * c], _pairswap_rows(b[:c]), _pairswap_rows(b[c: 2 * c]), b[2 * c:]]).to(dtype)
        self.norm1 = _norm_params(blk.norm1, dtype)
        self.norm2 = _norm_params(blk.norm2, dtype)
        self.proj = _linear_params(a.proj, dtype)
        self.fc1 = _linear_params(blk.mlp.fc1, dtype)
        self.fc2 = _linear_params(blk.mlp.fc2, dtype)
        self.act = blk.mlp.act

    def forward(self, x: torch.Tensor, cos2: torch.Tensor, sin2: torch.Tensor,
                past: tuple[torch.Tensor, torch.Tensor] | None) -> tuple[torch.Tensor, KVPair]:
        """:func:`block_forward` without a mask: ``x[B, n, C]``, tables ``[n, 2C]``, past ``[B|1, h, P, hd]``."""
        b, c = x.shape[0], self.c  # the width from the weights: a constant when the step is traced for export
        y = F.linear(F.layer_norm(x, (c,), *self.norm1), self.qkv_w, self.qkv_b)  # [B, n, 5C]
        qk = torch.addcmul(y[..., : 2 * c] * cos2, y[..., 2 * c: 4 * c], sin2)  # rotated q | k
        q = qk[..., :c].unflatten(-1, (self.heads, -1)).transpose(1, 2)  # [B, h, n, hd]
        k = qk[..., c:].unflatten(-1, (self.heads, -1)).transpose(1, 2)
        v = y[..., 4 * c:].unflatten(-1, (self.heads, -1)).transpose(1, 2)
        if past is not None:
            k = torch.cat([past[0].expand(b, -1, -1, -1), k], dim=2)
            v = torch.cat([past[1].expand(b, -1, -1, -1), v], dim=2)
        return self._attend_and_mlp(x, q, k, v)

    def _attend_and_mlp(self, x: torch.Tensor, q: torch.Tensor, k: torch.Tensor,
                        v: torch.Tensor) -> tuple[torch.Tensor, KVPair]:
        """The rest of the block once the rotated ``q``/``k`` and ``v`` ``[B, h, n|P+n, hd]`` are known."""
        o = F.scaled_dot_product_attention(q, k, v)  # the newest frame may see every cached token
        x = x + F.linear(o.transpose(1, 2).flatten(2), *self.proj)
        h = F.linear(self.act(F.linear(F.layer_norm(x, (self.c,), *self.norm2), *self.fc1)), *self.fc2)
        return x + h, (k, v)

    def forward_shared_context(self, xc: torch.Tensor, xz: torch.Tensor, cos2: torch.Tensor,
                               sin2: torch.Tensor) -> tuple[torch.Tensor, KVPair]:
        """:meth:`forward` of ``x = [xc | xz]`` without a past, where ``xz[1, hw, C]`` (the context frame's
        tokens) is the same for every sample and ``xc[B, K, C]`` (action/state tokens) is not.

        Up to the attention each token is processed alone (layer norm, qkv projection, rotation), so the
        context frame's part is computed once and broadcast instead of ``B`` times: in the first block of a
        plan's first step that is most of the qkv work (``hw`` of the ``K + hw`` tokens). Same numbers as
        :meth:`forward` on the expanded input, up to float rounding."""
        b, kc, c = xc.shape[0], xc.shape[1], self.c
        yc = F.linear(F.layer_norm(xc, (c,), *self.norm1), self.qkv_w, self.qkv_b)  # [B, K, 5C]
        yz = F.linear(F.layer_norm(xz, (c,), *self.norm1), self.qkv_w, self.qkv_b)  # [1, hw, 5C], once
        qkc = torch.addcmul(yc[..., : 2 * c] * cos2[:kc], yc[..., 2 * c: 4 * c], sin2[:kc])
        qkz = torch.addcmul(yz[..., : 2 * c] * cos2[kc:], yz[..., 2 * c: 4 * c], sin2[kc:])
        qkv = torch.cat([torch.cat([qkc, yc[..., 4 * c:]], dim=-1),
                         torch.cat([qkz, yz[..., 4 * c:]], dim=-1).expand(b, -1, -1)], dim=1)  # [B, n, 3C]
        q, k, v = (qkv[..., i * c: (i + 1) * c].unflatten(-1, (self.heads, -1)).transpose(1, 2) for i in range(3))
        x = torch.cat([xc, xz.expand(b, -1, -1)], dim=1)
        return self._attend_and_mlp(x, q, k, v)


def _norm_params(norm: nn.LayerNorm, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, float]:
    return norm.weight.detach().to(dtype), norm.bias.detach().to(dtype), norm.eps


def _linear_params(lin: nn.Linear, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor | None]:
    return lin.weight.detach().to(dtype), None if lin.bias is None else lin.bias.detach().to(dtype)


class _StepWeights:
    """Everything :meth:`ACStepper.step` multiplies with, prepared once in the compute dtype."""

    def __init__(self, p: nn.Module, dtype: torch.dtype) -> None:
        self.embed = _linear_params(p.predictor_embed, dtype)
        self.action = _linear_params(p.action_encoder, dtype)
        self.state = _linear_params(p.state_encoder, dtype)
        self.blocks = [_FoldedBlock(b, dtype) for b in p.predictor_blocks]
        self.head_norm = _norm_params(p.predictor_norm, dtype)
        self.head_proj = _linear_params(p.predictor_proj, dtype)

    def tensors(self) -> list[torch.Tensor]:
        """Every prepared tensor (for registering them as a module's buffers)."""
        groups: list[tuple[Any, ...]] = [self.embed, self.action, self.state, self.head_norm, self.head_proj]
        for b in self.blocks:
            groups += [(b.qkv_w, b.qkv_b), b.norm1, b.norm2, b.proj, b.fc1, b.fc2]
        return [t for g in groups for t in g if isinstance(t, torch.Tensor)]


def _folded_step(w: _StepWeights, tokens: torch.Tensor, action: torch.Tensor, state: torch.Tensor,
                 cos2: torch.Tensor, sin2: torch.Tensor, past: KVCache | None, n_cond: int,
                 shared: bool) -> tuple[torch.Tensor, KVCache]:
    """One frame on prepared weights (the body of :meth:`ACStepper.step` and :class:`ACStepGraph`):
    ``tokens[B|1, hw, D]`` (embedded on their own batch), ``action``/``state`` ``[B, 7]``, ``past`` per layer
    ``(k, v)`` or None. ``shared`` (no past): the first block's per-token work on the frame runs on the tokens'
    own batch before broadcasting (:meth:`_FoldedBlock.forward_shared_context`)."""
    z = F.linear(tokens, *w.embed)  # [B|1, hw, pd]: a batch-1 context frame is embedded once
    xc = torch.cat([F.linear(action, *w.action).unsqueeze(1), F.linear(state, *w.state).unsqueeze(1)], dim=1)
    present: KVCache = []
    if shared and past is None:
        x, kv = w.blocks[0].forward_shared_context(xc, z, cos2, sin2)
        present.append(kv)
    else:
        x = torch.cat([xc, z.expand(action.shape[0], -1, -1)], dim=1)  # [B, K+hw, pd]
    for i in range(len(present), len(w.blocks)):
        x, kv = w.blocks[i].forward(x, cos2, sin2, None if past is None else past[i])
        present.append(kv)
    x = F.layer_norm(x[:, n_cond:], (w.blocks[-1].c,), *w.head_norm)
    return F.linear(x, *w.head_proj), present


class ACStepper(nn.Module):
    """Exact frame-by-frame AC prediction with a key/value cache.

    ``step(tokens_t[B|1, hw, D], action_t[B, 7], state_t[B, 7], cache, frame) -> (pred[B, hw, D], cache)``
    gives the same output as running the full predictor over frames ``0..frame`` and keeping the last frame
    (block-causal attention makes the earlier frames' keys/values independent of later frames). A batch-1
    ``tokens_t`` (e.g. the shared context frame) is embedded once and broadcast over the samples.

    The step runs on weights prepared once per device (:class:`_FoldedBlock`: RoPE's pair swap folded into the
    qkv projection, weights in ``dtype``); the keys/values it returns are exactly :func:`ac_step`'s (same
    layout, RoPE applied), so caches are interchangeable with the exported step graphs. A batch-1 frame at step 0
    (the plan's context frame) also goes through the first block's layer norm / qkv / rotation once
    (:meth:`_FoldedBlock.forward_shared_context`; ``share_context=False`` turns that off for comparison).
    ``dtype`` bfloat16 runs every matmul in bf16 (AMX / AVX-512 BF16 on recent x86 CPUs; predictions come back as
    float32). Weights are read at the first step on a device: call :meth:`refresh` after changing the
    predictor's weights.
    """

    def __init__(self, predictor: nn.Module, dtype: torch.dtype = torch.float32, share_context: bool = True) -> None:
        super().__init__()
        if predictor.use_extrinsics:
            raise ValueError("the KV-cached rollout does not support use_extrinsics=True")
        if not predictor.is_frame_causal:
            raise ValueError("a KV cache is only exact for a frame-causal predictor (is_frame_causal=True)")
        self.share_context = share_context  # False: the batch-1 context frame takes the per-sample path (ablation)
        self.predictor = predictor
        self.dtype = dtype
        self.head_dim = predictor.cfg.predictor_embed_dim // predictor.cfg.num_heads
        self._tables: dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor]] = {}
        self._prepared: dict[str, _StepWeights] = {}

    def refresh(self) -> None:
        """Forget the prepared weights (after the predictor's weights or device changed)."""
        self._prepared.clear()
        self._tables.clear()

    def tables(self, frame: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Cached RoPE tables ``[K+hw, 2 * width]`` (q and k of every head) of one frame at position ``frame``."""
        key = (int(frame), str(device))
        if key not in self._tables:
            p = self.predictor
            pos = frame_token_positions(1, p.grid_h, p.grid_w, p.cond_tokens, frame_offset=frame, device=device)
            cos, sin = rope_tables(pos, self.head_dim)
            reps = 2 * p.cfg.num_heads
            self._tables[key] = (cos.repeat(1, reps).to(self.dtype), sin.repeat(1, reps).to(self.dtype))
        return self._tables[key]

    def weights(self, device: torch.device) -> _StepWeights:
        """The predictor's weights prepared for ``device`` (built once; see :meth:`refresh`)."""
        key = str(device)
        if key not in self._prepared:
            self._prepared[key] = _StepWeights(self.predictor, self.dtype)
        return self._prepared[key]

    def step(
        self,
        tokens_t: torch.Tensor,
        action_t: torch.Tensor,
        state_t: torch.Tensor,
        cache: KVCache | None,
        frame: int,
    ) -> tuple[torch.Tensor, KVCache]:
        """Process frame ``frame`` given the cache of frames ``0..frame-1``; see the class docstring."""
        p = self.predictor
        if frame >= p.cfg.max_frames:
            raise ValueError(f"frame index {frame}: this predictor takes at most {p.cfg.max_frames} frames")
        dev = action_t.device
        cos2, sin2 = self.tables(frame, dev)
        w = self.weights(dev)
        dt = self.dtype
        n_cond = p.cond_tokens
        with torch.autocast(dev.type, enabled=False):  # the weights already are in the compute dtype
            past = None if cache is None else [(k.to(dt), v.to(dt)) for k, v in cache]
            shared = self.share_context and tokens_t.shape[0] == 1 and action_t.shape[0] > 1
            out, present = _folded_step(w, tokens_t.to(dt), action_t.to(dt), state_t.to(dt), cos2, sin2, past,
                                        n_cond, shared)
        return out.float(), present


def ac_step(
    predictor: nn.Module,
    tokens_t: torch.Tensor,
    action_t: torch.Tensor,
    state_t: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    past: KVCache | None,
) -> tuple[torch.Tensor, KVCache]:
    """One frame of the AC predictor against the per-layer ``past`` keys/values (or none for frame 0).

    ``tokens_t[B|1, hw, D]`` and each past ``(k, v)`` ``[B|1, heads, P, hd]`` may have batch 1: they are
    broadcast to the batch ``B`` of ``action_t`` (the shared context frame / history is embedded once).
    Returns ``(pred[B, hw, D], present)`` with ``present[i] = (k, v)`` ``[B, heads, P + K + hw, hd]``.
    Written with the original modules' forward code; the tests hold :class:`ACStepper` and :class:`ACStepGraph`
    (the folded, faster form) to it.
    """
    p = predictor
    b = action_t.shape[0]
    z = p.predictor_embed(tokens_t).expand(b, -1, -1)  # [B, hw, pd] (a view when the batch already is B)
    a = p.action_encoder(action_t).unsqueeze(1)  # [B, 1, pd]
    s = p.state_encoder(state_t).unsqueeze(1)
    x = torch.cat([a, s, z], dim=1)  # [B, K+hw, pd]
    present: KVCache = []
    for i, blk in enumerate(p.predictor_blocks):
        kv = None
        if past is not None:
            k, v = past[i]
            kv = (k.expand(b, -1, -1, -1), v.expand(b, -1, -1, -1))
        x, kv = block_forward(blk, x, cos, sin, None, kv)
        present.append(kv)
    return p.head(x, 1), present


class ACStepGraph(nn.Module):
    """:meth:`ACStepper.step` in float32 for one fixed frame index ``frame``, with the cache as flat per-layer
    tensors (export form): the same folded qkv and, at frame 0, the context frame's first-block work on the
    tokens' own batch. Equal to :func:`ac_step` (the step written with the original modules) up to float rounding.

    ``forward(tokens[Bt, hw, D], action[B, 7], state[B, 7], past_key_0, past_value_0, ..., past_value_{L-1})``
    -> ``(predicted[B, hw, D], key_0, value_0, ..., value_{L-1})``; ``Bt`` and the past's batch may be 1 or
    ``B``; frame 0 takes no past. Past tensors are ``[B|1, heads, frame*(K+hw), hd]`` (RoPE already applied),
    outputs ``[B, heads, (frame+1)*(K+hw), hd]``. RoPE tables for the frame are constants of the graph.
    """

    def __init__(self, predictor: nn.Module, frame: int) -> None:
        super().__init__()
        if predictor.use_extrinsics:
            raise ValueError("the KV-cached step does not support use_extrinsics=True")
        if not predictor.is_frame_causal:
            raise ValueError("a KV cache is only exact for a frame-causal predictor (is_frame_causal=True)")
        if not 0 <= frame < predictor.cfg.max_frames:
            raise ValueError(f"frame index {frame}: this predictor takes frames 0..{predictor.cfg.max_frames - 1}")
        self.predictor = predictor
        self.frame = int(frame)
        self.depth = len(predictor.predictor_blocks)
        self.num_heads = predictor.cfg.num_heads
        self.head_dim = predictor.cfg.predictor_embed_dim // predictor.cfg.num_heads
        self.tokens_per_step = predictor.cond_tokens + predictor.grid_h * predictor.grid_w
        pos = frame_token_positions(1, predictor.grid_h, predictor.grid_w, predictor.cond_tokens,
                                    frame_offset=self.frame)
        cos, sin = rope_tables(pos, self.head_dim)
        # the graph computes what ACStepper.step computes: folded qkv (RoPE's pair swap in the weights, one
        # multiply-add per rotation instead of unbind / negate / stack on strided heads) and, at frame 0, the
        # context frame's first-block work on the tokens' own batch (1 when shared) before broadcasting
        reps = 2 * self.num_heads
        self._tables = (cos.repeat(1, reps), sin.repeat(1, reps))
        self._weights = _StepWeights(predictor, torch.float32)
        # the prepared tensors as buffers: a traced graph then holds them as initializers (which a multi-GB
        # export moves to its external data file), not as constants inside the protobuf
        for i, t in enumerate([*self._tables, *self._weights.tensors()]):
            self.register_buffer(f"folded_{i}", t)  # persistent: the exporter lifts only state_dict tensors

    def input_names(self) -> list[str]:
        """``tokens, action, state`` then ``past_key_i, past_value_i`` per layer (none for frame 0)."""
        past = [f"past_{kind}_{i}" for i in range(self.depth) for kind in ("key", "value")] if self.frame else []
        return ["tokens", "action", "state", *past]

    def output_names(self) -> list[str]:
        """``predicted`` then ``key_i, value_i`` per layer (the cache including this frame)."""
        return ["predicted", *[f"{kind}_{i}" for i in range(self.depth) for kind in ("key", "value")]]

    def forward(self, tokens: torch.Tensor, action: torch.Tensor, state: torch.Tensor,
                *past: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """See the class docstring."""
        if len(past) != (2 * self.depth if self.frame else 0):
            raise ValueError(f"frame {self.frame} takes {2 * self.depth if self.frame else 0} past tensors, "
                             f"got {len(past)}")
        cache = [(past[2 * i], past[2 * i + 1]) for i in range(self.depth)] if self.frame else None
        # frame 0: the tokens' own batch (1 when shared) goes through the first block's qkv before broadcasting
        pred, present = _folded_step(self._weights, tokens, action, state, *self._tables, cache,
                                     self.predictor.cond_tokens, shared=self.frame == 0)
        return (pred, *[t for kv in present for t in kv])

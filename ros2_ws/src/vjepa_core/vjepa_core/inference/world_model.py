"""World model = an inference backend + the V-JEPA 2-AC imagined rollout used by the CEM planner.

``WorldModel.unroll(context_tokens, context_states, actions)`` is the ``unroll`` the planner expects: all
candidate trajectories go through the predictor in batched calls, split into chunks that fit a memory
budget; imagined poses are updated with the torch pose math on the model's device; horizons > 1 use the
exact frame-level KV cache when the backend has one (otherwise the reference's whole-sequence recompute).

The inference layer knows nothing of planning: a planner is built on top of it with
``vjepa_core.planning.CEMPlanner.for_world_model(world_model, config)``. Imagined poses use the torch pose
math of ``vjepa_core.pose_torch`` (beside the numpy ``vjepa_core.pose``).
"""

from __future__ import annotations

import numpy as np
import torch

from ..pose import poses_to_diff
from ..pose_torch import compute_new_pose_torch
from ..tokens import normalize_tokens
from .base import InferenceBackend, ShapeMismatchError

__all__ = ["WorldModel"]


def _dims_from_manifest(manifest: dict | None) -> tuple[int, int, int, int, int]:
    """Predictor dims for the memory estimate from an export manifest's config (exported graphs have no torch
    module to read); the released predictor's dims, a safe over-estimate, when the manifest does not say."""
    from ..config import ACPredictorConfig, mlp_hidden_dim

    cfg = (manifest or {}).get("config", {}).get("predictor")
    if not cfg:
        return (24, 1024, 16, 4096, 2)
    c = ACPredictorConfig.from_dict(cfg)
    return (c.depth, c.predictor_embed_dim, c.num_heads, mlp_hidden_dim(c.predictor_embed_dim, c.mlp_ratio),
            3 if c.use_extrinsics else 2)


class WorldModel:
    """Rollouts of the AC predictor behind any :class:`InferenceBackend`.

    Args:
        backend: the backend (torch / onnxruntime / tensorrt).
        normalize: layer-normalise encoder outputs and every predicted frame (the reference's
            ``normalize_reps=True``; the AC predictor was trained on normalised latents).
        use_kv_cache: roll out with the exact frame-level KV cache (``None``: when the backend supports it).
        chunk_size: samples per predictor call; ``None`` derives it from ``memory_budget_mb``.
        memory_budget_mb: activation budget per chunk (``None``: on CPU the backend's ``cpu_memory_budget_mb``,
            8 MB for torch (cache-friendly), 256 MB for onnxruntime (fewer, larger calls); a quarter of the free GPU
            memory on CUDA).
        predictor_dims: ``(depth, predictor_embed_dim, num_heads, mlp_hidden, cond_tokens)`` for the memory
            estimate (read from a torch predictor when available).
    """

    def __init__(
        self,
        backend: InferenceBackend,
        normalize: bool = True,
        use_kv_cache: bool | None = None,
        chunk_size: int | None = None,
        memory_budget_mb: float | None = None,
        predictor_dims: tuple[int, int, int, int, int] | None = None,
    ) -> None:
        self.backend = backend
        self.normalize = bool(normalize)
        self.use_kv_cache = backend.supports_kv_cache if use_kv_cache is None else bool(use_kv_cache)
        if self.use_kv_cache and not backend.supports_kv_cache:
            raise ValueError(f"backend {backend.name!r} has no KV-cached step; pass use_kv_cache=False")
        if chunk_size is not None and chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        self.chunk_size = chunk_size
        self.memory_budget_mb = memory_budget_mb
        if predictor_dims is None:
            pred = getattr(backend, "predictor", None)
            if pred is not None:
                c = pred.cfg
                predictor_dims = (c.depth, c.predictor_embed_dim, c.num_heads,
                                  pred.predictor_blocks[0].mlp.fc1.out_features, pred.cond_tokens)
            else:
                predictor_dims = _dims_from_manifest(getattr(backend, "manifest", None))
        self.predictor_dims = predictor_dims

    @property
    def supports_clips(self) -> bool:
        """Whether :meth:`encode_clip` can encode video clips with this backend (the exported graphs take single
        frames only)."""
        return bool(self.backend.supports_clips)

    # ------------------------------------------------------------------------------------------------
    def _norm(self, x: torch.Tensor) -> torch.Tensor:
        return normalize_tokens(x) if self.normalize else x

    @torch.no_grad()
    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """Encode frames ``[3,H,W]``, ``[F,3,H,W]`` or ``[B,F,3,H,W]`` into (normalised) tokens
        ``[N,D]``, ``[F,N,D]`` or ``[B,F,N,D]``."""
        squeeze = frames.dim()
        if squeeze == 3:
            frames = frames[None, None]
        elif squeeze == 4:
            frames = frames[None]
        elif squeeze != 5:
            raise ShapeMismatchError(f"frames must be [3,H,W], [F,3,H,W] or [B,F,3,H,W], got {tuple(frames.shape)}")
        out = self._norm(self.backend.encode(frames))
        if squeeze == 3:
            return out[0, 0]
        return out[0] if squeeze == 4 else out

    @torch.no_grad()
    def encode_clip(self, video: torch.Tensor) -> torch.Tensor:
        """Encode a video clip ``[B, 3, T, H, W]`` (consecutive frames share tubelets) into (normalised) tokens
        ``[B, T / tubelet * N, D]``; backends that take single frames only raise ``BackendError``."""
        return self._norm(self.backend.encode_clip(video))

    def auto_chunk_size(self, samples: int, total_frames: int) -> int:
        """Samples per predictor call so one call's activations (+ KV cache) fit the memory budget."""
        if self.chunk_size is not None:
            return min(self.chunk_size, samples)
        depth, pd, heads, hidden, cond = self.predictor_dims
        n = cond + self.backend.tokens_per_frame  # tokens per frame
        dev = self.backend.device
        budget = self.memory_budget_mb
        if budget is None:
            if dev.type == "cuda":
                free, _ = torch.cuda.mem_get_info(dev)
                budget = free / 4 / 2**20
            else:
                budget = float(getattr(self.backend, "cpu_memory_budget_mb", 8.0))
        step_tokens = n if self.use_kv_cache else n * total_frames
        keys = n * total_frames
        elem = int(getattr(self.backend, "activation_bytes", 4))  # 2 for a bf16/fp16 torch step
        per_sample = elem * (step_tokens * (hidden + 4 * pd) + heads * step_tokens * keys)  # activations
        if self.use_kv_cache:
            per_sample += elem * depth * 2 * keys * pd
        chunk = int(max(1, min(samples, budget * 2**20 // max(per_sample, 1))))
        n_chunks = -(-samples // chunk)
        return -(-samples // n_chunks)  # equal-size chunks (one compiled shape, no tiny tail chunk)

    def context_actions(self, context_states: torch.Tensor) -> torch.Tensor:
        """Actions between consecutive context states (pose differences, as in training data) ``[T-1, 7]``."""
        s = context_states.detach().double().cpu().numpy()
        if s.shape[0] < 2:
            return torch.zeros(0, 7, device=context_states.device, dtype=context_states.dtype)
        a = poses_to_diff(s[:-1], s[1:]).astype(np.float32)
        return torch.from_numpy(a).to(context_states.device)

    @torch.no_grad()
    def rollout(
        self, context_tokens: torch.Tensor, context_states: torch.Tensor, actions: torch.Tensor,
        context_actions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Imagine ``H`` frames for each of ``S`` action sequences.

        Args:
            context_tokens: [T0, N, D] (normalised) observation tokens; [N, D] for one frame.
            context_states: [T0, 7] states of those frames.
            actions: [S, H, 7] candidate actions (the first is applied at the last context frame).
            context_actions: [T0-1, 7] actions between context frames (default: pose differences).
        Returns:
            [S, H, N, D] predicted frames (normalised if ``normalize``).
        """
        ctx, cst, acts = self._inputs(context_tokens, context_states, actions)
        t0 = ctx.shape[0]
        dev = self.backend.device
        cact = self.context_actions(cst) if context_actions is None else context_actions.to(dev, torch.float32)
        if tuple(cact.shape) != (t0 - 1, 7):
            raise ShapeMismatchError(f"context_actions must be [{t0 - 1}, 7], got {tuple(cact.shape)}")
        s, h = acts.shape[:2]
        chunk = self.auto_chunk_size(s, t0 + h - 1)
        run = self._rollout_cached if self.use_kv_cache else self._rollout_full
        outs = [run(ctx, cst, cact, acts[i : i + chunk]) for i in range(0, s, chunk)]
        return torch.cat(outs, dim=0)

    def _inputs(self, context_tokens: torch.Tensor, context_states: torch.Tensor,
                actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Checked rollout inputs as float32 on the backend's device: context ``[T0, N, D]`` (``[N, D]`` for one
        frame), states ``[T0, 7]`` (``[7]``), actions ``[S, H, 7]``; a clear ShapeMismatchError otherwise."""
        if context_tokens.dim() == 2:
            context_tokens = context_tokens[None]
        if context_states.dim() == 1:
            context_states = context_states[None]
        t0, n, d = context_tokens.shape
        if (n, d) != (self.backend.tokens_per_frame, self.backend.embed_dim):
            raise ShapeMismatchError(
                f"context tokens must be [T, {self.backend.tokens_per_frame}, {self.backend.embed_dim}], "
                f"got {tuple(context_tokens.shape)}"
            )
        if tuple(context_states.shape) != (t0, 7):
            raise ShapeMismatchError(f"context_states must be [{t0}, 7], got {tuple(context_states.shape)}")
        if actions.dim() != 3 or actions.shape[-1] != 7:
            raise ShapeMismatchError(f"actions must be [S, H, 7], got {tuple(actions.shape)}")
        dev = self.backend.device
        return context_tokens.to(dev, torch.float32), context_states.to(dev, torch.float32), \
            actions.to(dev, torch.float32)

    def unroll(self, context_tokens: torch.Tensor, context_states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """The planner's ``unroll``: final imagined frame ``[S, N, D]``."""
        return self.rollout(context_tokens, context_states, actions)[:, -1]

    def _rollout_cached(self, ctx: torch.Tensor, cst: torch.Tensor, cact: torch.Tensor,
                        acts: torch.Tensor) -> torch.Tensor:
        b = self.backend
        t0 = ctx.shape[0]
        s, h = acts.shape[:2]
        cache = None
        for t in range(t0 - 1):  # shared history: batch 1, broadcast over samples later
            _, cache = b.predict_step(ctx[t : t + 1], cact[t : t + 1], cst[t : t + 1], cache, t)
        z = ctx[-1:]  # [1, N, D]: shared by all samples, embedded once
        state = cst[-1:].expand(s, 7)
        frames = []
        for k in range(h):
            out, cache = b.predict_step(z, acts[:, k], state, cache, t0 - 1 + k)
            z = self._norm(out)
            frames.append(z)
            if k + 1 < h:
                state = compute_new_pose_torch(state, acts[:, k])
        return torch.stack(frames, dim=1)

    def _rollout_full(self, ctx: torch.Tensor, cst: torch.Tensor, cact: torch.Tensor,
                      acts: torch.Tensor) -> torch.Tensor:
        """The reference rollout: re-run the whole sequence at every horizon step."""
        b = self.backend
        t0, n, d = ctx.shape
        s, h = acts.shape[:2]
        tokens = ctx[None].expand(s, -1, -1, -1)  # [S, T0, N, D]
        states = cst[None].expand(s, -1, -1)  # [S, T0, 7]
        all_actions = torch.cat([cact[None].expand(s, -1, -1), acts], dim=1)  # [S, T0-1+H, 7]
        frames = []
        for k in range(h):
            t = t0 + k
            out = b.predict(tokens.reshape(s, t * n, d), all_actions[:, :t].contiguous(), states.contiguous())
            z = self._norm(out[:, -n:])
            frames.append(z)
            tokens = torch.cat([tokens, z[:, None]], dim=1)
            if k + 1 < h:
                new_state = compute_new_pose_torch(states[:, -1], acts[:, k])
                states = torch.cat([states, new_state[:, None]], dim=1)
        return torch.stack(frames, dim=1)

    def unroll_differentiable(self, context_tokens: torch.Tensor, context_states: torch.Tensor,
                              actions: torch.Tensor) -> torch.Tensor:
        """:meth:`unroll` with autograd enabled: final imagined frame ``[S, N, D]``, differentiable w.r.t.
        ``actions`` ``[S, H, 7]`` (gradient refinement of a plan, ``vjepa_core.planning.gradient``).

        Torch backend only (exported graphs carry no gradients): the predictor module runs in fp32 over the whole
        sequence at every step (the reference rollout, no KV cache, no chunking: meant for a few trajectories),
        poses advance with the torch pose math. Callers take gradients with ``torch.autograd.grad`` w.r.t. the
        actions, so the predictor's own parameters collect no ``.grad``.
        """
        from .base import BackendError

        predictor = getattr(self.backend, "predictor", None)
        if self.backend.name != "torch" or not isinstance(predictor, torch.nn.Module):
            raise BackendError(f"a differentiable unroll needs the torch backend (gradients through the predictor "
                               f"module); backend {self.backend.name!r} runs an exported graph")
        ctx, cst, acts = self._inputs(context_tokens.detach(), context_states.detach(), actions)
        t0, n, d = ctx.shape
        s, h = acts.shape[:2]
        with torch.enable_grad():
            tokens = ctx[None].expand(s, -1, -1, -1)
            states = cst[None].expand(s, -1, -1)
            all_actions = torch.cat([self.context_actions(cst)[None].expand(s, -1, -1), acts], dim=1)
            z = tokens[:, -1]
            for k in range(h):
                t = t0 + k
                out = predictor(tokens.reshape(s, t * n, d), all_actions[:, :t], states)
                z = self._norm(out[:, -n:].float())
                tokens = torch.cat([tokens, z[:, None]], dim=1)
                if k + 1 < h:
                    states = torch.cat([states, compute_new_pose_torch(states[:, -1], acts[:, k])[:, None]], dim=1)
        return z

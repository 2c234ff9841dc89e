"""The small interface every inference backend implements, and its error types.

A backend turns frames into tokens (``encode``), optionally whole video clips (``encode_clip``, where
consecutive frames share tubelets), and runs the AC predictor over a fixed number of frames (``predict``).
Backends return raw encoder tokens: the layer norm the AC predictor expects is applied once, by the caller that
owns ``normalize`` (:class:`~vjepa_core.inference.world_model.WorldModel`), with
:func:`vjepa_core.tokens.normalize_tokens`. Backends that can also run one frame against cached keys/values
(``predict_step``) let :class:`vjepa_core.inference.world_model.WorldModel` roll out horizons > 1 without
re-running earlier frames; the others fall back to the reference's whole-sequence recompute.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["BackendError", "BackendUnavailableError", "InferenceBackend", "ShapeMismatchError"]


class BackendError(RuntimeError):
    """An inference backend cannot be built or run (bad name, missing file, bad engine...)."""


class BackendUnavailableError(BackendError):
    """The backend's optional package (onnxruntime-gpu, tensorrt, CUDA) is not installed/usable here."""


class ShapeMismatchError(ValueError):
    """Inputs do not have the shape the model/graph/engine was built for."""


class InferenceBackend:
    """Base class. Tensors in and out are torch tensors on :attr:`device`.

    Attributes:
        name: backend name (``torch``, ``onnxruntime``, ``tensorrt``).
        device: torch device of inputs/outputs.
        tokens_per_frame: patch tokens per latent frame (h*w).
        embed_dim: encoder width D.
        supports_kv_cache: whether :meth:`predict_step` is implemented (for exported backends it depends on
            the export: per instance, true when the export has the step graphs / engines).
        supports_clips: whether :meth:`encode_clip` is implemented.
        cpu_memory_budget_mb: the activation budget per predictor call on the CPU that
            :class:`~vjepa_core.inference.world_model.WorldModel` chunks samples to by default (torch: 8 MB, a
            cache-resident working set, 16 MB for a bf16/fp16 step; onnxruntime: larger, because its per-call and
            per-operator thread-pool overhead dominates small calls).
        activation_bytes: bytes per activation element of a predictor call (4; 2 for a bf16/fp16 torch step), so
            a chunk of the same budget holds twice the samples at half precision.
    """

    name = "base"
    supports_kv_cache = False
    supports_clips = False
    cpu_memory_budget_mb = 8.0
    activation_bytes = 4

    def __init__(self, device: torch.device | str, tokens_per_frame: int, embed_dim: int) -> None:
        self.device = torch.device(device)
        self.tokens_per_frame = int(tokens_per_frame)
        self.embed_dim = int(embed_dim)

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """``frames[B, F, 3, H, W]`` (normalised pixels) -> raw encoder tokens ``[B, F, N, D]``."""
        raise NotImplementedError

    def encode_clip(self, video: torch.Tensor) -> torch.Tensor:
        """``video[B, 3, T, H, W]`` (normalised pixels, ``T`` a multiple of the tubelet size) -> raw encoder tokens
        ``[B, T / tubelet * N, D]`` (video features: consecutive frames share tubelets)."""
        raise BackendError(f"backend {self.name!r} cannot encode video clips (exported graphs take single frames); "
                           "use the torch backend")

    def predict(self, tokens: torch.Tensor, actions: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """``tokens[B, T*N, D], actions[B, T, 7], states[B, T, 7] -> [B, T*N, D]`` (block-causal)."""
        raise NotImplementedError

    def predict_step(
        self, tokens_t: torch.Tensor, action_t: torch.Tensor, state_t: torch.Tensor, cache: Any, frame: int
    ) -> tuple[torch.Tensor, Any]:
        """One frame against cached keys/values -> ``(pred[B, N, D], cache)``; see ``ACStepper.step``."""
        raise BackendError(f"backend {self.name!r} has no KV-cached step; use WorldModel(use_kv_cache=False)")

    def describe(self) -> dict:
        """Small JSON-able description (for benchmark records)."""
        return {"backend": self.name, "device": str(self.device)}

    # -- shared checks -------------------------------------------------------------------------------
    def check_predict_inputs(self, tokens: torch.Tensor, actions: torch.Tensor, states: torch.Tensor) -> int:
        """Validate predictor inputs; returns T. Raises :class:`ShapeMismatchError` with the shapes."""
        if actions.dim() != 3 or actions.shape[-1] != 7:
            raise ShapeMismatchError(f"actions must be [B, T, 7], got {tuple(actions.shape)}")
        b, t = actions.shape[:2]
        if tuple(states.shape) != (b, t, 7):
            raise ShapeMismatchError(f"states must be [{b}, {t}, 7] like actions, got {tuple(states.shape)}")
        want = (b, t * self.tokens_per_frame, self.embed_dim)
        if tuple(tokens.shape) != want:
            raise ShapeMismatchError(
                f"tokens must be [B, T*{self.tokens_per_frame}, {self.embed_dim}] = {list(want)} "
                f"for T={t} frames, got {list(tokens.shape)}"
            )
        return t

"""PyTorch backend: eager (optionally ``torch.compile``-d) encoder and AC predictor, bf16/fp16 autocast
on GPU, and the exact KV-cached frame step."""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import nn

from .base import BackendError, InferenceBackend, ShapeMismatchError
from .fast_modules import ACStepper, FastACPredictor, FramesEncoder

__all__ = ["PRECISIONS", "TorchBackend", "native_bf16", "resolve_precision"]

_DTYPES = {"fp32": None, "float32": None, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
           "fp16": torch.float16, "float16": torch.float16}
PRECISIONS = ("auto", *_DTYPES)


def native_bf16(device: torch.device | str) -> bool:
    """Whether ``device`` computes bf16 natively: a CUDA GPU that supports it, or a CPU with AVX-512 BF16 or AMX
    (where oneDNN runs bf16 matmuls at several times the fp32 rate; elsewhere bf16 is emulated and slower)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """``auto`` -> ``bf16`` where :func:`native_bf16`, else ``fp32``; other names are returned unchanged."""
    if precision != "auto":
        return precision
    return "bf16" if native_bf16(device) else "fp32"


class TorchBackend(InferenceBackend):
    """Runs the project's torch modules.

    Args:
        encoder: a ``VisionTransformer`` (or ``None`` if only planning from given tokens).
        predictor: an ``ACPredictor`` (or ``None`` if only encoding).
        device: where to run (modules are moved there).
        precision: ``fp32`` (default, exact), ``bf16`` or ``fp16`` (fp16 only on CUDA), or ``auto`` (bf16 where
            the device computes it natively, see :func:`native_bf16`; else fp32). The encoder runs under
            autocast; the predictor's KV-cached step runs on weights cast once to that dtype (with AMX on a
            recent x86 CPU about twice as fast as fp32 for the sim model; predictions differ by ~1e-2).
        compile: wrap the hot functions in ``torch.compile`` (first call compiles, minutes for big models).
    """

    name = "torch"
    supports_kv_cache = True
    supports_clips = True

    def __init__(
        self,
        encoder: nn.Module | None,
        predictor: nn.Module | None,
        device: torch.device | str = "cpu",
        precision: str = "fp32",
        compile: bool = False,
    ) -> None:
        if encoder is None and predictor is None:
            raise BackendError("TorchBackend needs an encoder, a predictor, or both")
        if precision not in PRECISIONS:
            raise BackendError(f"unknown precision {precision!r}; choose one of {list(PRECISIONS)}")
        device = torch.device(device)
        precision = resolve_precision(precision, device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise BackendError("device 'cuda' requested but torch.cuda.is_available() is False")
        if precision in ("fp16", "float16") and device.type != "cuda":
            raise BackendError("fp16 autocast is only supported on CUDA; use bf16 or fp32 on CPU")
        if predictor is not None:
            hw = predictor.grid_h * predictor.grid_w
            dim = predictor.cfg.embed_dim
        else:
            gh, gw = encoder.cfg.grid_hw
            hw, dim = gh * gw, encoder.embed_dim
        super().__init__(device, hw, dim)
        self.encoder = encoder.to(device).eval() if encoder is not None else None
        self.predictor = predictor.to(device).eval() if predictor is not None else None
        self.precision = precision
        self.autocast_dtype = _DTYPES[precision]
        self.compile = bool(compile)
        self._enc_graphs: dict[tuple[int, int, int], nn.Module] = {}
        self._pred_graphs: dict[int, nn.Module] = {}
        step_dtype = self.autocast_dtype or torch.float32  # the step runs on weights cast once, not autocast
        #: bytes per activation element of the predictor step (the world model sizes its chunks with it)
        self.activation_bytes = torch.finfo(step_dtype).bits // 8
        # a half-precision step keeps layer norm, softmax and GELU partly in float32, so halving activation_bytes
        # alone undersizes its chunks: measured on 2 cores (800 x 10 CEM, interleaved, medians of 5-7), bf16 plans
        # were 6-12% faster with 16-24 MB than with 8 MB (sim model 852-871 vs 918-934 ms, tiny H=2 529-582 vs
        # 571-616 ms), while fp32 was fastest at 8-16 MB and slower from 24 MB on
        self.cpu_memory_budget_mb = 16.0 if self.activation_bytes < 4 else 8.0
        self.stepper = ACStepper(self.predictor, step_dtype) if self.predictor is not None else None
        self._step_fn = self.stepper.step if self.stepper is not None else None
        if self.compile and self.stepper is not None:
            self._step_fn = torch.compile(self.stepper.step, dynamic=False)

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def _maybe_compile(self, module: nn.Module) -> nn.Module:
        return torch.compile(module, dynamic=False) if self.compile else module

    @torch.no_grad()
    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """``[B, F, 3, H, W]`` -> ``[B, F, N, D]`` (each frame one duplicated tubelet)."""
        if self.encoder is None:
            raise BackendError("this TorchBackend has no encoder")
        if frames.dim() != 5 or frames.shape[2] != 3:
            raise ShapeMismatchError(f"frames must be [B, F, 3, H, W], got {tuple(frames.shape)}")
        _, f, _, h, w = frames.shape
        p = self.encoder.patch_size
        if h % p or w % p:
            raise ShapeMismatchError(f"frame size {h}x{w} is not a multiple of the patch size {p}")
        key = (f, h, w)
        if key not in self._enc_graphs:
            self._enc_graphs[key] = self._maybe_compile(FramesEncoder(self.encoder, f, (h, w)).to(self.device))
        with self._autocast():
            out = self._enc_graphs[key](frames.to(self.device))
        return out.float()

    @torch.no_grad()
    def encode_clip(self, video: torch.Tensor) -> torch.Tensor:
        """``[B, 3, T, H, W]`` -> ``[B, T / tubelet * N, D]``: the encoder's own forward over a video clip."""
        if self.encoder is None:
            raise BackendError("this TorchBackend has no encoder")
        if video.dim() != 5 or video.shape[1] != 3:
            raise ShapeMismatchError(f"video must be [B, 3, T, H, W], got {tuple(video.shape)}")
        t, h, w = video.shape[2:]
        tubelet, p = self.encoder.tubelet_size, self.encoder.patch_size
        if t % tubelet:
            raise ShapeMismatchError(f"clip of {t} frames is not a multiple of the tubelet size {tubelet}")
        if h % p or w % p:
            raise ShapeMismatchError(f"frame size {h}x{w} is not a multiple of the patch size {p}")
        with self._autocast():
            out = self.encoder(video.to(self.device))
        return out.float()

    @torch.no_grad()
    def predict(self, tokens: torch.Tensor, actions: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """Full block-causal forward over T frames (one static graph per T)."""
        if self.predictor is None:
            raise BackendError("this TorchBackend has no predictor")
        t = self.check_predict_inputs(tokens, actions, states)
        if t not in self._pred_graphs:
            self._pred_graphs[t] = self._maybe_compile(FastACPredictor(self.predictor, t).to(self.device))
        with self._autocast():
            out = self._pred_graphs[t](tokens.to(self.device), actions.to(self.device), states.to(self.device))
        return out.float()

    @torch.no_grad()
    def predict_step(
        self, tokens_t: torch.Tensor, action_t: torch.Tensor, state_t: torch.Tensor, cache: Any, frame: int
    ) -> tuple[torch.Tensor, Any]:
        """One new frame against the KV cache (exact); see :class:`ACStepper`."""
        if self.stepper is None:
            raise BackendError("this TorchBackend has no predictor")
        if tokens_t.shape[-2:] != (self.tokens_per_frame, self.embed_dim):
            raise ShapeMismatchError(
                f"frame tokens must be [B, {self.tokens_per_frame}, {self.embed_dim}], got {tuple(tokens_t.shape)}"
            )
        out, cache = self._step_fn(tokens_t, action_t, state_t, cache, frame)  # in its own dtype, not autocast
        return out.float(), cache

    def describe(self) -> dict:
        """Backend, device (with GPU name), precision, compile flag."""
        d = super().describe()
        if self.device.type == "cuda":
            d["device_name"] = torch.cuda.get_device_name(self.device)
        d.update(precision=self.precision, compile=self.compile)
        return d

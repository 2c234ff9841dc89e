"""ONNX Runtime backend over graphs written by ``vjepa-export onnx`` (one graph per frame count).

Providers: ``cpu`` (the plain ``onnxruntime`` wheel), ``cuda`` and ``tensorrt`` (need ``onnxruntime-gpu``;
the TensorRT execution provider keeps its own engine cache under the export directory). ``onnxruntime`` is
imported only when a session is created.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .base import BackendError, BackendUnavailableError, InferenceBackend, ShapeMismatchError

__all__ = ["OnnxRuntimeBackend", "import_onnxruntime", "providers_for"]

_PROVIDER_NAMES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}


def import_onnxruntime() -> Any:
    """Import onnxruntime or raise :class:`BackendUnavailableError` with the install hint."""
    try:
        import onnxruntime
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise BackendUnavailableError(
            "onnxruntime is not installed: `pip install onnxruntime` (CPU) or `pip install onnxruntime-gpu` "
            "(CUDA / TensorRT execution providers)"
        ) from e
    return onnxruntime


def providers_for(provider: str, cache_dir: Path | None = None, fp16: bool = False) -> list:
    """Execution-provider list for ``cpu`` / ``cuda`` / ``tensorrt`` (falling back to CPU for unsupported
    nodes), or a clear error when the provider is not available in this onnxruntime build."""
    ort = import_onnxruntime()
    if provider not in _PROVIDER_NAMES:
        raise BackendError(f"unknown onnxruntime provider {provider!r}; choose one of {sorted(_PROVIDER_NAMES)}")
    name = _PROVIDER_NAMES[provider]
    available = ort.get_available_providers()
    if name not in available:
        raise BackendUnavailableError(
            f"onnxruntime provider {name} is not available (this build has {available}); "
            "install `onnxruntime-gpu` (instead of `onnxruntime`) with a matching CUDA"
            + (" and TensorRT" if provider == "tensorrt" else "")
        )
    if provider == "cpu":
        return ["CPUExecutionProvider"]
    if provider == "cuda":
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    opts: dict[str, Any] = {"trt_fp16_enable": bool(fp16)}
    if cache_dir is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        opts.update(trt_engine_cache_enable=True, trt_engine_cache_path=str(cache_dir))
    return [("TensorrtExecutionProvider", opts), "CUDAExecutionProvider", "CPUExecutionProvider"]


class OnnxRuntimeBackend(InferenceBackend):
    """Runs ``encoder_f{F}.onnx`` / ``predictor_t{T}.onnx`` from an export directory (see ``manifest.json``).

    Args:
        export_dir: directory written by :func:`vjepa_core.export.export_onnx`.
        provider: ``cpu``, ``cuda`` or ``tensorrt``.
        threads: intra-op threads for the CPU provider (0 = onnxruntime default).
        fp16: TensorRT EP only: allow FP16 kernels.
    """

    name = "onnxruntime"

    def __init__(self, export_dir: str | Path, provider: str = "cpu", threads: int = 0, fp16: bool = False) -> None:
        self.export_dir = Path(export_dir)
        manifest_path = self.export_dir / "manifest.json"
        if not manifest_path.is_file():
            raise BackendError(f"{manifest_path} not found: run `vjepa-export onnx ... --out {self.export_dir}` first")
        self.manifest = json.loads(manifest_path.read_text())
        self.provider = provider
        self._providers = providers_for(provider, self.export_dir / "ort_trt_cache", fp16)
        device = "cuda" if provider != "cpu" else "cpu"
        super().__init__(device, self.manifest["tokens_per_frame"], self.manifest["embed_dim"])
        self.threads = int(threads)
        self._sessions: dict[str, Any] = {}

    def _session(self, kind: str, count: int) -> Any:
        graphs = self.manifest.get(kind, {})
        key = str(count)
        if key not in graphs:
            what = "frames per encoder graph" if kind == "encoder" else "predictor frames"
            raise ShapeMismatchError(
                f"no ONNX graph for {count} {what} in {self.export_dir} (exported: {sorted(map(int, graphs))}); "
                f"re-export with --frames {count}"
            )
        path = self.export_dir / graphs[key]["file"]
        if path.as_posix() not in self._sessions:
            ort = import_onnxruntime()
            so = ort.SessionOptions()
            if self.threads:
                so.intra_op_num_threads = self.threads
                so.inter_op_num_threads = 1
            self._sessions[path.as_posix()] = ort.InferenceSession(str(path), so, providers=self._providers)
        return self._sessions[path.as_posix()]

    @staticmethod
    def _np(x: torch.Tensor) -> np.ndarray:
        return x.detach().to("cpu", torch.float32).contiguous().numpy()

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """``[B, F, 3, H, W]`` -> ``[B, F, N, D]`` with the graph exported for ``F`` frames."""
        if frames.dim() != 5:
            raise ShapeMismatchError(f"frames must be [B, F, 3, H, W], got {tuple(frames.shape)}")
        b, f = frames.shape[:2]
        if str(f) not in self.manifest.get("encoder", {}) and "1" in self.manifest.get("encoder", {}):
            # frames are encoded independently: fold them into the batch of the 1-frame graph
            return self.encode(frames.reshape(b * f, 1, *frames.shape[2:])).reshape(b, f, *self._tok_shape())
        sess = self._session("encoder", frames.shape[1])
        want = self.manifest["encoder"][str(frames.shape[1])]["input_shape"][1:]
        if list(frames.shape[1:]) != want:
            raise ShapeMismatchError(f"encoder graph expects [B, {', '.join(map(str, want))}], "
                                     f"got {list(frames.shape)}")
        out = sess.run(None, {"frames": self._np(frames)})[0]
        return torch.from_numpy(out).to(self.device)

    def _tok_shape(self) -> tuple[int, int]:
        return (self.tokens_per_frame, self.embed_dim)

    def predict(self, tokens: torch.Tensor, actions: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """Block-causal predictor with the graph exported for ``T`` frames."""
        t = self.check_predict_inputs(tokens, actions, states)
        sess = self._session("predictor", t)
        feed = {"tokens": self._np(tokens), "actions": self._np(actions), "states": self._np(states)}
        return torch.from_numpy(sess.run(None, feed)[0]).to(self.device)

    def describe(self) -> dict:
        """Backend, provider, onnxruntime version."""
        d = super().describe()
        d.update(provider=self.provider, onnxruntime=import_onnxruntime().__version__)
        return d

"""Inference backends (torch / onnxruntime / tensorrt) behind one interface, and the world model used by
the planner. Heavy optional packages (onnxruntime, tensorrt) are imported only when their backend is made.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .base import BackendError, BackendUnavailableError, InferenceBackend, ShapeMismatchError
from .world_model import WorldModel

__all__ = [
    "BACKENDS",
    "BackendError",
    "BackendUnavailableError",
    "InferenceBackend",
    "ShapeMismatchError",
    "WorldModel",
    "make_backend",
]

#: Names accepted by :func:`make_backend` (``onnxruntime-cuda`` / ``onnxruntime-trt`` pick the EP).
BACKENDS = ("torch", "onnxruntime", "onnxruntime-cuda", "onnxruntime-trt", "tensorrt")


def make_backend(name: str, *, encoder: Any = None, predictor: Any = None, export_dir: str | Path | None = None,
                 device: str = "cpu", **kwargs: Any) -> InferenceBackend:
    """Build a backend by name.

    ``torch`` takes ``encoder``/``predictor`` modules (+ ``precision``, ``compile``); the others take the
    ``export_dir`` written by ``vjepa-export`` (+ ``threads`` for onnxruntime).
    Raises:
        BackendError: unknown name or missing inputs; BackendUnavailableError: package not installed.
    """
    if name not in BACKENDS:
        raise BackendError(f"unknown backend {name!r}; choose one of {list(BACKENDS)}")
    if name == "torch":
        from .torch_backend import TorchBackend

        return TorchBackend(encoder, predictor, device=device, **kwargs)
    if export_dir is None:
        raise BackendError(f"backend {name!r} needs export_dir (the output of `vjepa-export onnx`)")
    if name.startswith("onnxruntime"):
        from .onnx_backend import OnnxRuntimeBackend

        provider = {"onnxruntime": "cpu", "onnxruntime-cuda": "cuda", "onnxruntime-trt": "tensorrt"}[name]
        return OnnxRuntimeBackend(export_dir, provider=provider, **kwargs)
    from .tensorrt_backend import TensorRTBackend

    return TensorRTBackend(export_dir)

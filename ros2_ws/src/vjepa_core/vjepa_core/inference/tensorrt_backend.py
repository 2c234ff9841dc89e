"""Native TensorRT backend over engines built by ``vjepa-export trt`` (needs ``tensorrt`` and CUDA torch).

``tensorrt`` is imported lazily; without it (or without a GPU) construction raises
:class:`BackendUnavailableError` with the install hint. I/O stays on the GPU as torch tensors, the key/value
cache of the KV-cached step engines (``predictor_step:{f}``, export format 2) included.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from .base import BackendError, BackendUnavailableError, InferenceBackend, ShapeMismatchError

__all__ = ["TensorRTBackend", "import_tensorrt"]


def import_tensorrt() -> Any:
    """Import tensorrt or raise :class:`BackendUnavailableError` saying how to get it."""
    try:
        import tensorrt
    except ImportError as e:
        raise BackendUnavailableError(
            "tensorrt is not installed: on a CUDA machine `pip install tensorrt` (matching your CUDA), "
            "or use --backend onnxruntime / torch"
        ) from e
    return tensorrt


class _Engine:
    """One deserialised engine with its execution context; runs with torch CUDA tensors."""

    def __init__(self, trt: Any, path: Path) -> None:
        logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(logger)
        engine = runtime.deserialize_cuda_engine(path.read_bytes())
        if engine is None:
            raise BackendError(f"could not deserialise TensorRT engine {path} (built by another TensorRT/GPU?)")
        self.engine = engine
        self.context = engine.create_execution_context()
        self.names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        self.inputs = [n for n in self.names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in self.names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]

    def run(self, feeds: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Execute on the current torch CUDA stream; returns the outputs by tensor name."""
        stream = torch.cuda.current_stream()
        for name in self.inputs:
            t = feeds[name].contiguous()
            feeds[name] = t
            if not self.context.set_input_shape(name, tuple(t.shape)):
                raise ShapeMismatchError(f"TensorRT engine rejects input {name} of shape {tuple(t.shape)}")
            self.context.set_tensor_address(name, t.data_ptr())
        outs = {}
        for name in self.outputs:
            shape = tuple(self.context.get_tensor_shape(name))
            out = torch.empty(shape, dtype=torch.float32, device="cuda")
            self.context.set_tensor_address(name, out.data_ptr())
            outs[name] = out
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise BackendError("TensorRT execution failed")
        return outs


class TensorRTBackend(InferenceBackend):
    """Runs ``*.engine`` files listed in ``<export_dir>/engines.json`` (written by ``vjepa-export trt``)."""

    name = "tensorrt"
    supports_kv_cache = False  # set per instance: True when engines for the step graphs were built

    def __init__(self, export_dir: str | Path) -> None:
        trt = import_tensorrt()
        if not torch.cuda.is_available():
            raise BackendUnavailableError("the tensorrt backend needs a CUDA GPU (torch.cuda.is_available() is False)")
        self.export_dir = Path(export_dir)
        manifest = json.loads((self.export_dir / "manifest.json").read_text())
        index_path = self.export_dir / "engines.json"
        if not index_path.is_file():
            raise BackendError(f"{index_path} not found: run `vjepa-export trt {self.export_dir}` first")
        self.index = json.loads(index_path.read_text())
        super().__init__("cuda", manifest["tokens_per_frame"], manifest["embed_dim"])
        self._trt = trt
        self._engines: dict[str, _Engine] = {}
        self._steps = manifest.get("predictor_step", {})
        self.supports_kv_cache = "predictor_step:0" in self.index and "0" in self._steps

    def _engine(self, kind: str, count: int) -> _Engine:
        key = f"{kind}:{count}"
        if key not in self.index:
            raise ShapeMismatchError(f"no TensorRT engine for {key} (built: {sorted(self.index)})")
        if key not in self._engines:
            self._engines[key] = _Engine(self._trt, Path(self.index[key]))
        return self._engines[key]

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """``[B, F, 3, H, W]`` -> ``[B, F, N, D]``."""
        if frames.dim() != 5:
            raise ShapeMismatchError(f"frames must be [B, F, 3, H, W], got {tuple(frames.shape)}")
        eng = self._engine("encoder", frames.shape[1])
        return eng.run({"frames": frames.to("cuda", torch.float32)})["tokens"]

    def predict(self, tokens: torch.Tensor, actions: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """Block-causal predictor for ``T`` frames."""
        t = self.check_predict_inputs(tokens, actions, states)
        eng = self._engine("predictor", t)
        feeds = {n: x.to("cuda", torch.float32) for n, x in
                 (("tokens", tokens), ("actions", actions), ("states", states))}
        return eng.run(feeds)["predicted"]

    def predict_step(
        self, tokens_t: torch.Tensor, action_t: torch.Tensor, state_t: torch.Tensor, cache: Any, frame: int
    ) -> tuple[torch.Tensor, Any]:
        """One new frame against the key/value cache (a list of CUDA tensors, ``None`` for frame 0) with the
        engine of step graph ``frame``; see :meth:`OnnxRuntimeBackend.predict_step`."""
        if not self.supports_kv_cache:
            raise BackendError("no KV-cached step engines: re-export (format 2) and re-run `vjepa-export trt`, "
                               "or use WorldModel(use_kv_cache=False)")
        if str(frame) not in self._steps:
            raise ShapeMismatchError(f"no KV-cached step graph for frame index {frame} (exported: "
                                     f"{sorted(map(int, self._steps))})")
        names = self._steps[str(frame)]["inputs"]
        past = list(cache or [])
        if len(past) != len(names) - 3:
            raise ShapeMismatchError(f"frame {frame} needs a cache of {len(names) - 3} tensors, got {len(past)}")
        eng = self._engine("predictor_step", frame)
        feeds = {n: x.to("cuda", torch.float32) for n, x in zip(names, [tokens_t, action_t, state_t, *past])}
        outs = eng.run(feeds)
        return outs["predicted"], [outs[n] for n in self._steps[str(frame)]["outputs"][1:]]

    def describe(self) -> dict:
        """Backend, GPU name and TensorRT version."""
        d = super().describe()
        d.update(device_name=torch.cuda.get_device_name(0), tensorrt=self._trt.__version__)
        return d

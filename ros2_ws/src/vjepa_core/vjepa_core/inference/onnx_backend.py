"""ONNX Runtime backend over graphs written by ``vjepa-export onnx`` (one graph per frame count, plus the
KV-cached step graphs of export format 2).

Providers: ``cpu`` (the plain ``onnxruntime`` wheel), ``cuda`` and ``tensorrt`` (need ``onnxruntime-gpu``;
the TensorRT execution provider keeps its own engine cache under the export directory, in a folder keyed by the
export's graph and weight digests). ``onnxruntime`` is imported only when a session is created.

Data path: on the CPU provider inputs and outputs are numpy views of CPU torch tensors (no copies). On the CUDA
and TensorRT providers the backend uses **I/O binding**: inputs are bound at the addresses of CUDA torch tensors
and outputs are written into CUDA torch tensors allocated here, so predictions and the key/value cache stay on
the GPU between horizon steps and CEM iterations (no host round trip per call).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .base import BackendError, BackendUnavailableError, InferenceBackend, ShapeMismatchError

__all__ = ["SUPPORTED_FORMATS", "OnnxRuntimeBackend", "import_onnxruntime", "providers_for"]

#: ``manifest.json`` formats this backend reads (1: per-frame-count graphs; 2: + KV-cached step graphs).
SUPPORTED_FORMATS = (1, 2)

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


def providers_for(provider: str, cache_dir: Path | None = None, fp16: bool = False, device_id: int = 0) -> list:
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
    if hasattr(ort, "preload_dlls"):  # CUDA/cuDNN from the nvidia-* wheels torch installed (onnxruntime >= 1.21)
        ort.preload_dlls()
    cuda = ("CUDAExecutionProvider", {"device_id": device_id})
    if provider == "cuda":
        return [cuda, "CPUExecutionProvider"]
    opts: dict[str, Any] = {"device_id": device_id, "trt_fp16_enable": bool(fp16)}
    if cache_dir is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        opts.update(trt_engine_cache_enable=True, trt_engine_cache_path=str(cache_dir))
    return [("TensorrtExecutionProvider", opts), cuda, "CPUExecutionProvider"]


def export_digest(manifest: dict) -> str:
    """A short digest of an export's graphs and weights (their recorded SHA-256s): names the TensorRT EP's
    engine cache folder, because that EP keys engines by graph structure and would reuse a stale engine after a
    re-export with other weights into the same directory."""
    h = hashlib.sha256()
    for kind in ("encoder", "predictor", "predictor_step"):
        for key in sorted(manifest.get(kind, {}), key=int):
            h.update(f"{kind}:{key}:{manifest[kind][key].get('sha256', '')}\n".encode())
    return h.hexdigest()[:16]


class OnnxRuntimeBackend(InferenceBackend):
    """Runs ``encoder_f{F}.onnx`` / ``predictor_t{T}.onnx`` / ``predictor_step_f{f}.onnx`` from an export
    directory (see ``manifest.json``).

    Args:
        export_dir: directory written by :func:`vjepa_core.export.export_onnx`.
        provider: ``cpu``, ``cuda`` or ``tensorrt``.
        threads: intra-op threads for the CPU provider (0 = onnxruntime default).
        fp16: TensorRT EP only: allow FP16 kernels.
        io_binding: bind inputs/outputs to torch tensors on :attr:`device` instead of numpy round trips
            (``None``: on the CUDA / TensorRT providers, where it keeps data on the GPU; the CPU provider's
            plain path is already copy-free).
        device_id: CUDA device of the CUDA / TensorRT providers.
    """

    name = "onnxruntime"
    # 800 x 10 H=2 plans of the tiny predictor, 2 threads: chunks of 89 / 200 / 400 / 800 samples took 5.9 / 4.6 /
    # 3.6 / 2.7 s (torch with its 8 MB chunks: 2.3 s); few large calls amortise the CPU provider's overheads
    cpu_memory_budget_mb = 256.0

    def __init__(self, export_dir: str | Path, provider: str = "cpu", threads: int = 0, fp16: bool = False,
                 io_binding: bool | None = None, device_id: int = 0) -> None:
        self.export_dir = Path(export_dir)
        manifest_path = self.export_dir / "manifest.json"
        if not manifest_path.is_file():
            raise BackendError(f"{manifest_path} not found: run `vjepa-export onnx ... --out {self.export_dir}` first")
        self.manifest = json.loads(manifest_path.read_text())
        fmt = self.manifest.get("format", 1)
        if fmt not in SUPPORTED_FORMATS:
            raise BackendError(f"{manifest_path} has export format {fmt}; this vjepa_core reads formats "
                               f"{list(SUPPORTED_FORMATS)}: re-export with `vjepa-export onnx` (or update vjepa_core)")
        self.provider = provider
        trt_cache = self.export_dir / "ort_trt_cache" / f"{export_digest(self.manifest)}{'-fp16' if fp16 else ''}"
        self._providers = providers_for(provider, trt_cache if provider == "tensorrt" else None, fp16, device_id)
        device = torch.device("cuda", device_id) if provider != "cpu" else torch.device("cpu")
        super().__init__(device, self.manifest["tokens_per_frame"], self.manifest["embed_dim"])
        self.threads = int(threads)
        self.io_binding = provider != "cpu" if io_binding is None else bool(io_binding)
        # the KV-cached step needs at least the frame-0 step graph (export format 2); older exports recompute
        self.supports_kv_cache = "0" in self.manifest.get("predictor_step", {})
        self._sessions: dict[str, Any] = {}

    def _session(self, kind: str, count: int) -> Any:
        graphs = self.manifest.get(kind, {})
        key = str(count)
        if key not in graphs:
            if kind == "predictor_step":
                raise ShapeMismatchError(
                    f"no KV-cached step graph for frame index {count} in {self.export_dir} (exported: "
                    f"{sorted(map(int, graphs))}); re-export with --frames {count + 1} (a rollout over T frames "
                    "needs step graphs 0..T-1), or use WorldModel(use_kv_cache=False)")
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
            sess = ort.InferenceSession(str(path), so, providers=self._providers)
            wanted = self._providers[0] if isinstance(self._providers[0], str) else self._providers[0][0]
            if wanted not in sess.get_providers():  # onnxruntime falls back to CPU when CUDA libraries fail to load
                raise BackendUnavailableError(
                    f"onnxruntime could not enable {wanted} for {path.name} (session providers: "
                    f"{sess.get_providers()}); check that the CUDA/cuDNN (and TensorRT) libraries match "
                    "onnxruntime-gpu (its log above says which one failed to load)")
            self._sessions[path.as_posix()] = sess
        return self._sessions[path.as_posix()]

    # -- running a graph ---------------------------------------------------------------------------------------
    def _run(self, sess: Any, feeds: dict[str, torch.Tensor], out_shapes: list[tuple[int, ...]]) -> list[torch.Tensor]:
        """Run one graph on torch inputs; outputs (of ``out_shapes``) are float32 torch tensors on :attr:`device`."""
        if self.io_binding:
            return self._run_bound(sess, feeds, out_shapes)
        out = sess.run(None, {k: self._np(v) for k, v in feeds.items()})
        return [torch.from_numpy(o).to(self.device) for o in out]

    def _run_bound(self, sess: Any, feeds: dict[str, torch.Tensor],
                   out_shapes: list[tuple[int, ...]]) -> list[torch.Tensor]:
        """I/O binding: inputs read from (contiguous float32) torch tensors on :attr:`device`, outputs written
        into torch tensors of ``out_shapes`` allocated here (the exporter leaves some output dims symbolic,
        so the shapes come from the caller, who knows them)."""
        kind, index = self.device.type, self.device.index or 0
        io = sess.io_binding()
        keep = []  # the bound inputs must stay alive until the run ends
        for name, value in feeds.items():
            t = value.detach().to(self.device, torch.float32).contiguous()
            keep.append(t)
            io.bind_input(name, kind, index, np.float32, tuple(t.shape), t.data_ptr())
        metas = sess.get_outputs()
        if len(metas) != len(out_shapes):
            raise BackendError(f"graph has {len(metas)} outputs, expected {len(out_shapes)}; re-export it")
        outs = []
        for meta, shape in zip(metas, out_shapes):
            out = torch.empty(shape, dtype=torch.float32, device=self.device)
            io.bind_output(meta.name, kind, index, np.float32, list(shape), out.data_ptr())
            outs.append(out)
        if kind == "cuda":
            torch.cuda.current_stream(self.device).synchronize()  # torch kernels writing the inputs are done
        sess.run_with_iobinding(io)
        del keep
        return outs

    @staticmethod
    def _np(x: torch.Tensor) -> np.ndarray:
        return x.detach().to("cpu", torch.float32).contiguous().numpy()

    # -- the backend interface -------------------------------------------------------------------------------
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
        return self._run(sess, {"frames": frames}, [(b, f, *self._tok_shape())])[0]

    def _tok_shape(self) -> tuple[int, int]:
        return (self.tokens_per_frame, self.embed_dim)

    def predict(self, tokens: torch.Tensor, actions: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """Block-causal predictor with the graph exported for ``T`` frames."""
        t = self.check_predict_inputs(tokens, actions, states)
        sess = self._session("predictor", t)
        feeds = {"tokens": tokens, "actions": actions, "states": states}
        return self._run(sess, feeds, [tuple(tokens.shape)])[0]

    def predict_step(
        self, tokens_t: torch.Tensor, action_t: torch.Tensor, state_t: torch.Tensor, cache: Any, frame: int
    ) -> tuple[torch.Tensor, Any]:
        """One new frame against the key/value cache with the step graph of frame index ``frame``.

        ``tokens_t[B|1, N, D]``, ``action_t``/``state_t`` ``[B, 7]``; ``cache`` is ``None`` for frame 0, else
        the list returned by the previous step (per layer key, value; batch 1 or ``B``). Exact like the torch
        backend's :class:`~vjepa_core.inference.fast_modules.ACStepper`.
        """
        if not self.supports_kv_cache:
            raise BackendError(f"the export in {self.export_dir} has no KV-cached step graphs (export format "
                               f"{self.manifest.get('format', 1)}); re-export it, or use "
                               "WorldModel(use_kv_cache=False)")
        if tokens_t.dim() != 3 or tuple(tokens_t.shape[1:]) != self._tok_shape():
            raise ShapeMismatchError(f"frame tokens must be [B, {self.tokens_per_frame}, {self.embed_dim}], "
                                     f"got {tuple(tokens_t.shape)}")
        b = action_t.shape[0]
        if action_t.dim() != 2 or tuple(state_t.shape) != (b, 7) or action_t.shape[1] != 7:
            raise ShapeMismatchError(f"action and state must be [B, 7], got {tuple(action_t.shape)} and "
                                     f"{tuple(state_t.shape)}")
        if tokens_t.shape[0] not in (1, b):
            raise ShapeMismatchError(f"frame tokens have batch {tokens_t.shape[0]}, expected 1 or {b}")
        sess = self._session("predictor_step", frame)
        rec = self.manifest["predictor_step"][str(frame)]
        names = rec["inputs"]
        past = list(cache or [])
        if len(past) != len(names) - 3:
            raise ShapeMismatchError(f"frame {frame} needs a cache of {len(names) - 3} tensors (frames "
                                     f"0..{frame - 1}), got {len(past)}")
        feeds = dict(zip(names, [tokens_t, action_t, state_t, *past]))
        outs = self._run(sess, feeds, [(b, *shape[1:]) for shape in rec["output_shapes"]])
        return outs[0], outs[1:]

    def describe(self) -> dict:
        """Backend, provider, onnxruntime version, I/O binding and KV cache."""
        d = super().describe()
        d.update(provider=self.provider, onnxruntime=import_onnxruntime().__version__, io_binding=self.io_binding,
                 kv_cache_graphs=len(self.manifest.get("predictor_step", {})))
        return d

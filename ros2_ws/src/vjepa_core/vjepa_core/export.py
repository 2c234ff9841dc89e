"""Export the V-JEPA 2 encoder and AC predictor to ONNX (with a parity check) and build TensorRT engines
with an explicit cache.

ONNX graphs (TorchScript exporter, ``dynamo=False``, opset >= 17 so LayerNorm stays one
``LayerNormalization`` node): one graph per frame count (``encoder_f{F}.onnx``: ``frames[B, F, 3, H, W] ->
tokens[B, F, N, D]``; ``predictor_t{T}.onnx``: ``tokens[B, T*N, D], actions[B, T, 7], states[B, T, 7] ->
predicted[B, T*N, D]``), dynamic batch, RoPE cos/sin tables and the block-causal mask baked in as constants
(no Sin/Cos nodes). Every graph is run in onnxruntime against torch right after export; the max abs error is
printed and an error is raised above the tolerance. ``manifest.json`` records shapes, hashes and errors.

TensorRT engines are cached at ``<cache>/<graph>-<onnx sha256[:16]>-<precision>-<gpu>-trt<version>.engine``
so a changed graph, precision, GPU or TensorRT version never reuses a stale engine; ``force_rebuild``
rebuilds anyway. FP16 engines keep every normalisation layer in FP32 (TensorRT's FP16 LayerNorm overflow).
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .inference.base import BackendUnavailableError
from .inference.fast_modules import FastACPredictor, FramesEncoder

__all__ = [
    "ExportError",
    "build_trt_engine",
    "build_trt_engines",
    "engine_cache_path",
    "export_onnx",
    "load_models",
    "onnx_sha256",
]

MIN_OPSET = 17


class ExportError(RuntimeError):
    """Export failed or the exported graph disagrees with torch beyond the tolerance."""


def onnx_sha256(path: str | Path) -> str:
    """SHA-256 of an ONNX file (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_models(checkpoint: str | Path, config: str | Path | dict, with_encoder: bool = True,
                with_predictor: bool = True) -> tuple[nn.Module | None, nn.Module | None, dict]:
    """Load (encoder, predictor, config dict) from a ``.pt`` and a config JSON path / dict with
    ``encoder`` and ``predictor`` entries (like ``fixtures/parity_tiny_a/config.json``)."""
    from .checkpoint import load_official

    if isinstance(config, dict):
        cfg = config
    else:
        p = Path(config)
        if not p.is_file():
            raise ExportError(f"config file {p} not found (expected JSON with 'encoder' and 'predictor' dicts)")
        cfg = json.loads(p.read_text())
    for key in ("encoder", "predictor"):
        if key not in cfg:
            raise ExportError(f"config has no {key!r} entry (keys: {sorted(cfg)})")
    enc, pred = load_official(checkpoint, cfg["encoder"] if with_encoder else None,
                              cfg["predictor"] if with_predictor else None)
    return enc, pred, {"encoder": cfg["encoder"], "predictor": cfg["predictor"]}


def _run_ort(path: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    from .inference.onnx_backend import import_onnxruntime

    ort = import_onnxruntime()
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)[0]


def _export_one(module: nn.Module, args: tuple[torch.Tensor, ...], names: list[str], out_name: str,
                path: Path, opset: int, tolerance: float, label: str, check_batches: Sequence[int],
                reference: Any = None) -> dict:
    """Export ``module`` at ``args`` with a dynamic batch, then check onnxruntime == torch (``reference``,
    the original model's forward, when given; else ``module`` itself)."""
    dyn = {n: {0: "batch"} for n in [*names, out_name]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings about shape-derived Python ints are expected
        try:
            torch.onnx.export(module, args, str(path), input_names=names, output_names=[out_name],
                              dynamic_axes=dyn, opset_version=opset, do_constant_folding=True, dynamo=False)
        except Exception as e:  # surface the exporter's message with context
            raise ExportError(f"ONNX export of {label} failed: {type(e).__name__}: {e}") from e
    worst = 0.0
    for b in check_batches:
        gen = torch.Generator().manual_seed(b)
        feed_t = tuple(torch.randn((b, *a.shape[1:]), generator=gen) * (0.05 if a.shape[-1] == 7 else 1.0)
                       for a in args)
        with torch.no_grad():
            ref = (reference or module)(*feed_t).numpy()
        got = _run_ort(path, {n: t.numpy() for n, t in zip(names, feed_t)})
        if got.shape != ref.shape:
            raise ExportError(f"{label}: onnxruntime output shape {got.shape} != torch {ref.shape} (batch {b})")
        worst = max(worst, float(np.abs(got - ref).max()))
    print(f"[parity] {label}: max abs error onnxruntime vs torch = {worst:.3e} (tolerance {tolerance:.0e})")
    if not worst <= tolerance:
        raise ExportError(f"{label}: onnxruntime differs from torch by {worst:.3e} > tolerance {tolerance:.0e}")
    return {"file": path.name, "input_shape": ["batch", *args[0].shape[1:]], "sha256": onnx_sha256(path),
            "parity_max_abs_err": worst, "inputs": names, "output": out_name}


def export_onnx(
    out_dir: str | Path,
    encoder: nn.Module | None = None,
    predictor: nn.Module | None = None,
    predictor_frames: Sequence[int] = (1, 2, 3),
    encoder_frames: Sequence[int] = (1,),
    img_hw: tuple[int, int] | None = None,
    opset: int = MIN_OPSET,
    tolerance: float = 1e-4,
    config: dict | None = None,
    check_batches: Sequence[int] = (1, 3),
) -> dict:
    """Write ONNX graphs + ``manifest.json`` into ``out_dir``; returns the manifest.

    Args:
        out_dir: output directory (created).
        encoder, predictor: the torch modules (either may be ``None``).
        predictor_frames: frame counts T to export the predictor for (one graph each).
        encoder_frames: frames per encoder graph F (each frame is encoded independently).
        img_hw: encoder input size (default: the encoder config's ``img_size``).
        opset: ONNX opset, >= 17.
        tolerance: max abs error allowed between onnxruntime and torch (fp32).
        config: the model config dict to record in the manifest.
        check_batches: batch sizes used for the parity check (two sizes exercise the dynamic batch).
    Raises:
        ExportError: bad arguments, exporter failure or parity above tolerance.
    """
    if opset < MIN_OPSET:
        raise ExportError(f"opset {opset} < {MIN_OPSET}: LayerNormalization (and FP32-LayerNorm TensorRT "
                          "builds) need opset >= 17")
    if encoder is None and predictor is None:
        raise ExportError("nothing to export: give an encoder, a predictor or both")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {"format": 1, "opset": opset, "tolerance": tolerance, "config": config or {},
                                "torch": torch.__version__, "encoder": {}, "predictor": {}}
    if predictor is not None:
        manifest["tokens_per_frame"] = predictor.grid_h * predictor.grid_w
        manifest["embed_dim"] = predictor.cfg.embed_dim
    if encoder is not None:
        if img_hw is None:
            s = encoder.cfg.img_size
            img_hw = (s, s) if isinstance(s, int) else tuple(s)
        p = encoder.patch_size
        manifest.setdefault("tokens_per_frame", (img_hw[0] // p) * (img_hw[1] // p))
        manifest.setdefault("embed_dim", encoder.embed_dim)
        if manifest["tokens_per_frame"] != (img_hw[0] // p) * (img_hw[1] // p):
            raise ExportError(f"encoder at {img_hw} gives {(img_hw[0] // p) * (img_hw[1] // p)} tokens per frame "
                              f"but the predictor expects {manifest['tokens_per_frame']}")
        for f in encoder_frames:
            if f < 1:
                raise ExportError(f"encoder frames per graph must be >= 1, got {f}")
            mod = FramesEncoder(encoder, f, img_hw).eval()
            x = torch.randn(2, f, 3, img_hw[0], img_hw[1])
            manifest["encoder"][str(f)] = _export_one(
                mod, (x,), ["frames"], "tokens", out / f"encoder_f{f}.onnx", opset, tolerance,
                f"encoder ({f} frame{'s' if f > 1 else ''})", check_batches,
                reference=lambda fr: torch.stack([encoder(fr[:, i]) for i in range(fr.shape[1])], dim=1))
    if predictor is not None:
        hw, d = manifest["tokens_per_frame"], predictor.cfg.embed_dim
        for t in predictor_frames:
            if not 1 <= t <= predictor.cfg.max_frames:
                raise ExportError(f"predictor frames {t} outside 1..{predictor.cfg.max_frames} for this config")
            mod = FastACPredictor(predictor, t).eval()
            args = (torch.randn(2, t * hw, d), torch.randn(2, t, 7) * 0.05, torch.rand(2, t, 7))
            manifest["predictor"][str(t)] = _export_one(
                mod, args, ["tokens", "actions", "states"], "predicted", out / f"predictor_t{t}.onnx", opset,
                tolerance, f"AC predictor ({t} frame{'s' if t > 1 else ''})", check_batches, reference=predictor)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


# ---------------------------------------------------------------------------------------------------------
# TensorRT
def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower() or "unknown"


def engine_cache_path(onnx_path: str | Path, precision: str, gpu_name: str, trt_version: str,
                      cache_dir: str | Path | None = None) -> Path:
    """Where the engine for this exact (graph, precision, GPU, TensorRT version) lives.

    ``<cache_dir or onnx dir>/trt_cache/<stem>-<sha256[:16]>-<precision>-<gpu slug>-trt<version>.engine``.
    """
    if precision not in ("fp32", "fp16"):
        raise ExportError(f"unknown TensorRT precision {precision!r}; choose 'fp32' or 'fp16'")
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise ExportError(f"ONNX file {onnx_path} not found")
    base = Path(cache_dir) if cache_dir is not None else onnx_path.parent / "trt_cache"
    digest = onnx_sha256(onnx_path)[:16]
    return base / f"{onnx_path.stem}-{digest}-{precision}-{_slug(gpu_name)}-trt{_slug(trt_version)}.engine"


def _import_trt() -> Any:
    from .inference.tensorrt_backend import import_tensorrt

    return import_tensorrt()


def build_trt_engine(onnx_path: str | Path, precision: str = "fp16", cache_dir: str | Path | None = None,
                     force_rebuild: bool = False, max_batch: int = 800, opt_batch: int | None = None,
                     workspace_gb: float = 8.0) -> tuple[Path, bool]:
    """Build (or reuse from the cache) a TensorRT engine for one exported graph.

    Returns ``(engine_path, built)`` where ``built`` is False when a cached engine was reused.
    Raises:
        BackendUnavailableError: tensorrt or a CUDA GPU is missing.
        ExportError: parse/build failure.
    """
    trt = _import_trt()
    if not torch.cuda.is_available():
        raise BackendUnavailableError("building TensorRT engines needs a CUDA GPU (none is visible)")
    path = engine_cache_path(onnx_path, precision, torch.cuda.get_device_name(0), trt.__version__, cache_dir)
    if path.is_file() and not force_rebuild:
        print(f"[trt] reusing cached engine {path}")
        return path, False
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if hasattr(trt, "NetworkDefinitionCreationFlag") and hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH"):
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errs = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(f"TensorRT could not parse {onnx_path}: {errs}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    if precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
        config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
        for i in range(network.num_layers):  # LayerNorm (INormalizationLayer) and its output stay FP32
            layer = network.get_layer(i)
            if layer.type == trt.LayerType.NORMALIZATION:
                layer.precision = trt.float32
                layer.set_output_type(0, trt.float32)
    profile = builder.create_optimization_profile()
    opt = opt_batch or max_batch
    for i in range(network.num_inputs):
        inp = network.get_input(i)
        rest = tuple(inp.shape)[1:]
        profile.set_shape(inp.name, (1, *rest), (opt, *rest), (max_batch, *rest))
    config.add_optimization_profile(profile)
    blob = builder.build_serialized_network(network, config)
    if blob is None:
        raise ExportError(f"TensorRT failed to build an engine for {onnx_path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(blob))
    print(f"[trt] built {path}")
    return path, True


def build_trt_engines(export_dir: str | Path, precision: str = "fp16", cache_dir: str | Path | None = None,
                      force_rebuild: bool = False, max_batch: int = 800) -> dict[str, str]:
    """Build engines for every graph of an export directory and write ``engines.json`` (kind:count -> path)."""
    export_dir = Path(export_dir)
    manifest_path = export_dir / "manifest.json"
    if not manifest_path.is_file():
        raise ExportError(f"{manifest_path} not found: run `vjepa-export onnx` first")
    manifest = json.loads(manifest_path.read_text())
    _import_trt()  # fail early and clearly
    index: dict[str, str] = {}
    for kind in ("encoder", "predictor"):
        for count, info in manifest.get(kind, {}).items():
            batch = max_batch if kind == "predictor" else min(max_batch, 64)
            path, _ = build_trt_engine(export_dir / info["file"], precision, cache_dir, force_rebuild, batch)
            index[f"{kind}:{count}"] = str(path)
    (export_dir / "engines.json").write_text(json.dumps(index, indent=1))
    return index

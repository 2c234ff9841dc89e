"""Export the V-JEPA 2 encoder and AC predictor to ONNX (with a parity check) and build TensorRT engines
with an explicit cache.

ONNX graphs (TorchScript exporter, ``dynamo=False``, opset >= 17 so LayerNorm stays one
``LayerNormalization`` node): one graph per frame count (``encoder_f{F}.onnx``: ``frames[B, F, 3, H, W] ->
tokens[B, F, N, D]``; ``predictor_t{T}.onnx``: ``tokens[B, T*N, D], actions[B, T, 7], states[B, T, 7] ->
predicted[B, T*N, D]``), dynamic batch, RoPE cos/sin tables and the block-causal mask baked in as constants
(no Sin/Cos nodes). Export format 2 adds the **KV-cached step** of a frame-causal predictor, one graph per frame
index ``f`` (``predictor_step_f{f}.onnx``: ``tokens[1|B, N, D], action[B, 7], state[B, 7], past_key_i,
past_value_i [1|B, heads, f*(K+N), hd] -> predicted[B, N, D], key_i, value_i [B, heads, (f+1)*(K+N), hd]``,
see :class:`~vjepa_core.inference.fast_modules.ACStepGraph`), so exported backends roll out horizons > 1
without re-running earlier frames. Every graph is run in onnxruntime against torch right after export; the max
abs error is printed and an error is raised above the tolerance. ``manifest.json`` records shapes, hashes and
errors. Graphs whose weights do not fit one protobuf (ViT-g: ~4 GB in fp32; the limit is 2 GB) are saved with
their weights in one external file ``<graph>.onnx.data`` beside the graph (``external_data``).

TensorRT engines are cached at ``<cache>/<graph>-<digest[:16]>-<precision>-<gpu>-trt<version>.engine`` where
the digest covers the ``.onnx`` file **and its external weight files**, so a changed graph or weights,
precision, GPU or TensorRT version never reuses a stale engine; ``force_rebuild`` rebuilds anyway. The parser
is given the model's path, so it finds external weights. FP16 engines keep every normalisation layer in FP32
(TensorRT's FP16 LayerNorm overflow).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .inference.base import BackendUnavailableError
from .inference.fast_modules import ACStepGraph, ACStepper, FastACPredictor, FramesEncoder

__all__ = [
    "ExportError",
    "build_trt_engine",
    "build_trt_engines",
    "engine_cache_path",
    "export_onnx",
    "external_data_files",
    "load_models",
    "onnx_model_digest",
    "onnx_sha256",
]

MIN_OPSET = 17
#: ``manifest.json`` format written here: 1 = per-frame-count graphs; 2 = + KV-cached step graphs and
#: external-data records. Readers accept 1 and 2 (a format-1 export simply has no cached step).
EXPORT_FORMAT = 2
#: Above this many bytes of weights a graph is saved with external data (protobuf's hard limit is 2 GiB).
EXTERNAL_DATA_THRESHOLD = 1536 * 2**20


class ExportError(RuntimeError):
    """Export failed or the exported graph disagrees with torch beyond the tolerance."""


def _hash_file(h: Any, path: Path) -> None:
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)


def onnx_sha256(path: str | Path) -> str:
    """SHA-256 of the ONNX file itself (hex); see :func:`onnx_model_digest` for graph + external weights."""
    h = hashlib.sha256()
    _hash_file(h, Path(path))
    return h.hexdigest()


def _model_tensors(graph: Any) -> Any:
    """Every TensorProto of a graph: initializers, tensor attributes, and those of subgraphs."""
    yield from graph.initializer
    yield from graph.sparse_initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _model_tensors(attr.g)
            for g in attr.graphs:
                yield from _model_tensors(g)


def external_data_files(onnx_path: str | Path) -> list[Path]:
    """The external weight files an ONNX model refers to (sorted, unique, resolved beside the model), read from
    the graph without loading the weights. Raises :class:`ExportError` when the model or a file is missing."""
    import onnx

    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise ExportError(f"ONNX file {onnx_path} not found")
    try:
        model = onnx.load(str(onnx_path), load_external_data=False)
    except Exception as e:  # protobuf DecodeError & co: name the file instead of a parser trace
        raise ExportError(f"{onnx_path} is not a readable ONNX model ({type(e).__name__}: {e})") from e
    names = set()
    for t in _model_tensors(model.graph):
        if t.data_location == onnx.TensorProto.EXTERNAL:
            entry = {e.key: e.value for e in t.external_data}
            if "location" in entry:
                names.add(entry["location"])
    files = []
    for name in sorted(names):
        f = onnx_path.parent / name
        if not f.is_file():
            raise ExportError(f"external weight file {name!r} of {onnx_path} not found (expected at {f}); "
                              "copy it beside the .onnx file or re-export")
        files.append(f)
    return files


def onnx_model_digest(onnx_path: str | Path) -> str:
    """SHA-256 (hex) identifying an ONNX model with its weights: the ``.onnx`` bytes, then for each external
    weight file (sorted) its name and bytes. Equals :func:`onnx_sha256` for a self-contained file."""
    onnx_path = Path(onnx_path)
    files = external_data_files(onnx_path)
    h = hashlib.sha256()
    _hash_file(h, onnx_path)
    for f in files:
        h.update(b"\0external:" + f.name.encode() + b"\0")
        _hash_file(h, f)
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


def _run_ort(path: Path, feeds: dict[str, np.ndarray], threads: int = 1) -> list[np.ndarray]:
    from .inference.onnx_backend import import_onnxruntime

    ort = import_onnxruntime()
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def _weight_bytes(module: nn.Module) -> int:
    """Bytes of the parameters and buffers a traced graph of ``module`` embeds (shared tensors counted once)."""
    seen: dict[int, int] = {}
    for t in [*module.parameters(), *module.buffers()]:
        seen[t.data_ptr()] = t.numel() * t.element_size()
    return sum(seen.values())


def _torch_export(module: nn.Module, args: tuple[torch.Tensor, ...], path: Path, names: list[str],
                  out_names: list[str], dynamic_axes: dict[str, dict[int, str]], opset: int, label: str,
                  external_data: bool | None) -> list[str]:
    """``torch.onnx.export`` to ``path``; returns the external data file names written beside it (``[]`` for a
    self-contained graph). With external data the exporter's one-file-per-tensor output goes to a scratch
    folder and is rewritten as ``<path>.data`` (one file), replacing any stale one (onnx appends otherwise)."""
    if external_data is None:
        external_data = _weight_bytes(module) > EXTERNAL_DATA_THRESHOLD
    data_name = path.name + ".data"
    for stale in (path, path.parent / data_name):
        stale.unlink(missing_ok=True)
    target = path
    scratch = path.parent / f".export_tmp_{path.stem}"
    if external_data:
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        target = scratch / path.name
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TracerWarnings about shape-derived Python ints are expected
            try:
                torch.onnx.export(module, args, str(target), input_names=names, output_names=out_names,
                                  dynamic_axes=dynamic_axes, opset_version=opset, do_constant_folding=True,
                                  dynamo=False)
            except Exception as e:  # surface the exporter's message with context
                raise ExportError(f"ONNX export of {label} failed: {type(e).__name__}: {e}") from e
        if not external_data:
            return []
        import onnx

        model = onnx.load(str(target))  # pulls in whatever external tensors the exporter wrote
        onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=data_name, size_threshold=1024, convert_attribute=False)
        return [data_name]
    finally:
        if external_data:
            shutil.rmtree(scratch, ignore_errors=True)


def _graph_record(path: Path, input_shape: list, names: list[str], out_names: list[str], worst: float,
                  external: list[str], out_shapes: list[tuple[int, ...]] | None = None) -> dict:
    rec = {"file": path.name, "input_shape": input_shape, "sha256": onnx_model_digest(path),
           "parity_max_abs_err": worst, "inputs": names, "output": out_names[0]}
    if len(out_names) > 1:
        rec["outputs"] = out_names
    if out_shapes is not None:  # the exporter leaves some output dims symbolic; I/O binding needs them
        rec["output_shapes"] = [["batch", *shape[1:]] for shape in out_shapes]
    if external:
        rec["external_data"] = external
    return rec


def _check_tolerance(label: str, worst: float, tolerance: float) -> None:
    print(f"[parity] {label}: max abs error onnxruntime vs torch = {worst:.3e} (tolerance {tolerance:.0e})")
    if not worst <= tolerance:
        raise ExportError(f"{label}: onnxruntime differs from torch by {worst:.3e} > tolerance {tolerance:.0e}")


def _export_one(module: nn.Module, args: tuple[torch.Tensor, ...], names: list[str], out_name: str,
                path: Path, opset: int, tolerance: float, label: str, check_batches: Sequence[int],
                reference: Any = None, external_data: bool | None = None, check_threads: int = 1) -> dict:
    """Export ``module`` at ``args`` with a dynamic batch, then check onnxruntime == torch (``reference``,
    the original model's forward, when given; else ``module`` itself)."""
    dyn = {n: {0: "batch"} for n in [*names, out_name]}
    external = _torch_export(module, args, path, names, [out_name], dyn, opset, label, external_data)
    worst = 0.0
    for b in check_batches:
        gen = torch.Generator().manual_seed(b)
        feed_t = tuple(torch.randn((b, *a.shape[1:]), generator=gen) * (0.05 if a.shape[-1] == 7 else 1.0)
                       for a in args)
        with torch.no_grad():
            ref = (reference or module)(*feed_t).numpy()
        got = _run_ort(path, {n: t.numpy() for n, t in zip(names, feed_t)}, check_threads)[0]
        if got.shape != ref.shape:
            raise ExportError(f"{label}: onnxruntime output shape {got.shape} != torch {ref.shape} (batch {b})")
        worst = max(worst, float(np.abs(got - ref).max()))
    _check_tolerance(label, worst, tolerance)
    return _graph_record(path, ["batch", *args[0].shape[1:]], names, [out_name], worst, external)


def _export_step(predictor: nn.Module, frame: int, path: Path, opset: int, tolerance: float,
                 check_batches: Sequence[int], external_data: bool | None, check_threads: int) -> dict:
    """Export the KV-cached step for frame index ``frame`` and check it: the prediction against the original
    predictor run over all ``frame + 1`` frames (last frame kept), the returned keys/values against torch's
    :class:`ACStepGraph`; the first check batch feeds batch-1 tokens and past (broadcast), the others full
    batches."""
    mod = ACStepGraph(predictor, frame).eval()
    hw = predictor.grid_h * predictor.grid_w
    d = predictor.cfg.embed_dim
    names, out_names = mod.input_names(), mod.output_names()
    stepper = ACStepper(predictor)

    def inputs(b: int, shared: bool, seed: int) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
        """(step inputs, history): history tokens/actions/states of frames < frame."""
        g = torch.Generator().manual_seed(seed)
        nb = 1 if shared else b
        hist = (torch.randn(nb, frame * hw, d, generator=g), torch.randn(nb, frame, 7, generator=g) * 0.05,
                torch.rand(nb, frame, 7, generator=g))
        cache = None
        with torch.no_grad():
            for t in range(frame):
                _, cache = stepper.step(hist[0][:, t * hw:(t + 1) * hw], hist[1][:, t], hist[2][:, t], cache, t)
        past = tuple(x for kv in (cache or []) for x in kv)
        step = (torch.randn(nb, hw, d, generator=g), torch.randn(b, 7, generator=g) * 0.05,
                torch.rand(b, 7, generator=g), *past)
        return step, hist

    example, _ = inputs(2, False, 0)
    dyn = {"tokens": {0: "tokens_batch"}, "action": {0: "batch"}, "state": {0: "batch"}}
    dyn.update({n: {0: "past_batch"} for n in names[3:]})
    dyn.update({n: {0: "batch"} for n in out_names})
    label = f"AC predictor KV step (frame {frame})"
    external = _torch_export(mod, example, path, names, out_names, dyn, opset, label, external_data)
    worst = 0.0
    for i, b in enumerate(check_batches):
        step, hist = inputs(b, shared=i == 0, seed=100 + b)
        got = _run_ort(path, {n: t.numpy() for n, t in zip(names, step)}, check_threads)
        with torch.no_grad():
            want = [t.numpy() for t in mod(*step)]
            full = predictor(torch.cat([hist[0], step[0]], 1).expand(b, -1, -1),
                             torch.cat([hist[1].expand(b, -1, -1), step[1][:, None]], 1),
                             torch.cat([hist[2].expand(b, -1, -1), step[2][:, None]], 1))[:, -hw:].numpy()
        for g_, w_ in zip(got, [full, *want[1:]]):
            if g_.shape != w_.shape:
                raise ExportError(f"{label}: onnxruntime output shape {g_.shape} != torch {w_.shape} (batch {b})")
            worst = max(worst, float(np.abs(g_ - w_).max()))
    _check_tolerance(label, worst, tolerance)
    return _graph_record(path, ["tokens_batch", hw, d], names, out_names, worst, external,
                         [tuple(w.shape) for w in want])


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
    step_frames: int | None = None,
    external_data: bool | None = None,
    check_threads: int = 1,
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
        step_frames: KV-cached step graphs for frame indices ``0..step_frames-1`` (``None``: as many as the
            largest of ``predictor_frames``; ``0``: none). Only for frame-causal predictors without extrinsics.
        external_data: save weights in ``<graph>.onnx.data`` (``None``: only graphs above
            :data:`EXTERNAL_DATA_THRESHOLD` bytes, i.e. ViT-g; ``True`` forces it, ``False`` forbids it).
        check_threads: onnxruntime CPU threads of the parity check (0 = all cores; big models want more).
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
    manifest: dict[str, Any] = {"format": EXPORT_FORMAT, "opset": opset, "tolerance": tolerance,
                                "config": config or {}, "torch": torch.__version__, "encoder": {}, "predictor": {},
                                "predictor_step": {}}
    common = {"opset": opset, "tolerance": tolerance, "check_batches": check_batches,
              "external_data": external_data, "check_threads": check_threads}
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
                mod, (x,), ["frames"], "tokens", out / f"encoder_f{f}.onnx", label=f"encoder ({f} frame"
                f"{'s' if f > 1 else ''})",
                reference=lambda fr: torch.stack([encoder(fr[:, i]) for i in range(fr.shape[1])], dim=1), **common)
    if predictor is not None:
        hw, d = manifest["tokens_per_frame"], predictor.cfg.embed_dim
        for t in predictor_frames:
            if not 1 <= t <= predictor.cfg.max_frames:
                raise ExportError(f"predictor frames {t} outside 1..{predictor.cfg.max_frames} for this config")
            mod = FastACPredictor(predictor, t).eval()
            args = (torch.randn(2, t * hw, d), torch.randn(2, t, 7) * 0.05, torch.rand(2, t, 7))
            manifest["predictor"][str(t)] = _export_one(
                mod, args, ["tokens", "actions", "states"], "predicted", out / f"predictor_t{t}.onnx",
                label=f"AC predictor ({t} frame{'s' if t > 1 else ''})", reference=predictor, **common)
        cacheable = predictor.is_frame_causal and not predictor.use_extrinsics
        n_steps = (max(predictor_frames, default=0) if cacheable else 0) if step_frames is None else step_frames
        if n_steps and not cacheable:
            raise ExportError("KV-cached step graphs need a frame-causal predictor without extrinsics")
        if not 0 <= n_steps <= predictor.cfg.max_frames:
            raise ExportError(f"step_frames {n_steps} outside 0..{predictor.cfg.max_frames} for this config")
        for f in range(n_steps):
            manifest["predictor_step"][str(f)] = _export_step(
                predictor, f, out / f"predictor_step_f{f}.onnx", **common)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


# ---------------------------------------------------------------------------------------------------------
# TensorRT
def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower() or "unknown"


def engine_cache_path(onnx_path: str | Path, precision: str, gpu_name: str, trt_version: str,
                      cache_dir: str | Path | None = None) -> Path:
    """Where the engine for this exact (graph + weights, precision, GPU, TensorRT version) lives.

    ``<cache_dir or onnx dir>/trt_cache/<stem>-<digest[:16]>-<precision>-<gpu slug>-trt<version>.engine`` with
    the digest of :func:`onnx_model_digest` (the ``.onnx`` file and every external weight file it names).
    Raises :class:`ExportError` for an unknown precision or a missing model / external weight file.
    """
    if precision not in ("fp32", "fp16"):
        raise ExportError(f"unknown TensorRT precision {precision!r}; choose 'fp32' or 'fp16'")
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise ExportError(f"ONNX file {onnx_path} not found")
    base = Path(cache_dir) if cache_dir is not None else onnx_path.parent / "trt_cache"
    digest = onnx_model_digest(onnx_path)[:16]
    return base / f"{onnx_path.stem}-{digest}-{precision}-{_slug(gpu_name)}-trt{_slug(trt_version)}.engine"


def _parse_onnx(parser: Any, onnx_path: Path) -> None:
    """Parse ``onnx_path`` by path, so TensorRT resolves external weight files relative to it (parsing the
    bytes alone would lose them)."""
    if hasattr(parser, "parse_from_file"):
        ok = parser.parse_from_file(str(onnx_path))
    else:  # older bindings: bytes plus the model path for external data
        ok = parser.parse(onnx_path.read_bytes(), path=str(onnx_path))
    if not ok:
        errs = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(f"TensorRT could not parse {onnx_path}: {errs}")


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
    flags = 0  # TensorRT >= 10: explicit batch is the only mode (the flag is deprecated)
    if int(str(trt.__version__).split(".")[0]) < 10:
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    _parse_onnx(parser, Path(onnx_path))
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
    for kind in ("encoder", "predictor", "predictor_step"):
        for count, info in manifest.get(kind, {}).items():
            batch = min(max_batch, 64) if kind == "encoder" else max_batch
            path, _ = build_trt_engine(export_dir / info["file"], precision, cache_dir, force_rebuild, batch)
            index[f"{kind}:{count}"] = str(path)
    (export_dir / "engines.json").write_text(json.dumps(index, indent=1))
    return index

"""ONNX export of the tiny checkpoint: onnxruntime == torch (and == the reference fixture outputs) within
1e-4 for the encoder and the AC predictor at 1, 2 and 3 frames; RoPE baked in; the KV-cached step graphs;
external weight files (what ViT-g needs) and the TensorRT engine-cache key over them; clear failure modes."""

from __future__ import annotations

import json
import sys

import numpy as np
import onnx
import pytest
import torch

from vjepa_core.export import (
    EXPORT_FORMAT,
    ExportError,
    build_trt_engine,
    build_trt_engines,
    engine_cache_path,
    export_onnx,
    external_data_files,
    load_models,
    onnx_model_digest,
    onnx_sha256,
)
from vjepa_core.inference import BackendError, BackendUnavailableError, ShapeMismatchError, make_backend

TOL = 1e-4


@pytest.fixture(scope="module")
def tiny(fixtures_dir):
    d = fixtures_dir / "parity_tiny_a"
    enc, pred, cfg = load_models(d / "checkpoint.pt", d / "config.json")
    return enc, pred, cfg, np.load(d / "io.npz")


@pytest.fixture(scope="module")
def exported(tiny, tmp_path_factory):
    enc, pred, cfg, _ = tiny
    out = tmp_path_factory.mktemp("onnx")
    manifest = export_onnx(out, enc, pred, predictor_frames=(1, 2, 3), encoder_frames=(1, 2, 3), config=cfg)
    return out, manifest


def test_graphs_are_static_per_frame_count_with_rope_folded(exported):
    out, manifest = exported
    assert manifest["format"] == EXPORT_FORMAT == 2
    assert sorted(manifest["predictor"]) == ["1", "2", "3"] and sorted(manifest["encoder"]) == ["1", "2", "3"]
    assert sorted(manifest["predictor_step"]) == ["0", "1", "2"]  # KV-cached step per frame index
    for kind in ("encoder", "predictor", "predictor_step"):
        for info in manifest[kind].values():
            assert info["parity_max_abs_err"] <= TOL
            model = onnx.load(out / info["file"])
            onnx.checker.check_model(model)
            assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
            ops = {n.op_type for n in model.graph.node}
            assert not ops & {"Sin", "Cos"}, "RoPE tables must be precomputed constants"
            assert "LayerNormalization" in ops
            batch_dim = model.graph.input[0].type.tensor_type.shape.dim[0]
            assert batch_dim.dim_param in ("batch", "tokens_batch")  # dynamic batch, everything else fixed
            assert info["sha256"] == onnx_sha256(out / info["file"]) and "external_data" not in info


def test_step_graphs_take_and_return_the_cache_per_layer(exported):
    """predictor_step_f{f}: frame 0 takes no past; frame f takes past keys/values of f frames per layer
    (batch free: 1 = shared history) and returns them with the new frame appended."""
    out, manifest = exported
    depth, heads, hd, per_frame = 2, 4, 16, 18  # tiny predictor: 2 blocks, 4 heads of 16, 2 + 16 tokens
    for f in range(3):
        info = manifest["predictor_step"][str(f)]
        model = onnx.load(out / info["file"])
        shapes = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim]
                  for i in model.graph.input}
        past = [n for n in shapes if n.startswith("past_")]
        assert len(past) == (2 * depth if f else 0) and info["inputs"][:3] == ["tokens", "action", "state"]
        for n in past:
            assert shapes[n] == ["past_batch", heads, f * per_frame, hd]
        assert shapes["tokens"] == ["tokens_batch", 16, 96] and shapes["action"] == ["batch", 7]
        assert [o.name for o in model.graph.output] == info["outputs"]
        assert info["output_shapes"][0] == ["batch", 16, 96]
        assert all(s_ == ["batch", heads, (f + 1) * per_frame, hd] for s_ in info["output_shapes"][1:])
        assert info["parity_max_abs_err"] <= TOL


def test_external_data_export_loads_and_matches(tiny, exported, tmp_path):
    """Weights in one external file beside each graph (what a ViT-g export needs: its ~4 GB fp32 weights exceed
    protobuf's 2 GB), forced on the tiny model: same outputs as the self-contained export, the manifest names the
    data file, and a second export into the same folder does not grow it (onnx appends to an existing file)."""
    enc, pred, cfg, io = tiny
    out = tmp_path / "ext"
    manifest = export_onnx(out, enc, pred, predictor_frames=(1, 2), encoder_frames=(1,), config=cfg,
                           external_data=True)
    files = sorted(p.name for p in out.iterdir())
    assert "predictor_t1.onnx.data" in files and "encoder_f1.onnx.data" in files
    assert "predictor_step_f1.onnx.data" in files and not [f for f in files if f.startswith(".export_tmp")]
    for kind in ("encoder", "predictor", "predictor_step"):
        for info in manifest[kind].values():
            graph, data = out / info["file"], out / (info["file"] + ".data")
            assert info["external_data"] == [data.name]
            assert external_data_files(graph) == [data]
            assert graph.stat().st_size < data.stat().st_size  # the weights left the protobuf
            assert info["sha256"] == onnx_model_digest(graph) != onnx_sha256(graph)
            onnx.checker.check_model(str(graph))
    ext = make_backend("onnxruntime", export_dir=out, threads=1)
    ref = make_backend("onnxruntime", export_dir=exported[0], threads=1)
    tok = torch.from_numpy(io["predictor_tokens"][:, :32])
    act, st = torch.from_numpy(io["predictor_actions"][:, :2]), torch.from_numpy(io["predictor_states"][:, :2])
    assert torch.equal(ext.predict(tok, act, st), ref.predict(tok, act, st))
    x = torch.from_numpy(io["image"])[:, None]
    assert torch.equal(ext.encode(x), ref.encode(x))
    size = (out / "predictor_t1.onnx.data").stat().st_size
    export_onnx(out, None, pred, predictor_frames=(1,), step_frames=0, external_data=True)
    assert (out / "predictor_t1.onnx.data").stat().st_size == size
    # self-contained again: the stale data file goes away with the old graph
    export_onnx(out, None, pred, predictor_frames=(1,), step_frames=0, external_data=False)
    assert not (out / "predictor_t1.onnx.data").exists() and external_data_files(out / "predictor_t1.onnx") == []


@pytest.mark.parametrize("frames", [1, 2, 3])
def test_onnxruntime_predictor_matches_torch_and_reference(tiny, exported, frames):
    _, pred, _, io = tiny
    backend = make_backend("onnxruntime", export_dir=exported[0], threads=1)
    n = 16 * frames
    tok = torch.from_numpy(io["predictor_tokens"][:, :n])
    act = torch.from_numpy(io["predictor_actions"][:, :frames])
    st = torch.from_numpy(io["predictor_states"][:, :frames])
    got = backend.predict(tok, act, st)
    with torch.no_grad():
        ref = pred(tok, act, st)
    assert (got - ref).abs().max().item() < TOL
    # block-causal: the reference implementation's 3-frame output restricted to the first frames
    assert np.abs(got.numpy() - io["predictor_out"][:, :n]).max() < TOL


@pytest.mark.parametrize("frames", [1, 2, 3])
def test_onnxruntime_encoder_matches_torch(tiny, exported, frames):
    enc, _, _, io = tiny
    backend = make_backend("onnxruntime", export_dir=exported[0], threads=1)
    g = torch.Generator().manual_seed(frames)
    x = torch.randn(2, frames, 3, 64, 64, generator=g)
    x[:, 0] = torch.from_numpy(io["image"])
    got = backend.encode(x)
    with torch.no_grad():
        ref = torch.stack([enc(x[:, i]) for i in range(frames)], dim=1)
    assert got.shape == (2, frames, 16, 96)
    assert (got - ref).abs().max().item() < TOL
    assert np.abs(got[:, 0].numpy() - io["encoder_image_out"]).max() < TOL  # reference ground truth


def test_shape_mismatch_and_missing_graph_errors(exported):
    backend = make_backend("onnxruntime", export_dir=exported[0], threads=1)
    with pytest.raises(ShapeMismatchError, match=r"tokens must be \[B, T\*16, 96\]"):
        backend.predict(torch.zeros(1, 17, 96), torch.zeros(1, 1, 7), torch.zeros(1, 1, 7))
    with pytest.raises(ShapeMismatchError, match="states must be"):
        backend.predict(torch.zeros(1, 16, 96), torch.zeros(1, 1, 7), torch.zeros(1, 2, 7))
    with pytest.raises(ShapeMismatchError, match="no ONNX graph for 4"):
        backend.predict(torch.zeros(1, 64, 96), torch.zeros(1, 4, 7), torch.zeros(1, 4, 7))
    with pytest.raises(ShapeMismatchError, match="encoder graph expects"):
        backend.encode(torch.zeros(1, 1, 3, 32, 32))


def test_backend_selection_errors(exported, tmp_path):
    with pytest.raises(BackendError, match="unknown backend 'onnx'"):
        make_backend("onnx", export_dir=exported[0])
    with pytest.raises(BackendError, match="needs export_dir"):
        make_backend("onnxruntime")
    with pytest.raises(BackendError, match="manifest.json not found"):
        make_backend("onnxruntime", export_dir=tmp_path)
    # the CPU-only onnxruntime wheel has no CUDA/TensorRT EPs: say to install onnxruntime-gpu
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        with pytest.raises(BackendUnavailableError, match="onnxruntime-gpu"):
            make_backend("onnxruntime-cuda", export_dir=exported[0])
    if "TensorrtExecutionProvider" not in onnxruntime.get_available_providers():
        with pytest.raises(BackendUnavailableError, match="onnxruntime-gpu"):
            make_backend("onnxruntime-trt", export_dir=exported[0])


def test_missing_tensorrt_is_a_clear_error(exported, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import tensorrt -> ImportError, as on this box
    with pytest.raises(BackendUnavailableError, match="tensorrt is not installed"):
        make_backend("tensorrt", export_dir=exported[0])
    with pytest.raises(BackendUnavailableError, match="tensorrt is not installed"):
        build_trt_engine(exported[0] / "predictor_t1.onnx")
    with pytest.raises(BackendUnavailableError, match="tensorrt is not installed"):
        build_trt_engines(exported[0])


def test_engine_cache_path_depends_on_graph_precision_gpu_and_version(exported, tmp_path):
    out, _ = exported
    p1 = out / "predictor_t1.onnx"
    a = engine_cache_path(p1, "fp16", "NVIDIA H100 80GB HBM3", "10.3.0")
    assert a.parent == out / "trt_cache"
    assert a.name.startswith("predictor_t1-") and a.name.endswith("-fp16-nvidia_h100_80gb_hbm3-trt10_3_0.engine")
    assert a == engine_cache_path(p1, "fp16", "NVIDIA H100 80GB HBM3", "10.3.0")  # deterministic
    others = {
        engine_cache_path(p1, "fp32", "NVIDIA H100 80GB HBM3", "10.3.0"),
        engine_cache_path(p1, "fp16", "NVIDIA RTX 4090", "10.3.0"),
        engine_cache_path(p1, "fp16", "NVIDIA H100 80GB HBM3", "10.4.0"),
        engine_cache_path(out / "predictor_t2.onnx", "fp16", "NVIDIA H100 80GB HBM3", "10.3.0"),
    }
    assert a not in others and len(others) == 4
    # same name, different content -> different engine (hash of the ONNX bytes, not the file name)
    copy = tmp_path / "predictor_t1.onnx"
    model = onnx.load(p1)
    model.doc_string = "another export"
    onnx.save(model, copy)
    assert engine_cache_path(copy, "fp16", "g", "1").name != engine_cache_path(p1, "fp16", "g", "1").name
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(p1.read_bytes()[:-7] + b"\xff" * 7)
    with pytest.raises(ExportError, match="not a readable ONNX model"):
        engine_cache_path(broken, "fp16", "g", "1")
    assert engine_cache_path(p1, "fp16", "g", "1", cache_dir=tmp_path / "c").parent == tmp_path / "c"
    with pytest.raises(ExportError, match="precision"):
        engine_cache_path(p1, "int8", "g", "1")
    with pytest.raises(ExportError, match="not found"):
        engine_cache_path(tmp_path / "nope.onnx", "fp16", "g", "1")
    # a self-contained graph keeps the key it had before external weights were hashed (plain file SHA-256)
    assert onnx_model_digest(p1)[:16] in a.name and onnx_model_digest(p1) == onnx_sha256(p1)


def test_engine_cache_key_covers_external_weight_files(tiny, tmp_path):
    """A graph with external weights: new weights under the same .onnx bytes give a new engine path (the key
    hashes every external file the graph names), and a missing weight file is a clear error, not a stale hit."""
    _, pred, _, _ = tiny
    out = tmp_path / "ext"
    export_onnx(out, None, pred, predictor_frames=(1,), step_frames=0, external_data=True)
    graph, data = out / "predictor_t1.onnx", out / "predictor_t1.onnx.data"
    key = engine_cache_path(graph, "fp16", "NVIDIA H200", "10.3.0")
    assert key == engine_cache_path(graph, "fp16", "NVIDIA H200", "10.3.0")
    onnx_bytes, weights = graph.read_bytes(), bytearray(data.read_bytes())
    weights[-1] ^= 0xFF  # one byte of one weight changes; the .onnx file is untouched
    data.write_bytes(bytes(weights))
    assert graph.read_bytes() == onnx_bytes
    changed = engine_cache_path(graph, "fp16", "NVIDIA H200", "10.3.0")
    assert changed != key and changed.parent == key.parent
    # a copy of the graph elsewhere without its weights cannot be keyed (TensorRT could not parse it either)
    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / graph.name).write_bytes(onnx_bytes)
    with pytest.raises(ExportError, match="external weight file 'predictor_t1.onnx.data'.*not found"):
        engine_cache_path(lone / graph.name, "fp16", "NVIDIA H200", "10.3.0")
    # moved together, the key follows the content, not the folder
    moved = tmp_path / "moved"
    moved.mkdir()
    (moved / graph.name).write_bytes(onnx_bytes)
    (moved / data.name).write_bytes(bytes(weights))
    assert engine_cache_path(moved / graph.name, "fp16", "NVIDIA H200", "10.3.0").name == changed.name


def test_ort_tensorrt_ep_cache_folder_is_keyed_by_the_export(tiny, tmp_path):
    """The TensorRT execution provider keys its engines by graph structure, not weights: the backend gives it a
    cache folder named after the export's graph + weight digests, so a re-export with new weights rebuilds."""
    from vjepa_core.inference.onnx_backend import export_digest

    _, pred, _, _ = tiny
    a = export_onnx(tmp_path / "a", None, pred, predictor_frames=(1,), step_frames=1)
    b = export_onnx(tmp_path / "b", None, pred, predictor_frames=(1,), step_frames=1)
    assert export_digest(a) == export_digest(b)  # same weights, same graphs: the engines can be shared
    saved = pred.predictor_proj.bias.detach().clone()
    with torch.no_grad():
        pred.predictor_proj.bias.add_(1e-3)
    try:
        c = export_onnx(tmp_path / "c", None, pred, predictor_frames=(1,), step_frames=1)
    finally:
        with torch.no_grad():
            pred.predictor_proj.bias.copy_(saved)
    assert export_digest(c) != export_digest(a)


def test_export_failure_modes(tiny, tmp_path):
    enc, pred, cfg, _ = tiny
    with pytest.raises(ExportError, match="opset 13"):
        export_onnx(tmp_path, None, pred, opset=13)
    with pytest.raises(ExportError, match="nothing to export"):
        export_onnx(tmp_path)
    with pytest.raises(ExportError, match="outside 1..4"):
        export_onnx(tmp_path, None, pred, predictor_frames=(5,))
    with pytest.raises(ExportError, match="step_frames 5 outside 0..4"):
        export_onnx(tmp_path, None, pred, predictor_frames=(1,), step_frames=5)
    with pytest.raises(ExportError, match="tolerance"):  # an impossible tolerance trips the parity check
        export_onnx(tmp_path, None, pred, predictor_frames=(1,), tolerance=0.0 - 1.0)
    with pytest.raises(ExportError, match="not found"):
        load_models(tmp_path / "x.pt", tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"encoder": cfg["encoder"]}))
    with pytest.raises(ExportError, match="'predictor'"):
        load_models(tmp_path / "x.pt", bad)

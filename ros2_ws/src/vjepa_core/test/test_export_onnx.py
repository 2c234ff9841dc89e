"""ONNX export of the tiny checkpoint: onnxruntime == torch (and == the reference fixture outputs) within
1e-4 for the encoder and the AC predictor at 1, 2 and 3 frames; RoPE baked in; clear failure modes."""

from __future__ import annotations

import json
import sys

import numpy as np
import onnx
import pytest
import torch

from vjepa_core.export import (
    ExportError,
    build_trt_engine,
    build_trt_engines,
    engine_cache_path,
    export_onnx,
    load_models,
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
    assert sorted(manifest["predictor"]) == ["1", "2", "3"] and sorted(manifest["encoder"]) == ["1", "2", "3"]
    for kind in ("encoder", "predictor"):
        for info in manifest[kind].values():
            assert info["parity_max_abs_err"] <= TOL
            model = onnx.load(out / info["file"])
            onnx.checker.check_model(model)
            assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
            ops = {n.op_type for n in model.graph.node}
            assert not ops & {"Sin", "Cos"}, "RoPE tables must be precomputed constants"
            assert "LayerNormalization" in ops
            batch_dim = model.graph.input[0].type.tensor_type.shape.dim[0]
            assert batch_dim.dim_param == "batch"  # dynamic batch, everything else fixed


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
    copy.write_bytes(p1.read_bytes() + b"\0")
    assert engine_cache_path(copy, "fp16", "g", "1").name != engine_cache_path(p1, "fp16", "g", "1").name
    assert engine_cache_path(p1, "fp16", "g", "1", cache_dir=tmp_path / "c").parent == tmp_path / "c"
    with pytest.raises(ExportError, match="precision"):
        engine_cache_path(p1, "int8", "g", "1")
    with pytest.raises(ExportError, match="not found"):
        engine_cache_path(tmp_path / "nope.onnx", "fp16", "g", "1")


def test_export_failure_modes(tiny, tmp_path):
    enc, pred, cfg, _ = tiny
    with pytest.raises(ExportError, match="opset 13"):
        export_onnx(tmp_path, None, pred, opset=13)
    with pytest.raises(ExportError, match="nothing to export"):
        export_onnx(tmp_path)
    with pytest.raises(ExportError, match="outside 1..4"):
        export_onnx(tmp_path, None, pred, predictor_frames=(5,))
    with pytest.raises(ExportError, match="tolerance"):  # an impossible tolerance trips the parity check
        export_onnx(tmp_path, None, pred, predictor_frames=(1,), tolerance=0.0 - 1.0)
    with pytest.raises(ExportError, match="not found"):
        load_models(tmp_path / "x.pt", tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"encoder": cfg["encoder"]}))
    with pytest.raises(ExportError, match="'predictor'"):
        load_models(tmp_path / "x.pt", bad)

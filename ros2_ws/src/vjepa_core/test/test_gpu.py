"""GPU checks (marker ``gpu``; run by ``bench/gpu_check.sh`` on a CUDA machine, skipped where there is no CUDA GPU):
the torch backend's bf16 plan on CUDA, onnxruntime's CUDA provider with I/O binding (KV-cached rollout equal to
torch, predictions and cache left on the GPU), and TensorRT engines built from an export with external weight
files (parsed by path, cached by graph + weights, KV-cached rollout equal to torch)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vjepa_core.export import export_onnx, load_models
from vjepa_core.inference import WorldModel, make_backend

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (bench/gpu_check.sh)")]

# TF32 / FP16 kernels on the GPU against fp32 torch on the CPU: the tiny model's outputs are O(1)
GPU_TOL = 2e-2


@pytest.fixture(scope="module")
def tiny(fixtures_dir):
    d = fixtures_dir / "parity_tiny_a"
    enc, pred, cfg = load_models(d / "checkpoint.pt", d / "config.json")
    return enc, pred, cfg


@pytest.fixture(scope="module")
def export_dir(tiny, tmp_path_factory):
    """Predictor graphs for 1 and 2 frames (the recompute) + step graphs 0 and 1, weights forced into external
    files (like ViT-g)."""
    _, pred, cfg = tiny
    out = tmp_path_factory.mktemp("gpu_onnx")
    export_onnx(out, None, pred, predictor_frames=(1, 2), config=cfg, external_data=True)
    return out


def _inputs():
    g = torch.Generator().manual_seed(0)
    ctx = F.layer_norm(torch.randn(1, 16, 96, generator=g), (96,))
    state = torch.tensor([[0.45, 0.0, 0.35, 3.1, 0.05, -0.1, 0.2]])
    actions = torch.randn(64, 2, 7, generator=g) * 0.05
    return ctx, state, actions


def _cpu_reference(pred, ctx, state, actions):
    return WorldModel(make_backend("torch", predictor=pred)).rollout(ctx, state, actions)


def test_torch_cuda_bf16_rollout_and_plan(tiny):
    from vjepa_core.planning import CEMConfig, CEMPlanner

    _, pred, _ = tiny
    ctx, state, actions = _inputs()
    ref = _cpu_reference(pred, ctx, state, actions)
    wm = WorldModel(make_backend("torch", predictor=pred, device="cuda", precision="bf16"))
    got = wm.rollout(ctx.cuda(), state.cuda(), actions.cuda())
    assert got.is_cuda and (got.cpu() - ref).abs().max().item() < 0.2  # bf16
    res = CEMPlanner.for_world_model(wm, CEMConfig(samples=200, iterations=3, horizon=2, seed=0)).plan(
        ctx.cuda(), state.cuda(), ctx[0].cuda())
    assert res.actions.shape == (2, 7) and torch.isfinite(torch.tensor(res.energy))


def test_onnxruntime_cuda_io_binding_keeps_the_rollout_on_the_gpu(tiny, export_dir):
    _, pred, _ = tiny
    backend = make_backend("onnxruntime-cuda", export_dir=export_dir)
    assert backend.io_binding and backend.supports_kv_cache and backend.device.type == "cuda"
    ctx, state, actions = _inputs()
    out, cache = backend.predict_step(ctx.cuda(), actions[:, 0].cuda(), state.expand(64, 7).cuda(), None, 0)
    assert out.is_cuda and all(t.is_cuda for t in cache)  # nothing came back through numpy
    wm = WorldModel(backend)
    got = wm.rollout(ctx.cuda(), state.cuda(), actions.cuda())
    assert got.is_cuda
    assert (got.cpu() - _cpu_reference(pred, ctx, state, actions)).abs().max().item() < GPU_TOL
    full = WorldModel(backend, use_kv_cache=False).rollout(ctx.cuda(), state.cuda(), actions.cuda())
    assert (got - full).abs().max().item() < GPU_TOL


def test_tensorrt_engines_from_external_weights_cached_by_content(tiny, export_dir):
    from vjepa_core.export import build_trt_engine, build_trt_engines

    _, pred, _ = tiny
    index = build_trt_engines(export_dir, precision="fp32", max_batch=64)
    assert set(index) == {"predictor:1", "predictor:2", "predictor_step:0", "predictor_step:1"}
    _, built = build_trt_engine(export_dir / "predictor_step_f0.onnx", "fp32", max_batch=64)
    assert not built  # same graph + weights, GPU, version: the cached engine is reused
    backend = make_backend("tensorrt", export_dir=export_dir)
    assert backend.supports_kv_cache
    ctx, state, actions = _inputs()
    ref = _cpu_reference(pred, ctx, state, actions)
    cached = WorldModel(backend).rollout(ctx.cuda(), state.cuda(), actions.cuda())
    full = WorldModel(backend, use_kv_cache=False).rollout(ctx.cuda(), state.cuda(), actions.cuda())
    assert (cached.cpu() - ref).abs().max().item() < GPU_TOL
    assert (full.cpu() - ref).abs().max().item() < GPU_TOL

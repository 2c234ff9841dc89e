"""The KV-cached rollout equals the whole-sequence (reference) rollout to 1e-5, for several horizons and
context lengths, on the tiny checkpoint; and the cached frame step equals the full predictor. The same for
onnxruntime over the exported step graphs (< 1e-4), its I/O-binding path, and old exports without them."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vjepa_core.export import load_models
from vjepa_core.inference import ShapeMismatchError, WorldModel, make_backend
from vjepa_core.inference.fast_modules import ACStepper
from vjepa_core.planning import compute_new_pose_torch


@pytest.fixture(scope="module")
def models(fixtures_dir):
    d = fixtures_dir / "parity_tiny_a"
    enc, pred, _ = load_models(d / "checkpoint.pt", d / "config.json")
    return enc, pred


def _context(t0: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    tokens = F.layer_norm(torch.randn(t0, 16, 96, generator=g), (96,))
    states = torch.cat([torch.rand(t0, 3, generator=g) * 0.2 + 0.3, torch.rand(t0, 3, generator=g) - 0.5,
                        torch.rand(t0, 1, generator=g)], dim=1)
    return tokens, states


def _reference_rollout(pred, tokens, states, ctx_actions, actions):
    """The reference loop written out: re-run the whole sequence per step, keep the last frame."""
    s, h = actions.shape[:2]
    frames = tokens[None].expand(s, -1, -1, -1)
    poses = states[None].expand(s, -1, -1)
    acts = torch.cat([ctx_actions[None].expand(s, -1, -1), actions], 1)
    outs = []
    for k in range(h):
        t = frames.shape[1]
        with torch.no_grad():
            z = pred(frames.flatten(1, 2), acts[:, :t], poses)[:, -16:]
        z = F.layer_norm(z, (96,))
        outs.append(z)
        frames = torch.cat([frames, z[:, None]], 1)
        poses = torch.cat([poses, compute_new_pose_torch(poses[:, -1], actions[:, k])[:, None]], 1)
    return torch.stack(outs, 1)


@pytest.mark.parametrize("t0,horizon", [(1, 1), (1, 3), (2, 2)])
def test_cached_rollout_equals_uncached(models, t0, horizon):
    _, pred = models
    backend = make_backend("torch", predictor=pred)
    tokens, states = _context(t0)
    actions = torch.randn(37, horizon, 7, generator=torch.Generator().manual_seed(1)) * 0.05
    cached = WorldModel(backend, use_kv_cache=True, chunk_size=10).rollout(tokens, states, actions)
    full = WorldModel(backend, use_kv_cache=False).rollout(tokens, states, actions)
    assert cached.shape == (37, horizon, 16, 96)
    assert (cached - full).abs().max().item() < 1e-5
    ctx_actions = WorldModel(backend).context_actions(states)
    ref = _reference_rollout(pred, tokens, states, ctx_actions, actions)
    assert (cached - ref).abs().max().item() < 1e-5
    # unroll = last frame, and chunking does not change anything
    un = WorldModel(backend, chunk_size=37).unroll(tokens, states, actions)
    assert (un - cached[:, -1]).abs().max().item() < 1e-5  # batch-size-dependent GEMM rounding only


def test_stepper_equals_full_predictor_on_fixture(models, fixtures_dir):
    import numpy as np

    _, pred = models
    io = np.load(fixtures_dir / "parity_tiny_a" / "io.npz")
    tok = torch.from_numpy(io["predictor_tokens"])
    act = torch.from_numpy(io["predictor_actions"])
    st = torch.from_numpy(io["predictor_states"])
    stepper = ACStepper(pred)
    cache = None
    with torch.no_grad():
        for t in range(3):
            out, cache = stepper.step(tok[:, t * 16:(t + 1) * 16], act[:, t], st[:, t], cache, t)
            ref = io["predictor_out"][:, t * 16:(t + 1) * 16]
            assert np.abs(out.numpy() - ref).max() < 1e-5
    with pytest.raises(ValueError, match="at most 4 frames"):
        stepper.step(tok[:, :16], act[:, 0], st[:, 0], None, 4)


# ---- the exported backends: KV-cached step graphs (export format 2) ------------------------------------------
@pytest.fixture(scope="module")
def step_export(models, tmp_path_factory):
    from vjepa_core.export import export_onnx

    _, pred = models
    out = tmp_path_factory.mktemp("kv_onnx")
    manifest = export_onnx(out, None, pred, predictor_frames=(1, 2, 3))
    return out, manifest


@pytest.mark.parametrize("t0,horizon", [(1, 1), (1, 2), (1, 3), (2, 2)])
def test_onnxruntime_cached_rollout_equals_uncached(models, step_export, t0, horizon):
    """onnxruntime with the exported step graphs == its own whole-sequence recompute == the reference loop
    (max abs diff < 1e-4) on the tiny fixture, horizons 1..3, one and two context frames."""
    _, pred = models
    out, manifest = step_export
    assert sorted(manifest["predictor_step"]) == ["0", "1", "2"]
    backend = make_backend("onnxruntime", export_dir=out, threads=1)
    assert backend.supports_kv_cache
    tokens, states = _context(t0, seed=t0)
    actions = torch.randn(37, horizon, 7, generator=torch.Generator().manual_seed(horizon)) * 0.05
    cached_wm = WorldModel(backend, chunk_size=10)
    assert cached_wm.use_kv_cache  # the default for an export with step graphs
    cached = cached_wm.rollout(tokens, states, actions)
    full = WorldModel(backend, use_kv_cache=False).rollout(tokens, states, actions)
    assert cached.shape == (37, horizon, 16, 96)
    assert (cached - full).abs().max().item() < 1e-4
    ref = _reference_rollout(pred, tokens, states, WorldModel(backend).context_actions(states), actions)
    assert (cached - ref).abs().max().item() < 1e-4
    torch_cached = WorldModel(make_backend("torch", predictor=pred), chunk_size=10).rollout(tokens, states, actions)
    assert (cached - torch_cached).abs().max().item() < 1e-4


def test_onnxruntime_step_matches_torch_step_and_keeps_a_cache(models, step_export):
    """One step at a time: predictions and the returned keys/values equal torch's ACStepper; batch-1 tokens and
    a batch-1 history are broadcast to the samples inside the graph."""
    _, pred = models
    backend = make_backend("onnxruntime", export_dir=step_export[0], threads=1)
    stepper = ACStepper(pred)
    g = torch.Generator().manual_seed(7)
    hist = torch.randn(1, 16, 96, generator=g)
    a0, s0 = torch.randn(1, 7, generator=g) * 0.05, torch.rand(1, 7, generator=g)
    o_ref, c_ref = stepper.step(hist, a0, s0, None, 0)
    o_got, c_got = backend.predict_step(hist, a0, s0, None, 0)
    assert (o_got - o_ref).abs().max().item() < 1e-5 and len(c_got) == 2 * len(c_ref)
    tok = torch.randn(1, 16, 96, generator=g)  # shared, broadcast to 5 samples
    acts, sts = torch.randn(5, 7, generator=g) * 0.05, torch.rand(5, 7, generator=g)
    with torch.no_grad():
        o_ref, c_ref = stepper.step(tok, acts, sts, c_ref, 1)
    o_got, c_got = backend.predict_step(tok, acts, sts, c_got, 1)
    assert o_got.shape == (5, 16, 96) and (o_got - o_ref).abs().max().item() < 1e-5
    flat_ref = [t for kv in c_ref for t in kv]
    assert all(g_.shape == r.shape and (g_ - r).abs().max().item() < 1e-5 for g_, r in zip(c_got, flat_ref))
    with pytest.raises(ShapeMismatchError, match="needs a cache of 4 tensors"):
        backend.predict_step(tok, acts, sts, None, 1)
    with pytest.raises(ShapeMismatchError, match="no KV-cached step graph for frame index 3"):
        backend.predict_step(tok, acts, sts, c_got, 3)
    with pytest.raises(ShapeMismatchError, match="frame tokens have batch 2"):
        backend.predict_step(torch.zeros(2, 16, 96), acts, sts, None, 0)


def test_io_binding_path_equals_plain_path(step_export):
    """The I/O-binding path (what the CUDA providers use) gives the same numbers as the plain numpy path; here
    it binds CPU torch tensors, so the code path itself runs on this machine."""
    out, _ = step_export
    plain = make_backend("onnxruntime", export_dir=out, threads=1)
    bound = make_backend("onnxruntime", export_dir=out, threads=1, io_binding=True)
    assert not plain.io_binding and bound.io_binding and bound.describe()["io_binding"]
    tokens, states = _context(1)
    actions = torch.randn(9, 3, 7, generator=torch.Generator().manual_seed(3)) * 0.05
    a = WorldModel(plain, chunk_size=4).rollout(tokens, states, actions)
    b = WorldModel(bound, chunk_size=4).rollout(tokens, states, actions)
    assert torch.equal(a, b)
    full = torch.randn(2, 32, 96, generator=torch.Generator().manual_seed(5))
    act, st = torch.randn(2, 2, 7) * 0.05, torch.rand(2, 2, 7)
    assert torch.equal(plain.predict(full, act, st), bound.predict(full, act, st))


def test_old_exports_still_load_and_fall_back_to_recompute(models, tmp_path):
    """A format-1 export (no step graphs, as written before the KV-cached step existed) still loads and rolls
    out with the whole-sequence recompute; an export newer than this code is refused with a clear message."""
    import json

    from vjepa_core.export import export_onnx
    from vjepa_core.inference import BackendError

    _, pred = models
    old = tmp_path / "old"
    manifest = export_onnx(old, None, pred, predictor_frames=(1, 2), step_frames=0)
    manifest.pop("predictor_step")
    manifest["format"] = 1
    (old / "manifest.json").write_text(json.dumps(manifest))
    backend = make_backend("onnxruntime", export_dir=old, threads=1)
    assert not backend.supports_kv_cache
    wm = WorldModel(backend)
    assert not wm.use_kv_cache
    tokens, states = _context(1)
    actions = torch.randn(6, 2, 7, generator=torch.Generator().manual_seed(2)) * 0.05
    ref = WorldModel(make_backend("torch", predictor=pred)).rollout(tokens, states, actions)
    assert (wm.rollout(tokens, states, actions) - ref).abs().max().item() < 1e-4
    with pytest.raises(BackendError, match="no KV-cached step graphs"):
        backend.predict_step(tokens[:1], actions[:, 0], states.expand(6, 7), None, 0)
    manifest["format"] = 3
    (old / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BackendError, match="export format 3"):
        make_backend("onnxruntime", export_dir=old)

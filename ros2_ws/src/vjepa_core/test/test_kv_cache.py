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


def test_stepper_folds_rope_into_qkv_exactly_and_reads_weights_once(models):
    """The stepper's folded qkv (RoPE pair swap in the weights) gives ac_step's predictions and keys/values; its
    prepared weights are built once and rebuilt by refresh() after the predictor's weights change."""
    from vjepa_core.inference.fast_modules import ac_step, rope_tables
    from vjepa_core.models.ac_predictor import frame_token_positions

    _, pred = models
    tokens, states = _context(1, seed=3)
    acts = torch.randn(9, 2, 7, generator=torch.Generator().manual_seed(4)) * 0.05
    stepper = ACStepper(pred)

    def plain(t, a, s, cache, f):
        pos = frame_token_positions(1, pred.grid_h, pred.grid_w, pred.cond_tokens, frame_offset=f)
        return ac_step(pred, t, a, s, *rope_tables(pos, stepper.head_dim), cache)

    with torch.no_grad():
        runs = []
        for fn in (stepper.step, plain):
            z, cache, outs = tokens, None, []
            for k in range(2):
                out, cache = fn(z, acts[:, k], states.expand(9, 7), cache, k)
                z = F.layer_norm(out, (96,))
                outs.append((out, cache))
            runs.append(outs)
        for (o1, c1), (o2, c2) in zip(*runs):
            assert (o1 - o2).abs().max().item() < 1e-5
            for (k1, v1), (k2, v2) in zip(c1, c2):
                assert k1.shape == k2.shape and (k1 - k2).abs().max().item() < 1e-5
                assert (v1 - v2).abs().max().item() < 1e-5
        prepared = stepper.weights(torch.device("cpu"))
        assert stepper.weights(torch.device("cpu")) is prepared
        a, st = acts[:, 0], states.expand(9, 7)
        before, _ = stepper.step(tokens, a, st, None, 0)
        qkv_bias = pred.predictor_blocks[0].attn.qkv.bias
        saved = qkv_bias.clone()
        try:
            qkv_bias.add_(0.5)  # the folded qkv is a prepared copy: unchanged until refresh()
            assert torch.equal(stepper.step(tokens, a, st, None, 0)[0], before)
            stepper.refresh()
            after, _ = stepper.step(tokens, a, st, None, 0)
            assert (after - before).abs().max().item() > 1e-3
            assert (after - plain(tokens, a, st, None, 0)[0]).abs().max().item() < 1e-5
        finally:
            qkv_bias.copy_(saved)
            stepper.refresh()


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.bfloat16, 3e-2)])
def test_shared_context_frame_is_computed_once_with_the_same_result(models, dtype, tol):
    """Issue 18: at a plan's first step the context frame is the same for every sample, so the first block's
    layer norm / qkv / rotation of its tokens run once (forward_shared_context) instead of per sample. The
    predictions and keys/values equal those of the same frame expanded to every sample (the per-sample path)."""
    _, pred = models
    tokens, states = _context(1, seed=5)
    acts = torch.randn(11, 7, generator=torch.Generator().manual_seed(6)) * 0.05
    stepper = ACStepper(pred, dtype=dtype)
    calls = []
    block = stepper.weights(torch.device("cpu")).blocks[0]
    shared = block.forward_shared_context
    block.forward_shared_context = lambda *a: calls.append(1) or shared(*a)
    with torch.no_grad():
        out1, kv1 = stepper.step(tokens, acts, states.expand(11, 7), None, 0)  # batch-1 frame: shared path
        assert calls == [1]
        out2, kv2 = stepper.step(tokens.expand(11, -1, -1), acts, states.expand(11, 7), None, 0)
        assert calls == [1]  # a per-sample frame takes the ordinary path
    assert (out1 - out2).abs().max().item() < tol
    for (k1, v1), (k2, v2) in zip(kv1, kv2):
        assert k1.shape == k2.shape == (11, pred.cfg.num_heads, 18, stepper.head_dim)
        assert (k1.float() - k2.float()).abs().max().item() < tol
        assert (v1.float() - v2.float()).abs().max().item() < tol


def test_bf16_step_is_close_to_fp32_and_auto_precision_follows_the_cpu(models):
    """precision bf16 runs the step on bf16 weights (cache in bf16, predictions back in float32) within bf16
    rounding of fp32; ``auto`` is bf16 exactly where the device computes it natively; bad names are refused."""
    from vjepa_core.inference import BackendError
    from vjepa_core.inference.torch_backend import native_bf16, resolve_precision

    _, pred = models
    tokens, states = _context(2, seed=5)
    acts = torch.randn(12, 2, 7, generator=torch.Generator().manual_seed(6)) * 0.05
    exact = WorldModel(make_backend("torch", predictor=pred)).rollout(tokens, states, acts)
    be16 = make_backend("torch", predictor=pred, precision="bf16")
    half = WorldModel(be16).rollout(tokens, states, acts)
    assert half.dtype == torch.float32 and half.shape == exact.shape
    err = (half - exact).abs()
    assert err.max().item() < 0.25 and err.mean().item() < 0.03  # layer-normed tokens of magnitude ~1
    assert not torch.equal(half, exact)  # really computed in bf16
    with torch.no_grad():
        _, cache = be16.predict_step(tokens[:1], acts[:, 0], states[:1].expand(12, 7), None, 0)
    assert cache[0][0].dtype == torch.bfloat16
    assert resolve_precision("auto", "cpu") == ("bf16" if native_bf16("cpu") else "fp32")
    assert make_backend("torch", predictor=pred, precision="auto").precision == resolve_precision("auto", "cpu")
    assert resolve_precision("fp32", "cpu") == "fp32"
    with pytest.raises(BackendError, match="precision"):
        make_backend("torch", predictor=pred, precision="int8")

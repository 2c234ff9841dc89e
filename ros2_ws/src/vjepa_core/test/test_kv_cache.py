"""The KV-cached rollout equals the whole-sequence (reference) rollout to 1e-5, for several horizons and
context lengths, on the tiny checkpoint; and the cached frame step equals the full predictor."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vjepa_core.export import load_models
from vjepa_core.inference import WorldModel, make_backend
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

"""Parity with the reference implementation: parity_tiny_a outputs to 1e-4, pose math to 1e-9."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vjepa_core.checkpoint import load_official
from vjepa_core.config import ACPredictorConfig, EncoderConfig
from vjepa_core.pose import compute_new_pose, poses_to_diff

TOL = 1e-4


@pytest.fixture(scope="module")
def tiny(fixtures_dir):
    d = fixtures_dir / "parity_tiny_a"
    cfg = json.loads((d / "config.json").read_text())
    enc, pred = load_official(d / "checkpoint.pt", EncoderConfig(**cfg["encoder"]),
                              ACPredictorConfig(**cfg["predictor"]))
    return enc, pred, dict(np.load(d / "io.npz"))


def _max_err(out: torch.Tensor, ref: np.ndarray) -> float:
    assert tuple(out.shape) == ref.shape
    return float(np.abs(out.detach().numpy() - ref).max())


def test_encoder_video(tiny):
    enc, _, io = tiny
    with torch.no_grad():
        assert _max_err(enc(torch.from_numpy(io["video"])), io["encoder_video_out"]) < TOL


def test_encoder_image_repeated_into_tubelet(tiny):
    enc, _, io = tiny
    with torch.no_grad():
        assert _max_err(enc(torch.from_numpy(io["image"])), io["encoder_image_out"]) < TOL
        # The explicit 2-frame tubelet gives the same tokens as the 4-D shortcut.
        img = torch.from_numpy(io["image"])
        assert _max_err(enc(img.unsqueeze(2).repeat(1, 1, 2, 1, 1)), io["encoder_image_out"]) < TOL


def test_predictor(tiny):
    _, pred, io = tiny
    args = [torch.from_numpy(io[k]) for k in ("predictor_tokens", "predictor_actions", "predictor_states")]
    with torch.no_grad():
        assert _max_err(pred(*args), io["predictor_out"]) < TOL


def test_predictor_is_frame_causal(tiny):
    """Changing frame 2's inputs must not change frames 0-1's outputs (block-causal), but must change frame 2's."""
    _, pred, io = tiny
    tok, act, st = (torch.from_numpy(io[k]).clone() for k in ("predictor_tokens", "predictor_actions",
                                                               "predictor_states"))
    hw = tok.shape[1] // act.shape[1]
    with torch.no_grad():
        base = pred(tok, act, st)
        act2 = act.clone()
        act2[:, 2] += 1.0
        out = pred(tok, act2, st)
    assert torch.allclose(out[:, : 2 * hw], base[:, : 2 * hw], atol=1e-6)
    assert (out[:, 2 * hw:] - base[:, 2 * hw:]).abs().max() > 1e-3


def test_predictor_bf16_runs(tiny):
    _, pred, io = tiny
    args = [torch.from_numpy(io[k]) for k in ("predictor_tokens", "predictor_actions", "predictor_states")]
    with torch.no_grad():
        out = pred.to(torch.bfloat16)(*[a.bfloat16() for a in args]).float()
    pred.float()
    assert np.abs(out.numpy() - io["predictor_out"]).max() < 0.25  # bf16 has ~3 significant digits


def test_pose_parity(fixtures_dir):
    d = np.load(fixtures_dir / "parity_tiny_a" / "pose_io.npz")
    assert np.abs(compute_new_pose(d["poses"], d["actions"]) - d["new_poses"]).max() < 1e-9
    assert np.abs(poses_to_diff(d["poses"], d["new_poses"]) - d["recovered_actions"]).max() < 1e-9

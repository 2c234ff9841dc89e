"""Preprocessing of uint8 camera frames: shapes, normalisation, crop policies, real Franka frames."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vjepa_core.config import EncoderConfig
from vjepa_core.models import build_encoder
from vjepa_core.preprocessing import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    PreprocessError,
    preprocess_clip,
    preprocess_frame,
    preprocess_frames,
)


def test_imagenet_constants_are_the_references():
    """preprocessing.py is the one definition (training imports it): the values V-JEPA 2 was trained with."""
    import vjepa_core.preprocessing as pre

    assert {"IMAGENET_MEAN", "IMAGENET_STD"} <= set(pre.__all__)
    assert IMAGENET_MEAN == (0.485, 0.456, 0.406)
    assert IMAGENET_STD == (0.229, 0.224, 0.225)


def test_constant_frame_normalised():
    frame = np.full((100, 150, 3), 255, dtype=np.uint8)
    for crop in ("center", "eval", "resize"):
        x = preprocess_frame(frame, size=32, crop=crop)
        assert x.shape == (3, 2, 32, 32) and x.dtype == torch.float32
        want = (1.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
        assert np.allclose(x.numpy().reshape(3, -1), want[:, None], atol=1e-5)
        assert torch.equal(x[:, 0], x[:, 1])  # one frame repeated into a tubelet


def test_identity_size_is_exact():
    frame = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    x = preprocess_frame(frame, size=64, as_numpy=True)
    assert isinstance(x, np.ndarray)
    want = (frame.astype(np.float32) / 255 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    assert np.abs(x[:, 0].transpose(1, 2, 0) - want).max() < 1e-5


def test_crop_policies_differ_on_wide_frames():
    frame = np.zeros((40, 120, 3), dtype=np.uint8)
    frame[:, :40] = 255  # bright left third: centre crop drops it, resize keeps it
    center = preprocess_frame(frame, size=40, crop="center")
    resize = preprocess_frame(frame, size=40, crop="resize")
    assert center[0, 0, :, :5].max() < -1.5 and resize[0, 0, :, :5].min() > 1.5


def test_batched_and_clip():
    frames = np.random.default_rng(1).integers(0, 256, (3, 48, 80, 3), dtype=np.uint8)
    b = preprocess_frames(frames, size=32)
    assert b.shape == (3, 3, 2, 32, 32)
    assert torch.allclose(b[1], preprocess_frame(frames[1], size=32))
    assert preprocess_frames(list(frames), size=32, dtype=torch.bfloat16).dtype == torch.bfloat16
    c = preprocess_clip(frames[:2], size=32)
    assert c.shape == (3, 2, 32, 32)


def test_bad_inputs():
    with pytest.raises(PreprocessError, match="uint8"):
        preprocess_frame(np.zeros((8, 8, 3), dtype=np.float32))
    with pytest.raises(PreprocessError, match="H x W x 3"):
        preprocess_frame(np.zeros((8, 8, 4), dtype=np.uint8))
    with pytest.raises(PreprocessError, match="crop"):
        preprocess_frame(np.zeros((8, 8, 3), dtype=np.uint8), crop="zoom")


def test_franka_frames_through_tiny_encoder(fixtures_dir):
    obs = np.load(fixtures_dir / "franka_example_traj.npz")["observations"][0]  # [2, 256, 256, 3] uint8
    cfg = json.loads((fixtures_dir / "parity_tiny_a" / "config.json").read_text())["encoder"]
    enc = build_encoder(EncoderConfig(**cfg))
    x = preprocess_frames(obs, size=cfg["img_size"])
    assert x.shape == (2, 3, 2, 64, 64) and torch.isfinite(x).all()
    with torch.no_grad():
        z = enc(x)
    assert z.shape == (2, (64 // 16) ** 2, cfg["embed_dim"]) and torch.isfinite(z).all()
    assert not torch.allclose(z[0], z[1])  # the two frames differ
    full = preprocess_frames(obs, size=256)
    assert full.shape == (2, 3, 2, 256, 256)

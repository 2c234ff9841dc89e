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
    droid_crop_box,
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
    for crop in ("center", "eval", "resize", "droid"):
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


def test_droid_crop_box_is_the_reference_fallback_crop():
    """The reference AC transform's deterministic crop (vjepa2 _get_param_spatial_crop fallback, aspect range
    [0.75, 1.35]): 16:9 frames keep the full height and round(1.35 h) of the width, centred with floor division."""
    assert droid_crop_box(720, 1280) == (0, 154, 720, 972)      # HD720 DROID MP4
    assert droid_crop_box(180, 320) == (0, 38, 180, 243)        # RLDS-size DROID frames
    assert droid_crop_box(1080, 1920) == (0, 231, 1080, 1458)
    assert droid_crop_box(256, 256) == (0, 0, 256, 256)         # within [0.75, 1.35]: whole frame
    assert droid_crop_box(480, 640) == (0, 0, 480, 640)         # 4:3 = 1.333: whole frame
    assert droid_crop_box(400, 200) == (66, 0, 267, 200)        # tall: full width, round(w / 0.75) high
    with pytest.raises(PreprocessError):
        droid_crop_box(0, 10)


def test_droid_crop_stretches_the_reference_box():
    """crop="droid" on a 16:9 frame = the 1.35:1 centre box resized to the square: it keeps bands the square centre
    crop drops, and keeps the rest of the frame out."""
    h, w = 72, 128  # 16:9; box (0, 15, 72, 97): columns 15..111
    frame = np.zeros((h, w, 3), dtype=np.uint8)
    frame[:, 15:27] = 255   # inside the droid box, outside the square centre crop (columns 28..99)
    frame[:, :12] = 255     # outside both
    droid = preprocess_frame(frame, size=32, crop="droid")
    center = preprocess_frame(frame, size=32, crop="center")
    assert droid[0, 0, :, :3].min() > 1.5        # the band shows at the left edge of the droid crop
    assert center[0, 0, :, :3].max() < -1.5      # ... and not in the square centre crop
    top, left, ch, cw = droid_crop_box(h, w)
    box = frame[top:top + ch, left:left + cw]
    want = preprocess_frame(np.ascontiguousarray(box), size=32, crop="resize")
    assert torch.allclose(droid, want, atol=1e-6)  # exactly the box, stretched
    square = np.random.default_rng(2).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    assert torch.equal(preprocess_frame(square, 32, "droid"), preprocess_frame(square, 32, "resize"))


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

"""FrameEncoder without ROS: video clips go through the backend's ``encode_clip`` and are layer-normed once, by the
one token norm, exactly when the model was loaded with ``normalize=True``; backends that cannot take clips say so."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vjepa_core.checkpoint import load_official
from vjepa_core.inference import BackendError, ShapeMismatchError
from vjepa_core.loading import load_world_model
from vjepa_core.preprocessing import preprocess_clip
from vjepa_perception.frame_encoder import FrameEncoder

ROOT = Path(__file__).resolve().parents[4]
FIXTURE = ROOT / "tests" / "fixtures" / "parity_tiny_a"
SIM_MODEL = ROOT / "models" / "sim_reach"
RNG = np.random.default_rng(3)


def raw_clip_tokens(frames: np.ndarray) -> torch.Tensor:
    """The encoder module's own forward over the clip, no backend involved: [1, N, D]."""
    cfg = json.loads((FIXTURE / "config.json").read_text())
    encoder, _ = load_official(FIXTURE / "checkpoint.pt", cfg["encoder"])
    with torch.no_grad():
        return encoder(preprocess_clip(frames, size=64)[None])


def clip_encoder(normalize: bool) -> FrameEncoder:
    model = load_world_model(FIXTURE / "checkpoint.pt", str(FIXTURE / "config.json"), predictor=False,
                             normalize=normalize)
    return FrameEncoder(model, frames_per_clip=2)


@pytest.mark.parametrize("normalize", [True, False])
def test_clip_tokens_are_normalized_once_when_asked(normalize):
    frames = RNG.integers(0, 256, size=(2, 48, 80, 3), dtype=np.uint8)
    enc = clip_encoder(normalize)
    assert enc.push(frames[0]) is None  # the clip is still filling
    out = enc.push(frames[1])
    raw = raw_clip_tokens(frames)
    want = (F.layer_norm(raw, (raw.shape[-1],)) if normalize else raw)[0].numpy()
    assert out.tokens.shape == (1, 4, 4, 96) and out.tokens.dtype == np.float32
    # same module, same input, same process: equal to float precision (a second layer norm moves values ~5e-7)
    assert np.abs(out.tokens.reshape(16, 96) - want).max() < 1e-7


def test_a_clip_of_two_frame_sizes_raises():
    """What the node counts as an encode failure when a camera changes resolution mid-clip."""
    enc = clip_encoder(True)
    enc.push(RNG.integers(0, 256, size=(64, 64, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="same shape"):
        enc.push(RNG.integers(0, 256, size=(48, 48, 3), dtype=np.uint8))


class _SealedBackend:
    """Stands in for a backend that FrameEncoder must not look into."""

    def __getattr__(self, name):
        raise AssertionError(f"FrameEncoder read backend.{name}: it should ask the world model")


@pytest.mark.parametrize("frames_per_clip", [1, 2])
def test_frame_encoder_asks_the_world_model_not_the_backend(frames_per_clip, monkeypatch):
    """Issue 14: FrameEncoder reached into ``world_model.backend`` for its capability check; it asks the world
    model (``WorldModel.supports_clips``) instead."""
    model = load_world_model(FIXTURE / "checkpoint.pt", str(FIXTURE / "config.json"), predictor=False)
    assert model.world_model.supports_clips  # torch
    monkeypatch.setattr(model.world_model, "backend", _SealedBackend())
    monkeypatch.setattr(type(model.world_model), "supports_clips", property(lambda self: True))
    enc = FrameEncoder(model, frames_per_clip=frames_per_clip)
    assert enc.grid == (1, 4, 4, 96)


def test_torch_backend_checks_clip_shapes():
    backend = clip_encoder(True).model.world_model.backend
    assert backend.supports_clips
    with pytest.raises(ShapeMismatchError, match="tubelet size 2"):
        backend.encode_clip(torch.zeros(1, 3, 3, 64, 64))
    with pytest.raises(ShapeMismatchError, match="patch size 16"):
        backend.encode_clip(torch.zeros(1, 3, 2, 64, 60))
    with pytest.raises(ShapeMismatchError, match=r"\[B, 3, T, H, W\]"):
        backend.encode_clip(torch.zeros(3, 2, 64, 64))


def test_exported_graphs_take_no_clips():
    model = load_world_model(SIM_MODEL / "vjepa2_sim.pt", str(SIM_MODEL / "config.json"), predictor=False,
                             checkpoint_key="target_encoder", backend="onnxruntime", export_dir=SIM_MODEL / "onnx")
    assert not model.world_model.backend.supports_clips
    with pytest.raises(BackendError, match="cannot encode video clips"):
        model.world_model.backend.encode_clip(torch.zeros(1, 3, 2, 96, 96))
    assert not model.world_model.supports_clips  # the world model says so; FrameEncoder asks it
    with pytest.raises(ValueError, match="needs the torch backend: this model's backend encodes single frames only"):
        FrameEncoder(model, frames_per_clip=2)
    assert FrameEncoder(model).push(RNG.integers(0, 256, size=(96, 96, 3), dtype=np.uint8)).tokens.shape == \
        (1, 6, 6, 64)

"""Hugging Face format: load_hf reproduces the reference encoder output of fixtures/hf_tiny."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from vjepa_core.checkpoint import CheckpointError, load_hf


def _check(encoder, fixtures_dir):
    io = np.load(fixtures_dir / "hf_tiny" / "io.npz")
    video = torch.from_numpy(io["pixel_values_videos"]).transpose(1, 2)  # HF [B,T,C,H,W] -> [B,C,T,H,W]
    with torch.no_grad():
        out = encoder(video).numpy()
    assert out.shape == io["encoder_out"].shape
    assert np.abs(out - io["encoder_out"]).max() < 1e-4


def test_load_hf_directory(fixtures_dir):
    enc, cfg = load_hf(fixtures_dir / "hf_tiny")
    assert (cfg.embed_dim, cfg.depth, cfg.num_heads, cfg.img_size, cfg.num_frames) == (96, 2, 4, 64, 4)
    _check(enc, fixtures_dir)


def test_load_hf_file(fixtures_dir):
    enc, _ = load_hf(fixtures_dir / "hf_tiny" / "model.safetensors")
    _check(enc, fixtures_dir)


def test_load_hf_errors(tmp_path, fixtures_dir):
    shutil.copy(fixtures_dir / "hf_tiny" / "model.safetensors", tmp_path / "model.safetensors")
    with pytest.raises(CheckpointError, match="no config.json"):
        load_hf(tmp_path)
    cfg = json.loads((fixtures_dir / "hf_tiny" / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**cfg, "num_hidden_layers": 3}))
    with pytest.raises(CheckpointError, match=r"encoder\.layer\.2\.attention\.query\.weight"):
        load_hf(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    (tmp_path / "model.safetensors").write_text("not safetensors")
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        load_hf(tmp_path)

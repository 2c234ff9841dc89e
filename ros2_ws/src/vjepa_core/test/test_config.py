"""Config contracts: exact fixture keys accepted, unknown keys rejected, presets."""

from __future__ import annotations

import json

import pytest
import torch

from vjepa_core.config import ACPredictorConfig, ConfigError, EncoderConfig, PretrainPredictorConfig
from vjepa_core.models import build_ac_predictor, build_block_causal_mask, build_encoder


@pytest.fixture(scope="module")
def cfg(fixtures_dir):
    return json.loads((fixtures_dir / "parity_tiny_a" / "config.json").read_text())


def test_fixture_keys_accepted(cfg):
    e, p = EncoderConfig(**cfg["encoder"]), ACPredictorConfig(**cfg["predictor"])
    assert e.to_dict() == {**cfg["encoder"]} and p.to_dict() == cfg["predictor"]
    assert EncoderConfig.from_dict(e.to_dict()) == e


def test_unknown_keys_rejected(cfg):
    with pytest.raises(TypeError):
        EncoderConfig(**cfg["encoder"], use_cls_token=True)
    with pytest.raises(ConfigError, match="pred_depth"):
        ACPredictorConfig.from_dict({**cfg["predictor"], "pred_depth": 3, "foo": 1})
    with pytest.raises(ConfigError):
        EncoderConfig.preset("vit_tiny")


def test_invalid_values(cfg):
    with pytest.raises(ConfigError, match="multiple of patch_size"):
        EncoderConfig(**{**cfg["encoder"], "img_size": 70})
    with pytest.raises(ConfigError, match="divisible"):
        EncoderConfig(**{**cfg["encoder"], "num_heads": 5})
    with pytest.raises(ConfigError, match="activation"):
        ACPredictorConfig(**{**cfg["predictor"], "activation": "silu"})


def test_presets():
    g = EncoderConfig.preset("vit_giant")
    assert (g.embed_dim, g.depth, g.num_heads, g.head_dim) == (1408, 40, 22, 64)
    assert EncoderConfig.preset("vit_giant_384").img_size == 384
    assert EncoderConfig.preset("vit_huge").embed_dim == 1280
    ac = ACPredictorConfig.preset("vit_giant")
    assert (ac.embed_dim, ac.predictor_embed_dim, ac.depth, ac.max_frames) == (1408, 1024, 24, 32)
    pp = PretrainPredictorConfig.preset("vit_huge")
    assert (pp.embed_dim, pp.predictor_embed_dim, pp.depth, pp.num_heads) == (1280, 384, 12, 12)
    assert EncoderConfig.preset("vit_large", num_frames=16).num_frames == 16


def test_block_causal_mask():
    m = build_block_causal_mask(3, 4, 2, "cpu")
    assert m.shape == (18, 18) and m.dtype == torch.bool
    assert m[:6, :6].all() and not m[:6, 6:].any() and m[17].all()
    assert m[7, 5] and not m[5, 7]


@pytest.mark.parametrize("frames", [1, 2, 3])
def test_predictor_builds_mask_for_requested_frames(cfg, frames, monkeypatch):
    """The mask is T*(2+h*w) square for the T asked for, never the configured maximum."""
    import vjepa_core.models.ac_predictor as acp

    pred = build_ac_predictor(ACPredictorConfig(**cfg["predictor"]))
    seen = []
    real = acp.build_block_causal_mask
    monkeypatch.setattr(acp, "build_block_causal_mask", lambda *a, **k: seen.append(real(*a, **k)) or seen[-1])
    hw = (64 // 16) ** 2
    with torch.no_grad():
        out = pred(torch.randn(1, frames * hw, 96), torch.randn(1, frames, 7), torch.randn(1, frames, 7))
    assert out.shape == (1, frames * hw, 96)
    assert len(seen) == 1 and seen[0].shape == (frames * (2 + hw),) * 2
    with pytest.raises(ValueError, match="1..4"):
        pred(torch.randn(1, 5 * hw, 96), torch.randn(1, 5, 7), torch.randn(1, 5, 7))


def test_encoder_nonsquare_and_meta_build(cfg):
    enc = build_encoder(EncoderConfig(**cfg["encoder"]))
    with torch.no_grad():
        assert enc(torch.randn(1, 3, 2, 32, 48)).shape == (1, 2 * 3, 96)
    with torch.device("meta"):
        big = build_encoder(EncoderConfig.preset("vit_giant"))
    assert next(big.parameters()).is_meta


def test_encoder_masks_keep_grid_positions(cfg):
    """Context-encoder masking: kept tokens keep their RoPE positions (all kept == unmasked output)."""
    enc = build_encoder(EncoderConfig(**cfg["encoder"]))
    v = torch.randn(2, 3, 4, 64, 64)
    ids = torch.arange(32).repeat(2, 1)
    with torch.no_grad():
        assert torch.allclose(enc(v, masks=ids), enc(v), atol=1e-6)
        assert enc(v, masks=[ids[:, :10], ids[:, 5:15]]).shape == (4, 10, 96)
        assert not torch.allclose(enc(v, masks=ids[:, 16:]), enc(v)[:, 16:], atol=1e-4)  # context changes output


def test_numbers_written_as_strings_by_yaml_are_coerced_or_refused():
    """PyYAML reads ``1e-06`` (no dot) as a string; configs turn it into the number or name the field."""
    from vjepa_core.config import ConfigError, EncoderConfig

    cfg = EncoderConfig.from_dict({"img_size": 64, "embed_dim": 96, "depth": 2, "num_heads": 4,
                                   "layer_norm_eps": "1e-06", "mlp_ratio": "4"})
    assert cfg.layer_norm_eps == 1e-6 and isinstance(cfg.layer_norm_eps, float) and cfg.mlp_ratio == 4.0
    import pytest

    with pytest.raises(ConfigError, match="layer_norm_eps must be a number"):
        EncoderConfig.from_dict({"layer_norm_eps": "tiny"})

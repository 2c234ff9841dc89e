"""Parameter names, shapes and counts equal the reference state dicts of all released architectures."""

from __future__ import annotations

import json

import pytest
import torch

from vjepa_core.config import ACPredictorConfig, EncoderConfig, PretrainPredictorConfig
from vjepa_core.models import build_ac_predictor, build_encoder, build_pretrain_predictor

CASES = [
    ("vit_large_256", lambda: build_encoder(EncoderConfig.preset("vit_large"))),
    ("vit_huge_256", lambda: build_encoder(EncoderConfig.preset("vit_huge"))),
    ("vit_giant_256", lambda: build_encoder(EncoderConfig.preset("vit_giant"))),
    ("vit_giant_384", lambda: build_encoder(EncoderConfig.preset("vit_giant_384"))),
    ("ac_predictor_vit_giant_256", lambda: build_ac_predictor(ACPredictorConfig.preset("vit_giant"))),
]


@pytest.fixture(scope="module")
def manifests(fixtures_dir):
    return json.loads((fixtures_dir / "official_state_dict_manifests.json").read_text())


@pytest.mark.parametrize("name,build", CASES, ids=[c[0] for c in CASES])
def test_matches_manifest(manifests, name, build):
    with torch.device("meta"):
        model = build()
    got = {k: list(v.shape) for k, v in model.state_dict().items()}
    want = manifests[name]["keys"]
    assert sorted(set(want) - set(got)) == [], "missing parameters"
    assert sorted(set(got) - set(want)) == [], "unexpected parameters"
    assert got == want
    assert sum(p.numel() for p in model.parameters()) == manifests[name]["num_params"]


def test_manifest_covers_all_presets(manifests):
    assert set(manifests) == {c[0] for c in CASES}


def test_pretrain_predictor_recipe_shapes():
    """Reference recipe: width 384, depth 12, 12 heads, 10 mask tokens; ~22.08M params for ViT-L."""
    with torch.device("meta"):
        pred = build_pretrain_predictor(PretrainPredictorConfig.preset("vit_large"))
    sd = pred.state_dict()
    assert list(sd["predictor_embed.weight"].shape) == [384, 1024]
    assert list(sd["mask_tokens.9"].shape) == [1, 1, 384]
    assert "mask_tokens.10" not in sd
    assert list(sd["predictor_blocks.11.attn.qkv.weight"].shape) == [1152, 384]
    assert "predictor_blocks.12.norm1.weight" not in sd
    assert list(sd["predictor_blocks.0.mlp.fc1.weight"].shape) == [1536, 384]
    assert list(sd["predictor_proj.weight"].shape) == [1024, 384]
    assert sum(p.numel() for p in pred.parameters()) == 22_086_016

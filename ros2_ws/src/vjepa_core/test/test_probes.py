"""Attentive probes (vjepa_core.probes): parity with the reference on probe_tiny_a to 1e-4, the evaluation
protocols (segments x views, multi-level features, anticipation), probe files (released layout, strict loading,
clear errors) and the released-probe presets."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from vjepa_core.checkpoint import CheckpointError, load_official
from vjepa_core.config import ConfigError, EncoderConfig, PretrainPredictorConfig
from vjepa_core.models import AnticipationClassifier, AttentiveClassifier
from vjepa_core.probes import (
    PROBE_PRESETS,
    ProbeConfig,
    ProbeLoadError,
    anticipate,
    anticipation_features,
    build_probe,
    classify,
    clip_features,
    infer_probe_config,
    load_probe,
    preset_configs,
    read_probe_state,
    save_probe,
)

TOL = 1e-4
CLS_CFG = ProbeConfig(embed_dim=96, num_heads=4, depth=2, num_classes=7)
ANT_CFG = ProbeConfig(embed_dim=96, num_heads=4, depth=2, verb_classes=5, noun_classes=6, action_classes=9)


@pytest.fixture(scope="module")
def tiny(fixtures_dir):
    """Encoder (target_encoder) + pretraining predictor + both probes of probe_tiny_a, and the reference io."""
    d = fixtures_dir / "probe_tiny_a"
    cfg = json.loads((d / "config.json").read_text())
    enc, pred = load_official(d / "encoder.pt", EncoderConfig(**cfg["encoder"]),
                              PretrainPredictorConfig(**cfg["pretrain_predictor"]), encoder_key="target_encoder")
    return {
        "dir": d, "cfg": cfg, "enc": enc, "pred": pred, "io": dict(np.load(d / "io.npz")),
        "cls": load_probe(d / "probe_classification.pt", CLS_CFG),
        "ant": load_probe(d / "probe_anticipation.pt", ANT_CFG),
    }


def _max_err(out: torch.Tensor, ref: np.ndarray) -> float:
    assert tuple(out.shape) == ref.shape
    return float(np.abs(out.detach().float().numpy() - ref).max())


def _clips(io) -> list[list[torch.Tensor]]:
    c = torch.from_numpy(io["clips"])  # [S, V, B, 3, F, H, W]
    return [[c[s, v] for v in range(c.shape[1])] for s in range(c.shape[0])]


# ----------------------------------------------------------------------------------------------- parity

def test_fixture_config_matches_the_contract_configs(tiny):
    c, a = tiny["cfg"]["classification_probe"], tiny["cfg"]["anticipation_probe"]
    assert (CLS_CFG.num_heads, CLS_CFG.depth, CLS_CFG.num_classes) == (c["num_heads"], c["num_probe_blocks"],
                                                                        c["num_classes"])
    assert (ANT_CFG.verb_classes, ANT_CFG.noun_classes, ANT_CFG.action_classes) == (
        a["verb_classes"], a["noun_classes"], a["action_classes"])
    assert (a["num_output_frames"], a["num_steps"]) == (2, 1)


def test_parity_classification_features_logits_probs(tiny):
    io, enc, probe = tiny["io"], tiny["enc"], tiny["cls"]
    feats = clip_features(enc, _clips(io))
    assert _max_err(torch.stack(feats), io["features"]) < TOL
    with torch.no_grad():
        logits = torch.stack([probe(f) for f in feats])
    assert _max_err(logits, io["logits"]) < TOL
    probs = classify(enc, probe, _clips(io))
    assert _max_err(probs, io["probs"]) < TOL
    assert torch.allclose(probs.sum(dim=1), torch.ones(probs.shape[0]), atol=1e-5)


def test_parity_anticipation_features_and_logits(tiny):
    io, a = tiny["io"], tiny["cfg"]["anticipation_probe"]
    video, times = torch.from_numpy(io["video"]), torch.from_numpy(io["anticipation_times"])
    feats = anticipation_features(tiny["enc"], tiny["pred"], video, times, a["frames_per_second"],
                                  num_output_frames=a["num_output_frames"], num_steps=a["num_steps"])
    assert _max_err(feats, io["anticipation_features"]) < TOL
    out = anticipate(tiny["enc"], tiny["pred"], tiny["ant"], video, times, a["frames_per_second"])
    assert sorted(out) == ["action", "noun", "verb"]
    for k in ("verb", "noun", "action"):
        assert _max_err(out[k], io[k]) < TOL, k


def test_anticipation_uses_the_reference_mask_token_index(tiny):
    """The reference wrapper calls the predictor with its default mask_index=1; token 0 gives other outputs."""
    io, fps = tiny["io"], tiny["cfg"]["anticipation_probe"]["frames_per_second"]
    video, times = torch.from_numpy(io["video"]), torch.from_numpy(io["anticipation_times"])
    wrong = anticipation_features(tiny["enc"], tiny["pred"], video, times, fps, mask_index=0)
    assert _max_err(wrong, io["anticipation_features"]) > 1e-2


def test_anticipation_times_pick_the_future_tubelet(tiny):
    """Sample 0 (1.0 s at 4 fps, tubelet 2) targets latent frame N/hw + 2, sample 1 (0.5 s) frame N/hw + 1:
    predicting sample 1 at 1.0 s must differ from its 0.5 s prediction; a scalar time broadcasts."""
    io, fps = tiny["io"], tiny["cfg"]["anticipation_probe"]["frames_per_second"]
    video = torch.from_numpy(io["video"])
    n = tiny["enc"](video[:1]).shape[1]
    at_half = anticipation_features(tiny["enc"], tiny["pred"], video, 0.5, fps)
    at_one = anticipation_features(tiny["enc"], tiny["pred"], video, [1.0, 1.0], fps)
    assert _max_err(at_half[1:], io["anticipation_features"][1:]) < TOL
    assert _max_err(at_one[:1], io["anticipation_features"][:1]) < TOL
    assert float((at_one[1, n:] - at_half[1, n:]).abs().max()) > 1e-3
    assert torch.equal(at_one[:, :n], at_half[:, :n])  # the observed clip's tokens do not depend on t
    assert not at_one.requires_grad


# ------------------------------------------------------------------------------------ protocol / shapes

def test_segments_and_views_protocol(tiny):
    """S=3 segments x V=2 views: each clip encoded separately, segments concatenated along time per view,
    softmax averaged over views; the encoder batch size does not change the result."""
    enc, probe = tiny["enc"], tiny["cls"]
    g = torch.Generator().manual_seed(0)
    clips = [[torch.randn(2, 3, 4, 64, 64, generator=g) for _ in range(2)] for _ in range(3)]
    feats = clip_features(enc, clips)
    assert len(feats) == 2 and feats[0].shape == (2, 3 * 2 * 16, 96)
    with torch.no_grad():
        for v in range(2):
            manual = torch.cat([enc(clips[s][v]).reshape(2, 2, 16, 96) for s in range(3)], dim=1).flatten(1, 2)
            assert float((feats[v] - manual).abs().max()) < 1e-5
        expected = sum(torch.softmax(probe(f), dim=1) for f in feats) / 2
    probs = classify(enc, probe, clips)
    assert probs.shape == (2, 7) and float((probs - expected).abs().max()) < 1e-6
    assert float((classify(enc, probe, clips, batch_size=5) - probs).abs().max()) < 1e-5
    # one tensor = one segment, one view
    single = classify(enc, probe, clips[0][0])
    with torch.no_grad():
        assert float((single - torch.softmax(probe(enc(clips[0][0])), dim=1)).abs().max()) < 1e-6


def test_multilevel_features_concatenate_layers_along_tokens(tiny):
    """Diving-48 probes read several encoder layers: tokens of every listed layer (normalised), on the token axis."""
    enc, probe = tiny["enc"], tiny["cls"]
    x = torch.randn(1, 3, 4, 64, 64, generator=torch.Generator().manual_seed(1))
    feats = clip_features(enc, [[x], [x]], out_layers=[0, 1])
    assert feats[0].shape == (1, 2 * 2 * 32, 96)
    with torch.no_grad():
        layers = torch.cat(enc(x, out_layers=[0, 1]), dim=1)  # [1, 64, 96]
        one_segment = clip_features(enc, [[x]], out_layers=[0, 1])[0]
        # the reference reshape reorders tokens; the probe is permutation invariant, so logits agree
        assert float((probe(one_segment) - probe(layers)).abs().max()) < 1e-5
    assert torch.equal(torch.sort(one_segment.flatten())[0], torch.sort(layers.flatten())[0])
    with pytest.raises(ValueError, match="out_layers"):
        clip_features(enc, [[x]], out_layers=[0, 5])


def test_probe_ignores_token_order():
    probe = build_probe(CLS_CFG)
    x = torch.randn(2, 20, 96)
    with torch.no_grad():
        assert float((probe(x) - probe(x[:, torch.randperm(20)])).abs().max()) < 1e-5


def test_bfloat16_encoder_feeds_float32_predictor_and_probe(tiny):
    enc16 = copy.deepcopy(tiny["enc"]).to(torch.bfloat16)
    clips = _clips(tiny["io"])
    probs = classify(enc16, tiny["cls"], clips)
    assert probs.dtype == torch.float32
    assert float((probs - torch.from_numpy(tiny["io"]["probs"])).abs().max()) < 0.05
    io, fps = tiny["io"], tiny["cfg"]["anticipation_probe"]["frames_per_second"]
    out = anticipate(enc16, tiny["pred"], tiny["ant"], torch.from_numpy(io["video"]),
                     torch.from_numpy(io["anticipation_times"]), fps)
    assert out["verb"].dtype == torch.float32 and float((out["verb"] - torch.from_numpy(io["verb"])).abs().max()) < 0.1


def test_bad_inputs_are_refused(tiny):
    enc, pred, cls, ant = tiny["enc"], tiny["pred"], tiny["cls"], tiny["ant"]
    x = torch.zeros(1, 3, 4, 64, 64)
    with pytest.raises(ValueError, match="same number of views"):
        clip_features(enc, [[x, x], [x]])
    with pytest.raises(ValueError, match="one shape"):
        clip_features(enc, [[x], [torch.zeros(1, 3, 4, 32, 32)]])
    with pytest.raises(ValueError, match="tubelet"):
        clip_features(enc, [[torch.zeros(1, 3, 3, 64, 64)]])
    with pytest.raises(ValueError, match=r"\[B, 3, F, H, W\]"):
        clip_features(enc, [[torch.zeros(1, 4, 64, 64)]])
    with pytest.raises(ValueError, match="classification probe"):
        classify(enc, ant, [[x]])
    with pytest.raises(ValueError, match="anticipation probe"):
        anticipate(enc, pred, cls, x, 1.0, 4)
    with pytest.raises(ValueError, match=">= 0"):
        anticipation_features(enc, pred, x, -1.0, 4)
    with pytest.raises(ValueError, match=r"\[B\]"):
        anticipation_features(enc, pred, x, [1.0, 1.0], 4)
    with pytest.raises(ValueError, match="token grid"):
        anticipation_features(enc, pred, torch.zeros(1, 3, 4, 32, 32), 1.0, 4)
    # predictor num_frames 16 -> 8 latent frames; the 4-frame clip holds 2, so 3 s at 4 fps (6 tubelets) is past it
    anticipation_features(enc, pred, x, 2.5, 4)
    with pytest.raises(ValueError, match="num_frames"):
        anticipation_features(enc, pred, x, 3.0, 4)
    wide = build_probe(ProbeConfig(embed_dim=64, num_heads=4, depth=1, num_classes=3))
    with pytest.raises(ValueError, match="another encoder"):
        classify(enc, wide, [[x]])


# --------------------------------------------------------------------------------------------- probe files

def test_released_layout_and_parameter_names(tiny):
    """Strict names: the fixture's keys (after stripping module.) are exactly our probes' state dict keys."""
    for name, probe in (("probe_classification.pt", tiny["cls"]), ("probe_anticipation.pt", tiny["ant"])):
        raw = torch.load(tiny["dir"] / name, weights_only=True)
        assert {"classifiers", "opt", "epoch", "batch_size", "world_size"} <= set(raw)
        assert all(k.startswith("module.") for k in raw["classifiers"][0])
        assert set(read_probe_state(tiny["dir"] / name)) == set(probe.state_dict())
    assert isinstance(tiny["cls"], AttentiveClassifier) and not tiny["cls"].training
    assert isinstance(tiny["ant"], AnticipationClassifier)
    assert tiny["cls"].pooler.cross_attention_block.norm1.eps == 1e-5  # torch default, not the encoder's 1e-6


def test_infer_probe_config(tiny):
    assert infer_probe_config(tiny["dir"] / "probe_classification.pt", num_heads=4) == CLS_CFG
    assert infer_probe_config(tiny["dir"] / "probe_anticipation.pt", num_heads=4) == ANT_CFG


def test_truncated_file(tiny, tmp_path):
    src = (tiny["dir"] / "probe_classification.pt").read_bytes()
    bad = tmp_path / "truncated.pt"
    bad.write_bytes(src[: len(src) // 2])
    with pytest.raises(ProbeLoadError, match="not a readable torch checkpoint") as ei:
        load_probe(bad, CLS_CFG)
    assert isinstance(ei.value, ValueError) and isinstance(ei.value, CheckpointError)
    text = tmp_path / "page.pt"
    text.write_text("<html>404</html>")
    with pytest.raises(ProbeLoadError, match="not a readable torch checkpoint"):
        load_probe(text, CLS_CFG)
    with pytest.raises(ProbeLoadError, match="does not exist"):
        load_probe(tmp_path / "absent.pt", CLS_CFG)


def test_wrong_config(tiny):
    cls_file, ant_file = tiny["dir"] / "probe_classification.pt", tiny["dir"] / "probe_anticipation.pt"
    with pytest.raises(ProbeLoadError, match="holds: classification probe.*describes: anticipation probe"):
        load_probe(cls_file, ANT_CFG)
    with pytest.raises(ProbeLoadError, match="holds: anticipation probe.*describes: classification probe"):
        load_probe(ant_file, CLS_CFG)
    with pytest.raises(ProbeLoadError, match=r"mis-shaped keys: linear\.bias: checkpoint \[7\] vs model \[174\]"):
        load_probe(cls_file, ProbeConfig(embed_dim=96, num_heads=4, depth=2, num_classes=174))
    with pytest.raises(ProbeLoadError, match=r"missing keys: pooler\.blocks\.1\.") as ei:
        load_probe(cls_file, ProbeConfig(embed_dim=96, num_heads=4, depth=3, num_classes=7))
    assert "file holds: classification probe, embed_dim=96, depth=2, num_classes=7" in str(ei.value)
    with pytest.raises(ProbeLoadError, match=r"unexpected keys: pooler\.blocks\.0\."):
        load_probe(cls_file, ProbeConfig(embed_dim=96, num_heads=4, depth=1, num_classes=7))
    with pytest.raises(ProbeLoadError, match=r"configured: classification probe, embed_dim=128(.|\n)*file holds: "
                       r"classification probe, embed_dim=96(.|\n)*linear\.weight: checkpoint \[7, 96\] vs model "
                       r"\[7, 128\](.|\n)*\(26 in all\)"):
        load_probe(cls_file, ProbeConfig(embed_dim=128, num_heads=4, depth=2, num_classes=7))
    with pytest.raises(ProbeLoadError, match="invalid probe config"):
        load_probe(cls_file, {"embed_dim": 96, "heads": 4})
    with pytest.raises(ProbeLoadError, match="carries no probe config"):
        load_probe(cls_file, None)


def _rewrite(src, dst, edit) -> None:
    raw = torch.load(src, weights_only=True)
    edit(raw)
    torch.save(raw, dst)


def test_missing_and_unexpected_keys(tiny, tmp_path):
    src = tiny["dir"] / "probe_classification.pt"
    missing = tmp_path / "missing.pt"
    _rewrite(src, missing, lambda r: r["classifiers"][0].pop("module.pooler.query_tokens"))
    with pytest.raises(ProbeLoadError, match=r"missing keys: pooler\.query_tokens"):
        load_probe(missing, CLS_CFG)
    extra = tmp_path / "extra.pt"
    _rewrite(src, extra, lambda r: r["classifiers"][0].update({"module.pooler.extra": torch.zeros(1)}))
    with pytest.raises(ProbeLoadError, match=r"unexpected keys: pooler\.extra"):
        load_probe(extra, CLS_CFG)
    headless = tmp_path / "headless.pt"
    _rewrite(src, headless, lambda r: [r["classifiers"][0].pop(k) for k in ("module.linear.weight",
                                                                             "module.linear.bias")])
    with pytest.raises(ProbeLoadError, match="no classifier head"):
        load_probe(headless, CLS_CFG)


def test_wrong_file_kinds(tiny, tmp_path):
    with pytest.raises(ProbeLoadError, match="not a probe file.*load_official"):
        load_probe(tiny["dir"] / "encoder.pt", CLS_CFG)
    bare = tmp_path / "bare.pt"
    torch.save(torch.load(tiny["dir"] / "probe_classification.pt", weights_only=True)["classifiers"][0], bare)
    with pytest.raises(ProbeLoadError, match="bare probe state dict"):
        load_probe(bare, CLS_CFG)
    empty = tmp_path / "empty.pt"
    torch.save({"classifiers": [], "epoch": 0}, empty)
    with pytest.raises(ProbeLoadError, match="non-empty list"):
        load_probe(empty, CLS_CFG)
    with pytest.raises(ProbeLoadError, match="index 3 out of range"):
        load_probe(tiny["dir"] / "probe_classification.pt", CLS_CFG, index=3)
    not_sd = tmp_path / "not_sd.pt"
    torch.save({"classifiers": [{"module.linear.weight": "text"}]}, not_sd)
    with pytest.raises(ProbeLoadError, match="not a state dict of tensors"):
        load_probe(not_sd, CLS_CFG)


class _Payload:
    """A non-tensor object: weights_only=True must refuse to unpickle it."""


def test_pickled_objects_are_refused(tiny, tmp_path):
    raw = torch.load(tiny["dir"] / "probe_classification.pt", weights_only=True)
    raw["payload"] = _Payload()
    evil = tmp_path / "evil.pt"
    torch.save(raw, evil)
    with pytest.raises(ProbeLoadError, match="weights_only=True"):
        load_probe(evil, CLS_CFG)


def test_save_probe_round_trip(tmp_path):
    for cfg in (CLS_CFG, ANT_CFG):
        torch.manual_seed(0)
        probes = [build_probe(cfg), build_probe(cfg)]
        path = save_probe(tmp_path / f"{cfg.kind}.pt", probes, epoch=3, batch_size=8)
        raw = torch.load(path, weights_only=True)
        assert len(raw["classifiers"]) == 2 and raw["epoch"] == 3 and raw["world_size"] == 1
        assert all(k.startswith("module.") for k in raw["classifiers"][0])
        x = torch.randn(2, 10, 96)
        with torch.no_grad():
            for index in (0, 1):
                for loaded in (load_probe(path, cfg, index=index), load_probe(path, None, index=index)):
                    a, b = probes[index](x), loaded(x)
                    a, b = (a, b) if isinstance(a, dict) else ({"y": a}, {"y": b})
                    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="overwrite"):
        save_probe(tmp_path / "x.pt", build_probe(CLS_CFG), extra={"epoch": 1})


def test_reference_init_rescales_blocks():
    """Reference init: block i's attn.proj / mlp.fc2 divided by sqrt(2 i); the cross block's fc2 like the last."""
    torch.manual_seed(0)
    probe = build_probe(ProbeConfig(embed_dim=256, num_heads=4, depth=4, num_classes=3)).requires_grad_(False)
    stds = [float(b.mlp.fc2.weight.std()) for b in probe.pooler.blocks]
    for i, s in enumerate(stds, start=1):
        assert abs(s * (2 * i) ** 0.5 - 0.02) < 0.002
    assert abs(float(probe.pooler.cross_attention_block.mlp.fc2.weight.std()) * 6 ** 0.5 - 0.02) < 0.002
    assert float(probe.pooler.query_tokens.abs().max()) > 0


# ------------------------------------------------------------------------------------------------- config

def test_probe_config_validation():
    with pytest.raises(ConfigError, match="not both"):
        ProbeConfig(embed_dim=96, num_heads=4, num_classes=3, action_classes=2, verb_classes=1, noun_classes=1)
    with pytest.raises(ConfigError, match="set num_classes"):
        ProbeConfig(embed_dim=96, num_heads=4)
    with pytest.raises(ConfigError, match="multiple of"):
        ProbeConfig(embed_dim=96, num_heads=5, num_classes=3)
    with pytest.raises(ConfigError, match="depth"):
        ProbeConfig(embed_dim=96, num_heads=4, depth=0, num_classes=3)
    with pytest.raises(ConfigError, match="action-only"):
        ProbeConfig(embed_dim=96, num_heads=4, verb_classes=0, noun_classes=5, action_classes=3)
    with pytest.raises(ConfigError, match="unknown keys"):
        ProbeConfig.from_dict({"embed_dim": 96, "num_probe_blocks": 4, "num_classes": 3})
    assert ProbeConfig.from_dict(ANT_CFG.to_dict()) == ANT_CFG


def test_action_only_probe():
    cfg = ProbeConfig(embed_dim=96, num_heads=4, depth=2, verb_classes=0, noun_classes=0, action_classes=9)
    probe = build_probe(cfg)
    assert probe.pooler.query_tokens.shape == (1, 1, 96)
    assert not any(k.startswith(("verb", "noun")) for k in probe.state_dict())
    with torch.no_grad():
        out = probe(torch.randn(2, 10, 96))
    assert list(out) == ["action"] and out["action"].shape == (2, 9)


# ------------------------------------------------------------------------------------------------ presets

def test_presets_name_the_released_files_and_settings():
    assert sorted(PROBE_PRESETS) == sorted(["ssv2-vitl-16x2x3.pt", "ssv2-vitg-384-64x2x3.pt", "diving48-vitl-256.pt",
                                            "diving48-vitg-384-32x4x3.pt", "ek100-vitl-256.pt", "ek100-vitg-384.pt"])
    ssv2 = preset_configs("ssv2-vitl-16x2x3.pt")
    assert ssv2.probe == ProbeConfig(embed_dim=1024, num_heads=16, depth=4, num_classes=174)
    assert (ssv2.encoder.embed_dim, ssv2.encoder.grid_hw, ssv2.encoder.num_frames) == (1024, (16, 16), 16)
    assert (ssv2.settings["num_segments"], ssv2.settings["num_views_per_segment"]) == (2, 3)
    g = preset_configs("/some/dir/ssv2-vitg-384-64x2x3.pt")
    assert (g.encoder.embed_dim, g.encoder.num_heads, g.encoder.grid_hw, g.encoder.num_frames) == (
        1408, 22, (24, 24), 64)
    for name in ("diving48-vitl-256.pt", "diving48-vitg-384-32x4x3.pt"):
        p = preset_configs(name)
        assert p.probe.num_classes == 48 and max(p.settings["out_layers"]) == p.encoder.depth - 1
        assert (p.settings["num_segments"], p.settings["num_views_per_segment"], p.encoder.num_frames) == (4, 3, 32)
    for name in ("ek100-vitl-256.pt", "ek100-vitg-384.pt"):
        with pytest.raises(ConfigError, match="probe_path"):
            preset_configs(name)
    with pytest.raises(ConfigError, match="unknown probe preset"):
        preset_configs("kinetics.pt")


def test_preset_probe_builds_with_the_released_parameter_shapes():
    """On the meta device (no memory): a ViT-L SSv2 probe is 1024 wide with 3 self-attention blocks."""
    with torch.device("meta"):
        probe = build_probe(preset_configs("ssv2-vitl-16x2x3.pt").probe, init=False)
    sd = probe.state_dict()
    assert sd["pooler.blocks.2.attn.qkv.weight"].shape == (3072, 1024) and "pooler.blocks.3.norm1.weight" not in sd
    assert sd["linear.weight"].shape == (174, 1024)


def test_preset_checks_the_probe_file(tiny, tmp_path):
    """A preset given the wrong file says what the file holds; the EK100 preset reads its classes from the file."""
    with pytest.raises(ProbeLoadError, match="holds: classification probe, embed_dim=96"):
        preset_configs("ssv2-vitl-16x2x3.pt", tiny["dir"] / "probe_classification.pt")
    with pytest.raises(ProbeLoadError, match="holds: anticipation probe, embed_dim=96.*verb/noun/action classes=5/6/9"):
        preset_configs("ek100-vitl-256.pt", tiny["dir"] / "probe_anticipation.pt")


def test_ek100_preset_predictor_reaches_one_second_ahead():
    """EK100: 32 frames at 8 fps (16 tubelets) + 1 s (4 tubelets) + 1 predicted tubelet fit the 64-frame predictor."""
    s = PROBE_PRESETS["ek100-vitg-384.pt"]
    pred = PretrainPredictorConfig.preset(s["encoder_preset"], img_size=s["resolution"], **s["predictor"])
    latent_frames = pred.num_frames // pred.tubelet_size
    needed = s["frames_per_clip"] // 2 + int(s["anticipation_time"] * s["frames_per_second"] / 2) + 1
    assert needed <= latent_frames and pred.grid_hw == (24, 24) and pred.embed_dim == 1408

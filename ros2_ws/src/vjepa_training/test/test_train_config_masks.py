"""Training configs (strict keys), multiblock 3D masks (block statistics) and schedules."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from vjepa_training.train.config import (
    MaskBlockConfig,
    OptimConfig,
    PosttrainConfig,
    PretrainConfig,
    TrainConfigError,
    from_dict,
    load_config,
    save_resolved,
    to_dict,
)
from vjepa_training.train.masks import MultiBlockMasks
from vjepa_training.train.schedules import ema_momentum, learning_rate, weight_decay
from vjepa_training.train_cli import main as cli

CONFIGS = Path(__file__).resolve().parents[4] / "config" / "train"


def test_shipped_configs_load():
    for p in sorted(CONFIGS.glob("*.yaml")):
        cls = PosttrainConfig if "posttrain" in p.name else PretrainConfig
        cfg = load_config(p, cls)
        assert cfg.optim.total_steps >= 1, p


def test_recipe_configs_match_paper():
    cfg = load_config(CONFIGS / "pretrain_vitg_256.yaml", PretrainConfig)
    assert [(m.num_blocks, m.spatial_scale) for m in cfg.masks] == [(8, [0.15, 0.15]), (2, [0.7, 0.7])]
    assert cfg.optim.lr == 5.25e-4 and cfg.optim.warmup_steps == 12000 and cfg.optim.total_steps == 240000
    assert cfg.optim.ema == [0.99925, 0.99925]
    ac = load_config(CONFIGS / "posttrain_ac_vitg_256.yaml", PosttrainConfig)
    assert ac.optim.lr == 4.25e-4 and ac.optim.total_steps == 94500 and ac.auto_steps == 2
    assert ac.model.predictor_config().depth == 24


@pytest.mark.parametrize("override, fragment", [
    ("optim.lrr=1e-3", "optim: unknown keys ['lrr']"),
    ("bogus=1", "unknown keys ['bogus']"),
    ("model.encoder.embed_dimm=64", "embed_dimm"),
    ("masks=[{num_blocks: 8, scale: 0.1}]", "unknown keys ['scale']"),
    ("data.sources=[{kind: shards, path: x, weigth: 2}]", "weigth"),
    ("optim.total_steps=abc", "expected an integer"),
])
def test_unknown_or_bad_keys_are_errors(override, fragment):
    with pytest.raises(TrainConfigError) as e:
        load_config(CONFIGS / "pretrain_tiny.yaml", PretrainConfig, [override])
    assert fragment in str(e.value)


def test_cli_rejects_unknown_key(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text((CONFIGS / "pretrain_tiny.yaml").read_text() + "\nlearning_rate: 0.1\n")
    assert cli(["pretrain", "--config", str(bad), "--out", str(tmp_path / "run")]) == 2
    assert "learning_rate" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_clip_length_is_one_setting():
    """Pretraining's clip length is data.num_frames only: the encoder (and the predictor and checkpoint meta)
    follows it, a conflicting model.encoder.num_frames is refused, and a resolved config reloads unchanged."""
    cfg = load_config(CONFIGS / "pretrain_tiny.yaml", PretrainConfig, ["data.num_frames=8"])
    assert cfg.model.encoder_config().num_frames == 8 and cfg.model.predictor_config().num_frames == 8
    for name in ("pretrain_tiny", "pretrain_vitl_256", "pretrain_vitg_256", "cooldown_vitg_384_64f", "sim_pretrain"):
        c = load_config(CONFIGS / f"{name}.yaml", PretrainConfig)
        assert c.model.encoder_config().num_frames == c.data.num_frames, name
    with pytest.raises(TrainConfigError, match="model.encoder.num_frames 4 != data.num_frames 8"):
        load_config(CONFIGS / "pretrain_tiny.yaml", PretrainConfig, ["data.num_frames=8", "model.encoder.num_frames=4"])
    assert from_dict(PretrainConfig, to_dict(cfg)) == cfg


def test_resolved_config_round_trips(tmp_path):
    cfg = load_config(CONFIGS / "posttrain_tiny.yaml", PosttrainConfig, ["optim.lr=3e-4"])
    p = save_resolved(cfg, tmp_path)
    again = load_config(p, PosttrainConfig)
    assert again == cfg and again.optim.lr == 3e-4


def test_paper_masks_block_statistics():
    grid = (8, 16, 16)  # 16 frames at 256 px: 8 x 16 x 16 tokens
    masks = MultiBlockMasks([MaskBlockConfig(8, [0.15, 0.15]), MaskBlockConfig(2, [0.7, 0.7])], grid, seed=3)
    n_tokens = 8 * 16 * 16
    for step in range(20):
        blocks = masks.sample_blocks(step, 16)
        for bs, n_blocks, scale in zip(blocks, (8, 2), (0.15, 0.7)):
            t, h, w = bs.size
            assert bs.corners.shape == (16, n_blocks, 3)
            assert t == 8 and (bs.corners[..., 0] == 0).all()  # full temporal extent
            keep = int(256 * scale)
            assert abs(h * w - keep) <= h + w, (h, w, keep)  # rounding of sqrt(keep*ar)
            assert 0.75 * 0.8 <= h / w <= 1.5 * 1.25, (h, w)  # aspect ratio 0.75-1.5 up to rounding
            m = bs.masked  # [B, T, H, W]
            assert (m == m[:, :1]).all()  # tube masks: same spatial mask in every frame
            area = m[:, 0].flatten(1).sum(1)
            assert (area >= h * w).all() and (area <= n_blocks * h * w).all()
            assert (~m).flatten(1).any(1).all()  # context never empty
    ms = masks.sample(5, 16)
    assert len(ms.enc) == len(ms.pred) == 2
    for enc, pred in zip(ms.enc, ms.pred):
        assert enc.shape[0] == pred.shape[0] == 16
        for e, p in zip(enc, pred):
            assert len(set(e.tolist()) & set(p.tolist())) == 0  # context and targets disjoint
            assert torch.all(e[1:] > e[:-1]) and torch.all(p[1:] > p[:-1])  # ascending (grid order)
        assert enc.shape[1] + pred.shape[1] <= n_tokens
    # Deterministic per step, and a rank's rows equal the same rows of the full global batch's blocks.
    a, b = masks.sample(7, 16, slice(4, 8)), masks.sample(7, 16, slice(4, 8))
    assert all(torch.equal(x, y) for x, y in zip(a.enc + a.pred, b.enc + b.pred))
    full = masks.sample_blocks(7, 16)[0].masked.flatten(1)[4:8]
    k = int(full.sum(1).min())
    assert torch.equal(a.pred[0], torch.stack([torch.nonzero(r).flatten()[:k] for r in full]))


def test_schedules_warmup_constant_cooldown():
    cfg = from_dict(OptimConfig, {"total_steps": 100, "warmup_steps": 10, "cooldown_steps": 20, "start_lr": 1e-4,
                                  "lr": 1e-3, "final_lr": 1e-6, "weight_decay": 0.04, "final_weight_decay": 0.4,
                                  "ema": [0.99, 1.0]})
    assert learning_rate(cfg, 0) == pytest.approx(1e-4 + 0.9e-3 / 10)
    assert learning_rate(cfg, 9) == pytest.approx(1e-3)
    assert learning_rate(cfg, 50) == pytest.approx(1e-3)
    assert learning_rate(cfg, 79) == pytest.approx(1e-3)
    assert learning_rate(cfg, 99) == pytest.approx(1e-6)
    assert learning_rate(cfg, 89) == pytest.approx(1e-3 + (1e-6 - 1e-3) * 0.5)
    assert weight_decay(cfg, 0) == pytest.approx(0.04) and weight_decay(cfg, 100) == pytest.approx(0.4)
    assert ema_momentum(cfg, 50) == pytest.approx(0.995)
    cos = from_dict(OptimConfig, {"total_steps": 100, "warmup_steps": 0, "lr_schedule": "cosine", "lr": 1.0,
                                  "final_lr": 0.0})
    assert learning_rate(cos, 50) == pytest.approx(0.5) and math.isclose(learning_rate(cos, 100), 0.0, abs_tol=1e-12)
    with pytest.raises(TrainConfigError):
        from_dict(OptimConfig, {"total_steps": 10, "warmup_steps": 8, "cooldown_steps": 5})


def test_activation_checkpointing_keeps_names_and_gradients():
    from vjepa_core.models import build_encoder
    from vjepa_training.train.common import CheckpointedBlock, enable_activation_checkpointing

    cfg = {"img_size": 32, "patch_size": 16, "num_frames": 2, "embed_dim": 32, "depth": 2, "num_heads": 2}
    torch.manual_seed(0)
    a = build_encoder(cfg).train()
    b = build_encoder(cfg).train()
    b.load_state_dict(a.state_dict())
    assert enable_activation_checkpointing(b) == 2 and isinstance(b.blocks[0], CheckpointedBlock)
    assert list(a.state_dict()) == list(b.state_dict())
    x = torch.randn(2, 3, 2, 32, 32)
    a(x).square().mean().backward()
    b(x).square().mean().backward()
    for (n, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-6), n

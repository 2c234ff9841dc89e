"""V-JEPA 2-AC post-training on CPU: cached latents from the data package, loss, rollout semantics, DDP."""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vjepa_core.checkpoint import load_official, save
from vjepa_core.config import EncoderConfig
from vjepa_core.models import build_ac_predictor, build_encoder
from vjepa_training.data.latents import encode_dataset, encoder_from_checkpoint
from vjepa_training.dataset_cli import main as dataset_cli
from vjepa_training.train.config import PosttrainConfig, load_config
from vjepa_training.train.posttrain import ACNet, resolve_latents
from vjepa_training.train.posttrain import main as posttrain
from vjepa_training.train.synthetic import write_shard_dataset
from vjepa_training.train_cli import main as train_cli

CONFIG = Path(__file__).resolve().parents[4] / "config" / "train" / "posttrain_tiny.yaml"
ENC = {"img_size": 64, "patch_size": 16, "num_frames": 4, "tubelet_size": 2, "embed_dim": 48, "depth": 2,
       "num_heads": 3, "mlp_ratio": 4.0}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A shard dataset (data package's ShardWriter), a frozen tiny encoder checkpoint, and its latent cache."""
    root = tmp_path_factory.mktemp("posttrain")
    data = write_shard_dataset(root / "shards", n_episodes=4, n_frames=20, size=64)
    torch.manual_seed(0)
    enc_ckpt = save(root / "encoder.pt", build_encoder(EncoderConfig.from_dict(ENC)))
    fn, ident = encoder_from_checkpoint(enc_ckpt, ENC)
    assert ident.encoder_key == "target_encoder" and ident.image_size == 64
    encode_dataset(data, fn, ident, batch_size=16, progress=False)
    return data, enc_ckpt


def overrides(data: Path, enc: Path, out: Path, *extra: str) -> list[str]:
    return [f"data.sources=[{{kind: shards, path: {data}}}]", f"model.encoder_checkpoint={enc}", f"out={out}",
            f"model.encoder={ENC}", "threads=1", "log.progress_bar=false", "log.tensorboard=false", *extra]


def losses(run: Path) -> list[float]:
    with open(run / "metrics.csv", newline="") as f:
        return [float(r["loss"]) for r in csv.DictReader(f)]


def test_posttrain_on_cached_latents_learns(setup, tmp_path):
    data, enc = setup
    run = tmp_path / "run"
    cfg = load_config(CONFIG, PosttrainConfig, overrides(
        data, enc, run, "max_steps=40", "optim.total_steps=40", "optim.warmup_steps=4", "optim.cooldown_steps=0",
        "optim.lr=2e-3", "log.every_steps=4", "checkpoint.every_steps=20"))
    assert resolve_latents(cfg, str(data)) is not None  # the cache of this encoder is found and used
    summary = posttrain(cfg)
    ls = losses(run)
    assert len(ls) == 10 and ls[-1] < 0.5 * ls[0], ls
    # Released AC layout: encoder (the frozen one) + predictor, loadable strictly.
    enc_m, pred = load_official(run / "latest.pt", ENC, cfg.model.predictor_config())
    task = summary["task"]
    tok = torch.randn(2, 3 * 16, 48)
    act, st = torch.randn(2, 3, 7), torch.randn(2, 3, 7)
    task.trainable.predictor.eval()
    with torch.no_grad():
        assert torch.equal(pred(tok, act, st), task.trainable.predictor(tok, act, st))
    frozen, _ = load_official(enc, ENC)
    assert all(torch.equal(a, b) for a, b in zip(enc_m.state_dict().values(), frozen.state_dict().values()))
    # The same run encoding frames on the fly gives the same first losses (cache is float16).
    live = tmp_path / "live"
    posttrain(load_config(CONFIG, PosttrainConfig, overrides(
        data, enc, live, "max_steps=8", "optim.total_steps=40", "optim.warmup_steps=4", "optim.cooldown_steps=0",
        "optim.lr=2e-3", "log.every_steps=4", "data.latents=null")))
    assert losses(live) == pytest.approx(ls[:2], rel=2e-2)


def test_latent_cache_keyed_by_encoder_section(tmp_path, caplog, capsys):
    """A cache of the online ``encoder`` section is never used for a run on ``target_encoder`` (the mix-up
    that trained on the wrong encoder's latents); ``vjepa-dataset encode`` defaults to target_encoder."""
    data = write_shard_dataset(tmp_path / "shards", n_episodes=2, n_frames=12, size=64)
    torch.manual_seed(1)
    online = build_encoder(EncoderConfig.from_dict(ENC))
    torch.manual_seed(2)
    ema = build_encoder(EncoderConfig.from_dict(ENC))
    ckpt = save(tmp_path / "two_sections.pt", online, target_encoder=ema)
    enc_json = tmp_path / "encoder.json"
    enc_json.write_text(json.dumps({"encoder": ENC}))
    encode = ["encode", str(data), "--checkpoint", str(ckpt), "--encoder", str(enc_json), "--quiet"]
    assert dataset_cli([*encode, "--encoder-key", "encoder"]) == 0
    (wrong,) = [p.name for p in (data / "latents").iterdir()]
    common = ["optim.total_steps=40", "optim.warmup_steps=4", "optim.cooldown_steps=0", "log.every_steps=1",
              "max_steps=1"]
    cfg = load_config(CONFIG, PosttrainConfig, overrides(data, ckpt, tmp_path / "auto", *common))
    assert cfg.model.encoder_key == "target_encoder"
    with caplog.at_level(logging.WARNING, logger="vjepa_train"):
        assert resolve_latents(cfg, str(data)) is None  # refused, not silently used
    assert f"{wrong}: checkpoint section 'encoder', not 'target_encoder'" in caplog.text
    from vjepa_training.data.latents import read_cache_key

    assert read_cache_key(data / "latents" / wrong).encoder_key == "encoder"
    # Naming the wrong cache explicitly is an error before anything is written.
    run = tmp_path / "named"
    sets = [a for ov in overrides(data, ckpt, run, *common, f"data.latents={wrong}") for a in ("--set", ov)]
    capsys.readouterr()
    assert train_cli(["posttrain", "--config", str(CONFIG), *sets]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if "error:" in ln]
    assert len(err) == 1 and f"latent cache '{wrong}'" in err[0] and "checkpoint section 'encoder'" in err[0]
    assert not run.exists()
    # The default encode makes the target_encoder cache, and `auto` picks it.
    assert dataset_cli(encode) == 0
    picked = resolve_latents(cfg, str(data))
    assert picked is not None and picked != wrong
    assert read_cache_key(data / "latents" / picked).encoder_key == "target_encoder"
    # Step-1 loss: from the cache == encoding target_encoder frames on the fly; the online section's differs.
    posttrain(cfg)
    live = tmp_path / "live"
    posttrain(load_config(CONFIG, PosttrainConfig, overrides(data, ckpt, live, *common, "data.latents=null")))
    other = tmp_path / "other"
    posttrain(load_config(CONFIG, PosttrainConfig, overrides(data, ckpt, other, *common, "data.latents=null",
                                                             "model.encoder_key=encoder")))
    assert losses(tmp_path / "auto") == pytest.approx(losses(live), rel=1e-3)  # float16 cache
    assert losses(other)[0] != pytest.approx(losses(live)[0], rel=1e-3)


def test_cache_without_a_recorded_key_is_refused(setup, tmp_path, caplog):
    """A cache from before caches recorded their section and size cannot be told apart: refused, re-encode."""
    from vjepa_training.data.latents import LatentCacheError

    data, enc = setup
    data2 = tmp_path / "shards"
    shutil.copytree(data, data2)
    legacy = data2 / "latents" / "legacy"
    shutil.copytree(next(p for p in (data2 / "latents").iterdir()), legacy)
    meta = json.loads((legacy / "meta.json").read_text())
    for k in ("encoder_key", "image_size"):
        meta.pop(k)
    (legacy / "meta.json").write_text(json.dumps(meta))
    cfg = load_config(CONFIG, PosttrainConfig, overrides(data2, enc, tmp_path / "run", "data.latents=legacy"))
    with pytest.raises(LatentCacheError, match="does not record its encoder_key, image_size"):
        resolve_latents(cfg, str(data2))
    auto = load_config(CONFIG, PosttrainConfig, overrides(data2, enc, tmp_path / "run"))
    with caplog.at_level(logging.WARNING, logger="vjepa_train"):
        assert resolve_latents(auto, str(data2)) is not None  # the properly keyed cache is still used
    # A run at another size does not take the 64 px cache either.
    small = load_config(CONFIG, PosttrainConfig, overrides(data2, enc, tmp_path / "run", "data.img_size=32"))
    with caplog.at_level(logging.WARNING, logger="vjepa_train"):
        assert resolve_latents(small, str(data2)) is None
    assert "image size 64 px, not 32 px" in caplog.text


def test_latent_cache_keyed_by_normalization(setup, tmp_path, caplog):
    """The normalization part of the cache key: a cache of layer-normed tokens is refused by a run that needs raw
    ones (``normalize_reps: false``), named or picked by ``auto``, and used by a run that layer-norms anyway."""
    from vjepa_training.data.latents import LatentCacheError, LatentKey, read_cache_key

    data, enc = setup
    data2 = tmp_path / "shards"
    shutil.copytree(data, data2)
    shutil.rmtree(data2 / "latents")  # only a layer-normed cache of the right encoder, section and size
    fn, ident = encoder_from_checkpoint(enc, ENC)
    normed = encode_dataset(data2, fn, ident, batch_size=16, layer_norm=True, progress=False).name
    key = read_cache_key(data2 / "latents" / normed)
    assert key == LatentKey.of(ident, normalized=True) and normed.endswith(".ln")
    why = "layer-normed tokens, but raw ones are needed (normalize_reps is false)"
    assert key.differences(ident, normalized_ok=False) == [why]
    assert key.differences(ident, normalized_ok=True) == []
    assert LatentKey.of(ident, normalized=False).differences(ident, normalized_ok=False) == []
    raw = load_config(CONFIG, PosttrainConfig, overrides(data2, enc, tmp_path / "run", "normalize_reps=false"))
    with caplog.at_level(logging.WARNING, logger="vjepa_train"):
        assert resolve_latents(raw, str(data2)) is None  # auto: refused, frames are encoded on the fly
    assert f"{normed}: {why}" in caplog.text
    named = load_config(CONFIG, PosttrainConfig, overrides(data2, enc, tmp_path / "run", "normalize_reps=false",
                                                           f"data.latents={normed}"))
    with pytest.raises(LatentCacheError, match=r"raw ones are needed \(normalize_reps is false\)"):
        resolve_latents(named, str(data2))
    normalizing = load_config(CONFIG, PosttrainConfig, overrides(data2, enc, tmp_path / "run"))
    assert normalizing.normalize_reps and resolve_latents(normalizing, str(data2)) == normed


def test_posttrain_encoder_key_default_is_the_latent_cache_default():
    """One default section: PosttrainConfig's ``model.encoder_key`` is ``latents.DEFAULT_ENCODER_KEY`` itself (the
    section `vjepa-dataset encode` caches), not a second literal that could drift from it."""
    import ast
    import inspect

    from vjepa_training.data.latents import DEFAULT_ENCODER_KEY
    from vjepa_training.train import config

    cls = next(n for n in ast.parse(inspect.getsource(config)).body
               if isinstance(n, ast.ClassDef) and n.name == "PosttrainModelConfig")
    (default,) = [n.value for n in cls.body if isinstance(n, ast.AnnAssign) and n.target.id == "encoder_key"]
    assert isinstance(default, ast.Name) and default.id == "DEFAULT_ENCODER_KEY", ast.dump(default)
    assert config.DEFAULT_ENCODER_KEY is DEFAULT_ENCODER_KEY
    assert PosttrainConfig().model.encoder_key == DEFAULT_ENCODER_KEY


def test_acnet_teacher_forcing_and_rollout():
    cfg = {"img_size": 32, "patch_size": 16, "num_frames": 8, "tubelet_size": 2, "embed_dim": 16,
           "predictor_embed_dim": 32, "depth": 1, "num_heads": 2}
    torch.manual_seed(0)
    net = ACNet(build_ac_predictor(cfg), tokens_per_frame=4, auto_steps=2, normalize=True)
    h = torch.randn(2, 4 * 4, 16)  # T=4 frames of 4 tokens
    a, s = torch.randn(2, 3, 7), torch.randn(2, 4, 7)
    z_tf, z_ar = net(h, a, s)
    assert z_tf.shape == (2, 12, 16) and z_ar.shape == (2, 8, 16)
    assert torch.equal(z_ar[:, :4], z_tf[:, :4])  # rollout starts from the teacher-forced ẑ_2
    # ẑ_3 of the rollout is the predictor on [z_1, ẑ_2] with the first two actions and states.
    step = net._step(torch.cat([h[:, :4], z_tf[:, :4]], 1), a[:, :2], s[:, :2])[:, -4:]
    assert torch.allclose(z_ar[:, 4:], step)
    # Block-causal: the prediction of frame 2 does not change when later frames change.
    h2 = h.clone()
    h2[:, 8:] += 1.0
    assert torch.allclose(net(h2, a, s)[0][:, :4], z_tf[:, :4], atol=1e-6)


def test_torchrun_posttrain_two_processes(setup, tmp_path):
    data, enc = setup
    common = ["max_steps=3", "optim.total_steps=40", "optim.warmup_steps=2", "optim.cooldown_steps=0",
              "data.batch_size=2", "log.every_steps=1", "checkpoint.every_steps=2"]
    ddp = tmp_path / "ddp"
    sets = [a for ov in overrides(data, enc, ddp, *common) for a in ("--set", ov)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          "-m", "vjepa_training.train_cli", "posttrain", "--config", str(CONFIG), *sets],
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-4000:]
    assert sorted(p.name for p in ddp.iterdir() if p.suffix == ".pt") == ["latest.pt"]  # rank 0 wrote it
    single = tmp_path / "single"
    posttrain(load_config(CONFIG, PosttrainConfig, overrides(data, enc, single, *common,
                                                             "optim.accumulation_steps=2")))
    a = torch.load(ddp / "latest.pt", weights_only=True)
    b = torch.load(single / "latest.pt", weights_only=True)
    assert a["world_size"] == 2 and a["step"] == 3
    assert max(float((a["predictor"][k] - b["predictor"][k]).abs().max()) for k in a["predictor"]) < 1e-6
    assert losses(ddp) == pytest.approx(losses(single), abs=1e-6)

"""V-JEPA 2 pretraining end to end on CPU: loss, metrics, checkpoints (load_official), kill + resume, DDP."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from vjepa_core.checkpoint import load_official
from vjepa_training.train.config import PretrainConfig, load_config
from vjepa_training.train.pretrain import main as pretrain
from vjepa_training.train.synthetic import write_image_folder, write_shard_dataset, write_videos
from vjepa_training.train_cli import main as cli

CONFIG = Path(__file__).resolve().parents[4] / "config" / "train" / "pretrain_tiny.yaml"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrain_data")
    write_videos(root / "videos", n_videos=4, n_frames=12, size=64)
    write_image_folder(root / "images", n_images=6, size=64)
    write_shard_dataset(root / "shards", n_episodes=2, n_frames=12, size=64)
    return root


def overrides(data: Path, out: Path, *extra: str) -> list[str]:
    src = (f"data.sources=[{{kind: video, path: {data / 'videos'}}}, {{kind: images, path: {data / 'images'}}}, "
           f"{{kind: shards, path: {data / 'shards'}}}]")
    return [src, f"out={out}", "threads=1", "log.progress_bar=false", "log.tensorboard=false",
            "data.batch_size=4", *extra]


def read_metrics(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


def test_pretrain_learns_logs_and_checkpoints(data, tmp_path):
    run = tmp_path / "run"
    cfg = load_config(CONFIG, PretrainConfig, overrides(
        data, run, "max_steps=40", "optim.total_steps=40", "optim.warmup_steps=5", "optim.cooldown_steps=0",
        "optim.lr=2e-3", "log.every_steps=4", "log.tensorboard=true", "checkpoint.every_steps=10",
        "checkpoint.keep_every_steps=20"))
    summary = pretrain(cfg)
    rows = read_metrics(run)
    assert [int(r["step"]) for r in rows] == list(range(4, 41, 4))
    losses = [float(r["loss"]) for r in rows]
    first, last = sum(losses[:2]) / 2, sum(losses[-2:]) / 2
    assert last < 0.9 * first, losses
    stds = [float(r["target_std"]) for r in rows]
    assert min(stds) > cfg.log.collapse_std_threshold and summary["collapse_warnings"] == 0, stds
    assert all(float(r["lr"]) > 0 and float(r["clips_per_s"]) > 0 for r in rows)
    assert (run / "config.yaml").is_file() and load_config(run / "config.yaml", PretrainConfig) == cfg
    assert any((run / "tb").iterdir())
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_00000020.pt", "step_00000040.pt"]
    # The checkpoint is in the released layout and loads strictly with load_official, giving the same outputs
    # as the networks the trainer held.
    ckpt = torch.load(run / "latest.pt", weights_only=True)
    assert ckpt["step"] == 40 and ckpt["data"]["position"] == 40 * 4
    assert all(k.startswith("module.backbone.") for k in ckpt["encoder"])
    task = summary["task"]
    video = torch.randn(2, 3, 4, 64, 64)
    for key, net in (("encoder", task.trainable.encoder), ("target_encoder", task.target)):
        enc, pred = load_official(run / "latest.pt", cfg.model.encoder_config(), cfg.model.predictor_config(),
                                  encoder_key=key)
        net.eval()
        with torch.no_grad():
            assert torch.equal(enc(video), net(video))
    masks = task.masks.sample(0, 2)
    with torch.no_grad():
        ctx = enc(video, masks=masks.enc[0])
        task.trainable.predictor.eval()
        assert torch.equal(pred(ctx, masks.enc[0], masks.pred[0]),
                           task.trainable.predictor(ctx, masks.enc[0], masks.pred[0]))
    # The pipeline to post-training: `vjepa-dataset encode` with RUN/encoder.json makes the cache that
    # posttrain's `data.latents: auto` picks for this encoder checkpoint.
    from vjepa_training.dataset_cli import main as dataset_cli
    from vjepa_training.train.config import PosttrainConfig
    from vjepa_training.train.posttrain import resolve_latents

    assert dataset_cli(["encode", str(data / "shards"), "--checkpoint", str(run / "latest.pt"), "--encoder",
                        str(run / "encoder.json"), "--encoder-key", "target_encoder", "--quiet"]) in (0, None)
    post = load_config(CONFIG.with_name("posttrain_tiny.yaml"), PosttrainConfig, [
        f"model.encoder={cfg.model.encoder}", f"model.encoder_checkpoint={run / 'latest.pt'}"])
    assert resolve_latents(post, str(data / "shards")) is not None
    # Plots.
    assert cli(["plot", str(run)]) == 0
    pngs = sorted(p.name for p in (run / "plots").glob("*.png"))
    assert {"loss.png", "lr.png", "target_std.png"} <= set(pngs)
    assert (run / "plots" / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _cli_cmd(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "vjepa_training.train_cli", *args]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def test_kill_and_resume_matches_uninterrupted_run(data, tmp_path):
    common = ["optim.total_steps=40", "optim.warmup_steps=4", "optim.cooldown_steps=0", "log.every_steps=1",
              "checkpoint.every_steps=2"]
    # Uninterrupted reference: 12 steps in one go.
    ref = tmp_path / "ref"
    pretrain(load_config(CONFIG, PretrainConfig, overrides(data, ref, "max_steps=12", *common)))
    # Killed run: SIGKILL as soon as a checkpoint exists, then resume to step 12.
    run = tmp_path / "killed"
    sets = [a for ov in overrides(data, run, *common) for a in ("--set", ov)]
    proc = subprocess.Popen(_cli_cmd(["pretrain", "--config", str(CONFIG), *sets]), env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    try:
        while not (run / "latest.pt").exists():
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
            assert time.time() < deadline, "no checkpoint within 120 s"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    killed_at = torch.load(run / "latest.pt", weights_only=True)["step"]
    assert 2 <= killed_at < 12, killed_at
    assert not list(run.glob("*.tmp"))
    summary = pretrain(load_config(CONFIG, PretrainConfig, overrides(data, run, "max_steps=12", *common)))
    assert summary["steps"] == 12
    a = torch.load(run / "latest.pt", weights_only=True)
    b = torch.load(ref / "latest.pt", weights_only=True)
    for sec in ("encoder", "target_encoder", "predictor"):
        assert max_diff(a[sec], b[sec]) == 0.0, sec  # bitwise: same data, masks, RNG and optimizer state
    assert a["opt"]["state"].keys() == b["opt"]["state"].keys()
    for k in a["opt"]["state"]:
        assert torch.equal(a["opt"]["state"][k]["exp_avg_sq"], b["opt"]["state"][k]["exp_avg_sq"])
    # metrics.csv reads as one run: the same losses at every step, no duplicate rows from before the kill.
    ra, rb = read_metrics(run), read_metrics(ref)
    assert [r["step"] for r in ra] == [r["step"] for r in rb] == [str(i) for i in range(1, 13)]
    assert [r["loss"] for r in ra] == [r["loss"] for r in rb]


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_torchrun_two_processes_equal_one_process(data, tmp_path, strategy):
    """2 processes x batch 2 (gloo; DDP or FSDP2) == 1 process x batch 2 x 2 accumulation steps."""
    common = [f"dist.strategy={strategy}", "model.predictor.num_mask_tokens=4", "max_steps=3",
              "optim.total_steps=40", "optim.warmup_steps=2", "optim.cooldown_steps=0",
              "data.batch_size=2",
              "log.every_steps=1", "checkpoint.every_steps=2"]
    ddp = tmp_path / "ddp"
    sets = [a for ov in overrides(data, ddp, *common) for a in ("--set", ov)]
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          "-m", "vjepa_training.train_cli", "pretrain", "--config", str(CONFIG), *sets],
                         env=_env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-4000:]
    assert "global batch 4 (2 x 2 procs x 1 accum)" in out.stderr
    single = tmp_path / "single"
    pretrain(load_config(CONFIG, PretrainConfig, overrides(data, single, *common, "optim.accumulation_steps=2")))
    a = torch.load(ddp / "latest.pt", weights_only=True)
    b = torch.load(single / "latest.pt", weights_only=True)
    assert a["world_size"] == 2 and b["world_size"] == 1 and a["step"] == b["step"] == 3
    for sec in ("encoder", "target_encoder", "predictor"):
        assert max_diff(a[sec], b[sec]) < 1e-6, sec
    la = [float(r["loss"]) for r in read_metrics(ddp)]
    lb = [float(r["loss"]) for r in read_metrics(single)]
    assert la == pytest.approx(lb, abs=1e-6)
    load_official(ddp / "latest.pt", a["vjepa2_ros"]["encoder_config"])

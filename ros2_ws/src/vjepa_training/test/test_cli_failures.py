"""How the training CLIs fail: one ``error:`` line and a non-zero exit, inputs checked before the run directory is
touched, and a run that would restart over its own checkpoint refused unless ``--overwrite`` asks for it.

Real runs: ``vjepa-train`` / ``vjepa-dataset`` as console scripts in subprocesses or their ``main()`` in-process,
real shard datasets, rosbag2 files and checkpoints written by a real training run.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from vjepa_training.data.synthetic import write_synthetic_bag
from vjepa_training.dataset_cli import main as dataset_cli
from vjepa_training.train.synthetic import write_shard_dataset
from vjepa_training.train_cli import main as train_cli

CONFIG = Path(__file__).resolve().parents[4] / "config" / "train" / "pretrain_tiny.yaml"
BIN = Path(os.environ.get("VIRTUAL_ENV", "")) / "bin"


def _script(name: str) -> str:
    path = shutil.which(name) or (str(BIN / name) if (BIN / name).exists() else None)
    assert path, f"console script {name} is not installed (make setup)"
    return path


def _sets(data: Path, *extra: str) -> list[str]:
    ovs = [f"data.sources=[{{kind: shards, path: {data}}}]", "threads=1", "log.progress_bar=false",
           "log.tensorboard=false", "data.batch_size=2", "checkpoint.every_steps=1", "checkpoint.keep_every_steps=1",
           *extra]
    return [a for ov in ovs for a in ("--set", ov)]


def _error_lines(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if "error:" in ln]


def _snapshot(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


def _steps(run: Path) -> list[int]:
    with open(run / "metrics.csv", newline="") as f:
        return [int(r["step"]) for r in csv.DictReader(f)]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A shard dataset and a pretraining run of 2 steps (latest.pt, checkpoints/step_*.pt, metrics, config)."""
    root = tmp_path_factory.mktemp("cli")
    data = write_shard_dataset(root / "shards", n_episodes=2, n_frames=12, size=64)
    run = root / "run"
    assert train_cli(["pretrain", "--config", str(CONFIG), "--out", str(run), "--max-steps", "2",
                      *_sets(data)]) == 0
    assert torch.load(run / "latest.pt", weights_only=True)["step"] == 2
    return data, run


def _copy(run: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "run"
    shutil.copytree(run, dst)
    return dst


def test_missing_data_source_is_one_line_and_no_run_dir(trained, tmp_path):
    """Console script, a typo in the data path: one error line, exit 2, no half-made run directory."""
    run = tmp_path / "new_run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("VJEPA_DEBUG", None)
    for source in (f"{{kind: shards, path: {tmp_path / 'nope'}}}", f"{{kind: video, path: {tmp_path / 'vids'}}}"):
        proc = subprocess.run([_script("vjepa-train"), "pretrain", "--config", str(CONFIG), "--out", str(run),
                               "--set", f"data.sources=[{source}]", "--set", "threads=1"],
                              capture_output=True, text=True, timeout=120, env=env)
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
        last = proc.stderr.strip().splitlines()[-1]
        assert last.startswith("vjepa-train pretrain: error: ") and str(tmp_path) in last, last
        assert not run.exists()


def test_bad_input_leaves_an_existing_run_untouched(trained, tmp_path):
    """A typo in the data source of a resumed run fails before config.yaml (or anything else) is rewritten."""
    data, src = trained
    run = _copy(src, tmp_path)
    before = _snapshot(run)
    rc = train_cli(["pretrain", "--config", str(CONFIG), "--out", str(run), "--max-steps", "4",
                    *_sets(tmp_path / "typo")])
    assert rc == 2 and _snapshot(run) == before


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_latest_is_named_and_left_alone(trained, tmp_path, capsys, damage):
    data, src = trained
    run = _copy(src, tmp_path)
    latest = run / "latest.pt"
    raw = latest.read_bytes()
    if damage == "truncate":
        latest.write_bytes(raw[: len(raw) // 3])
    else:  # bytes flipped inside the tensor data: only the CRC check sees it
        buf = bytearray(raw)
        mid = len(buf) // 2
        buf[mid: mid + 32] = bytes(b ^ 0xFF for b in buf[mid: mid + 32])
        latest.write_bytes(bytes(buf))
    before = _snapshot(run)
    capsys.readouterr()
    rc = train_cli(["pretrain", "--config", str(CONFIG), "--out", str(run), "--max-steps", "4", *_sets(data)])
    err = capsys.readouterr().err
    lines = _error_lines(err)
    assert rc == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("vjepa-train pretrain: error: ") and str(latest) in lines[0]
    assert ("truncated or corrupt" if damage == "truncate" else "fails its CRC check") in lines[0]
    assert "text/HTML" not in lines[0]
    assert _snapshot(run) == before


def test_resume_false_over_a_checkpoint_needs_overwrite(trained, tmp_path, capsys):
    data, src = trained
    run = _copy(src, tmp_path)
    before = _snapshot(run)
    capsys.readouterr()
    rc = train_cli(["pretrain", "--config", str(CONFIG), "--out", str(run), "--max-steps", "1",
                    *_sets(data, "checkpoint.resume=false")])
    lines = _error_lines(capsys.readouterr().err)
    assert rc == 2 and len(lines) == 1 and "checkpoint.resume is false" in lines[0] and "--overwrite" in lines[0]
    assert _snapshot(run) == before  # the step-2 checkpoint is still there, nothing rewritten
    # Asked explicitly: a new run from step 0 that replaces the old one's checkpoints and metrics.
    rc = train_cli(["pretrain", "--config", str(CONFIG), "--out", str(run), "--max-steps", "1", "--overwrite",
                    *_sets(data, "checkpoint.resume=false")])
    assert rc == 0
    assert torch.load(run / "latest.pt", weights_only=True)["step"] == 1
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_00000001.pt"]
    assert _steps(run) == [1]
    # With resume on (the default), the same directory resumes from its checkpoint.
    assert train_cli(["pretrain", "--config", str(CONFIG), "--out", str(run), "--max-steps", "2", *_sets(data)]) == 0
    assert torch.load(run / "latest.pt", weights_only=True)["step"] == 2 and _steps(run) == [1, 2]


def test_checkpoint_of_the_other_kind_is_refused_before_writing(trained, tmp_path, capsys):
    data, src = trained
    run = _copy(src, tmp_path)
    before = _snapshot(run)
    capsys.readouterr()
    rc = train_cli(["posttrain", "--config", str(CONFIG.with_name("posttrain_tiny.yaml")), "--out", str(run),
                    "--max-steps", "3", *_sets(data, "data.latents=null")])
    lines = _error_lines(capsys.readouterr().err)
    assert rc == 2 and len(lines) == 1 and "is a pretrain checkpoint, not posttrain" in lines[0]
    assert _snapshot(run) == before


def test_debug_flag_and_env_keep_the_traceback(trained, tmp_path, monkeypatch):
    args = ["pretrain", "--config", str(CONFIG), "--out", str(tmp_path / "r"), *_sets(tmp_path / "nope")]
    with pytest.raises(FileNotFoundError, match="no index.json"):
        train_cli([*args, "--debug"])
    monkeypatch.setenv("VJEPA_DEBUG", "1")
    with pytest.raises(FileNotFoundError, match="no index.json"):
        train_cli(args)


def test_a_bug_is_one_internal_error_line(capsys, monkeypatch):
    from vjepa_training.cli_errors import run_guarded

    monkeypatch.delenv("VJEPA_DEBUG", raising=False)

    def buggy() -> int:
        return {}["missing"]

    assert run_guarded("vjepa-train pretrain", buggy) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["vjepa-train pretrain: internal error: KeyError: 'missing' (rerun with --debug or VJEPA_DEBUG=1 "
                   "for the traceback)"]


def test_dataset_cli_failures_are_one_line(tmp_path):
    """vjepa-dataset as a console script: a corrupt bag, a truncated checkpoint, a missing dataset, garbage."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("VJEPA_DEBUG", None)

    def run(*args: str) -> tuple[int, str]:
        p = subprocess.run([_script("vjepa-dataset"), *args], capture_output=True, text=True, timeout=120, env=env)
        assert "Traceback" not in p.stderr, p.stderr[-2000:]
        return p.returncode, p.stderr.strip().splitlines()[-1]

    bag = tmp_path / "bags" / "ep0"
    write_synthetic_bag(bag, "mcap", seconds=1.0, seed=0)
    mcap = bag / "ep0.mcap"
    mcap.write_bytes(mcap.read_bytes()[:4000])
    rc, last = run("build", str(bag), "--out", str(tmp_path / "ds"), "--quiet")
    assert rc == 1 and last.startswith("vjepa-dataset build: error: nothing built: 1 source(s) skipped"), last
    assert "truncated or corrupt" in last and str(bag) in last
    shards = write_shard_dataset(tmp_path / "shards", n_episodes=1, n_frames=4, size=32)
    ckpt = tmp_path / "cut.pt"
    torch.save({"encoder": {"w": torch.zeros(50_000)}}, ckpt)
    ckpt.write_bytes(ckpt.read_bytes()[:100_000])
    rc, last = run("encode", str(shards), "--checkpoint", str(ckpt), "--encoder", "vit_large", "--quiet")
    assert rc == 2 and last.startswith("vjepa-dataset encode: error: ") and "truncated or corrupt" in last, last
    rc, last = run("info", str(tmp_path / "nope"))
    assert rc == 2 and last.startswith("vjepa-dataset info: error: ") and "no index.json" in last, last
    (tmp_path / "junk.mcap").write_text("not a bag")
    rc, last = run("recover", str(tmp_path / "junk.mcap"))
    assert rc == 1 and last.startswith("vjepa-dataset recover: error: ") and "not an MCAP file" in last, last


def test_nothing_recovered_ends_with_an_error_line(tmp_path, capsys):
    bag = tmp_path / "ep"
    write_synthetic_bag(bag, "mcap", seconds=1.0, seed=0)
    mcap = bag / "ep.mcap"
    mcap.write_bytes(mcap.read_bytes()[:40])  # the magic and hardly anything else
    rc = dataset_cli(["recover", str(bag)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and err[-1].startswith(f"vjepa-dataset recover: error: nothing recovered from {bag}"), err

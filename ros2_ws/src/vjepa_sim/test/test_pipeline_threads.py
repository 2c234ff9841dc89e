"""``vjepa-sim <stage> --threads N`` sets torch's CPU threads of the process, and the in-process training keeps
them (the training config's own ``threads: 2`` in config/train/sim_*.yaml does not replace the flag).

The training itself is replaced by a stand-in that runs the real start of a training run
(``vjepa_training.train.engine.setup_run``: where the config's ``threads`` is applied) and records the thread count
there, so the test takes a second."""

from __future__ import annotations

import pytest
import torch

from vjepa_sim.cli import main


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _fake_training(seen: list):
    from vjepa_training.train import engine

    def run(cfg):
        engine.setup_run(cfg, "stand-in")  # applies cfg.threads, as pretrain/posttrain.main do first
        seen.append((cfg.threads, torch.get_num_threads()))
        return {}
    return run


@pytest.mark.parametrize("threads", [1, 3])
def test_threads_flag_sets_torch_threads_for_in_process_training(tmp_path, monkeypatch, restore_threads, threads):
    from vjepa_training.train import pretrain

    seen: list = []
    monkeypatch.setattr(pretrain, "main", _fake_training(seen))
    (tmp_path / "dataset").mkdir()
    (tmp_path / "dataset" / "index.json").write_text("{}")  # the stage only checks that a dataset was built
    torch.set_num_threads(2)  # what config/train/sim_pretrain.yaml asks for
    assert main(["pretrain", "--workdir", str(tmp_path), "--threads", str(threads), "--max-steps", "1"]) == 0
    assert seen == [(threads, threads)]
    assert torch.get_num_threads() == threads


def test_threads_zero_leaves_torch_default_and_negative_is_refused(tmp_path, monkeypatch, restore_threads, capsys):
    from vjepa_training.train import pretrain

    seen: list = []
    monkeypatch.setattr(pretrain, "main", _fake_training(seen))
    (tmp_path / "dataset").mkdir()
    (tmp_path / "dataset" / "index.json").write_text("{}")
    torch.set_num_threads(1)
    assert main(["pretrain", "--workdir", str(tmp_path), "--threads", "0"]) == 0
    assert seen == [(0, 1)]  # neither the flag nor the config's threads: 2 touched it
    assert main(["pretrain", "--workdir", str(tmp_path), "--threads", "-1"]) == 2
    assert "--threads must be >= 0" in capsys.readouterr().err

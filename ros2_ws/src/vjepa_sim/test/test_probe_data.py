"""Labelled primitive videos for probe training (vjepa_sim.pipeline.probe_data) with the real PyBullet scene and the
pipeline's tiled camera: deterministic per seed, every video shows what its label says, the CLI writes the
split CSVs the probe trainer reads and resumes."""

from __future__ import annotations

import json
import shlex

import numpy as np
import pytest

from vjepa_sim.pipeline.probe_data import MIRROR, PRIMITIVES, PrimitiveRunner, ProbeDataConfig, main, run_episode
from vjepa_sim.pipeline.settings import load_settings
from vjepa_sim.scene import FrankaSim

SMALL = ProbeDataConfig(frames=8)          # 2 moves per video: quicker, same code paths


@pytest.fixture(scope="module")
def sim_config():
    return load_settings().sim_config()


@pytest.fixture(scope="module")
def episode(sim_config):
    with FrankaSim(sim_config) as sim:
        return run_episode(PrimitiveRunner(sim, SMALL), 7)


def test_every_primitive_once_with_the_pipeline_camera(episode):
    assert sorted(p["label"] for p in episode) == sorted(PRIMITIVES)
    for prim in episode:
        assert prim["frames"].shape == (8, 96, 96, 3) and prim["frames"].dtype == np.uint8  # two tiled 96x48 views
        assert prim["states"].shape == (8, 7)


def test_each_video_shows_what_its_label_says(episode):
    lo, hi = np.array(SMALL.box_min), np.array(SMALL.box_max)
    for prim in episode:
        label, states = prim["label"], prim["states"]
        move = states[-1, :3] - states[0, :3]
        grip = states[[0, -1], 6]
        assert np.all(states[:, :3] > lo - 0.01) and np.all(states[:, :3] < hi + 0.01), label  # stays in view
        if label.startswith("move"):
            axis, sign = "xyz".index(label[-1]), 1 if label[-2] == "+" else -1
            assert sign * move[axis] > 0.05, (label, move)
            assert np.abs(np.delete(move, axis)).max() < 0.01, (label, move)
            assert abs(grip[1] - grip[0]) < 0.1, label                      # the gripper keeps its state
        else:
            assert np.abs(move).max() < 0.005, (label, move)                  # the arm rests
            if label == "close gripper":
                assert grip[0] < 0.1 and grip[1] > 0.8, grip                  # 0.7 s of a 0.8 s stroke
            elif label == "open gripper":
                assert grip[0] > 0.9 and grip[1] < 0.2, grip
            else:
                assert abs(grip[1] - grip[0]) < 0.05, grip
        if label != "hold still":
            assert np.abs(prim["frames"][-1].astype(int) - prim["frames"][0]).sum() > 0, label


def test_moves_happen_with_either_gripper_state(sim_config):
    with FrankaSim(sim_config) as sim:
        runner = PrimitiveRunner(sim, SMALL)
        sim.reset(seed=3)
        rng = np.random.default_rng(0)
        states = {runner.prepare("move +y", rng)["gripper_closed"] for _ in range(8)}
    assert states == {True, False}


def test_same_seed_same_videos_other_seed_other_videos(sim_config, episode):
    with FrankaSim(sim_config) as sim:
        runner = PrimitiveRunner(sim, SMALL)
        again = run_episode(runner, 7)
        other = run_episode(runner, 8)
    assert [p["label"] for p in again] == [p["label"] for p in episode]
    for a, b in zip(again, episode):
        assert np.array_equal(a["frames"], b["frames"]) and np.array_equal(a["states"], b["states"])
    assert [p["label"] for p in other] != [p["label"] for p in episode] or any(
        not np.array_equal(a["frames"], b["frames"]) for a, b in zip(other, episode))


def test_cli_writes_split_csvs_and_resumes(tmp_path, capsys):
    args = ["--out", str(tmp_path / "data"), "--seed", "40", "--train-episodes", "1", "--val-episodes", "1",
            "--test-episodes", "0", "--frames", "8"]
    assert main(args) == 0
    root = tmp_path / "data"
    summary = json.loads((root / "probe_data.json").read_text())
    assert summary["splits"] == {"train": [40], "val": [41], "test": []} and summary["videos"]["train"] == 9
    for split in ("train", "val"):
        rows = [shlex.split(line) for line in (root / f"{split}.csv").read_text().splitlines()]
        assert sorted(label for _, label in rows) == sorted(PRIMITIVES)
        for rel, label in rows:
            with np.load(root / rel) as z:
                assert z["frames"].shape == (8, 96, 96, 3) and str(z["label"]) == label
    assert (root / "test.csv").read_text() == ""
    stamp = (root / "videos" / "train" / "ep40_00.npz").stat().st_mtime_ns
    capsys.readouterr()
    assert main(args) == 0                                        # finished episodes are not recorded again
    assert (root / "videos" / "train" / "ep40_00.npz").stat().st_mtime_ns == stamp
    assert "train episode" not in capsys.readouterr().out
    assert main([*args[:-2], "--frames", "1"]) == 2                # a bad setting: one error line, status 2
    assert "frames must be >= 2" in capsys.readouterr().err


def test_label_subset_and_time_reversed_training_copies(tmp_path):
    args = ["--out", str(tmp_path), "--seed", "50", "--train-episodes", "1", "--val-episodes", "1",
            "--test-episodes", "0", "--frames", "8"]
    assert main([*args, "--labels", "move +x", "move -x", "close gripper", "hold still", "--reverse-train"]) == 0
    train = [shlex.split(line) for line in (tmp_path / "train.csv").read_text().splitlines()]
    val = [shlex.split(line) for line in (tmp_path / "val.csv").read_text().splitlines()]
    assert sorted(label for _, label in val) == ["close gripper", "hold still", "move +x", "move -x"]
    reversed_rows = [(rel, label) for rel, label in train if rel.endswith("_rev.npz")]
    # close gripper's mirror (open gripper) is not listed: no reversed copy of it
    assert sorted(label for _, label in reversed_rows) == ["hold still", "move +x", "move -x"]
    for rel, label in reversed_rows:
        with np.load(tmp_path / rel) as rev, np.load(tmp_path / rel.replace("_rev", "")) as fwd:
            assert np.array_equal(rev["frames"], fwd["frames"][::-1]) and str(rev["label"]) == label
            assert MIRROR[str(fwd["label"])] == label
    assert main([*args, "--labels", "move +q"]) == 2


def test_shipped_probe_labels_fresh_primitives(sim_config):
    """models/sim_probe on the frozen models/sim_reach encoder labels primitives of scenes no split used (the model
    card's held-out accuracy is 75%; 14 fresh videos must give well over 4x chance, 1/7)."""
    import torch

    from vjepa_core.checkpoint import load_official
    from vjepa_core.preprocessing import preprocess_clip
    from vjepa_core.probes import classify, load_probe

    root = load_settings().root
    names = list(json.loads((root / "models/sim_probe/labels.json").read_text()).values())
    probe = load_probe(root / "models/sim_probe/probe.pt", None)
    config = json.loads((root / "models/sim_reach/config.json").read_text())
    encoder, _ = load_official(root / "models/sim_reach/vjepa2_sim.pt", config["encoder"],
                               encoder_key="target_encoder")
    right = total = 0
    with FrankaSim(sim_config) as sim:
        runner = PrimitiveRunner(sim, ProbeDataConfig())
        for seed in (9500, 9501):
            sim.reset(seed=seed)
            rng = np.random.default_rng(seed)
            for label in [x for x in runner.episode_order(rng) if x in names]:
                frames, _ = runner.record(runner.prepare(label, rng))
                clip = preprocess_clip(frames[[0, 4, 8, 12]], 96, "center")[None]
                with torch.no_grad():
                    pred = names[int(classify(encoder, probe, clip)[0].argmax())]
                right += pred == label
                total += 1
    assert total == 14 and right >= 8, f"{right}/{total}"

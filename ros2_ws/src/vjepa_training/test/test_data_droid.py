"""DROID raw import: states, actions and frame times from the 15 Hz control clock, not the MP4's 60 fps."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vjepa_core.pose import poses_to_diff
from vjepa_training.data.droid import DroidConfig, control_times_ns, import_droid
from vjepa_training.data.shards import DatasetIndex
from vjepa_training.data.synthetic import droid_gray_level, write_synthetic_droid
from vjepa_training.dataset_cli import main as cli_main


def test_import_synthetic_droid_episode(tmp_path):
    truth = write_synthetic_droid(tmp_path / "raw" / "ep0", rows=40, container_fps=60)
    summary = import_droid([tmp_path / "raw"], tmp_path / "ds", DroidConfig(fps=5.0, image_size=32),
                           progress=False)
    assert summary["episodes"] == 1 and summary["skipped"] == []
    ix = DatasetIndex(tmp_path / "ds")
    ep = ix.episodes[0]
    assert ep["task"] == "put the cup in the sink" and ep["camera"] == "left_mp4_path"
    # 15 Hz rows sampled at 5 fps -> every 3rd row; the MP4 has 39 frames (one fewer, droid#54) so row 39 is
    # unavailable and the last sampled row is 36.
    rows = np.arange(0, 37, 3)
    states = np.asarray(ix.episode_rows(0, "states"))
    np.testing.assert_allclose(states, truth.states[rows], atol=1e-12)
    actions = np.asarray(ix.episode_rows(0, "actions"))[:-1]
    np.testing.assert_allclose(actions, poses_to_diff(truth.states[rows[:-1]], truth.states[rows[1:]]), atol=1e-12)
    # Frame times are the control timestamps (ms -> ns): 0.2 s apart, 13 frames span 2.4 s (not 60 fps based).
    stamps = np.asarray(ix.episode_rows(0, "stamps"))
    np.testing.assert_array_equal(stamps, (truth.times_ms[rows] * 1e6).astype(np.int64))
    assert abs((stamps[-1] - stamps[0]) / 1e9 - 2.4) < 0.01
    # Video frame i goes with row i: the gray level identifies the frame.
    frames = np.asarray(ix.episode_rows(0, "frames")).reshape(len(rows), -1).mean(axis=1)
    np.testing.assert_allclose(frames, [droid_gray_level(int(r)) for r in rows], atol=4)


def test_reference_fps_bug_not_repeated(tmp_path):
    """8 frames at fps 4 must span 1.75 s of robot time, not the 7.4 s of a 60-fps container stride."""
    write_synthetic_droid(tmp_path / "raw" / "ep0", rows=60, container_fps=60)
    import_droid([tmp_path / "raw"], tmp_path / "ds", DroidConfig(fps=4.0, image_size=16), progress=False)
    stamps = np.asarray(DatasetIndex(tmp_path / "ds").episode_rows(0, "stamps"))
    assert abs((stamps[7] - stamps[0]) / 1e9 - 1.75) < 0.04


def test_bad_droid_episode_skipped(tmp_path):
    write_synthetic_droid(tmp_path / "raw" / "good", rows=20)
    bad = tmp_path / "raw" / "bad"
    write_synthetic_droid(bad, rows=20, seed=1)
    for f in (bad / "recordings" / "MP4").iterdir():
        f.unlink()
    rc = cli_main(["import-droid", str(tmp_path / "raw"), "--out", str(tmp_path / "ds"), "--image-size", "16",
                   "--summary-json", str(tmp_path / "s.json"), "--quiet"])
    assert rc == 0
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["episodes"] == 1
    assert summary["skipped"][0]["source"].endswith("bad") and "not found" in summary["skipped"][0]["reason"]


def test_control_time_units():
    ms = 1.7e12 + np.arange(10) * 66.7
    assert control_times_ns(ms)[1] == "ms"
    assert control_times_ns(ms * 1e6)[1] == "ns"
    assert control_times_ns(np.arange(10) / 15.0)[1] == "s"
    with pytest.raises(ValueError):
        control_times_ns(np.zeros(5))

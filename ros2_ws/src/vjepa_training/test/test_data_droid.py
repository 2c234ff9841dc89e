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


def test_legacy_stride_reproduces_the_reference_clips(tmp_path):
    """sampling legacy-stride: every ceil(60 / 4) = 15th row, video frame i with row i, as the reference loader (for
    fine-tuning the released model); the stamps stay the real control times, ~1 s apart (vjepa2#183)."""
    truth = write_synthetic_droid(tmp_path / "raw" / "ep0", rows=60, container_fps=60)
    cfg = DroidConfig(fps=4.0, image_size=16, sampling="legacy-stride")
    summary = import_droid([tmp_path / "raw"], tmp_path / "ds", cfg, progress=False)
    assert summary["episodes"] == 1
    ix = DatasetIndex(tmp_path / "ds")
    ep = ix.episodes[0]
    assert ep["sampling"] == "legacy-stride" and ep["stride"] == 15 and ep["container_fps"] == 60.0
    rows = np.array([0, 15, 30, 45])  # the MP4 has 59 frames: row 45 is the last one with a frame
    np.testing.assert_allclose(np.asarray(ix.episode_rows(0, "states")), truth.states[rows], atol=1e-12)
    stamps = np.asarray(ix.episode_rows(0, "stamps"))
    np.testing.assert_array_equal(stamps, (truth.times_ms[rows] * 1e6).astype(np.int64))
    assert np.allclose(np.diff(stamps) / 1e9, 1.0, atol=0.01)  # one step = one second of robot motion
    frames = np.asarray(ix.episode_rows(0, "frames")).reshape(len(rows), -1).mean(axis=1)
    np.testing.assert_allclose(frames, [droid_gray_level(int(r)) for r in rows], atol=4)
    # the physical default on the same episode: 4 frames per second of control time
    import_droid([tmp_path / "raw"], tmp_path / "ds_time", DroidConfig(fps=4.0, image_size=16), progress=False)
    t = np.asarray(DatasetIndex(tmp_path / "ds_time").episode_rows(0, "stamps"))
    assert abs((t[-1] - t[0]) / 1e9 / (len(t) - 1) - 0.25) < 0.01  # rows are 1/15 s apart: 0.2 or 0.267 s each


def _write_banded_video(ep, size=(72, 128), frames=19, container_fps=60):
    """Replace the episode's MP4 by frames with a bright band at columns 15..26: inside the reference's 1.35:1
    crop box (columns 15..111 of 128), outside the square centre crop (columns 28..99)."""
    import av

    video = next((ep / "recordings" / "MP4").iterdir())
    h, w = size
    img = np.full((h, w, 3), 20, np.uint8)
    img[:, 15:27] = 235
    with av.open(str(video), mode="w") as out:
        stream = out.add_stream("mpeg4", rate=container_fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"qscale": "2"}
        for _ in range(frames):
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def test_droid_crop_keeps_what_the_reference_crop_keeps(tmp_path):
    write_synthetic_droid(tmp_path / "raw" / "ep0", rows=20, size=(72, 128))
    _write_banded_video(tmp_path / "raw" / "ep0")
    left = {}
    for style in ("droid", "center"):
        import_droid([tmp_path / "raw"], tmp_path / style, DroidConfig(fps=5.0, image_size=32, crop_style=style),
                     progress=False)
        ix = DatasetIndex(tmp_path / style)
        frame = np.asarray(ix.episode_rows(0, "frames"))[0]
        assert frame.shape == (32, 32, 3) and ix.episodes[0]["crop_style"] == style
        left[style] = frame[:, :3].mean()
    assert left["droid"] > 200 and left["center"] < 50


def test_import_droid_convention_cli_and_resume_guard(tmp_path):
    write_synthetic_droid(tmp_path / "raw" / "ep0", rows=60, container_fps=60)
    out = tmp_path / "ds"
    assert cli_main(["import-droid", str(tmp_path / "raw"), "--out", str(out), "--image-size", "16",
                     "--convention", "droid", "--quiet"]) == 0
    index = json.loads((out / "index.json").read_text())
    assert index["config"]["sampling"] == "legacy-stride" and index["config"]["crop_style"] == "droid"
    assert index["episodes"][0]["stride"] == 15
    # resuming into the same directory with another sampling would mix clips of two time scales: refused
    assert cli_main(["import-droid", str(tmp_path / "raw"), "--out", str(out), "--image-size", "16", "--quiet"]) == 2
    # one part of the preset can be overridden; --no-crop cannot be combined with the droid crop
    assert cli_main(["import-droid", str(tmp_path / "raw"), "--out", str(tmp_path / "ds2"), "--image-size", "16",
                     "--convention", "droid", "--crop", "center", "--quiet"]) == 0
    cfg = json.loads((tmp_path / "ds2" / "index.json").read_text())["config"]
    assert (cfg["sampling"], cfg["crop_style"]) == ("legacy-stride", "center")
    assert cli_main(["import-droid", str(tmp_path / "raw"), "--out", str(tmp_path / "ds3"), "--image-size", "16",
                     "--crop", "droid", "--no-crop", "--quiet"]) == 2
    with pytest.raises(ValueError, match="sampling"):
        DroidConfig(sampling="stride")

"""``vjepa-train probe`` end to end on real tiny data: videos in every supported format and datasets built from
rosbags, the fixture encoder (tests/fixtures/probe_tiny_a), the reference's multi-head recipe, the released
probe format, and the evaluation protocol of ``vjepa_core.probes.classify``."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vjepa_core.checkpoint import load_official
from vjepa_core.probes import classify, load_probe, read_probe_state
from vjepa_training.data.build import BuildConfig, build_dataset
from vjepa_training.data.shards import DatasetIndex
from vjepa_training.data.synthetic import write_synthetic_bag
from vjepa_training.probe_cli import main
from vjepa_training.train.probe import (
    HeadSpec,
    ProbeDataError,
    _lr_at,
    _wd_at,
    clip_indices,
    clip_views,
    read_video,
)

FIXTURE = Path(__file__).resolve().parents[4] / "tests" / "fixtures" / "probe_tiny_a"
ENCODER = ["--checkpoint", str(FIXTURE / "encoder.pt"), "--model-config", str(FIXTURE / "config.json"),
           "--checkpoint-key", "encoder"]
FAST = ["--threads", "1", "--no-progress", "--num-heads", "4", "--depth", "2", "--batch-size", "6"]
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (40, 60, 220)}


def square_video(rng: np.random.Generator, rgb: tuple, frames: int = 12, h: int = 48, w: int = 80) -> np.ndarray:
    """A noisy grey video with a coloured square sliding right: the class is the colour."""
    v = (np.full((frames, h, w, 3), 90) + rng.integers(0, 20, (frames, h, w, 3))).astype(np.uint8)
    x0, y0 = int(rng.integers(0, w - 20 - 2 * frames)), int(rng.integers(0, h - 20))
    for t in range(frames):
        v[t, y0:y0 + 20, x0 + 2 * t:x0 + 2 * t + 20] = rgb
    return v


def write_mp4(path: Path, video: np.ndarray) -> None:
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = video.shape[2], video.shape[1], "yuv420p"
        for frame in video:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def write_split(root: Path, split: str, per_class: int, fmt: str, rng: np.random.Generator) -> Path:
    """Videos of one split in format ``fmt`` (npy | npz | png-folder | mp4) and its CSV of 'path label' lines."""
    lines = []
    for name, rgb in COLOURS.items():
        for i in range(per_class):
            video = square_video(rng, rgb)
            stem = f"{split}_{name}_{i}"
            if fmt == "npy":
                np.save(root / f"{stem}.npy", video)
                rel = f"{stem}.npy"
            elif fmt == "npz":
                np.savez_compressed(root / f"{stem}.npz", frames=video)
                rel = f"{stem}.npz"
            elif fmt == "png-folder":
                (root / stem).mkdir()
                for t, frame in enumerate(video):
                    Image.fromarray(frame).save(root / stem / f"{t:04d}.png")
                rel = stem
            else:
                write_mp4(root / f"{stem}.mp4", video)
                rel = f"{stem}.mp4"
            lines.append(f"{rel} {shlex.quote(name)}")
    csv = root / f"{split}.csv"
    csv.write_text("\n".join(lines) + "\n")
    return csv


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    rng = np.random.default_rng(0)
    return {"train": write_split(root, "train", 4, "npy", rng), "val": write_split(root, "val", 2, "npz", rng),
            "test": write_split(root, "test", 1, "png-folder", rng), "root": root}


CLIPS = ["--frames-per-clip", "4", "--frame-step", "2", "--segments", "2", "--views", "3"]
GRID = ["--epochs", "4", "--lrs", "0.005", "0.001", "--wds", "0.01", "0.1"]


@pytest.fixture(scope="module")
def trained(videos, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "probe"
    rc = main([*ENCODER, "--train", str(videos["train"]), "--val", str(videos["val"]), "--test", str(videos["test"]),
               "--out", str(out), *CLIPS, *GRID, *FAST, "--linear-baseline", "--seed", "3"])
    assert rc == 0
    return out


def test_run_writes_the_released_format_labels_metrics_and_pictures(trained):
    results = json.loads((trained / "results.json").read_text())
    assert results["labels"] == ["blue", "green", "red"]  # text labels: sorted ids
    assert json.loads((trained / "labels.json").read_text()) == {"0": "blue", "1": "green", "2": "red"}
    assert results["splits"]["train"] == {"videos": 12, "clips": 12, "class_counts": [4, 4, 4]}
    assert results["chance"]["uniform"] == pytest.approx(1 / 3)
    att = results["attentive"]
    assert len(att["heads"]) == 4 and att["heads"][att["best_head"]]["val_top1"] == max(
        h["val_top1"] for h in att["heads"])
    assert att["val"]["top1"] >= 2 / 3 and att["test"]["samples"] == 3  # colours: well above chance (1/3)
    assert "linear" in results and results["linear"]["val"]["samples"] == 6
    # released layout: classifiers with module. prefixes, opt, epoch ...; strict load with the embedded config
    raw = torch.load(trained / "probe.pt", weights_only=True)
    assert {"classifiers", "opt", "scaler", "epoch", "batch_size", "world_size"} <= set(raw)
    assert len(raw["classifiers"]) == 1 and all(k.startswith("module.") for k in raw["classifiers"][0])
    assert raw["probe_training"]["labels"] == ["blue", "green", "red"]
    probe = load_probe(trained / "probe.pt", None)
    assert probe.cfg.num_classes == 3 and probe.cfg.embed_dim == 96 and probe.cfg.depth == 2
    # metrics.csv: one row per epoch; TensorBoard events; confusion matrices are real PNGs
    rows = (trained / "metrics.csv").read_text().strip().splitlines()
    assert rows[0].startswith("step,epoch,probe_train_loss_best_head") and len(rows) == 5
    assert list((trained / "tb").glob("events.out.tfevents.*"))
    for split in ("val", "test"):
        with Image.open(trained / f"confusion_{split}.png") as img:
            assert img.format == "PNG" and img.width > 300


def test_cached_features_give_the_official_protocol_result(trained, videos):
    """The probe on cached features (float16) decides like vjepa_core.probes.classify on the raw clips."""
    encoder, _ = load_official(FIXTURE / "encoder.pt", json.loads((FIXTURE / "config.json").read_text())["encoder"],
                               encoder_key="encoder")
    probe = load_probe(trained / "probe.pt", None)
    results = json.loads((trained / "results.json").read_text())
    lines = [shlex.split(line) for line in videos["val"].read_text().splitlines()]
    correct = 0
    for rel, label in lines:
        frames = read_video(videos["root"] / rel)
        idx = clip_indices(len(frames), 4, 2, num_segments=2)[0]
        clips = [[v[None] for v in clip_views(frames[idx[s]], 64, "eval", 3)] for s in range(2)]
        probs = classify(encoder, probe, clips)[0]
        correct += results["labels"][int(probs.argmax())] == label
    assert correct / len(lines) == pytest.approx(results["attentive"]["val"]["top1"])


def test_same_seed_same_probe_and_the_cache_is_reused(trained, videos, tmp_path, caplog):
    out = tmp_path / "again"
    args = [*ENCODER, "--train", str(videos["train"]), "--val", str(videos["val"]), *CLIPS, *GRID, *FAST,
            "--cache", str(trained / "features")]
    with caplog.at_level("INFO", logger="vjepa_train"):
        assert main([*args, "--out", str(out), "--seed", "3"]) == 0
    assert "reusing the feature cache" in caplog.text and "encoded" not in caplog.text
    first, second = read_probe_state(trained / "probe.pt"), read_probe_state(out / "probe.pt")
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert main([*args, "--out", str(tmp_path / "other"), "--seed", "4"]) == 0
    third = read_probe_state(tmp_path / "other" / "probe.pt")
    assert not all(torch.equal(first[k], third[k]) for k in first)


def test_mp4_videos_decode_with_pyav(tmp_path):
    rng = np.random.default_rng(1)
    video = square_video(rng, COLOURS["red"])
    write_mp4(tmp_path / "v.mp4", video)
    decoded = read_video(tmp_path / "v.mp4")
    assert decoded.shape == video.shape and decoded.dtype == np.uint8
    assert np.abs(decoded.astype(int) - video).mean() < 12  # lossy codec, same picture


def test_read_video_refuses_what_it_cannot_use(tmp_path):
    (tmp_path / "text.npy").write_text("not an array")
    np.save(tmp_path / "float.npy", np.zeros((4, 8, 8, 3), np.float32))
    np.savez(tmp_path / "two.npz", a=np.zeros(1), b=np.zeros(1))
    (tmp_path / "empty").mkdir()
    for name, needle in (("text.npy", "cannot read the video"), ("float.npy", "expected uint8 frames"),
                         ("two.npz", "needs a 'frames' array"), ("empty", "without images"),
                         ("missing.mp4", "no such video")):
        with pytest.raises(ProbeDataError, match=needle):
            read_video(tmp_path / name)


def test_clip_indices_follow_the_reference_sampling():
    np.testing.assert_array_equal(clip_indices(20, 4, 2, num_segments=2)[0], [[0, 2, 4, 6], [10, 12, 14, 16]])
    np.testing.assert_array_equal(clip_indices(5, 4, 2)[0, 0], [0, 2, 4, 4])  # short video: last frame repeats
    jitter = clip_indices(16, 4, 4, clips_per_video=4)
    np.testing.assert_array_equal(jitter[:, 0], [[0, 4, 8, 12], [1, 5, 9, 13], [2, 6, 10, 14], [3, 7, 11, 15]])


def test_three_views_are_left_centre_right_crops():
    frames = np.zeros((2, 40, 120, 3), np.uint8)
    frames[:, :, :40] = (255, 0, 0)
    frames[:, :, 40:80] = (0, 255, 0)
    frames[:, :, 80:] = (0, 0, 255)
    views = clip_views(frames, 40, num_views=3)
    assert [tuple(v.shape) for v in views] == [(3, 2, 40, 40)] * 3
    assert [int(v.mean(dim=(1, 2, 3)).argmax()) for v in views] == [0, 1, 2]  # red, green, blue


def test_schedules_match_the_reference():
    spec = HeadSpec(lr=1e-3, weight_decay=0.04, start_lr=1e-4, final_lr=1e-5, final_weight_decay=0.4)
    assert _lr_at(spec, 5, 100, 10) == pytest.approx(1e-4 + 0.5 * 9e-4)
    assert _lr_at(spec, 10, 100, 10) == pytest.approx(1e-3)
    assert _lr_at(spec, 100, 100, 10) == pytest.approx(1e-5)
    assert _wd_at(spec, 50, 100) == pytest.approx(0.22)   # cosine from 0.04 up to 0.4, halfway
    assert _wd_at(HeadSpec(lr=1e-3, weight_decay=0.01), 70, 100) == pytest.approx(0.01)  # constant by default


def _bags(root: Path, tasks: list[str], seed: int) -> Path:
    for i, task in enumerate(tasks):
        bag = root / f"{root.name}_ep{i}"
        write_synthetic_bag(bag, "mcap", seconds=3.0, seed=seed + i)
        (bag / "episode.json").write_text(json.dumps({"task": task, "episode": i}))
    return root


def test_datasets_from_rosbags_labelled_by_task_and_by_clip_csv(tmp_path, capsys):
    for split, seed in (("train", 0), ("val", 10)):
        _bags(tmp_path / f"bags_{split}", ["push the block", "open the drawer"], seed)
        build_dataset([tmp_path / f"bags_{split}"], tmp_path / f"ds_{split}", BuildConfig(fps=4.0, image_size=64),
                      progress=False)
    common = [*ENCODER, "--train", str(tmp_path / "ds_train"), "--val", str(tmp_path / "ds_val"),
              "--frames-per-clip", "4", "--frame-step", "1", "--epochs", "1", "--lrs", "0.001", "--wds", "0.01",
              *FAST]
    assert main([*common, "--out", str(tmp_path / "by_task")]) == 0
    results = json.loads((tmp_path / "by_task" / "results.json").read_text())
    assert results["labels"] == ["open the drawer", "push the block"]
    frames = [ep["length"] for ep in DatasetIndex(tmp_path / "ds_train").episodes]
    assert results["splits"]["train"]["clips"] == sum(n // 4 for n in frames)  # non-overlapping windows
    # per-clip labels: 'episode_id start label' lines over both datasets
    ids = {s: [ep["id"] for ep in DatasetIndex(tmp_path / f"ds_{s}").episodes] for s in ("train", "val")}
    lines = [f"{e} {start} {label}" for s in ("train", "val") for e in ids[s]
             for start, label in ((0, "reach"), (4, "retreat"))]
    (tmp_path / "clips.csv").write_text("\n".join(lines) + "\n")
    assert main([*common, "--clip-labels", str(tmp_path / "clips.csv"), "--out", str(tmp_path / "by_clip")]) == 0
    results = json.loads((tmp_path / "by_clip" / "results.json").read_text())
    assert results["labels"] == ["reach", "retreat"]
    assert results["splits"]["train"]["class_counts"] == [2, 2] and results["splits"]["val"]["clips"] == 4
    capsys.readouterr()
    (tmp_path / "typo.csv").write_text("no_such_episode 0 reach\n")
    assert main([*common, "--clip-labels", str(tmp_path / "typo.csv"), "--out", str(tmp_path / "typo")]) == 2
    assert "episodes not in any dataset given: ['no_such_episode']" in capsys.readouterr().err


def _untasked_dataset(tmp_path: Path) -> Path:
    write_synthetic_bag(tmp_path / "raw" / "ep", "mcap", seconds=2.0)
    build_dataset([tmp_path / "raw"], tmp_path / "untasked", BuildConfig(fps=4.0, image_size=64), progress=False)
    return tmp_path / "untasked"


@pytest.mark.parametrize("case", ["missing video", "unseen val label", "no checkpoint", "untasked episodes",
                                  "frames vs tubelet", "val and train overlap"])
def test_bad_input_is_one_error_line_and_touches_nothing(case, videos, tmp_path, capsys):
    train, val = str(videos["train"]), str(videos["val"])
    args = [*ENCODER, *FAST, "--epochs", "1", "--frames-per-clip", "4"]
    if case == "missing video":
        (tmp_path / "bad.csv").write_text("nowhere.npy red\n")
        train, needle = str(tmp_path / "bad.csv"), "nowhere.npy: no such video file"
    elif case == "unseen val label":
        (tmp_path / "val.csv").write_text(f"{videos['root'] / 'val_red_0.npz'} purple\n")
        val, needle = str(tmp_path / "val.csv"), "val labels never seen in training: ['purple']"
    elif case == "no checkpoint":
        args[1], needle = str(tmp_path / "none.pt"), "does not exist"
    elif case == "untasked episodes":
        train, needle = str(_untasked_dataset(tmp_path)), "episodes without task text"
    elif case == "frames vs tubelet":
        args[-1], needle = "3", "multiple of the encoder's tubelet size 2"
    else:
        val, needle = train, "clips in both training and validation/test"
    out = tmp_path / "out"
    assert main([*args, "--train", train, "--val", val, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("vjepa-train probe: error:") and needle in err[0], err
    assert not out.exists()

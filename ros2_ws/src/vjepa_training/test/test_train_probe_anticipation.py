"""``vjepa-train probe --task anticipation`` end to end on real tiny data: the fixture encoder and pretraining
predictor (tests/fixtures/probe_tiny_a), synthetic videos whose verb (shape), noun (colour) and action (the pair)
are learnable, the sum of the three cross-entropies, selection by the action head's mean-class recall@5, and the
released ``ek100-*.pt`` layout read back by ``vjepa_core.probes.load_probe``."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vjepa_core.checkpoint import load_official
from vjepa_core.config import EncoderConfig, PretrainPredictorConfig
from vjepa_core.probes import ProbeConfig, anticipate, build_probe, infer_probe_config, load_probe, save_probe
from vjepa_training.data.build import BuildConfig, build_dataset
from vjepa_training.data.shards import DatasetIndex
from vjepa_training.data.synthetic import write_synthetic_bag
from vjepa_training.probe_cli import main
from vjepa_training.train.probe import (
    FeatureSet,
    anticipation_clip_indices,
    anticipation_loss,
    clip_views,
    evaluate_anticipation,
    head_grid,
    mean_class_recall,
    predict_anticipation,
    read_video,
    train_heads,
)

FIXTURE = Path(__file__).resolve().parents[4] / "tests" / "fixtures" / "probe_tiny_a"
ENCODER = ["--checkpoint", str(FIXTURE / "encoder.pt"), "--model-config", str(FIXTURE / "config.json"),
           "--checkpoint-key", "encoder"]
FAST = ["--threads", "1", "--no-progress", "--no-tensorboard", "--num-heads", "4", "--depth", "2"]
# 4-frame clips at 4 fps, 1 s ahead: the predictor fills in latent frame 2 + int(1 * 4 / 2) = 4 (of its 8)
CLIPS = ["--task", "anticipation", "--frames-per-clip", "4", "--frame-step", "1", "--frames-per-second", "4",
         "--anticipation-time", "1.0"]
COLOURS = {"red": (230, 30, 30), "green": (30, 210, 40), "blue": (40, 60, 230)}
SHAPES = {"dot": (10, 10), "box": (24, 24), "slab": (36, 56)}   # (height, width): the verb


def shape_video(rng: np.random.Generator, shape: str, colour: str, frames: int = 6) -> np.ndarray:
    """A noisy grey 64 x 64 video with a coloured shape drifting down: verb = shape, noun = colour."""
    h, w = SHAPES[shape]
    v = (np.full((frames, 64, 64, 3), 100) + rng.integers(0, 24, (frames, 64, 64, 3))).astype(np.uint8)
    y0, x0 = int(rng.integers(0, 64 - h - frames)), int(rng.integers(0, 64 - w + 1))
    for t in range(frames):
        v[t, y0 + t:y0 + t + h, x0:x0 + w] = COLOURS[colour]
    return v


def write_split(root: Path, split: str, per_action: int, rng: np.random.Generator) -> Path:
    """``per_action`` .npy videos of each of the 9 (shape, colour) actions and their ``path verb noun action``
    CSV (the action is written as one quoted field with a space, to exercise shell quoting)."""
    lines = []
    for shape in SHAPES:
        for colour in COLOURS:
            for i in range(per_action):
                name = f"{split}_{shape}_{colour}_{i}.npy"
                np.save(root / name, shape_video(rng, shape, colour))
                lines.append(f"{name} {shape} {colour} {shlex.quote(f'{shape} {colour}')}")
    csv = root / f"{split}.csv"
    csv.write_text("# path verb noun action\n" + "\n".join(lines) + "\n")
    return csv


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("ant_videos")
    rng = np.random.default_rng(0)
    return {"train": write_split(root, "train", 2, rng), "val": write_split(root, "val", 1, rng), "root": root}


@pytest.fixture(scope="module")
def trained(videos, tmp_path_factory):
    out = tmp_path_factory.mktemp("ant_run") / "probe"
    rc = main([*ENCODER, *CLIPS, *FAST, "--train", str(videos["train"]), "--val", str(videos["val"]),
               "--out", str(out), "--epochs", "12", "--batch-size", "6", "--lrs", "0.005", "0.001",
               "--wds", "0.01", "--linear-baseline", "--seed", "1"])
    assert rc == 0
    return out


@pytest.fixture(scope="module")
def models():
    cfg = json.loads((FIXTURE / "config.json").read_text())
    enc, pred = load_official(FIXTURE / "encoder.pt", EncoderConfig(**cfg["encoder"]),
                              PretrainPredictorConfig(**cfg["pretrain_predictor"]), encoder_key="encoder")
    return enc, pred


def test_mean_class_recall_at5_weighs_every_class_the_same():
    # 7 classes. ``hit`` ranks classes 0-4 in the top 5, ``miss`` ranks classes 6-2 there (0 and 1 out).
    hit, miss = [6, 5, 4, 3, 2, 1, 0], [0, 1, 2, 3, 4, 5, 6]
    scores = np.array([hit, hit, miss, hit, miss, miss], dtype=np.float64)
    labels = np.array([0, 0, 0, 1, 1, 1])
    # class 0: rows 0, 1 hit, row 2 misses -> 2/3; class 1: row 3 hits, rows 4, 5 miss -> 1/3; mean 1/2
    assert mean_class_recall(scores, labels, k=5) == pytest.approx(0.5)
    assert mean_class_recall(scores, labels, k=1) == pytest.approx(1 / 3)   # top-1: class 0 2/3, class 1 0
    # a class with more samples does not weigh more: 4 hits of class 2 lift the top-5 accuracy, not class 0/1
    scores2 = np.vstack([scores, np.tile(np.array([0, 0, 9, 0, 0, 0, 0.0]), (4, 1))])
    labels2 = np.concatenate([labels, [2, 2, 2, 2]])
    assert mean_class_recall(scores2, labels2, k=5) == pytest.approx((2 / 3 + 1 / 3 + 1) / 3)
    hits = (np.argsort(-scores2, axis=1)[:, :5] == labels2[:, None]).any(1).mean()
    assert hits == pytest.approx(7 / 10)  # top-5 accuracy, a different number
    # classes absent from the labels do not count; k is capped at the number of classes
    assert mean_class_recall(np.eye(3)[[0, 0, 1]], np.array([0, 0, 2]), k=1) == pytest.approx(0.5)
    assert mean_class_recall(np.random.default_rng(0).random((4, 3)), np.array([0, 1, 2, 2]), k=5) == 1.0
    with pytest.raises(ValueError, match="scores must be"):
        mean_class_recall(np.zeros((3, 4)), np.array([0, 1]))


def test_observed_clip_ends_at_the_last_frame():
    np.testing.assert_array_equal(anticipation_clip_indices(10, 4, 2)[0, 0], [3, 5, 7, 9])
    np.testing.assert_array_equal(anticipation_clip_indices(3, 4, 1)[0, 0], [0, 0, 1, 2])  # short: first repeats


def test_trained_heads_round_trip_through_the_released_layout(tmp_path):
    """Heads trained on the anticipation loss learn a planted label and load back with identical logits."""
    rng = np.random.default_rng(0)
    n, tokens, dim = 48, 6, 16
    labels = np.stack([rng.integers(0, 3, n), rng.integers(0, 4, n), rng.integers(0, 7, n)], axis=1)
    x = rng.normal(0, 0.3, (n, 1, tokens, dim)).astype(np.float16)
    x[np.arange(n), 0, :, labels[:, 2]] += 2.0                 # the action id is written into a channel
    x[np.arange(n), 0, :, 8 + labels[:, 0]] += 2.0             # and the verb id into another
    data = FeatureSet(x, labels, [str(i) for i in range(n)])
    cfg = ProbeConfig(embed_dim=dim, num_heads=2, depth=1, verb_classes=3, noun_classes=4, action_classes=7)
    counts = {"verb": 3, "noun": 4, "action": 7}
    before = evaluate_anticipation(predict_anticipation(build_probe(cfg), data), labels, counts)
    heads, history = train_heads(data, data, lambda: build_probe(cfg), head_grid((0.01,), (0.01,)), 15, 16, 0,
                                 7, loss_fn=anticipation_loss,
                                 score_fn=lambda h: {"action_recall5": 0.0, "action_top1": 0.0})
    assert history[-1]["train_loss"][0] < history[0]["train_loss"][0]
    after = evaluate_anticipation(predict_anticipation(heads[0], data), labels, counts)
    assert after["action_top1"] > 0.9 > before["action_top1"] and after["verb_top1"] > 0.9
    head = heads[0].eval()
    head.cfg = cfg
    save_probe(tmp_path / "ek100-tiny.pt", head)
    raw = torch.load(tmp_path / "ek100-tiny.pt", weights_only=True)
    assert {"classifiers", "opt", "scaler", "epoch", "batch_size", "world_size"} <= set(raw)
    assert all(k.startswith("module.") for k in raw["classifiers"][0])
    assert infer_probe_config(tmp_path / "ek100-tiny.pt", num_heads=2) == cfg   # what the EK100 presets read
    t = torch.from_numpy(x[:, 0].astype(np.float32))
    with torch.no_grad():
        want = head(t)
        for loaded in (load_probe(tmp_path / "ek100-tiny.pt", None), load_probe(tmp_path / "ek100-tiny.pt", cfg)):
            got = loaded(t)
            assert set(got) == {"verb", "noun", "action"}
            for k in got:
                assert torch.equal(got[k], want[k])


def test_run_selects_by_action_recall5_and_writes_the_released_format(trained):
    results = json.loads((trained / "results.json").read_text())
    assert results["task"] == "anticipation"
    assert results["classes"] == {"verb": 3, "noun": 3, "action": 9}
    assert results["labels"]["verb"] == ["box", "dot", "slab"]
    assert results["labels"]["noun"] == ["blue", "green", "red"]
    assert results["labels"]["action"][0] == "box blue" and len(results["labels"]["action"]) == 9
    assert json.loads((trained / "verb_labels.json").read_text()) == {"0": "box", "1": "dot", "2": "slab"}
    assert json.loads((trained / "labels.json").read_text())["8"] == "slab red"  # the node's labels_file
    assert results["splits"]["train"]["action_class_counts"] == [2] * 9
    att = results["attentive"]
    heads = att["heads"]
    assert len(heads) == 2
    best_key = max((h["val_action_recall5"], h["val_action_top1"]) for h in heads)
    assert (heads[att["best_head"]]["val_action_recall5"], heads[att["best_head"]]["val_action_top1"]) == best_key
    val = att["val"]
    assert val["action_recall5"] == val["action"]["mean_class_recall_at5"] == heads[att["best_head"]][
        "val_action_recall5"]
    # learnable labels: far above chance (uniform: recall@5 5/9 and top-1 1/9 for 9 actions, 1/3 for 3 verbs)
    assert results["chance"]["action_recall5_uniform"] == pytest.approx(5 / 9)
    assert results["chance"]["action_top1_uniform"] == pytest.approx(1 / 9)
    assert val["action_recall5"] >= 0.85 and val["action_top1"] >= 0.55, val
    assert val["verb_top1"] >= 0.66 and val["noun_top1"] >= 0.8, val
    for h in ("verb", "noun", "action"):
        assert {"top1", "top5", "mean_class_recall", "mean_class_recall_at5"} <= set(val[h])
        with Image.open(trained / f"confusion_val_{h}.png") as img:
            assert img.format == "PNG" and img.width > 300
    assert "linear" in results and results["linear"]["val"]["samples"] == 9
    rows = (trained / "metrics.csv").read_text().strip().splitlines()
    assert rows[0].startswith("step,epoch,probe_train_loss_best_head,probe_val_action_recall5_best")
    assert len(rows) == 13
    raw = torch.load(trained / "probe.pt", weights_only=True)
    assert {"classifiers", "opt", "scaler", "epoch", "batch_size", "world_size"} <= set(raw)
    assert len(raw["classifiers"]) == 1 and all(k.startswith("module.") for k in raw["classifiers"][0])
    meta = raw["probe_training"]
    assert meta["task"] == "anticipation" and meta["anticipation"]["time"] == 1.0
    assert meta["anticipation"]["frames_per_second"] == 4.0 and meta["anticipation"]["mask_index"] == 1


def test_saved_probe_reproduces_the_reported_metrics(trained):
    """load_probe on the written file, run on the cached validation features, gives exactly the reported
    numbers: the file holds the chosen head."""
    results = json.loads((trained / "results.json").read_text())
    probe = load_probe(trained / "probe.pt", None)
    assert probe.cfg.kind == "anticipation" and probe.cfg.action_classes == 9
    assert probe.cfg == infer_probe_config(trained / "probe.pt", num_heads=4)
    (cache,) = (trained / "features").glob("val-*")
    data = FeatureSet(np.load(cache / "tokens.npy"), np.load(cache / "labels.npy"), [])
    got = evaluate_anticipation(predict_anticipation(probe, data), data.labels, results["classes"])
    want = results["attentive"]["val"]
    for h in ("verb", "noun", "action"):
        for m in ("top1", "top5", "mean_class_recall", "mean_class_recall_at5"):
            assert got[h][m] == pytest.approx(want[h][m], abs=1e-12), (h, m)
        assert got[h]["confusion"] == want[h]["confusion"]


def test_cached_features_are_the_official_anticipation_protocol(trained, videos, models):
    """vjepa_core.probes.anticipate (encoder + predictor 1 s ahead + the saved probe) on the raw validation videos
    gives the logits of the probe on the float16 cache, and the same decisions."""
    encoder, predictor = models
    probe = load_probe(trained / "probe.pt", None)
    results = json.loads((trained / "results.json").read_text())
    (cache,) = (trained / "features").glob("val-*")
    cached = torch.from_numpy(np.load(cache / "tokens.npy")[:, 0].astype(np.float32))
    lines = [shlex.split(line) for line in videos["val"].read_text().splitlines()[1:]]
    clips = []
    for rel, *_ in lines:
        frames = read_video(videos["root"] / rel)
        idx = anticipation_clip_indices(len(frames), 4, 1)[0, 0]
        clips.append(clip_views(frames[idx], 64, "eval", 1)[0])
    with torch.no_grad():
        raw = anticipate(encoder, predictor, probe, torch.stack(clips), 1.0, 4.0)
        from_cache = probe(cached)
    for h in ("verb", "noun", "action"):
        assert (raw[h] - from_cache[h]).abs().max() < 0.05   # float16 cache
        names = results["labels"][h]
        col = ("verb", "noun", "action").index(h)
        truth = np.array([names.index(line[1 + col]) for line in lines])
        assert mean_class_recall(raw[h].numpy(), truth) == pytest.approx(results["attentive"]["val"][f"{h}_recall5"])


def test_dataset_windows_labelled_by_a_clip_csv(tmp_path):
    ids = {}
    for split, seed in (("train", 0), ("val", 10)):
        bag = tmp_path / f"bags_{split}" / f"{split}_ep0"     # episode ids are the bag names: one per split
        write_synthetic_bag(bag, "mcap", seconds=2.0, seed=seed)
        build_dataset([tmp_path / f"bags_{split}"], tmp_path / f"ds_{split}", BuildConfig(fps=4.0, image_size=64),
                      progress=False)
        ids[split] = DatasetIndex(tmp_path / f"ds_{split}").episodes[0]["id"]
    lines = [f"{ids[s]} {start} {verb} {noun} {verb}_{noun}" for s in ids
             for start, verb, noun in ((0, "reach", "cup"), (4, "lift", "cup"))]
    (tmp_path / "clips.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "run"
    assert main([*ENCODER, *CLIPS, *FAST, "--train", str(tmp_path / "ds_train"), "--val", str(tmp_path / "ds_val"),
                 "--clip-labels", str(tmp_path / "clips.csv"), "--out", str(out), "--epochs", "1",
                 "--lrs", "0.001", "--wds", "0.01"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["labels"] == {"verb": ["lift", "reach"], "noun": ["cup"], "action": ["lift_cup", "reach_cup"]}
    assert results["splits"]["train"]["videos"] == 2 and results["splits"]["val"]["action_class_counts"] == [1, 1]
    assert load_probe(out / "probe.pt", None).cfg.noun_classes == 1


@pytest.mark.parametrize("case", ["three fields", "task-labelled dataset", "horizon past the predictor",
                                  "two segments", "predictor for another encoder", "unseen val noun"])
def test_bad_anticipation_input_is_one_error_line_and_touches_nothing(case, videos, tmp_path, capsys):
    train, val = str(videos["train"]), str(videos["val"])
    extra: list[str] = []
    if case == "three fields":
        (tmp_path / "bad.csv").write_text(f"{videos['root'] / 'train_box_red_0.npy'} box red\n")
        train, needle = str(tmp_path / "bad.csv"), "expected 'path verb noun action' (4 fields)"
    elif case == "task-labelled dataset":
        write_synthetic_bag(tmp_path / "raw" / "ep", "mcap", seconds=2.0)
        (tmp_path / "raw" / "ep" / "episode.json").write_text(json.dumps({"task": "push"}))
        build_dataset([tmp_path / "raw"], tmp_path / "ds", BuildConfig(fps=4.0, image_size=64), progress=False)
        train, needle = str(tmp_path / "ds"), "anticipation needs (verb, noun, action) per clip"
    elif case == "horizon past the predictor":
        extra, needle = ["--anticipation-time", "3.0"], "past the predictor's num_frames 16"
    elif case == "two segments":
        extra, needle = ["--segments", "2"], "use --segments 1"
    elif case == "predictor for another encoder":
        extra, needle = ["--predictor-config", "vit_large"], "does not fit the encoder"
    else:
        (tmp_path / "val.csv").write_text(f"{videos['root'] / 'val_box_red_0.npy'} box purple 'box red'\n")
        val, needle = str(tmp_path / "val.csv"), "noun labels: val labels never seen in training: ['purple']"
    out = tmp_path / "out"
    assert main([*ENCODER, *CLIPS, *FAST, "--epochs", "1", "--train", train, "--val", val, "--out", str(out),
                 *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("vjepa-train probe: error:") and needle in err[0], err
    assert not out.exists()

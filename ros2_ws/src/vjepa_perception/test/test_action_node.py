"""action_node in a real rclpy graph over Fast DDS: camera frames in, ActionLabels out (classification with a released-
format probe, anticipation with the pretraining predictor), stamp-based clip sampling, bad frames, refusals at
start-up, SIGINT. Expected scores come from vjepa_core.probes on the same frames, without the node."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy
import torch
import yaml
from _ros2_helpers import Spinner
from rcl_interfaces.msg import Log
from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

from vjepa_core.checkpoint import load_official
from vjepa_core.config import PretrainPredictorConfig
from vjepa_core.imgmsg import rgb_to_image_fields
from vjepa_core.preprocessing import preprocess_clip
from vjepa_core.probes import ProbeConfig, anticipate, classify, load_probe
from vjepa_interfaces.msg import ActionLabels
from vjepa_perception.action_node import PARAMETERS, ActionNode, LabelsError, read_labels

REPO = Path(__file__).resolve().parents[4]
FIXTURE = REPO / "tests" / "fixtures" / "probe_tiny_a"
CONFIG = json.loads((FIXTURE / "config.json").read_text())
CLS_CFG = {"embed_dim": 96, "num_heads": 4, "depth": 2, "num_classes": 7}
ANT_CFG = {"embed_dim": 96, "num_heads": 4, "depth": 2, "verb_classes": 5, "noun_classes": 6, "action_classes": 9}
NAMES = ["pour", "stir", "cut", "wipe", "open", "close", "wait"]
RNG = np.random.default_rng(0)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("probe_files")
    (d / "cls.json").write_text(json.dumps(CLS_CFG))
    (d / "ant.json").write_text(json.dumps(ANT_CFG))
    (d / "labels.txt").write_text("\n".join(NAMES) + "\n")
    (d / "three.txt").write_text("a\nb\nc\n")
    return d


def classification_params(files: Path, **extra) -> dict:
    return {"checkpoint": str(FIXTURE / "encoder.pt"), "model_config": str(FIXTURE / "config.json"),
            "checkpoint_key": "encoder", "probe": str(FIXTURE / "probe_classification.pt"),
            "probe_config": str(files / "cls.json"), "labels_file": str(files / "labels.txt"),
            "frames_per_clip": 4, "max_rate_hz": 50.0, "top_k": 3, "crop": "eval", **extra}


def anticipation_params(files: Path, **extra) -> dict:
    return {**classification_params(files), "probe": str(FIXTURE / "probe_anticipation.pt"),
            "probe_config": str(files / "ant.json"), "labels_file": "",
            "predictor_config": str(FIXTURE / "config.json"), "clip_fps": 4.0, "anticipation_time_s": 1.0, **extra}


def reference_probs(frames: np.ndarray) -> np.ndarray:
    encoder, _ = load_official(FIXTURE / "encoder.pt", CONFIG["encoder"], encoder_key="encoder")
    probe = load_probe(FIXTURE / "probe_classification.pt", CLS_CFG)
    return classify(encoder, probe, preprocess_clip(frames, 64, "eval")[None])[0].numpy()


def reference_anticipation(frames: np.ndarray, seconds: float, fps: float) -> dict:
    pred_cfg = PretrainPredictorConfig.from_dict(CONFIG["pretrain_predictor"])
    encoder, predictor = load_official(FIXTURE / "encoder.pt", CONFIG["encoder"], pred_cfg, encoder_key="encoder")
    probe = load_probe(FIXTURE / "probe_anticipation.pt", ANT_CFG)
    out = anticipate(encoder, predictor, probe, preprocess_clip(frames, 64, "eval")[None], seconds, fps)
    return {k: torch.softmax(v, -1)[0].numpy() for k, v in out.items()}


class Graph:
    """action_node + a test node in one process, spun by a multi-threaded executor in a thread."""

    def __init__(self, domain: int, params: dict):
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain)
        self.node = ActionNode(context=self.context,
                               parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
        self.probe = rclpy.create_node("probe", context=self.context)
        self.labels: list[ActionLabels] = []
        self.logs: list[str] = []
        self.probe.create_subscription(ActionLabels, "/vjepa/action_labels", self.labels.append, 50)
        self.probe.create_subscription(Log, "/rosout", lambda m: self.logs.append(m.msg), 100)
        self.pub = self.probe.create_publisher(Image, "/camera/image_raw", qos_profile_sensor_data)
        self.executor = MultiThreadedExecutor(num_threads=3, context=self.context)
        self.executor.add_node(self.node)
        self.executor.add_node(self.probe)
        self.spinner = Spinner(self.executor)
        wait(lambda: self.pub.get_subscription_count() > 0 and self.probe.count_publishers("/vjepa/action_labels"),
             10, "discovery")

    def send(self, rgb: np.ndarray, stamp: float, encoding: str = "rgb8", **override) -> None:
        msg = Image(**{**rgb_to_image_fields(rgb, "rgb8"), "encoding": encoding, **override})
        msg.header.stamp.sec, msg.header.stamp.nanosec = int(stamp), int(round((stamp % 1) * 1e9))
        msg.header.frame_id = "ext1"
        self.pub.publish(msg)
        time.sleep(0.03)                    # best-effort transport: do not outrun the subscriber

    def close(self):
        self.spinner.close()
        self.node.destroy_node()
        self.probe.destroy_node()
        rclpy.shutdown(context=self.context)


def wait(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def graph(ros_domain_id, files):
    g = Graph(ros_domain_id, classification_params(files))
    yield g
    g.close()


def test_classification_top_k_equals_the_reference(graph):
    frames = RNG.integers(0, 256, size=(4, 48, 80, 3), dtype=np.uint8)   # any size: eval crop to 64
    for i, f in enumerate(frames):
        graph.send(f, 10.0 + 0.25 * i)
    wait(lambda: graph.labels, 20, "labels")
    msg = graph.labels[0]
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id) == (10, 750_000_000, "ext1")
    assert msg.mode == "classification" and msg.num_frames == 4 and msg.clip_duration == pytest.approx(0.75)
    assert msg.horizon == 0.0 and not msg.action_labels and msg.inference_time > 0
    probs = reference_probs(frames)
    order = np.argsort(-probs)[:3]
    assert list(msg.class_ids) == order.tolist() and list(msg.labels) == [NAMES[i] for i in order]
    np.testing.assert_allclose(msg.scores, probs[order], atol=1e-5)
    assert msg.model_id.startswith("vit_custom_d96") and msg.probe_id.startswith("probe_classification.pt@")
    descriptions = graph.node.describe_parameters(list(PARAMETERS))
    assert all(d.description for d in descriptions)


def test_clip_frames_are_sampled_by_stamp_at_clip_fps(ros_domain_id, files):
    g = Graph(ros_domain_id, classification_params(files, clip_fps=2.5, labels_file=""))
    try:
        frames = RNG.integers(0, 256, size=(16, 64, 64, 3), dtype=np.uint8)
        for i, f in enumerate(frames):                       # a 10 Hz camera for 1.6 s
            g.send(f, 100.0 + 0.1 * i)
        wait(lambda: g.labels, 20, "labels")
        time.sleep(0.5)
        assert len(g.labels) == 1                             # frames 13-15 fall between clip frames
        msg = g.labels[0]
        assert msg.header.stamp.sec == 101 and abs(msg.header.stamp.nanosec - 200_000_000) < 1000
        assert msg.clip_duration == pytest.approx(1.2, abs=1e-6)
        probs = reference_probs(frames[[0, 4, 8, 12]])
        assert list(msg.class_ids) == np.argsort(-probs)[:3].tolist()
        assert list(msg.labels) == [str(i) for i in msg.class_ids]      # no labels file: ids
        np.testing.assert_allclose(msg.scores, np.sort(probs)[::-1][:3], atol=1e-5)
        st = g.node.stats()
        assert st["received"] == 16 and st["sampled"] == 4 and st["invalid"] == 0
    finally:
        g.close()


def test_anticipation_publishes_verb_noun_action_for_the_horizon(ros_domain_id, files):
    g = Graph(ros_domain_id, anticipation_params(files))
    try:
        frames = RNG.integers(0, 256, size=(4, 64, 64, 3), dtype=np.uint8)
        for i, f in enumerate(frames):
            g.send(f, 3.0 + 0.25 * i)                       # 4 fps = clip_fps
        wait(lambda: g.labels, 20, "anticipation labels")
        msg = g.labels[0]
        assert msg.mode == "anticipation" and msg.horizon == pytest.approx(1.0) and not msg.labels
        ref = reference_anticipation(frames, 1.0, 4.0)
        for head, n in (("verb", 5), ("noun", 6), ("action", 9)):
            ids, scores = getattr(msg, f"{head}_ids"), getattr(msg, f"{head}_scores")
            assert list(ids) == np.argsort(-ref[head])[:3].tolist(), head
            np.testing.assert_allclose(scores, np.sort(ref[head])[::-1][:3], atol=1e-5)
            assert len(ref[head]) == n
    finally:
        g.close()


def test_bad_frames_are_refused_and_the_node_keeps_labelling(graph):
    rgb = RNG.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    graph.send(rgb, 1.0)                                      # fixes the clip's frame size at 64x64
    graph.send(rgb, 1.1, encoding="yuv422")
    graph.send(rgb, 1.2, data=b"\x00" * 100)
    graph.send(RNG.integers(0, 256, size=(32, 48, 3), dtype=np.uint8), 1.3)
    for i in range(3):
        graph.send(rgb, 1.4 + 0.1 * i)
    wait(lambda: graph.labels, 20, "labels after the bad frames")
    text = "\n".join(graph.logs)
    for needle in ("unsupported image encoding 'yuv422'", "expected step*height", "it is 48x32 but the clip's "
                   "frames are 64x64"):
        assert needle in text, f"no warning mentioning {needle!r} in:\n{text}"
    st = graph.node.stats()
    assert st["invalid"] == 3 and st["sampled"] == 4 and st["published"] == 1
    assert graph.labels[0].header.stamp.sec == 1 and graph.labels[0].num_frames == 4


def test_rate_limit_skips_clips_instead_of_queueing(ros_domain_id, files):
    g = Graph(ros_domain_id, classification_params(files, frames_per_clip=2, max_rate_hz=2.0))
    try:
        rgb = RNG.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
        t0 = time.monotonic()
        for i in range(30):
            g.send(rgb, 50.0 + 0.05 * i)
        burst = time.monotonic() - t0
        time.sleep(1.0)
        n = len(g.labels)
        assert 1 <= n <= burst * 2 + 2, f"{n} label messages for a {burst:.2f} s burst at 2 Hz"
        stamps = [m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in g.labels]
        assert stamps == sorted(stamps) and stamps[-1] > 51.0   # newest clips win, never a backlog
        assert g.node.stats()["skipped"] >= 10
    finally:
        g.close()


def test_stamps_going_back_start_a_new_clip(graph):
    rgb = RNG.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    for i in range(3):
        graph.send(rgb, 20.0 + 0.1 * i)
    for i in range(4):                                        # a reset simulation: time restarts
        graph.send(rgb, 1.0 + 0.1 * i)
    wait(lambda: graph.labels, 20, "labels")
    time.sleep(0.3)
    assert [m.header.stamp.sec for m in graph.labels] == [1]
    assert graph.labels[0].clip_duration == pytest.approx(0.3, abs=1e-6)
    assert any("starting a new clip" in line for line in graph.logs)


def _ros_args(params: dict) -> list[str]:
    """``-p name:=value`` pairs (an empty string is written as YAML '', which the rcl parser accepts)."""
    return [a for k, v in params.items() for a in ("-p", f"{k}:={v if v != '' else repr('')}")]


def _run_node(params: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    args = _ros_args(params)
    return subprocess.run([sys.executable, "-m", "vjepa_perception.action_node", "--ros-args", *args],
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("case", ["probe width", "label count", "missing probe", "horizon", "no checkpoint"])
def test_mismatches_refuse_to_start_with_one_clear_line(case, files, ros_domain_id):
    params = classification_params(files)
    if case == "probe width":      # the fixture's 96-wide probe on the 64-wide sim encoder
        params.update(checkpoint=str(REPO / "models" / "sim_reach" / "vjepa2_sim.pt"),
                      model_config=str(REPO / "models" / "sim_reach" / "config.json"), checkpoint_key="target_encoder")
        needle = "the probe reads 96-wide tokens but the encoder"
    elif case == "label count":
        params["labels_file"], needle = str(files / "three.txt"), "names 3 classes but the probe has 7"
    elif case == "missing probe":
        params["probe"], needle = "/nonexistent/probe.pt", "probe '/nonexistent/probe.pt' does not exist"
    elif case == "horizon":
        params, needle = anticipation_params(files, anticipation_time_s=10.0), "past the predictor's num_frames"
    else:
        params["checkpoint"], needle = "", "checkpoint is required"
    result = _run_node(params)
    assert result.returncode == 1, result.stderr
    assert "cannot start" in result.stderr and needle in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_sigint_ends_a_labelling_node_cleanly(files, ros_domain_id):
    args = _ros_args(classification_params(files, frames_per_clip=2))
    proc = subprocess.Popen([sys.executable, "-m", "vjepa_perception.action_node", "--ros-args", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=ros_domain_id)
    node = rclpy.create_node("camera", context=ctx)
    got: list[ActionLabels] = []
    node.create_subscription(ActionLabels, "/vjepa/action_labels", got.append, 10)
    pub = node.create_publisher(Image, "/camera/image_raw", qos_profile_sensor_data)
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(node)
    try:
        deadline = time.monotonic() + 60
        i = 0
        while not got and time.monotonic() < deadline and proc.poll() is None:   # keep the camera running
            msg = Image(**rgb_to_image_fields(RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)))
            msg.header.stamp.sec = i
            pub.publish(msg)
            i += 1
            executor.spin_once(timeout_sec=0.05)
        assert got, "no labels from the node process"
        for j in range(5):                                    # frames still arriving while it stops
            msg = Image(**rgb_to_image_fields(RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)))
            msg.header.stamp.sec = i + j
            pub.publish(msg)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=ctx)
    assert proc.returncode == 0, err
    for bad in ("Traceback", "never retrieved", "Error"):
        assert bad not in err, err


def test_defaults_equal_config_action_yaml():
    doc = yaml.safe_load((REPO / "config" / "action.yaml").read_text())["action_node"]["ros__parameters"]
    assert doc == {k: v for k, (v, _) in PARAMETERS.items()}


def test_labels_files_in_every_supported_format(tmp_path):
    (tmp_path / "ids.json").write_text(json.dumps({"1": "b", "0": "a", "2": "c"}))
    (tmp_path / "ssv2.json").write_text(json.dumps({"Pushing something": "1", "Holding something": "0"}))
    (tmp_path / "list.json").write_text(json.dumps(["x", "y"]))
    (tmp_path / "verbs.csv").write_text("id,key,instances,category\n0,take,[],retrieve\n1,put,[],leave\n")
    (tmp_path / "names.txt").write_text("# comment\nfirst\n\nsecond\n")
    assert read_labels(str(tmp_path / "ids.json"), 3) == ["a", "b", "c"]
    assert read_labels(str(tmp_path / "ssv2.json")) == ["Holding something", "Pushing something"]
    assert read_labels(str(tmp_path / "list.json")) == ["x", "y"]
    assert read_labels(str(tmp_path / "verbs.csv")) == ["take", "put"]
    assert read_labels(str(tmp_path / "names.txt")) == ["first", "second"]
    (tmp_path / "gap.json").write_text(json.dumps({"0": "a", "2": "c"}))
    for name, count, needle in (("gap.json", None, "without gaps"), ("names.txt", 3, "names 2 classes but the "
                                "probe has 3"), ("missing.txt", None, "cannot read")):
        with pytest.raises(LabelsError, match=needle):
            read_labels(str(tmp_path / name), count)


def test_probe_trained_by_vjepa_train_probe_loads_without_probe_config(tmp_path):
    """The embedded config path (probe_config empty) with the shipped sim probe and its encoder."""
    probe_dir = REPO / "models" / "sim_probe"
    probe = load_probe(probe_dir / "probe.pt", None)
    assert isinstance(probe.cfg, ProbeConfig) and probe.cfg.embed_dim == 64
    names = read_labels(str(probe_dir / "labels.json"), probe.cfg.num_classes)
    assert "hold still" in names

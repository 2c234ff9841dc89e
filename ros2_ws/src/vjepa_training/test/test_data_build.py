"""Bags -> dataset: values equal the ground truth, truncated bags are skipped, builds resume."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from rosbags.typesys import Stores, get_typestore

from vjepa_core.franka import MAX_GRIPPER_WIDTH
from vjepa_core.imgmsg import rgb_to_image_fields
from vjepa_core.pose import compute_new_pose, poses_to_diff, quat_to_euler
from vjepa_training.data.bagio import BagWriter, make_qos
from vjepa_training.data.build import (
    DEFAULT_GRIPPER_TOPIC,
    DEFAULT_IMAGE_TOPIC,
    DEFAULT_POSE_TOPIC,
    BuildConfig,
    build_dataset,
)
from vjepa_training.data.decode import resize_center_crop
from vjepa_training.data.shards import DatasetIndex
from vjepa_training.data.synthetic import make_image, write_synthetic_bag
from vjepa_training.dataset_cli import build_parser
from vjepa_training.dataset_cli import main as cli_main


def expected_states(truth, stamps):
    """Independent nearest-before lookup of the published pose/gripper for each frame stamp."""
    out = []
    for s in stamps:
        k = np.flatnonzero(truth.pose_ns <= s)[-1]
        j = np.flatnonzero(truth.gripper_ns <= s)[-1]
        assert s - truth.pose_ns[k] <= 0.1e9 and s - truth.gripper_ns[j] <= 0.1e9
        out.append(np.concatenate([truth.poses[k, :3], quat_to_euler(truth.poses[k, 3:]), [truth.grippers[j]]]))
    return np.array(out)


def check_episode(ix, ep_i, truth, size, fps=4.0, exact_frames=True):
    frames = np.asarray(ix.episode_rows(ep_i, "frames"))
    states = np.asarray(ix.episode_rows(ep_i, "states"))
    actions = np.asarray(ix.episode_rows(ep_i, "actions"))
    stamps = np.asarray(ix.episode_rows(ep_i, "stamps"))
    # Every frame is a published image (by its stamp), decoded and resized exactly.
    for f, s in zip(frames, stamps):
        idx = np.flatnonzero(truth.image_ns == s)
        assert idx.size == 1, "dataset frame stamp is not a published image stamp"
        want = resize_center_crop(truth.images[idx[0]], size)
        if exact_frames:
            np.testing.assert_array_equal(f, want)
        else:
            # JPEG is lossy: the frame must be close to its image and closer to it than to its neighbours.
            errs = [np.abs(f.astype(int) - resize_center_crop(truth.images[j], size)).mean()
                    for j in range(max(0, idx[0] - 2), min(len(truth.images), idx[0] + 3))]
            assert np.abs(f.astype(int) - want).mean() == min(errs) < 8
    # Fixed-rate grid from the first frame, within a quarter period.
    grid = stamps[0] + np.arange(len(stamps)) * 1e9 / fps
    assert np.all(np.abs(stamps - grid) <= 0.25e9 / fps + 1)
    np.testing.assert_allclose(states, expected_states(truth, stamps), atol=1e-9)
    np.testing.assert_allclose(states[:, 3:6], states[:, 3:6])  # finite
    np.testing.assert_allclose(actions[:-1], poses_to_diff(states[:-1], states[1:]), atol=1e-12)
    np.testing.assert_array_equal(actions[-1], 0.0)
    np.testing.assert_allclose(compute_new_pose(states[:-1], actions[:-1])[:, :6], states[1:, :6], atol=1e-9)
    return len(frames)


@pytest.mark.parametrize("storage,compressed", [("mcap", ""), ("sqlite3", "png"), ("mcap", "jpeg")])
def test_build_matches_ground_truth(tmp_path, storage, compressed):
    truth = write_synthetic_bag(tmp_path / "bags" / "ep", storage, seconds=3.0, compressed=compressed,
                                camera_hz=15, pose_hz=40, gripper_hz=12, jitter_s=0.006, seed=3)
    summary = build_dataset([tmp_path / "bags"], tmp_path / "ds", BuildConfig(image_size=32), progress=False)
    assert summary["skipped"] == [] and summary["episodes"] == 1
    ix = DatasetIndex(tmp_path / "ds")
    n = check_episode(ix, 0, truth, 32, exact_frames=compressed != "jpeg")
    assert n == summary["frames"] >= 11  # 3 s at 4 fps


def test_camera_gap_splits_episode_and_stale_pose_splits(tmp_path):
    truth = write_synthetic_bag(tmp_path / "b", "mcap", seconds=4.0, seed=1)
    # Rewrite with a 1 s camera gap: drop images between 1.5 s and 2.5 s.
    from vjepa_training.data.bagio import BagReader, BagWriter

    t0 = truth.image_ns[0]
    with BagReader(tmp_path / "b") as r, BagWriter(tmp_path / "gap") as w:
        for topic, typ in r.topics.items():
            w.add_topic(topic, typ)
        for topic, ts, raw in r.messages():
            if topic == "/camera/image_raw":
                s = truth.image_ns[np.argmin(np.abs(truth.image_ns - (ts - 2_000_000)))]
                if 1.5e9 < s - t0 < 2.5e9:
                    continue
            w.write(topic, ts, raw)
    summary = build_dataset([tmp_path / "gap"], tmp_path / "ds", BuildConfig(image_size=16), progress=False)
    assert summary["episodes"] == 2
    ix = DatasetIndex(tmp_path / "ds")
    for i in range(2):
        check_episode(ix, i, truth, 16)
    assert ix.episodes[1]["start_time_ns"] - ix.episodes[0]["end_time_ns"] > 0.9e9


def test_truncated_and_unclosed_bags_skipped_others_built(tmp_path):
    bags = tmp_path / "bags"
    good1 = write_synthetic_bag(bags / "a_good", "mcap", seconds=2.0, seed=1)
    write_synthetic_bag(bags / "b_truncated", "mcap", seconds=2.0, seed=2)
    good2 = write_synthetic_bag(bags / "c_good", "sqlite3", seconds=2.0, seed=3)
    write_synthetic_bag(bags / "d_unclosed", "mcap", seconds=2.0, seed=4)
    mcap = bags / "b_truncated" / "b_truncated.mcap"
    data = mcap.read_bytes()
    mcap.write_bytes(data[: len(data) // 2])
    (bags / "d_unclosed" / "metadata.yaml").unlink()
    summary_path = tmp_path / "summary.json"
    rc = cli_main(["build", str(bags), "--out", str(tmp_path / "ds"), "--fps", "4", "--image-size", "16",
                   "--summary-json", str(summary_path), "--quiet"])
    assert rc == 0
    summary = json.loads(summary_path.read_text())
    skipped = {s["source"].split("/")[-1]: s["reason"] for s in summary["skipped"]}
    assert set(skipped) == {"b_truncated", "d_unclosed"}
    assert "truncated or corrupt" in skipped["b_truncated"]
    assert "not closed" in skipped["d_unclosed"] and "vjepa-dataset recover" in skipped["d_unclosed"]
    assert summary["episodes"] == 2 and summary["frames"] > 0
    ix = DatasetIndex(tmp_path / "ds")
    assert [e["id"] for e in ix.episodes] == ["a_good#0", "c_good#0"]
    check_episode(ix, 0, good1, 16)
    check_episode(ix, 1, good2, 16)


def test_build_resumes_and_adds_new_bags(tmp_path):
    bags = tmp_path / "bags"
    write_synthetic_bag(bags / "a", "mcap", seconds=2.0, seed=1)
    cfg = BuildConfig(image_size=16, shard_frames=1)
    first = build_dataset([bags], tmp_path / "ds", cfg, progress=False)
    write_synthetic_bag(bags / "b", "mcap", seconds=2.0, seed=2)
    # Leftover of an interrupted commit must be cleaned up, not indexed.
    (tmp_path / "ds" / "shards" / "shard_00001.tmp").mkdir()
    second = build_dataset([bags], tmp_path / "ds", cfg, progress=False)
    assert second["reused_sources"] == 1 and second["new_episodes"] == 1
    assert second["episodes"] == 2 and second["frames"] > first["frames"]
    assert not (tmp_path / "ds" / "shards" / "shard_00001.tmp").exists()
    with pytest.raises(ValueError, match="fps"):
        build_dataset([bags], tmp_path / "ds", BuildConfig(fps=2.0, image_size=16), progress=False)


def test_missing_topic_is_a_skip_reason(tmp_path):
    write_synthetic_bag(tmp_path / "bags" / "a", "mcap", seconds=1.0)
    summary = build_dataset([tmp_path / "bags"], tmp_path / "ds",
                            BuildConfig(pose_topic="/nope", image_size=16), progress=False)
    assert summary["episodes"] == 0
    assert "pose topic '/nope' not in the bag" in summary["skipped"][0]["reason"]
    rc = cli_main(["build", str(tmp_path / "bags"), "--out", str(tmp_path / "ds2"), "--pose-topic", "/nope",
                   "--quiet"])
    assert rc == 1
    shutil.rmtree(tmp_path / "ds2")


def _bag_with_gripper_names(path, names: list[str], positions: list[float]) -> None:
    """A real mcap bag: rgb8 camera at 15 Hz, pose at 50 Hz, and gripper JointStates with these names/positions."""
    ts = get_typestore(Stores.LATEST)
    T, H = ts.types["builtin_interfaces/msg/Time"], ts.types["std_msgs/msg/Header"]
    P, Pt, Q = (ts.types[f"geometry_msgs/msg/{n}"] for n in ("Pose", "Point", "Quaternion"))

    def header(ns: int) -> object:
        return H(stamp=T(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000), frame_id="")

    t0 = 1_700_000_000_000_000_000
    with BagWriter(path, storage="mcap", fsync=False) as bag:
        for topic, typ in ((DEFAULT_IMAGE_TOPIC, "sensor_msgs/msg/Image"),
                           (DEFAULT_POSE_TOPIC, "geometry_msgs/msg/PoseStamped"),
                           (DEFAULT_GRIPPER_TOPIC, "sensor_msgs/msg/JointState")):
            bag.add_topic(topic, typ, qos=[make_qos(True)])
        for k in range(100):  # 2 s at 50 Hz
            ns = t0 + k * 20_000_000
            pose = ts.types["geometry_msgs/msg/PoseStamped"](header=header(ns), pose=P(
                position=Pt(x=0.4, y=0.0, z=0.3 + 0.001 * k), orientation=Q(x=0.0, y=0.0, z=0.0, w=1.0)))
            bag.write(DEFAULT_POSE_TOPIC, ns, ts.serialize_cdr(pose, "geometry_msgs/msg/PoseStamped"))
            js = ts.types["sensor_msgs/msg/JointState"](header=header(ns), name=names,
                                                       position=np.array(positions), velocity=np.zeros(0),
                                                       effort=np.zeros(0))
            bag.write(DEFAULT_GRIPPER_TOPIC, ns, ts.serialize_cdr(js, "sensor_msgs/msg/JointState"))
            if k % 3 == 0 and k >= 5:
                img = make_image(k)
                msg = ts.types["sensor_msgs/msg/Image"](header=header(ns + 1), **rgb_to_image_fields(img))
                msg.data = np.frombuffer(msg.data, np.uint8)
                bag.write(DEFAULT_IMAGE_TOPIC, ns + 1, ts.serialize_cdr(msg, "sensor_msgs/msg/Image"))


def test_gripper_states_convert_through_msgconv(tmp_path):
    """Bags' gripper JointStates go through vjepa_core.msgconv, the suite's one converter: a well-formed one gives
    the closedness; one whose names and positions disagree is a skip reason, not a silently summed width."""
    half = 0.25 * MAX_GRIPPER_WIDTH / 2
    _bag_with_gripper_names(tmp_path / "bags" / "ok", ["fr3_finger_joint1", "fr3_finger_joint2"], [half, half])
    _bag_with_gripper_names(tmp_path / "bags" / "bad", ["fr3_finger_joint1", "fr3_finger_joint2", "extra"],
                            [half, half])
    summary = build_dataset([tmp_path / "bags"], tmp_path / "ds", BuildConfig(image_size=16), progress=False)
    assert summary["episodes"] == 1 and [s["source"].split("/")[-1] for s in summary["skipped"]] == ["bad"]
    assert "3 names but 2 positions" in summary["skipped"][0]["reason"]
    states = np.asarray(DatasetIndex(tmp_path / "ds").episode_rows(0, "states"))
    np.testing.assert_allclose(states[:, 6], 0.75)


def test_topic_and_gripper_defaults_come_from_vjepa_core():
    """One place for Franka facts: the builder, its CLI and the recorder take them from vjepa_core.franka, and
    the dataset layer has no message converters of its own."""
    from vjepa_core import franka
    from vjepa_training.data import decode
    from vjepa_training.data.recording import DEFAULT_TOPICS

    assert BuildConfig().pose_topic == franka.CURRENT_POSE_TOPIC
    assert BuildConfig().gripper_topic == franka.GRIPPER_JOINT_STATES_TOPIC
    assert BuildConfig().gripper_max_width == franka.MAX_GRIPPER_WIDTH
    args = build_parser().parse_args(["build", "x", "--out", "y"])
    assert (args.pose_topic, args.gripper_topic, args.gripper_max_width) == (
        franka.CURRENT_POSE_TOPIC, franka.GRIPPER_JOINT_STATES_TOPIC, franka.MAX_GRIPPER_WIDTH)
    assert {franka.CURRENT_POSE_TOPIC, franka.GRIPPER_JOINT_STATES_TOPIC, franka.JOINT_STATES_TOPIC} <= set(
        DEFAULT_TOPICS)
    assert not {"image_to_rgb", "pose_to_xyzq", "gripper_closedness"} & set(dir(decode))

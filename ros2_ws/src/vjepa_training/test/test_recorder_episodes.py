"""EpisodeRecorder (ROS-free part of recorder_node): sidecars, splitting by size, start/stop rules."""

from __future__ import annotations

import json

import pytest
from rosbags.typesys import Stores, get_typestore

from vjepa_training.data.bagio import BagReader, make_qos
from vjepa_training.data.recording import EpisodeRecorder, RecorderConfig

TS = get_typestore(Stores.LATEST)


def _msg(i: int) -> bytes:
    return bytes(TS.serialize_cdr(TS.types["std_msgs/msg/String"](data="x" * 1000 + str(i)), "std_msgs/msg/String"))


def test_episode_lifecycle_and_size_split(tmp_path):
    rec = EpisodeRecorder(RecorderConfig(output_dir=str(tmp_path), storage="sqlite3", split_size_mb=0.01))
    rec.add_topic("/s", "std_msgs/msg/String", [make_qos()])
    assert not rec.write("/s", 1, _msg(0))  # not recording: dropped
    first = rec.start("wipe the table", {"operator": "ann"}, now_ns=10)
    with pytest.raises(RuntimeError, match="already recording"):
        rec.start("again")
    side = json.loads((first / "episode.json").read_text())
    assert side["task"] == "wipe the table" and not side["complete"] and side["topics"] == {"/s": "std_msgs/msg/String"}
    for i in range(25):
        assert rec.write("/s", 100 + i, _msg(i))
        rec.tick(now_ns=100 + i)
    rec.stop("service", now_ns=1000)
    parts = sorted(p for p in tmp_path.iterdir() if p.is_dir())
    assert len(parts) >= 2 and parts[0] == first  # split into parts of ~10 kB
    total = 0
    for p in parts:
        meta = json.loads((p / "episode.json").read_text())
        assert meta["complete"] and meta["task"] == "wipe the table" and meta["episode"] == 1
        with BagReader(p) as r:
            total += r.message_counts["/s"]
    assert total == 25
    assert rec.stop() is None and rec.status()["recording"] is False


def test_bad_config_rejected():
    with pytest.raises(ValueError, match="storage"):
        RecorderConfig(storage="rosbag1")
    with pytest.raises(ValueError, match="flush_period_s"):
        RecorderConfig(flush_period_s=0)

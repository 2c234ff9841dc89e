"""Episode bookkeeping of the recorder, free of ROS so it is tested on its own.

``EpisodeRecorder`` owns at most one open :class:`~vjepa_training.data.bagio.BagWriter`: ``start()`` opens a
new bag directory ``<output_dir>/<prefix>_<YYYYmmdd-HHMMSS>_<n>`` and writes an ``episode.json`` sidecar
(task text, start time, topics, ``"complete": false``); ``write()`` appends serialized messages;
``tick()`` flushes every ``flush_period_s`` and splits the recording by duration or size; ``stop()`` closes
the bag and completes the sidecar (stop time, reason, message counts). The ROS node only adapts
subscriptions and services to these calls.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rosbags.interfaces import Qos

from vjepa_core.franka import CURRENT_POSE_TOPIC, GRIPPER_JOINT_STATES_TOPIC, JOINT_STATES_TOPIC

from .bagio import STORAGES, BagWriter

__all__ = ["CAMERA_COMPRESSED_TOPIC", "CAMERA_IMAGE_TOPIC", "DEFAULT_TOPICS", "EpisodeRecorder", "RecorderConfig"]

#: The camera topic recorded, and built into datasets, by default (the Franka topics come from vjepa_core.franka).
CAMERA_IMAGE_TOPIC = "/camera/image_raw"
#: Its image_transport ``compressed`` twin (``sensor_msgs/CompressedImage``): recorded when a camera publishes it;
#: ``vjepa-dataset build`` reads it when the raw image topic is absent.
CAMERA_COMPRESSED_TOPIC = CAMERA_IMAGE_TOPIC + "/compressed"
#: What ``recorder_node`` records unless told otherwise: camera (raw and compressed, whichever is published),
#: end-effector pose, gripper, joint states. config/recorder.yaml and config/record_topics.yaml list the same
#: topics (tests/test_node_parameters.py checks it).
DEFAULT_TOPICS = [CAMERA_IMAGE_TOPIC, CAMERA_COMPRESSED_TOPIC, CURRENT_POSE_TOPIC, GRIPPER_JOINT_STATES_TOPIC,
                  JOINT_STATES_TOPIC]


@dataclass
class RecorderConfig:
    """Recorder settings (the node's parameters of the same names).

    split_duration_s / split_size_mb: start a new bag (same episode, next ``part``) when exceeded; 0 = never.
    """

    output_dir: str = "~/vjepa_bags"
    storage: str = "mcap"
    bag_prefix: str = "episode"
    flush_period_s: float = 1.0
    split_duration_s: float = 0.0
    split_size_mb: float = 0.0
    compress: bool = False

    def __post_init__(self) -> None:
        if self.storage not in STORAGES:
            raise ValueError(f"storage must be one of {sorted(STORAGES)}, got {self.storage!r}")
        if not self.flush_period_s > 0:
            raise ValueError("flush_period_s must be > 0")
        if self.split_duration_s < 0 or self.split_size_mb < 0:
            raise ValueError("split_duration_s and split_size_mb must be >= 0")
        if not self.bag_prefix or "/" in self.bag_prefix:
            raise ValueError(f"bag_prefix must be a non-empty file name, got {self.bag_prefix!r}")


@dataclass
class _Open:
    writer: BagWriter
    meta: dict[str, Any]
    opened_mono: float
    last_flush_mono: float
    topics: dict[str, str] = field(default_factory=dict)


class EpisodeRecorder:
    """Writes episodes to bags; see the module docstring. Not thread-safe (call from one executor thread)."""

    def __init__(self, cfg: RecorderConfig) -> None:
        self.cfg = cfg
        self.root = Path(os.path.expanduser(cfg.output_dir))
        self.root.mkdir(parents=True, exist_ok=True)
        self._known: dict[str, tuple[str, list[Qos]]] = {}
        self._open: _Open | None = None
        self._episode = 0
        self.finished: list[dict[str, Any]] = []

    @property
    def recording(self) -> bool:
        """True while a bag is open."""
        return self._open is not None

    @property
    def bag_path(self) -> Path | None:
        """Directory of the open bag."""
        return self._open.writer.path if self._open else None

    def add_topic(self, topic: str, msgtype: str, qos: list[Qos]) -> None:
        """Declare a topic (type and offered QoS); it is added to the open bag and to every later one."""
        self._known[topic] = (msgtype, list(qos))
        if self._open is not None:
            self._add_to_bag(topic)

    def _add_to_bag(self, topic: str) -> None:
        assert self._open is not None
        msgtype, qos = self._known[topic]
        self._open.writer.add_topic(topic, msgtype, qos=qos)
        self._open.topics[topic] = msgtype
        self._open.meta["topics"] = dict(self._open.topics)

    def _new_dir(self, part: int) -> Path:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        base = f"{self.cfg.bag_prefix}_{stamp}_{self._episode:03d}" + (f"_part{part}" if part else "")
        path, n = self.root / base, 1
        while path.exists():
            path, n = self.root / f"{base}-{n}", n + 1
        return path

    def start(self, task: str = "", metadata: dict[str, Any] | None = None, now_ns: int | None = None,
              part: int = 0) -> Path:
        """Open a new episode bag; raises RuntimeError if one is already open."""
        if self._open is not None:
            raise RuntimeError(f"already recording into {self._open.writer.path}")
        if part == 0:
            self._episode += 1
        path = self._new_dir(part)
        writer = BagWriter(path, storage=self.cfg.storage, compress=self.cfg.compress)
        mono = time.monotonic()
        meta = {"task": task, "episode": self._episode, "part": part, "storage": self.cfg.storage,
                "start_time_ns": int(now_ns if now_ns is not None else time.time_ns()), "stop_time_ns": None,
                "stop_reason": None, "complete": False, "topics": {}, "counts": {},
                "metadata": dict(metadata or {}), "recorder": "vjepa_training.recorder_node"}
        self._open = _Open(writer, meta, mono, mono)
        for topic in self._known:
            self._add_to_bag(topic)
        self._write_sidecar()
        return path

    def write(self, topic: str, t_ns: int, data: bytes | memoryview) -> bool:
        """Append one serialized message; False (dropped) when no episode is open or the topic is unknown."""
        if self._open is None or topic not in self._open.topics:
            return False
        self._open.writer.write(topic, t_ns, data)
        return True

    def flush(self) -> None:
        """Make the open bag durable up to now (see ``BagWriter.flush``) and refresh the sidecar counts."""
        if self._open is None:
            return
        self._open.writer.flush()
        self._open.last_flush_mono = time.monotonic()
        self._open.meta["counts"] = dict(self._open.writer.flushed_counts)
        self._write_sidecar()

    def tick(self, now_ns: int | None = None) -> None:
        """Periodic work: flush when due; split by duration/size when configured."""
        o = self._open
        if o is None:
            return
        mono = time.monotonic()
        if mono - o.last_flush_mono >= self.cfg.flush_period_s:
            self.flush()
        too_long = self.cfg.split_duration_s > 0 and mono - o.opened_mono >= self.cfg.split_duration_s
        too_big = self.cfg.split_size_mb > 0 and o.writer.bytes_written >= self.cfg.split_size_mb * 1e6
        if too_long or too_big:
            task, meta, part = o.meta["task"], o.meta["metadata"], o.meta["part"]
            self.stop("split", now_ns)
            self.start(task, meta, now_ns, part=part + 1)

    def stop(self, reason: str = "service", now_ns: int | None = None) -> dict[str, Any] | None:
        """Close the open bag and complete its sidecar; returns the sidecar dict (None if not recording)."""
        o, self._open = self._open, None
        if o is None:
            return None
        o.writer.close()
        o.meta.update({"stop_time_ns": int(now_ns if now_ns is not None else time.time_ns()),
                       "stop_reason": reason, "complete": True, "counts": dict(o.writer.counts),
                       "path": str(o.writer.path)})
        self._write_sidecar(o)
        self.finished.append(o.meta)
        return o.meta

    def status(self) -> dict[str, Any]:
        """Recording state for the status topic: bag, task, written and flushed (durable) counts."""
        o = self._open
        if o is None:
            return {"recording": False, "topics": sorted(self._known), "episodes_finished": len(self.finished),
                    "last_bag": self.finished[-1]["path"] if self.finished else None}
        return {"recording": True, "topics": sorted(self._known), "bag": str(o.writer.path),
                "task": o.meta["task"], "episode": o.meta["episode"],
                "part": o.meta["part"], "counts": dict(o.writer.counts), "flushed": dict(o.writer.flushed_counts),
                "bytes": o.writer.bytes_written}

    def _write_sidecar(self, o: _Open | None = None) -> None:
        o = o or self._open
        if o is None:
            return
        path = o.writer.path / "episode.json"
        tmp = path.with_name("episode.json.tmp")
        tmp.write_text(json.dumps(o.meta, indent=1), encoding="utf-8")
        os.replace(tmp, path)

"""``recorder_node``: record robot topics into rosbag2 episodes (mcap or sqlite3) with the rosbags writer.

Run::

    ros2 run vjepa_training recorder_node --ros-args --params-file config/recorder.yaml
    python -m vjepa_training.recorder_node --ros-args -p output_dir:=/data/bags -p storage:=mcap

Interfaces:
- subscriptions: every topic in ``topics`` (or ``topics_file``), generic and serialized (``raw=True``): the type
  is discovered from the graph and the QoS matched to the publishers (best-effort if any publisher is
  best-effort, transient-local if all are), so franka's best-effort ``current_pose`` is received.
- ``~/start_episode`` (std_srvs/Trigger): open a new bag; the task text is the ``task`` parameter
  (``ros2 param set /recorder_node task "stack the cups"`` before calling).
- ``~/stop_episode`` (std_srvs/Trigger): close the bag.
- ``~/status`` (std_msgs/String, JSON): recording state, message counts written and flushed.
  ``flushed`` counts are on disk: they survive even a hard kill (see docs/data.md, "Recovering a bag").

``mode: continuous`` records from start-up, split by ``split_duration_s`` / ``split_size_mb``.
SIGINT/SIGTERM close the bag cleanly. The node only adapts ROS to
:class:`vjepa_training.data.recording.EpisodeRecorder`.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
from typing import Any

import rclpy
import yaml
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String
from std_srvs.srv import Trigger

from .data.bagio import make_qos
from .data.recording import DEFAULT_TOPICS, EpisodeRecorder, RecorderConfig

PARAMS: dict[str, tuple[Any, str]] = {
    "topics": (DEFAULT_TOPICS, "topics to record (types discovered from the graph)"),
    "topics_file": ("", "YAML file with a 'topics:' list (e.g. config/record_topics.yaml); overrides 'topics'"),
    "output_dir": ("~/vjepa_bags", "directory that receives one bag directory per episode"),
    "storage": ("mcap", "rosbag2 storage: mcap (default) or sqlite3"),
    "bag_prefix": ("episode", "bag directory name prefix"),
    "mode": ("episodes", "episodes (start/stop services) or continuous (record from start-up, split)"),
    "task": ("", "task text stored with the next episode (episode.json)"),
    "flush_period_s": (1.0, "seconds between flushes to disk (at most this much is lost on a hard kill)"),
    "split_duration_s": (0.0, "start a new bag part after this many seconds; 0 = never"),
    "split_size_mb": (0.0, "start a new bag part after this many MB of messages; 0 = never"),
    "compress": (False, "zstd compression (mcap chunks / sqlite3 messages)"),
    "discovery_period_s": (0.5, "seconds between graph checks for configured topics"),
    "qos_depth": (10, "subscription history depth"),
}


def load_topics_file(path: str) -> list[str]:
    """The ``topics:`` list of a YAML file (entries are names or ``{name: ...}`` dicts)."""
    with open(os.path.expanduser(path), encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    topics = data.get("topics") if isinstance(data, dict) else None
    if not isinstance(topics, list) or not topics:
        raise ValueError(f"{path}: expected a non-empty 'topics:' list")
    return [t["name"] if isinstance(t, dict) else str(t) for t in topics]


def message_class(msgtype: str) -> Any:
    """Python class of a ROS type name like ``sensor_msgs/msg/Image``."""
    pkg, kind, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{pkg}.{kind}"), name)


def matched_qos(infos: list[Any], depth: int) -> tuple[QoSProfile, bool, bool]:
    """Subscription QoS compatible with every publisher; also (reliable, transient_local) of the offer."""
    reliable = bool(infos) and all(i.qos_profile.reliability == ReliabilityPolicy.RELIABLE for i in infos)
    transient = bool(infos) and all(i.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for i in infos)
    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                     reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL if transient else DurabilityPolicy.VOLATILE)
    return qos, reliable, transient


class RecorderNode(Node):
    """Thin ROS adapter around :class:`EpisodeRecorder`."""

    def __init__(self) -> None:
        super().__init__("recorder_node")
        for name, (default, desc) in PARAMS.items():
            self.declare_parameter(name, default, ParameterDescriptor(description=desc))
        p = {name: self.get_parameter(name).value for name in PARAMS}
        if p["mode"] not in ("episodes", "continuous"):
            raise ValueError(f"parameter mode must be 'episodes' or 'continuous', got {p['mode']!r}")
        self.topics = load_topics_file(p["topics_file"]) if p["topics_file"] else list(p["topics"])
        self.recorder = EpisodeRecorder(RecorderConfig(
            output_dir=p["output_dir"], storage=p["storage"], bag_prefix=p["bag_prefix"],
            flush_period_s=float(p["flush_period_s"]), split_duration_s=float(p["split_duration_s"]),
            split_size_mb=float(p["split_size_mb"]), compress=bool(p["compress"])))
        self.qos_depth = int(p["qos_depth"])
        self._subs: dict[str, Any] = {}
        self._warned: set[str] = set()
        self.status_pub = self.create_publisher(String, "~/status", 10)
        self.create_service(Trigger, "~/start_episode", self._on_start)
        self.create_service(Trigger, "~/stop_episode", self._on_stop)
        self.create_timer(float(p["discovery_period_s"]), self._discover)
        self.create_timer(min(0.2, float(p["flush_period_s"])), self._tick)
        self._last_status = 0.0
        self._discover()
        if p["mode"] == "continuous":
            self._start(str(p["task"]))
        self.get_logger().info(f"recording {self.topics} into {self.recorder.root} ({p['storage']}, {p['mode']})")

    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def _discover(self) -> None:
        graph = dict(self.get_topic_names_and_types())
        for topic in self.topics:
            if topic in self._subs or topic not in graph:
                continue
            infos = self.get_publishers_info_by_topic(topic)
            if not infos:
                continue
            msgtype = graph[topic][0]
            try:
                cls = message_class(msgtype)
            except (ImportError, AttributeError, ValueError) as exc:
                if topic not in self._warned:
                    self._warned.add(topic)
                    self.get_logger().error(f"cannot record {topic}: type {msgtype} is not importable ({exc})")
                continue
            qos, reliable, transient = matched_qos(infos, self.qos_depth)
            try:
                self.recorder.add_topic(topic, msgtype, [make_qos(reliable, transient, self.qos_depth)])
            except Exception as exc:  # no message definition found: report once, keep the others
                if topic not in self._warned:
                    self._warned.add(topic)
                    self.get_logger().error(f"cannot record {topic}: {exc}")
                continue
            self._subs[topic] = self.create_subscription(
                cls, topic, lambda data, t=topic: self._on_msg(t, data), qos, raw=True)
            self.get_logger().info(f"subscribed {topic} [{msgtype}] "
                                   f"{'reliable' if reliable else 'best_effort'}")

    def _on_msg(self, topic: str, data: bytes) -> None:
        self.recorder.write(topic, self._now_ns(), data)

    def _tick(self) -> None:
        self.recorder.tick(self._now_ns())
        now = self.get_clock().now().nanoseconds / 1e9
        if now - self._last_status >= 0.5:
            self._last_status = now
            self.status_pub.publish(String(data=json.dumps(self.recorder.status())))

    def _start(self, task: str) -> str:
        path = self.recorder.start(task, {"topics_requested": self.topics}, self._now_ns())
        self.get_logger().info(f"episode started: {path} (task {task!r})")
        return str(path)

    def _on_start(self, _req: Trigger.Request, resp: Trigger.Response) -> Trigger.Response:
        try:
            resp.message = self._start(str(self.get_parameter("task").value))
            resp.success = True
        except RuntimeError as exc:
            resp.success, resp.message = False, str(exc)
        return resp

    def _on_stop(self, _req: Trigger.Request, resp: Trigger.Response) -> Trigger.Response:
        meta = self.recorder.stop("service", self._now_ns())
        if meta is None:
            resp.success, resp.message = False, "not recording"
        else:
            resp.success, resp.message = True, meta["path"]
            self.get_logger().info(f"episode stopped: {meta['path']} counts {meta['counts']}")
        self.status_pub.publish(String(data=json.dumps(self.recorder.status())))
        return resp

    def close(self, reason: str) -> None:
        """Close the open bag (on shutdown)."""
        meta = self.recorder.stop(reason)
        if meta is not None:
            print(f"recorder_node: closed {meta['path']} ({reason}) counts {meta['counts']}", file=sys.stderr)


def main(args: list[str] | None = None) -> None:
    """Entry point: spin until SIGINT/SIGTERM, then close the bag cleanly."""
    rclpy.init(args=args)
    try:
        node = RecorderNode()
    except ValueError as exc:
        print(f"recorder_node: error: {exc}", file=sys.stderr)
        rclpy.try_shutdown()
        sys.exit(2)

    def _on_term(_sig: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _on_term)
    reason = "shutdown"
    try:
        rclpy.spin(node)
    except KeyboardInterrupt:
        reason = "signal"
    except ExternalShutdownException:
        reason = "signal"
    finally:
        node.close(reason)
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()

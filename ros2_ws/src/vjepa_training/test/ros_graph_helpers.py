"""Shared helpers of the recorder tests: a publisher node with multi-rate jittered streams, a recorder process.

Imported by file path from the tests (the test directory is not a package).
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from vjepa_core.franka import CURRENT_POSE_TOPIC, GRIPPER_JOINT_STATES_TOPIC, MAX_GRIPPER_WIDTH
from vjepa_training.data.recording import CAMERA_IMAGE_TOPIC

PKG = Path(__file__).resolve().parents[1]
SRC = PKG.parent
IMAGE_TOPIC = CAMERA_IMAGE_TOPIC
POSE_TOPIC = CURRENT_POSE_TOPIC
GRIPPER_TOPIC = GRIPPER_JOINT_STATES_TOPIC


def domain_id(offset: int) -> str:
    """A ROS_DOMAIN_ID unlikely to collide with other test processes (1..99 + offset, < 232)."""
    return str(100 + (os.getpid() * 7 + offset) % 120)


def recorder_env(domain: str) -> dict[str, str]:
    env = dict(os.environ)
    env["ROS_DOMAIN_ID"] = domain
    paths = [str(SRC / "vjepa_training"), str(SRC / "vjepa_core")]
    env["PYTHONPATH"] = os.pathsep.join(paths + [env.get("PYTHONPATH", "")])
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start_recorder(domain: str, out: Path, storage: str, topics: list[str], extra: list[str] = ()) -> subprocess.Popen:
    topic_list = "[" + ",".join(f"'{t}'" for t in topics) + "]"
    cmd = [sys.executable, "-m", "vjepa_training.recorder_node", "--ros-args",
           "-p", f"output_dir:={out}", "-p", f"storage:={storage}", "-p", f"topics:={topic_list}",
           "-p", "flush_period_s:=0.3", "-p", "discovery_period_s:=0.2", "-p", "qos_depth:=50", *extra]
    return subprocess.Popen(cmd, env=recorder_env(domain), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


class StatusWatcher:
    """Keeps the recorder's latest ~/status JSON."""

    def __init__(self, node) -> None:
        from std_msgs.msg import String

        self.latest: dict = {}
        node.create_subscription(String, "/recorder_node/status", self._cb, 10)

    def _cb(self, msg) -> None:
        self.latest = json.loads(msg.data)


def spin_until(executor, cond, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        executor.spin_once(timeout_sec=0.05)
        if cond():
            return
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def call_trigger(executor, node, name: str, timeout: float = 10.0):
    from std_srvs.srv import Trigger

    cli = node.create_client(Trigger, name)
    spin_until(executor, cli.service_is_ready, timeout, f"service {name}")
    fut = cli.call_async(Trigger.Request())
    spin_until(executor, fut.done, timeout, f"response of {name}")
    return fut.result()


class StreamPublisher:
    """Publishes camera (raw or PNG-compressed), best-effort pose and gripper at different jittered rates.

    Every published message is logged (header stamp -> value) so a test can compare the dataset with it.
    """

    def __init__(self, node, compressed: bool, camera_hz: float = 15.0, pose_hz: float = 50.0,
                 gripper_hz: float = 20.0, jitter_s: float = 0.005, seed: int = 0) -> None:
        from geometry_msgs.msg import PoseStamped
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CompressedImage, Image, JointState

        self.node, self.compressed = node, compressed
        self.rates = {"camera": camera_hz, "pose": pose_hz, "gripper": gripper_hz}
        self.jitter = jitter_s
        self.rng = np.random.default_rng(seed)
        img_type = CompressedImage if compressed else Image
        self.image_topic = IMAGE_TOPIC + "/compressed" if compressed else IMAGE_TOPIC
        self.pubs = {
            "camera": node.create_publisher(img_type, self.image_topic, 10),
            "pose": node.create_publisher(  # franka's current_pose is best-effort, depth 1
                PoseStamped, POSE_TOPIC, QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)),
            "gripper": node.create_publisher(JointState, GRIPPER_TOPIC, 10),
        }
        self.types = (img_type, PoseStamped, JointState)
        self.log = {"camera": {}, "pose": {}, "gripper": {}}
        self.count = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _publish(self, kind: str, t_ns: int, t_rel: float) -> None:
        from builtin_interfaces.msg import Time
        from PIL import Image as PILImage

        from vjepa_core.imgmsg import rgb_to_image_fields
        from vjepa_core.msgconv import fill_pose_msg
        from vjepa_core.pose import euler_to_quat
        from vjepa_training.data.synthetic import gripper_at, make_image, pose_at

        img_type, PoseStamped, JointState = self.types
        stamp = Time(sec=t_ns // 1_000_000_000, nanosec=t_ns % 1_000_000_000)
        if kind == "camera":
            i = len(self.log["camera"])
            img = make_image(i)
            msg = img_type()
            msg.header.stamp, msg.header.frame_id = stamp, "camera"
            if self.compressed:
                buf = io.BytesIO()
                PILImage.fromarray(img).save(buf, format="PNG")
                msg.format, msg.data = "png", buf.getvalue()
            else:
                fields = rgb_to_image_fields(img, "rgb8")
                msg.height, msg.width, msg.encoding = fields["height"], fields["width"], fields["encoding"]
                msg.is_bigendian, msg.step, msg.data = fields["is_bigendian"], fields["step"], fields["data"]
            self.log["camera"][t_ns] = img
        elif kind == "pose":
            s6 = pose_at(np.array([t_rel]))[0]
            q = euler_to_quat(s6[3:6])
            msg = PoseStamped()
            msg.header.stamp, msg.header.frame_id = stamp, "base"
            fill_pose_msg(msg.pose, np.concatenate([s6, [0.0]]))
            self.log["pose"][t_ns] = np.array([s6[0], s6[1], s6[2], *q])
        else:
            g = float(gripper_at(np.array([t_rel]))[0])
            half = MAX_GRIPPER_WIDTH * (1 - g) / 2
            msg = JointState()
            msg.header.stamp = stamp
            msg.name, msg.position = ["fr3_finger_joint1", "fr3_finger_joint2"], [half, half]
            self.log["gripper"][t_ns] = g
        self.pubs[kind].publish(msg)
        self.count += 1

    def run_for(self, seconds: float) -> None:
        """Publish for ``seconds`` in a background thread (returns immediately)."""
        events = []
        for kind, hz in self.rates.items():
            base = np.arange(0.0, seconds, 1.0 / hz)
            events += [(t + self.rng.uniform(0, self.jitter), kind) for t in base]
        events.sort()

        def loop() -> None:
            t0 = time.monotonic()
            for t_plan, kind in events:
                if self._stop.is_set():
                    return
                delay = t0 + t_plan - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                now_ns = self.node.get_clock().now().nanoseconds
                self._publish(kind, now_ns, t_plan)

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()


def stop_process(proc: subprocess.Popen, sig: int = signal.SIGINT, timeout: float = 15.0) -> str:
    proc.send_signal(sig)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        proc.kill()
        out, _ = proc.communicate()
        raise AssertionError(f"recorder did not exit after signal {sig}:\n{out}") from exc
    return out

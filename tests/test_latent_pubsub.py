"""A vjepa_interfaces/Latent crosses a real Fast DDS link between two processes with every field intact."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import rclpy

PAYLOAD_SHAPE = (1, 4, 4, 8)

PUBLISHER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy, DurabilityPolicy
    from vjepa_interfaces.msg import Latent

    rclpy.init()
    node = rclpy.create_node("latent_talker")
    qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    pub = node.create_publisher(Latent, "/test/latent", qos)
    msg = Latent()
    msg.header.stamp.sec = 1234
    msg.header.stamp.nanosec = 567
    msg.header.frame_id = "camera_optical"
    msg.model_id = "vit_tiny@deadbeef"
    msg.frames, msg.height, msg.width, msg.dim = 1, 4, 4, 8
    msg.image_size, msg.patch_size, msg.tubelet_size = 64, 16, 2
    msg.normalized = True
    msg.inference_time = 0.25
    msg.data = (np.arange(128, dtype=np.float32) * 0.5 - 3.0).tolist()
    end = time.monotonic() + 30
    while time.monotonic() < end and rclpy.ok():
        pub.publish(msg)
        rclpy.spin_once(node, timeout_sec=0.2)
    """
)


def test_latent_roundtrip_two_processes(ros_domain_id):
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    from vjepa_interfaces.msg import Latent

    talker = subprocess.Popen([sys.executable, "-c", PUBLISHER])
    rclpy.init(domain_id=ros_domain_id)
    try:
        node = rclpy.create_node("latent_listener")
        received: list[Latent] = []
        qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
        node.create_subscription(Latent, "/test/latent", received.append, qos)
        deadline = time.monotonic() + 25
        while not received and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.2)
            assert talker.poll() is None, "publisher process died"
        assert received, "no Latent received over DDS within 25 s"
        msg = received[0]
        assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (1234, 567)
        assert msg.header.frame_id == "camera_optical"
        assert msg.model_id == "vit_tiny@deadbeef"
        assert (msg.frames, msg.height, msg.width, msg.dim) == PAYLOAD_SHAPE
        assert (msg.image_size, msg.patch_size, msg.tubelet_size) == (64, 16, 2)
        assert msg.normalized is True
        assert msg.inference_time == pytest.approx(0.25)
        data = np.asarray(msg.data, dtype=np.float32).reshape(PAYLOAD_SHAPE)
        np.testing.assert_array_equal(data.ravel(), np.arange(128, dtype=np.float32) * 0.5 - 3.0)
        node.destroy_node()
    finally:
        rclpy.shutdown()
        talker.terminate()
        talker.wait(10)

"""A vjepa_interfaces/Latent crosses a real Fast DDS link between two processes with every field intact, written
and read by the one conversion the nodes use (vjepa_core.msgconv.fill_latent_msg / latent_from_msg)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import rclpy

PAYLOAD_SHAPE = (1, 4, 4, 8)
PAYLOAD = (np.arange(128, dtype=np.float32) * 0.5 - 3.0).reshape(PAYLOAD_SHAPE)

PUBLISHER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy, DurabilityPolicy
    from vjepa_core.msgconv import fill_latent_msg
    from vjepa_interfaces.msg import Latent

    rclpy.init()
    node = rclpy.create_node("latent_talker")
    qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    pub = node.create_publisher(Latent, "/test/latent", qos)
    msg = Latent()
    msg.header.stamp.sec = 1234
    msg.header.stamp.nanosec = 567
    msg.header.frame_id = "camera_optical"
    tokens = (np.arange(128, dtype=np.float32) * 0.5 - 3.0).reshape(1, 4, 4, 8)
    fill_latent_msg(msg, tokens, model_id="vit_tiny@deadbeef", normalized=True, image_size=64, patch_size=16,
                    tubelet_size=2, inference_time=0.25)
    end = time.monotonic() + 30
    while time.monotonic() < end and rclpy.ok():
        pub.publish(msg)
        rclpy.spin_once(node, timeout_sec=0.2)
    """
)


def test_latent_roundtrip_two_processes(ros_domain_id):
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    from vjepa_core.msgconv import latent_from_msg
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
        latent = latent_from_msg(received[0], expected_grid=PAYLOAD_SHAPE[1:])
        assert (latent.stamp, latent.frame_id) == (pytest.approx(1234.000000567), "camera_optical")
        assert (received[0].header.stamp.sec, received[0].header.stamp.nanosec) == (1234, 567)
        assert latent.model_id == "vit_tiny@deadbeef"
        assert latent.grid == PAYLOAD_SHAPE
        assert (latent.image_size, latent.patch_size, latent.tubelet_size) == (64, 16, 2)
        assert latent.normalized is True
        assert latent.inference_time == pytest.approx(0.25)
        np.testing.assert_array_equal(latent.tokens, PAYLOAD)
        node.destroy_node()
    finally:
        rclpy.shutdown()
        talker.terminate()
        talker.wait(10)

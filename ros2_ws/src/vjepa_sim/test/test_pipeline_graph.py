"""The pipeline's NodeGraph: its nodes run in the graph's own ROS domain, and the calling process joins that domain
through rclpy.init(domain_id=...) without its environment being changed (a library must not rewrite
ROS_DOMAIN_ID for the rest of the process)."""

from __future__ import annotations

import os
import time

import rclpy
from geometry_msgs.msg import PoseStamped
from rclpy.qos import qos_profile_sensor_data

from vjepa_sim.pipeline.graph import NodeGraph


def test_graph_domain_without_touching_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("ROS_DOMAIN_ID", raising=False)
    domain = 150 + os.getpid() % 50  # the pipeline's range (101..200), clear of the tests' ids
    nodes = [{"package": "vjepa_sim", "executable": "sim_node", "name": "sim_node",
              "parameters": [{"real_time_factor": 1.0, "seed": 0}]}]
    with NodeGraph(nodes, tmp_path / "graph.log", domain_id=domain) as graph:
        assert "ROS_DOMAIN_ID" not in os.environ
        assert graph.specs[0].env["ROS_DOMAIN_ID"] == str(domain)
        context = rclpy.Context()
        rclpy.init(context=context, domain_id=domain)
        node = rclpy.create_node("graph_probe", context=context)
        poses: list = []
        node.create_subscription(PoseStamped, "/franka_robot_state_broadcaster/current_pose", poses.append,
                                 qos_profile_sensor_data)
        executor = rclpy.executors.SingleThreadedExecutor(context=context)
        executor.add_node(node)
        try:
            deadline = time.monotonic() + 60
            while not poses and time.monotonic() < deadline:
                graph.check()
                executor.spin_once(timeout_sec=0.1)
        finally:
            executor.shutdown()
            node.destroy_node()
            rclpy.try_shutdown(context=context)
        assert poses, f"no pose from sim_node in domain {domain}:\n{graph.tail()}"
    assert "ROS_DOMAIN_ID" not in os.environ

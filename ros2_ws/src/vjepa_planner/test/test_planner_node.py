"""planner_node in a real rclpy graph (Fast DDS) with encoder_node and a test arm that moves to each target."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy
from geometry_msgs.msg import PoseStamped
from rclpy.executors import MultiThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image, JointState
from std_srvs.srv import Trigger

from vjepa_core.imgmsg import rgb_to_image_fields
from vjepa_core.pose import pose_from_pose_stamped, pose_to_pose_stamped
from vjepa_interfaces.msg import Latent, PlanStatus
from vjepa_interfaces.srv import SetGoal
from vjepa_perception.encoder_node import EncoderNode
from vjepa_planner.planner_node import PlannerNode

FIXTURE = Path(__file__).resolve().parents[4] / "tests" / "fixtures" / "parity_tiny_a"
TARGET_TOPIC = "/cartesian_impedance_example_controller/equilibrium_pose"
POSE_TOPIC = "/franka_robot_state_broadcaster/current_pose"
HOME = np.array([0.5, 0.0, 0.4, np.pi, 0.0, 0.0, 0.0])
WS_MIN, WS_MAX = [0.35, -0.2, 0.15], [0.65, 0.2, 0.45]
MODEL = {"checkpoint": str(FIXTURE / "checkpoint.pt"), "model_config": str(FIXTURE / "config.json")}
PLANNER = {**MODEL, "robot": "sim", "gripper": "sim_topic", "gripper_target": "/vjepa_sim/gripper_command",
           "cem_samples": 24, "cem_iterations": 2, "cem_topk": 4, "cem_maxnorm": 0.3, "max_steps": 50,
           "workspace_min": WS_MIN, "workspace_max": WS_MAX, "control_rate_hz": 50.0, "settle_timeout_s": 2.0,
           "fault_timeout_s": 60.0}


def render(state: np.ndarray) -> np.ndarray:
    """A camera for the test arm: a bright square whose place follows the end effector."""
    img = np.full((64, 64, 3), 30, np.uint8)
    u = int(np.clip((state[1] + 0.3) / 0.6 * 56, 0, 56))
    v = int(np.clip((0.6 - state[2]) / 0.6 * 56, 0, 56))
    img[v:v + 8, u:u + 8] = (250, 200, 40)
    return img


class InstantArm:
    """Moves instantly to each commanded target; publishes current_pose (best effort) and camera images."""

    def __init__(self, node, camera=True):
        self.node = node
        self.state = HOME.copy()
        self.targets: list[np.ndarray] = []
        self.publish_pose = True
        self.nan_pose = False
        qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
        self.pose_pub = node.create_publisher(PoseStamped, POSE_TOPIC, qos)
        self.grip_pub = node.create_publisher(JointState, "/fr3_gripper/joint_states", qos)
        self.img_pub = node.create_publisher(Image, "/camera/image_raw", qos_profile_sensor_data)
        node.create_subscription(PoseStamped, TARGET_TOPIC, self._on_target, 10)
        node.create_timer(0.02, self._tick)
        if camera:
            node.create_timer(0.1, self._camera)

    def _on_target(self, msg):
        p = msg.pose
        xyzq = np.array([p.position.x, p.position.y, p.position.z, p.orientation.x, p.orientation.y,
                         p.orientation.z, p.orientation.w])
        self.state = pose_from_pose_stamped(xyzq, self.state[6])
        self.targets.append(self.state.copy())

    def pose_msg(self):
        msg = PoseStamped()
        msg.header.stamp = self.node.get_clock().now().to_msg()
        msg.header.frame_id = "fr3_link0"
        x, y, z, qx, qy, qz, qw = pose_to_pose_stamped(self.state)
        if self.nan_pose:
            x = float("nan")
        msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = float(x), float(y), float(z)
        msg.pose.orientation.x, msg.pose.orientation.y = float(qx), float(qy)
        msg.pose.orientation.z, msg.pose.orientation.w = float(qz), float(qw)
        return msg

    def _tick(self):
        if self.publish_pose:
            self.pose_pub.publish(self.pose_msg())
        self.grip_pub.publish(JointState(name=["fr3_finger_joint1", "fr3_finger_joint2"], position=[0.04, 0.04]))

    def _camera(self):
        img = Image(**rgb_to_image_fields(render(self.state)))
        img.header.stamp = self.node.get_clock().now().to_msg()
        self.img_pub.publish(img)


class Graph:
    def __init__(self, domain, with_encoder=True, **planner_params):
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain)
        self.nodes = []
        if with_encoder:
            self.nodes.append(EncoderNode(context=self.context, parameter_overrides=[
                Parameter(k, value=v) for k, v in {**MODEL, "max_rate_hz": 30.0}.items()]))
        params = {**PLANNER, **planner_params}
        self.planner = PlannerNode(context=self.context,
                                   parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
        self.probe = rclpy.create_node("probe", context=self.context)
        self.arm = InstantArm(self.probe, camera=with_encoder)
        self.statuses: list[PlanStatus] = []
        self.probe.create_subscription(PlanStatus, "/planner_node/status", self.statuses.append, 100)
        self.latent_pub = self.probe.create_publisher(Latent, "/vjepa/latent", 5)
        self.goal_pub = self.probe.create_publisher(Latent, "/vjepa/goal_latent", 1)
        self.nodes += [self.planner, self.probe]
        self.executor = MultiThreadedExecutor(num_threads=4, context=self.context)
        for n in self.nodes:
            self.executor.add_node(n)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def call(self, srv_type, name, request, timeout=30.0):
        client = self.probe.create_client(srv_type, name)
        assert client.wait_for_service(timeout_sec=10), f"{name} not available"
        future = client.call_async(request)
        wait_for(future.done, timeout, name)
        return future.result()

    def executing(self):
        return [s for s in self.statuses if s.state == PlanStatus.STATE_EXECUTING]

    def latent(self, model_id="tiny@1", stamp=None, grid=None):
        msg = Latent(model_id=model_id, frames=1, height=4, width=4, dim=96, normalized=True)
        msg.header.stamp = stamp or self.probe.get_clock().now().to_msg()
        msg.data = (grid if grid is not None else np.random.default_rng(0).normal(size=1536)).astype(
            np.float32).tolist()
        return msg

    def close(self):
        self.executor.shutdown()
        for n in self.nodes:
            if n is self.planner:
                n.hold_and_close()
            n.destroy_node()
        rclpy.shutdown(context=self.context)
        self.thread.join(5)


def wait_for(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def inside(xyz):
    return all(WS_MIN[i] - 1e-9 <= xyz[i] <= WS_MAX[i] + 1e-9 for i in range(3))


def test_plans_steps_within_limits_and_stop_pause_resume(ros_domain_id):
    g = Graph(ros_domain_id)
    try:
        goal_state = HOME + np.array([0.1, 0.1, -0.1, 0, 0, 0, 0])
        goal = Image(**rgb_to_image_fields(render(goal_state)))
        res = g.call(SetGoal, "/planner_node/set_goal", SetGoal.Request(image=goal, task="reach", start=True))
        assert res.success, res.message
        wait_for(lambda: len(g.executing()) >= 3, 90, "three planning steps")
        assert g.call(Trigger, "/planner_node/pause", Trigger.Request()).success
        time.sleep(0.3)
        n_paused = len(g.arm.targets)
        time.sleep(1.0)
        assert len(g.arm.targets) == n_paused, "commands were sent while paused"
        assert g.call(Trigger, "/planner_node/resume", Trigger.Request()).success
        steps_before = len(g.executing())
        wait_for(lambda: len(g.executing()) >= steps_before + 2, 90, "steps after resume")
        res = g.call(Trigger, "/planner_node/stop", Trigger.Request())
        assert res.success
        time.sleep(0.3)
        assert g.statuses[-1].state == PlanStatus.STATE_STOPPED
        steps = [s.step for s in g.executing()]
        assert steps == sorted(steps) and len(set(steps)) == len(steps)
        prev = HOME
        for target in g.arm.targets:  # every command respects the per-step limit and the box
            assert np.all(np.abs(target[:3] - prev[:3]) <= 0.05 + 1e-6), (target, prev)
            assert inside(target[:3])
            prev = target
        np.testing.assert_allclose(g.arm.targets[-1][:3], g.arm.state[:3])  # stop = hold at the current pose
        for s in g.executing():
            assert np.isfinite(s.energy) and np.isfinite(s.goal_energy) and s.planning_time > 0
            assert s.num_samples == 24 and s.iterations == 2
    finally:
        g.close()


def test_adversarial_goal_outside_workspace_keeps_commands_in_the_box(ros_domain_id):
    g = Graph(ros_domain_id, with_encoder=False, cem_maxnorm=1.0, max_position_step=0.05)
    try:
        g.arm.state = np.array([0.64, 0.19, 0.44, np.pi, 0, 0, 0])  # at a corner of the box
        stop = threading.Event()

        def feed():
            while not stop.is_set():
                g.latent_pub.publish(g.latent(grid=np.random.default_rng(int(time.time() * 10)).normal(size=1536)))
                time.sleep(0.05)

        threading.Thread(target=feed, daemon=True).start()
        g.goal_pub.publish(g.latent(grid=np.full(1536, 5.0)))  # a goal nothing in the box looks like
        wait_for(lambda: len(g.executing()) >= 6, 90, "six steps")
        stop.set()
        assert all(inside(t[:3]) for t in g.arm.targets)
        assert any("workspace" in s.message or "limits" in s.message for s in g.executing())
    finally:
        g.close()


@pytest.mark.parametrize("fault", ["nan_pose", "stale_pose", "stale_latent", "wrong_model", "no_goal"])
def test_faults_send_no_command_and_report_why(fault, ros_domain_id):
    g = Graph(ros_domain_id, with_encoder=False, max_data_age_s=0.5)
    try:
        now = g.probe.get_clock().now()
        if fault == "nan_pose":
            g.arm.nan_pose = True
        if fault == "stale_pose":
            g.arm.publish_pose = False
        if fault != "no_goal":
            g.goal_pub.publish(g.latent())
        old = (now - rclpy.duration.Duration(seconds=5.0)).to_msg()
        model = "other@2" if fault == "wrong_model" else "tiny@1"
        for _ in range(30):
            g.latent_pub.publish(g.latent(model_id=model, stamp=old if fault == "stale_latent" else None))
            time.sleep(0.05)
        expected = {"nan_pose": "not finite", "stale_pose": "no end-effector pose", "stale_latent": "latent is stale",
                    "wrong_model": "expects 'tiny@1'", "no_goal": None}[fault]
        if expected:
            wait_for(lambda: any(expected in s.message for s in g.statuses), 10, f"a status saying {expected!r}")
        else:
            time.sleep(1.0)
            assert not g.statuses
        assert not g.arm.targets, f"a command was sent despite {fault}"
    finally:
        g.close()


def test_shutdown_mid_episode_holds_at_current_pose(tmp_path, ros_domain_id):
    """planner_node as a process: SIGINT mid-episode -> the last command is the current pose."""
    params = tmp_path / "planner.yaml"
    params.write_text(json.dumps({"planner_node": {"ros__parameters": {**PLANNER, "settle_timeout_s": 0.5}}}))
    proc = subprocess.Popen([sys.executable, "-m", "vjepa_planner.planner_node", "--ros-args", "--params-file",
                             str(params)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=ros_domain_id)
    node = rclpy.create_node("probe", context=context)
    arm = InstantArm(node, camera=False)
    latent_pub = node.create_publisher(Latent, "/vjepa/latent", 5)
    goal_pub = node.create_publisher(Latent, "/vjepa/goal_latent", 1)
    executor = MultiThreadedExecutor(num_threads=2, context=context)
    executor.add_node(node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    try:
        def latent():
            msg = Latent(model_id="tiny@1", frames=1, height=4, width=4, dim=96, normalized=True)
            msg.header.stamp = node.get_clock().now().to_msg()
            msg.data = np.random.default_rng(len(arm.targets)).normal(size=1536).astype(np.float32).tolist()
            return msg

        wait_for(lambda: goal_pub.get_subscription_count() > 0, 60, "planner_node to start")
        goal_pub.publish(latent())
        deadline = time.monotonic() + 60
        while len(arm.targets) < 2 and time.monotonic() < deadline:
            latent_pub.publish(latent())
            time.sleep(0.05)
        assert len(arm.targets) >= 2, "the planner did not command"
        before = len(arm.targets)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, out
        wait_for(lambda: len(arm.targets) > before, 5, "the hold command")
        time.sleep(0.5)  # the hold is the last message the planner sent before exiting
        hold = arm.targets[-1]
        # the hold is at the arm's pose as the planner last saw it: the arm (which jumps to each target) was at
        # one of its two previous targets, depending on whether the newest pose had arrived yet
        assert any(np.allclose(hold[:3], t[:3], atol=1e-6) and
                   abs(np.dot(pose_to_pose_stamped(hold)[3:], pose_to_pose_stamped(t)[3:])) > 1 - 1e-9
                   for t in arm.targets[-3:-1]), (hold, arm.targets[-3:])
        assert "planner shutting down" in out
    finally:
        if proc.poll() is None:
            proc.kill()
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)

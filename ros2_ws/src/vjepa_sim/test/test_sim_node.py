"""sim_node over a real rclpy graph (Fast DDS) on its own ROS domain: topics, QoS, services, commands."""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import threading
import time

import numpy as np
import pytest
import rclpy  # noqa: E402  (node tests need the built workspace: `make setup`)
from _ros2_helpers import Spinner  # noqa: E402
from geometry_msgs.msg import PoseStamped  # noqa: E402
from rclpy.context import Context  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import ReliabilityPolicy  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, JointState  # noqa: E402
from std_msgs.msg import String  # noqa: E402

import vjepa_interfaces.msg  # noqa: E402,F401
from vjepa_core.franka import MAX_GRIPPER_WIDTH  # noqa: E402
from vjepa_core.msgconv import fill_pose_xyzq, gripper_closedness, pose_xyzq_from_msg  # noqa: E402
from vjepa_interfaces.msg import GripperCommand, TaskState  # noqa: E402
from vjepa_interfaces.srv import RenderGoal, ResetSim  # noqa: E402
from vjepa_sim.sim_node import QOS_COMMAND, QOS_POSE, QOS_STATE, SimNode  # noqa: E402
from vjepa_sim.tasks import make_episode  # noqa: E402

DOMAIN_ID = 160 + os.getpid() % 40  # one domain per test process, away from the default 0


def finger_width(msg):
    """The finger opening [m] of a gripper JointState, through vjepa_core.msgconv (closedness = 1 - width / max)."""
    return (1.0 - gripper_closedness(msg)) * MAX_GRIPPER_WIDTH


def t_of(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


class Probe:
    """A test node that records everything sim_node publishes and can call its services."""

    def __init__(self, ctx):
        self.node = rclpy.create_node("sim_probe", context=ctx)
        self.lock = threading.Lock()
        self.msgs = {k: [] for k in ("image", "info", "pose", "joints", "gripper", "status", "clock", "task")}
        n = self.node
        n.create_subscription(Image, "/camera/image_raw", self._rec("image"), QOS_STATE)
        n.create_subscription(CameraInfo, "/camera/camera_info", self._rec("info"), QOS_STATE)
        n.create_subscription(PoseStamped, "/franka_robot_state_broadcaster/current_pose", self._rec("pose"), QOS_POSE)
        n.create_subscription(JointState, "/joint_states", self._rec("joints"), QOS_STATE)
        n.create_subscription(JointState, "/franka_gripper/joint_states", self._rec("gripper"), QOS_STATE)
        n.create_subscription(String, "/sim_node/target_status", self._rec("status"), QOS_STATE)
        n.create_subscription(Clock, "/clock", self._rec("clock"), QOS_POSE)
        n.create_subscription(TaskState, "/vjepa_sim/task_state", self._rec("task"), QOS_STATE)
        self.target_pub = n.create_publisher(
            PoseStamped, "/cartesian_impedance_example_controller/equilibrium_pose", QOS_COMMAND)
        self.gripper_pub = n.create_publisher(GripperCommand, "/vjepa_sim/gripper_command", QOS_COMMAND)
        self.reset_cli = n.create_client(ResetSim, "/sim_node/reset")
        self.goal_cli = n.create_client(RenderGoal, "/sim_node/render_goal")

    def _rec(self, key):
        def cb(msg):
            with self.lock:
                self.msgs[key].append(msg)
                del self.msgs[key][:-400]
        return cb

    def last(self, key):
        with self.lock:
            return self.msgs[key][-1] if self.msgs[key] else None

    def all(self, key):
        with self.lock:
            return list(self.msgs[key])

    def wait(self, pred, timeout=20.0, what="condition"):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            out = pred()
            if out:
                return out
            time.sleep(0.02)
        raise AssertionError(f"timed out waiting for {what}")

    def call(self, client, request, timeout=20.0):
        assert client.wait_for_service(timeout_sec=timeout), "service not available"
        fut = client.call_async(request)
        self.wait(fut.done, timeout, "service response")
        return fut.result()

    def now(self) -> float:
        return t_of(self.wait(lambda: self.last("clock"), what="/clock").clock)

    def send_target(self, pos, quat=(1.0, 0.0, 0.0, 0.0)):
        msg = PoseStamped()
        msg.header.frame_id = "fr3_link0"
        fill_pose_xyzq(msg.pose, pos, quat)
        self.target_pub.publish(msg)

    def status_after(self, t0, source="target"):
        def find():
            for m in self.all("status"):
                body = json.loads(m.data)
                if body["source"] == source and body["stamp"] >= t0:
                    return body
            return None
        return self.wait(find, what=f"{source} status after t={t0:.3f}")


@contextlib.contextmanager
def running_graph(params: dict, domain_id: int):
    """sim_node with ``params`` + a Probe, spun by one executor thread on ``domain_id``; torn down on exit."""
    ctx = Context()
    rclpy.init(context=ctx, domain_id=domain_id)
    sim = SimNode(params, context=ctx)
    probe = Probe(ctx)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(sim)
    ex.add_node(probe.node)
    spinner = Spinner(ex)
    try:
        yield sim, probe
    finally:
        spinner.close()
        sim.destroy_node()
        probe.node.destroy_node()
        rclpy.shutdown(context=ctx)


@pytest.fixture(scope="module")
def graph():
    with running_graph({"real_time_factor": 3.0, "seed": 11}, DOMAIN_ID) as (sim, probe):
        for key in ("image", "info", "pose", "joints", "gripper", "clock"):
            probe.wait(lambda k=key: probe.last(k), what=f"first {key} message")
        assert probe.target_pub.get_subscription_count() == 1
        yield sim, probe


def test_topics_services_types_and_qos(graph):
    sim, probe = graph
    n = probe.node
    topics = dict(n.get_topic_names_and_types())
    expected = {
        "/camera/image_raw": "sensor_msgs/msg/Image",
        "/camera/camera_info": "sensor_msgs/msg/CameraInfo",
        "/franka_robot_state_broadcaster/current_pose": "geometry_msgs/msg/PoseStamped",
        "/joint_states": "sensor_msgs/msg/JointState",
        "/franka_gripper/joint_states": "sensor_msgs/msg/JointState",
        "/clock": "rosgraph_msgs/msg/Clock",
        "/sim_node/target_status": "std_msgs/msg/String",
        "/cartesian_impedance_example_controller/equilibrium_pose": "geometry_msgs/msg/PoseStamped",
        "/vjepa_sim/gripper_command": "vjepa_interfaces/msg/GripperCommand",
    }
    for topic, typ in expected.items():
        assert topics.get(topic) == [typ], topic
    services = dict(n.get_service_names_and_types())
    assert services["/sim_node/reset"] == ["vjepa_interfaces/srv/ResetSim"]
    assert services["/sim_node/render_goal"] == ["vjepa_interfaces/srv/RenderGoal"]

    def reliability(topic, subs=False):
        infos = (n.get_subscriptions_info_by_topic if subs else n.get_publishers_info_by_topic)(topic)
        return {i.qos_profile.reliability for i in infos if i.node_name == "sim_node"}

    assert reliability("/franka_robot_state_broadcaster/current_pose") == {ReliabilityPolicy.BEST_EFFORT}
    assert reliability("/joint_states") == {ReliabilityPolicy.RELIABLE}
    assert reliability("/camera/image_raw") == {ReliabilityPolicy.RELIABLE}
    assert reliability("/cartesian_impedance_example_controller/equilibrium_pose", subs=True) == {
        ReliabilityPolicy.RELIABLE}

    img, info, pose = probe.last("image"), probe.last("info"), probe.last("pose")
    assert (img.width, img.height, img.encoding, img.step, len(img.data)) == (256, 256, "rgb8", 768, 256 * 256 * 3)
    assert info.k[0] > 0 and info.k[2] == 128.0 and info.header.frame_id == img.header.frame_id
    assert pose.header.frame_id == "fr3_link0"
    joints = probe.last("joints")
    assert list(joints.name) == [f"fr3_joint{i}" for i in range(1, 8)] + ["fr3_finger_joint1", "fr3_finger_joint2"]
    grip = probe.last("gripper")
    assert list(grip.name) == ["fr3_finger_joint1", "fr3_finger_joint2"]
    assert gripper_closedness(grip) == pytest.approx(sim.sim.gripper_closedness(), abs=0.005 / 0.08)
    # rates in sim time
    probe.wait(lambda: len(probe.all("joints")) > 20 and len(probe.all("image")) > 4, what="a few seconds of data")
    dj = np.diff([t_of(m.header.stamp) for m in probe.all("joints")[-15:]])
    di = np.diff([t_of(m.header.stamp) for m in probe.all("image")[-4:]])
    assert np.median(dj) == pytest.approx(1 / 30, rel=0.15)
    assert np.median(di) == pytest.approx(0.1, rel=0.1)


def test_commanded_target_10cm_away_is_reached_within_1cm_in_5s_and_images_change(graph):
    _, probe = graph
    start = pose_xyzq_from_msg(probe.last("pose"))[:3]
    goal = start + np.array([0.0, 0.08, -0.06])  # 10 cm
    image_before = np.frombuffer(bytes(probe.last("image").data), np.uint8)
    t0 = probe.now()
    probe.send_target(goal)

    def reached():
        for m in probe.all("pose"):
            if t_of(m.header.stamp) > t0 and np.linalg.norm(pose_xyzq_from_msg(m)[:3] - goal) < 0.01:
                return t_of(m.header.stamp)
        return None

    t_reached = probe.wait(reached, timeout=15.0, what="end effector within 1 cm")
    assert t_reached - t0 < 5.0
    assert probe.status_after(t0)["status"] == "accepted"
    probe.wait(lambda: t_of(probe.last("image").header.stamp) > t_reached, what="image after the move")
    image_after = np.frombuffer(bytes(probe.last("image").data), np.uint8)
    assert np.abs(image_after.astype(int) - image_before.astype(int)).mean() > 2.0


@pytest.mark.parametrize(
    "position, quaternion, status",
    [
        ((math.nan, 0.0, 0.3), (1.0, 0.0, 0.0, 0.0), "rejected"),
        ((0.5, 0.0, 0.3), (0.0, 0.0, 0.0, 0.0), "rejected"),
        ((0.5, 0.0, -0.5), (1.0, 0.0, 0.0, 0.0), "clamped"),
        ((0.85, 0.45, 0.75), (1.0, 0.0, 0.0, 0.0), "unreachable"),
    ],
)
def test_bad_targets_get_a_status_and_the_sim_keeps_running(graph, position, quaternion, status):
    _, probe = graph
    t0 = probe.now()
    probe.send_target(position, quaternion)
    body = probe.status_after(t0)
    assert body["status"] == status, body
    assert body["message"]
    t1 = probe.now()
    probe.wait(lambda: probe.now() > t1 + 0.2, what="sim time advancing")
    pose = probe.last("pose").pose.position
    assert all(math.isfinite(v) for v in (pose.x, pose.y, pose.z))


def test_gripper_command_moves_fingers_and_nan_is_rejected(graph):
    _, probe = graph
    t0 = probe.now()
    probe.gripper_pub.publish(GripperCommand(width=0.03, speed=0.1, grasp=False, force=0.0))
    assert probe.status_after(t0, "gripper")["status"] == "accepted"
    probe.wait(lambda: abs(finger_width(probe.last("gripper")) - 0.03) < 0.002, what="gripper at 3 cm")
    t1 = probe.now()
    probe.gripper_pub.publish(GripperCommand(width=math.nan, speed=0.1))
    assert probe.status_after(t1, "gripper")["status"] == "rejected"


def test_render_goal_and_reset_services(graph):
    _, probe = graph
    assert probe.call(probe.reset_cli, ResetSim.Request(seed=30)).success  # a still arm
    t = probe.now()
    probe.wait(lambda: t_of(probe.last("pose").header.stamp) > t + 0.3, what="poses after the reset")
    before = probe.last("pose").pose.position
    req = RenderGoal.Request()
    fill_pose_xyzq(req.pose, (0.5, -0.12, 0.15), (1.0, 0.0, 0.0, 0.0))
    req.gripper = 1.0
    res = probe.call(probe.goal_cli, req)
    assert res.success, res.message
    assert (res.image.width, res.image.height, res.image.encoding) == (256, 256, "rgb8")
    assert np.linalg.norm(pose_xyzq_from_msg(res.achieved_pose)[:3] - (0.5, -0.12, 0.15)) < 1e-3
    t = probe.now()
    probe.wait(lambda: t_of(probe.last("pose").header.stamp) > t, what="a pose after the goal render")
    after = probe.last("pose").pose.position
    assert np.linalg.norm([after.x - before.x, after.y - before.y, after.z - before.z]) < 1e-3  # undisturbed
    bad = RenderGoal.Request()
    fill_pose_xyzq(bad.pose, (math.nan, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0))
    res_bad = probe.call(probe.goal_cli, bad)
    assert not res_bad.success and "NaN" in res_bad.message

    def reset_frame(seed):
        res = probe.call(probe.reset_cli, ResetSim.Request(seed=seed))
        assert res.success, res.message
        t_reset = float(re.search(r"sim time ([0-9.]+) s", res.message).group(1))
        return probe.wait(
            lambda: next((m for m in probe.all("image") if abs(t_of(m.header.stamp) - t_reset) < 1e-6), None),
            what="the frame published at reset",
        )

    f1, f2, f3 = reset_frame(21), reset_frame(21), reset_frame(22)
    assert bytes(f1.data) == bytes(f2.data)  # identical seeds, identical images
    assert bytes(f1.data) != bytes(f3.data)
    bad_reset = ResetSim.Request(seed=3, use_start_pose=True)
    fill_pose_xyzq(bad_reset.start_pose, (math.nan, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0))
    res = probe.call(probe.reset_cli, bad_reset)
    assert not res.success and "NaN" in res.message
    t1 = probe.now()
    probe.wait(lambda: probe.now() > t1 + 0.2, what="sim time advancing after a bad reset")


def test_tiled_camera_publishes_one_stacked_image_and_no_separate_topic():
    """A camera with ``tile_below`` publishes both views in one image; the stacked camera gets no topic."""
    params = {"real_time_factor": 3.0, "seed": 5, "camera_names": ["ext1", "ext2"], "cameras.ext1.tile_below": "ext2"}
    for name in ("ext1", "ext2"):
        params[f"cameras.{name}.width"], params[f"cameras.{name}.height"] = 96, 48
    # not the module graph's domain
    with running_graph(params, 160 + (DOMAIN_ID - 160 + 20) % 40) as (_, probe):
        img = probe.wait(lambda: probe.last("image"), what="a tiled image")
        info = probe.wait(lambda: probe.last("info"), what="its camera info")
        assert (img.width, img.height, len(img.data)) == (96, 96, 96 * 96 * 3)
        assert (info.width, info.height) == (96, 96) and info.k[5] == 24.0  # K of the top (48 px) view
        topics = dict(probe.node.get_topic_names_and_types())
        assert not any("ext2" in t for t in topics), sorted(topics)
        res = probe.call(probe.goal_cli, RenderGoal.Request(pose=PoseStamped().pose, gripper=0.0))
        assert not res.success  # an all-zero quaternion is refused, the tiled camera does not change that
        req = RenderGoal.Request()
        fill_pose_xyzq(req.pose, (0.5, 0.0, 0.2), (1.0, 0.0, 0.0, 1.0))  # normalized by the sim
        res = probe.call(probe.goal_cli, req)
        assert res.success and (res.image.width, res.image.height) == (96, 96), res.message


def _xyz(p):
    return np.array([p.x, p.y, p.z])


def test_task_reset_goal_images_and_task_state_over_the_graph(graph):
    """~/reset into a task returns the scene, sub-goals and budgets; ~/render_goal renders each sub-goal; the
    task state topic carries the object pose and the task's measure; a bad task changes nothing."""
    sim, probe = graph

    def task_state_after(t0, pred=lambda m: True, what="task state"):
        return probe.wait(lambda: next((m for m in reversed(probe.all("task"))
                                        if t_of(m.header.stamp) >= t0 and pred(m)), None), what=what)

    req = ResetSim.Request()
    req.seed, req.task, req.object_kind = 120, "pick_place", "box"
    res = probe.call(probe.reset_cli, req)
    assert res.success, res.message
    t0 = probe.now()
    expected = make_episode("pick_place", 120, "box")
    assert res.task == "pick_place" and list(res.object_kinds) == ["box"] and res.task_object == 0
    assert list(res.goal_names) == ["grasped", "carried", "released"]
    assert list(res.goal_max_steps) == [8, 10, 4] and list(res.goal_holds) == [True, True, False]
    assert np.allclose(_xyz(res.target), expected.target)
    for pose, goal in zip(res.goal_ee_poses, expected.goals):
        assert np.allclose(_xyz(pose.position), goal.ee_position)
    assert np.allclose(_xyz(res.object_poses[0].position), expected.objects[0].position, atol=2e-3)
    state = task_state_after(t0)
    assert state.task == "pick_place" and list(state.object_kinds) == ["box"] and not state.held
    assert not state.success and state.resting and state.gripper_open
    assert state.distance_xy == pytest.approx(np.linalg.norm(np.array(expected.objects[0].position[:2])
                                                             - np.array(expected.target[:2])), abs=0.003)
    assert np.linalg.norm(_xyz(state.ee_pose.position) - np.array(expected.start_position)) < 0.005
    images = []
    for k in range(3):
        q = RenderGoal.Request()
        q.use_task_goal, q.goal_index = True, k
        g = probe.call(probe.goal_cli, q)
        assert g.success, g.message
        assert (g.image.width, g.image.height) == (256, 256) and len(g.object_poses) == 1
        assert np.allclose(_xyz(g.achieved_pose.position), expected.goals[k].ee_position, atol=0.005)
        images.append(np.frombuffer(bytes(g.image.data), np.uint8).astype(int))
    assert np.abs(images[0] - images[2]).mean() > 0.5  # grasped vs released look different
    q = RenderGoal.Request()
    q.use_task_goal, q.goal_index = True, 3
    bad = probe.call(probe.goal_cli, q)
    assert not bad.success and "goal index" in bad.message
    # wrong number of explicit object poses: refused
    q = RenderGoal.Request()
    fill_pose_xyzq(q.pose, (0.5, 0.0, 0.2), (1.0, 0.0, 0.0, 1.0))
    q.object_poses = [res.object_poses[0], res.object_poses[0]]
    bad = probe.call(probe.goal_cli, q)
    assert not bad.success and "objects must give 1" in bad.message

    # reach_object starts with the object in the hand
    req = ResetSim.Request()
    req.seed, req.task = 121, "reach_object"
    res = probe.call(probe.reset_cli, req)
    assert res.success and res.task == "reach_object"
    t1 = probe.now()
    state = task_state_after(t1, lambda m: m.task == "reach_object")
    assert state.held and all(state.finger_contacts) and state.lift > 0.03

    # an unknown task changes nothing: the reach_object episode goes on
    req = ResetSim.Request()
    req.seed, req.task = 122, "juggle"
    bad = probe.call(probe.reset_cli, req)
    assert not bad.success and "unknown task" in bad.message
    state = task_state_after(probe.now(), what="task state after a refused reset")
    assert state.task == "reach_object" and state.held

    # a plain reset ends the task: blocks, no task object, NaN measures
    req = ResetSim.Request()
    req.seed = 11
    res = probe.call(probe.reset_cli, req)
    assert res.success and res.task == "" and res.task_object == -1 and len(res.goal_names) == 0
    t2 = probe.now()
    state = task_state_after(t2, lambda m: m.task == "")
    assert state.task_object == -1 and math.isnan(state.distance) and len(state.object_poses) == 3

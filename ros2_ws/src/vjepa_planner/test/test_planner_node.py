"""planner_node in a real rclpy graph (Fast DDS) with encoder_node and a test arm that moves to each target."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy
import torch
from _ros2_helpers import Spinner
from geometry_msgs.msg import PoseStamped
from rclpy.executors import MultiThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image, JointState
from std_srvs.srv import Trigger

from vjepa_core.checkpoint import model_id
from vjepa_core.config import EncoderConfig
from vjepa_core.imgmsg import rgb_to_image_fields
from vjepa_core.msgconv import fill_latent_msg, fill_pose_msg, pose_state_from_msg
from vjepa_core.planning import MPPIPlanner
from vjepa_interfaces.msg import Latent, PlanStatus
from vjepa_interfaces.srv import EncodeImage, SetGoal
from vjepa_perception.encoder_node import EncoderNode
from vjepa_planner.planner_node import PlannerNode

FIXTURE = Path(__file__).resolve().parents[4] / "tests" / "fixtures" / "parity_tiny_a"
TARGET_TOPIC = "/cartesian_impedance_example_controller/equilibrium_pose"
POSE_TOPIC = "/franka_robot_state_broadcaster/current_pose"
GRIPPER_TOPIC = "/franka_gripper/joint_states"
FINGERS = ["fr3_finger_joint1", "fr3_finger_joint2"]
HOME = np.array([0.5, 0.0, 0.4, np.pi, 0.0, 0.0, 0.0])
WS_MIN, WS_MAX = [0.35, -0.2, 0.15], [0.65, 0.2, 0.45]
MODEL = {"checkpoint": str(FIXTURE / "checkpoint.pt"), "model_config": str(FIXTURE / "config.json")}
# the id encoder_node publishes for the fixture (and the one the planner derives from the same checkpoint)
ENCODER_ID = model_id(EncoderConfig.from_dict(json.loads((FIXTURE / "config.json").read_text())["encoder"]),
                      FIXTURE / "checkpoint.pt")
PLANNER = {**MODEL, "robot": "sim", "gripper": "sim_topic", "gripper_target": "/vjepa_sim/gripper_command",
           "cem_samples": 24, "cem_iterations": 2, "cem_topk": 4, "cem_maxnorm": 0.3, "max_steps": 50,
           "workspace_min": WS_MIN, "workspace_max": WS_MAX, "control_rate_hz": 50.0, "settle_timeout_s": 2.0,
           "fault_timeout_s": 60.0, "threads": 1}
# plans that take far longer than any test waits (tens of seconds even on a fast machine; cancel is asked between
# iterations, so a stop still ends one at once): the tests stop, cancel or signal while such a plan runs
SLOW_PLAN = {"cem_samples": 200, "cem_iterations": 2000}


def wait_for_planner_pose(planner, xyz, timeout=10.0) -> None:
    """Wait until ``planner`` (in this process) has heard the arm at ``xyz`` (poses are best effort on a busy box)."""
    def heard() -> bool:
        with planner._obs_lock:
            pose = planner._pose_xyzq
        return pose is not None and bool(np.allclose(pose[:3], xyz, atol=1e-6))
    wait_for(heard, timeout, f"the planner to hear the arm at {np.round(xyz, 3).tolist()}")


def render(state: np.ndarray) -> np.ndarray:
    """A camera for the test arm: a bright square whose place follows the end effector."""
    img = np.full((64, 64, 3), 30, np.uint8)
    u = int(np.clip((state[1] + 0.3) / 0.6 * 56, 0, 56))
    v = int(np.clip((0.6 - state[2]) / 0.6 * 56, 0, 56))
    img[v:v + 8, u:u + 8] = (250, 200, 40)
    return img


def latent_msg(stamp, model=ENCODER_ID, grid=None, shape=(1, 4, 4, 96)) -> Latent:
    """A Latent the planner accepts (unless ``model``, ``grid`` or ``shape`` say otherwise)."""
    tokens = (grid if grid is not None else np.random.default_rng(0).normal(size=int(np.prod(shape))))
    msg = fill_latent_msg(Latent(), np.asarray(tokens, np.float32).reshape(shape), model_id=model, normalized=True,
                          image_size=64, patch_size=16, tubelet_size=2)
    if shape[1:3] != (4, 4):
        msg.image_size = msg.patch_size = 0  # a grid that only differs by shape (no geometry to contradict)
    msg.header.stamp = stamp
    return msg


class InstantArm:
    """Moves instantly to each commanded target; publishes current_pose (best effort), finger joint states and
    camera images. The test can stop the pose stream, stamp poses in the future or push the arm."""

    def __init__(self, node, camera=True):
        self.node = node
        self.lock = threading.Lock()
        self.state = HOME.copy()
        self.targets: list[np.ndarray] = []
        self.publish_pose = True
        self.nan_pose = False
        self.future_s = 0.0
        self.gripper: tuple[list[str], list[float]] | None = (FINGERS, [0.04, 0.04])
        qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
        self.pose_pub = node.create_publisher(PoseStamped, POSE_TOPIC, qos)
        self.grip_pub = node.create_publisher(JointState, GRIPPER_TOPIC, qos)
        self.img_pub = node.create_publisher(Image, "/camera/image_raw", qos_profile_sensor_data)
        node.create_subscription(PoseStamped, TARGET_TOPIC, self._on_target, 10)
        node.create_timer(0.02, self._tick)
        if camera:
            node.create_timer(0.1, self._camera)

    def _on_target(self, msg):
        with self.lock:
            self.state = pose_state_from_msg(msg, self.state[6])
            self.targets.append(self.state.copy())

    def push(self, delta):
        """Move the arm by hand (no command)."""
        with self.lock:
            self.state = self.state + np.asarray(delta, float)

    def pose_msg(self):
        msg = PoseStamped()
        now = self.node.get_clock().now()
        msg.header.stamp = (now + rclpy.duration.Duration(seconds=self.future_s)).to_msg()
        msg.header.frame_id = "fr3_link0"
        fill_pose_msg(msg.pose, self.state)
        if self.nan_pose:
            msg.pose.position.x = float("nan")
        return msg

    def _tick(self):
        with self.lock:
            if self.publish_pose:
                self.pose_pub.publish(self.pose_msg())
            if self.gripper is not None:
                self.grip_pub.publish(JointState(name=self.gripper[0], position=self.gripper[1]))

    def _camera(self):
        img = Image(**rgb_to_image_fields(render(self.state)))
        img.header.stamp = self.node.get_clock().now().to_msg()
        self.img_pub.publish(img)


class Graph:
    def __init__(self, domain, with_encoder=True, **planner_params):
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain)
        self.nodes = []
        self.encoder = None
        if with_encoder:
            self.encoder = EncoderNode(context=self.context, parameter_overrides=[
                Parameter(k, value=v) for k, v in {**MODEL, "max_rate_hz": 30.0}.items()])
            self.nodes.append(self.encoder)
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
        self.spinner = Spinner(self.executor)
        self._feeding = threading.Event()

    def client(self, srv_type, name):
        client = self.probe.create_client(srv_type, name)
        assert client.wait_for_service(timeout_sec=10), f"{name} not available"
        return client

    def call(self, srv_type, name, request, timeout=30.0):
        future = self.client(srv_type, name).call_async(request)
        wait_for(future.done, timeout, name)
        return future.result()

    def executing(self):
        return [s for s in self.statuses if s.state == PlanStatus.STATE_EXECUTING]

    def now(self):
        return self.probe.get_clock().now().to_msg()

    def latent(self, model=ENCODER_ID, stamp=None, grid=None, shape=(1, 4, 4, 96)):
        return latent_msg(stamp or self.now(), model, grid, shape)

    def feed_latents(self, period=0.05):
        """Publish fresh (random) camera latents until close()."""
        def feed():
            i = 0
            while not self._feeding.is_set():
                self.latent_pub.publish(self.latent(grid=np.random.default_rng(i).normal(size=1536)))
                i += 1
                time.sleep(period)
        threading.Thread(target=feed, daemon=True).start()

    def close(self):
        self._feeding.set()
        self.planner.hold_and_close()
        self.spinner.close()
        for n in self.nodes:
            n.destroy_node()
        rclpy.shutdown(context=self.context)


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
        assert g.planner.expected_model_id == g.encoder.model_id == ENCODER_ID  # derived from the checkpoint
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


def test_planner_parameter_selects_mppi_and_it_plans(ros_domain_id):
    """Issue 18: ``planner: mppi`` swaps the search; the episode loop plans and executes with it as with CEM."""
    g = Graph(ros_domain_id, planner="mppi", mppi_temperature=0.2)
    try:
        search = g.planner.planner.cem
        assert isinstance(search, MPPIPlanner) and search.config.temperature == 0.2
        goal = Image(**rgb_to_image_fields(render(HOME + np.array([0.1, -0.1, 0.05, 0, 0, 0, 0]))))
        res = g.call(SetGoal, "/planner_node/set_goal", SetGoal.Request(image=goal, task="reach", start=True))
        assert res.success, res.message
        wait_for(lambda: len(g.executing()) >= 2, 90, "two MPPI planning steps")
        for s in g.executing():
            assert np.isfinite(s.energy) and s.planning_time > 0 and s.num_samples == 24
        assert g.arm.targets and all(inside(t[:3]) for t in g.arm.targets)
    finally:
        g.close()


def test_adversarial_goal_outside_workspace_keeps_commands_in_the_box(ros_domain_id):
    g = Graph(ros_domain_id, with_encoder=False, cem_maxnorm=1.0, max_position_step=0.05)
    try:
        g.arm.state = np.array([0.64, 0.19, 0.44, np.pi, 0, 0, 0])  # at a corner of the box
        g.feed_latents()
        g.goal_pub.publish(g.latent(grid=np.full(1536, 5.0)))  # a goal nothing in the box looks like
        wait_for(lambda: len(g.executing()) >= 6, 90, "six steps")
        assert all(inside(t[:3]) for t in g.arm.targets)
        assert any("workspace" in s.message or "limits" in s.message for s in g.executing())
    finally:
        g.close()


@pytest.mark.parametrize("fault", ["nan_pose", "stale_pose", "future_pose", "stale_latent", "wrong_model",
                                   "no_goal", "no_gripper"])
def test_faults_send_no_command_and_report_why(fault, ros_domain_id):
    g = Graph(ros_domain_id, with_encoder=False, max_data_age_s=0.5)
    try:
        now = g.probe.get_clock().now()
        g.arm.nan_pose = fault == "nan_pose"
        g.arm.publish_pose = fault != "stale_pose"
        g.arm.future_s = 2.0 if fault == "future_pose" else 0.0
        if fault == "no_gripper":
            g.arm.gripper = None
        if fault != "no_goal":
            g.goal_pub.publish(g.latent())
        old = (now - rclpy.duration.Duration(seconds=5.0)).to_msg()
        model = "other@2" if fault == "wrong_model" else ENCODER_ID
        for _ in range(30):
            g.latent_pub.publish(g.latent(model=model, stamp=old if fault == "stale_latent" else None))
            time.sleep(0.05)
        expected = {"nan_pose": "pose refused: pose has non-finite values",
                    "stale_pose": "no end-effector pose", "future_pose": "s in the future (limit 0.50 s",
                    "stale_latent": "latent is stale", "wrong_model": f"expects {ENCODER_ID!r}",
                    "no_gripper": "no gripper state received yet", "no_goal": None}[fault]
        if expected:
            wait_for(lambda: any(expected in s.message for s in g.statuses), 10, f"a status saying {expected!r}")
        else:
            time.sleep(1.0)
            assert not g.statuses
        assert not g.arm.targets, f"a command was sent despite {fault}"
    finally:
        g.close()


def test_malformed_messages_are_refused_and_the_episode_goes_on(ros_domain_id):
    """Issue 14: a malformed goal killed the node, a 2x8 grid drove the arm, NaN goals or one bad camera latent
    failed the episode. Every bad message is now refused at the edge with a status; the node and the episode live."""
    g = Graph(ros_domain_id, with_encoder=False)
    try:
        def bad_latents(kind_of_stamp):
            stamp = kind_of_stamp()
            short = g.latent(stamp=stamp)
            short.data = short.data[:-1]  # data length does not match frames*height*width*dim
            zero_frames = g.latent(stamp=stamp)
            zero_frames.frames = 0
            nan = g.latent(stamp=stamp, grid=np.full(1536, np.nan))
            two_by_eight = g.latent(stamp=stamp, shape=(1, 2, 8, 96))  # 16 tokens, but not the predictor's 4x4
            return {"data": short, "frames": zero_frames, "non-finite": nan, "2x8x96": two_by_eight}

        refusals = lambda text: [s for s in g.statuses if text in s.message]  # noqa: E731
        for why, msg in bad_latents(g.now).items():  # bad goals before any episode: refused, node alive
            g.goal_pub.publish(msg)
            wait_for(lambda why=why: any(why in s.message for s in refusals("goal refused")), 10,
                     f"goal refused: {why}")
        assert not g.arm.targets and all(s.episode == 0 for s in g.statuses)

        g.feed_latents()
        g.goal_pub.publish(g.latent())
        wait_for(lambda: len(g.executing()) >= 2, 60, "two steps")
        for why, msg in bad_latents(g.now).items():  # during the episode: bad goals and bad camera latents
            # one at a time: the goal subscription keeps the newest message only (depth 1), so a burst on a busy
            # machine would test DDS, not the planner
            before = len(refusals("goal refused"))
            g.goal_pub.publish(msg)
            wait_for(lambda before=before: len(refusals("goal refused")) > before, 10,
                     f"goal refused during the episode: {why}")
            g.latent_pub.publish(msg)
            time.sleep(0.1)
        bad_pose = g.arm.pose_msg()
        bad_pose.pose.orientation.w = bad_pose.pose.orientation.x = 0.0
        bad_pose.pose.orientation.y = bad_pose.pose.orientation.z = 0.0
        with g.arm.lock:  # no good message in between (best effort, depth 1: the newest message wins)
            for _ in range(10):  # several: one may be dropped (best effort) while the in-process graph stalls
                g.arm.pose_pub.publish(bad_pose)
                g.arm.grip_pub.publish(JointState(name=FINGERS, position=[float("nan"), 0.0]))
                time.sleep(0.05)
        steps = len(g.executing())
        wait_for(lambda: len(g.executing()) >= steps + 3, 60, "three more steps after the bad messages")
        assert len(refusals("goal refused")) >= 8
        assert refusals("latent refused"), "a bad camera latent was not reported"
        wait_for(lambda: refusals("pose refused: pose quaternion is zero"), 10, "the zero-quaternion pose refused")
        wait_for(lambda: refusals("gripper refused"), 10, "the NaN gripper state refused")
        assert all(s.episode in (0, 1) for s in g.statuses), "a bad goal started an episode"
        assert not [s for s in g.statuses if s.state == PlanStatus.STATE_FAILED or "internal" in s.message]
        prev = HOME
        for target in g.arm.targets:
            assert np.all(np.abs(target[:3] - prev[:3]) <= 0.05 + 1e-6) and np.all(np.isfinite(target))
            prev = target
    finally:
        g.close()


def test_an_unusable_answer_of_the_encode_service_is_refused(ros_domain_id):
    """~/set_goal validates the encoder's latent like any other: a 16-token grid shaped 2x8 is refused."""
    g = Graph(ros_domain_id, with_encoder=False, encode_service="/bad_encoder/encode")

    def encode(_request, response):
        response.success = True
        response.latent = g.latent(shape=(1, 2, 8, 96))
        return response

    g.probe.create_service(EncodeImage, "/bad_encoder/encode", encode)
    try:
        g.feed_latents()
        goal = Image(**rgb_to_image_fields(render(HOME)))
        res = g.call(SetGoal, "/planner_node/set_goal", SetGoal.Request(image=goal, start=True))
        assert not res.success and "token grid 2x8x96 per frame, expected 4x4x96" in res.message, res.message
        wait_for(lambda: any("goal refused: the encoder's latent is unusable" in s.message for s in g.statuses), 10,
                 "the refusal on ~/status")
        time.sleep(0.5)
        assert not g.arm.targets and all(s.episode == 0 for s in g.statuses)
    finally:
        g.close()


def test_stop_answers_at_once_during_a_slow_plan_and_the_plan_is_never_sent(ros_domain_id):
    """Issue 14: ~/stop waited for the plan in progress (seconds), then that plan's target was sent after the stop,
    and the hold went to the pose from before the plan. Now: the answer does not wait for the plan (each of three
    stops answers far below the ~20 s plan time), the hold is at the newest pose, and the abandoned plan is
    cancelled and never reaches the arm."""
    g = Graph(ros_domain_id, with_encoder=False, **SLOW_PLAN)
    try:
        stop = g.client(Trigger, "/planner_node/stop")
        g.feed_latents()
        time.sleep(0.5)  # the planner has a pose and a latent: a goal starts a plan at once
        warm_up = stop.call_async(Trigger.Request())  # idle (a hold): the client's reply path is matched before
        wait_for(warm_up.done, 10, "the idle stop")  # the timed calls
        wait_for(lambda: len(g.arm.targets) == 1, 5, "the idle hold")
        answers = []
        for episode in (1, 2, 3):
            sent = len(g.arm.targets)
            g.goal_pub.publish(g.latent())
            wait_for(lambda episode=episode: g.planner.loop.episode == episode
                     and g.planner.loop.state == PlanStatus.STATE_PLANNING, 30, f"goal {episode}")
            time.sleep(0.3)
            g.arm.push([0.02, -0.01, 0.0, 0, 0, 0, 0])  # the arm moves while the plan runs
            pushed = g.arm.state.copy()
            wait_for_planner_pose(g.planner, pushed[:3])  # the pushed pose reaches the planner (50 Hz)
            assert len(g.arm.targets) == sent, "the plan finished too early for this test"
            answer = threading.Event()
            t0 = time.monotonic()
            future = stop.call_async(Trigger.Request())
            future.add_done_callback(lambda _f, answer=answer: answer.set())
            assert answer.wait(10) and future.result().success, "no answer to ~/stop"
            answers.append(time.monotonic() - t0)
            # the plan (~20 s) must not be awaited; the 100 ms target is a speed figure, measured in bench/
            # (bench_stop_latency.py), not timed here: a shared CI runner can stall any process for seconds
            assert answers[-1] < 5.0, f"stop answered after {answers[-1] * 1e3:.0f} ms (the plan takes ~20 s)"
            wait_for(lambda sent=sent: len(g.arm.targets) == sent + 1, 5, "the hold")
            np.testing.assert_allclose(g.arm.targets[-1][:3], pushed[:3], atol=1e-6)  # the newest pose
            wait_for(lambda: g.planner.plan_in_flight is None, 10.0, "the plan to be cancelled")
        time.sleep(0.5)
        assert len(g.arm.targets) == 1 + 3, "a plan made before a stop was sent after it"
        assert not g.executing() and g.statuses[-1].state == PlanStatus.STATE_STOPPED
        # The 100 ms answer itself: python bench/bench_stop_latency.py (the node's 0.1 ms GIL switch interval, which
        # conftest.py gives this process too, brought answers from up to 1.6 s down to tens of ms on 2 cores)
    finally:
        g.close()


def test_no_replanning_from_a_pose_older_than_the_last_command(ros_domain_id):
    """Issue 14: when no pose newer than the last command arrived, the loop re-planned after the settle timeout
    from the stale pose (the step limit then allowed twice the per-step motion)."""
    # max_data_age_s far above any stall of a shared 2-core runner: the hold must be for want of a pose newer than
    # the command, not because the last pose grew old while the in-process graph waited for the GIL
    g = Graph(ros_domain_id, with_encoder=False, settle_timeout_s=0.3, max_data_age_s=60.0)
    try:
        g.feed_latents()
        wait_for(lambda: g.planner._pose_obs() is not None, 10, "the planner to hear the arm")
        g.arm.publish_pose = False  # the pose stream stops (a best-effort outage): every pose predates the command
        g.goal_pub.publish(g.latent())
        wait_for(lambda: g.arm.targets, 30, "the first command")
        wait_for(lambda: any("no end-effector pose since the last command" in s.message for s in g.statuses), 10,
                 "the planner to say why it holds")
        time.sleep(1.0)
        assert len(g.arm.targets) == 1, "re-planned from a pose older than the last command"
        g.arm.publish_pose = True
        wait_for(lambda: len(g.arm.targets) >= 3, 30, "commands once the arm reports again")
        prev = HOME
        for target in g.arm.targets:  # relative to where the arm really was
            assert np.all(np.abs(target[:3] - prev[:3]) <= 0.05 + 1e-6), (target, prev)
            prev = target
    finally:
        g.close()


def test_gripper_closedness_comes_from_the_finger_joints_by_name(ros_domain_id):
    """Issue 14: the node summed the first two JointState positions, whatever joints they were."""
    g = Graph(ros_domain_id, with_encoder=False)
    try:
        g.arm.gripper = (["fr3_joint7", *FINGERS], [1.0, 0.0, 0.0])  # closed fingers after another joint
        g.feed_latents()
        g.goal_pub.publish(g.latent())
        wait_for(lambda: g.executing(), 30, "a planning step")
        assert g.executing()[0].ee_state[6] == pytest.approx(1.0)
    finally:
        g.close()


def test_with_sim_time_no_pose_is_refused_before_the_first_clock_message(ros_domain_id):
    """Sim time reads 0 until /clock arrives: that is no reason to call every pose 'in the future'."""
    g = Graph(ros_domain_id, with_encoder=False, use_sim_time=True)
    try:
        wait_for(lambda: g.planner._pose_obs() is not None, 10, "the planner to take the arm's pose")
        assert g.planner.get_clock().now().nanoseconds == 0
        time.sleep(0.3)
        assert not [s for s in g.statuses if "refused" in s.message]
    finally:
        g.close()


def test_a_goal_from_another_encoder_is_refused(ros_domain_id):
    g = Graph(ros_domain_id, with_encoder=False)
    try:
        g.feed_latents()
        g.goal_pub.publish(g.latent(model="vit_giant@0123456789ab"))
        wait_for(lambda: any("goal refused: latent from model 'vit_giant@0123456789ab'" in s.message
                             for s in g.statuses), 10, "the refusal")
        time.sleep(0.5)
        assert not g.arm.targets and all(s.episode == 0 for s in g.statuses)
    finally:
        g.close()


def test_without_an_encoder_in_the_checkpoint_the_planner_warns_and_trusts_the_first_goal(tmp_path, ros_domain_id,
                                                                                          capfd):
    """Issue 14: an empty expected_model_id silently trusted any goal; now it is derived from the checkpoint, and
    only a checkpoint without the encoder falls back to the first goal's id, with a loud warning."""
    ckpt = torch.load(FIXTURE / "checkpoint.pt", map_location="cpu", weights_only=True)
    predictor_only = tmp_path / "predictor_only.pt"
    torch.save({"predictor": ckpt["predictor"]}, predictor_only)
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=ros_domain_id)
    try:
        node = PlannerNode(context=context, parameter_overrides=[
            Parameter(k, value=v) for k, v in {**PLANNER, "checkpoint": str(predictor_only)}.items()])
        try:
            assert node.trust_first_goal and node.expected_model_id == ""
            node._on_goal_latent(latent_msg(node.get_clock().now().to_msg(), model="first@goal"))
            assert node.expected_model_id == "first@goal"
        finally:
            node.hold_and_close()
            node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
    assert "NO EXPECTED ENCODER ID" in capfd.readouterr().err


@pytest.mark.parametrize(("bad", "message"), [
    ({"control_rate_hz": 0.0}, "control_rate_hz must be > 0"),
    ({"max_data_age_s": 0.0}, "max_data_age_s must be > 0"),
    ({"settle_timeout_s": -1.0}, "settle_timeout_s must be > 0"),
    ({"fault_timeout_s": 0.0}, "fault_timeout_s must be > 0"),
    ({"goal_timeout_s": 0.0}, "goal_timeout_s must be > 0"),
    ({"max_future_stamp_s": -0.5}, "max_future_stamp_s must be >= 0"),
    ({"control_rate_hz": 0.5, "max_data_age_s": 1.0}, "must be shorter than max_data_age_s"),
    ({"max_steps": 0}, "max_steps must be >= 1"),
    ({"planner": "cmaes"}, "planner must be one of cem, icem, mppi"),
    ({"planner": "cem_adam", "backend": "onnxruntime"}, "planner cem_adam .* needs backend torch"),
    ({"mppi_temperature": 0.0}, "mppi_temperature must be > 0"),
    ({"icem_keep_elites": 1.5}, "icem_keep_elites must be a fraction in"),
    ({"icem_noise_beta": -1.0}, "icem_noise_beta must be >= 0"),
    ({"adam_steps": 0}, "adam_steps must be >= 1"),
    ({"adam_lr": 0.0}, "adam_lr must be > 0"),
])
def test_inconsistent_parameters_are_refused_before_loading(bad, message, ros_domain_id):
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=ros_domain_id)
    try:
        with pytest.raises(ValueError, match=message):
            PlannerNode(context=context, parameter_overrides=[
                Parameter(k, value=v) for k, v in {**PLANNER, **bad}.items()])
    finally:
        rclpy.shutdown(context=context)


def test_bad_timing_parameter_exits_1_with_a_clear_message(tmp_path, ros_domain_id):
    """Issue 14: control_rate_hz 0 killed the loop thread while the node looked alive."""
    params = tmp_path / "planner.yaml"
    params.write_text(json.dumps({"planner_node": {"ros__parameters": {**PLANNER, "control_rate_hz": 0.0}}}))
    proc = subprocess.run([sys.executable, "-m", "vjepa_planner.planner_node", "--ros-args", "--params-file",
                           str(params)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "cannot start: invalid parameters: control_rate_hz must be > 0" in proc.stdout + proc.stderr


def test_the_process_sets_the_node_gil_switch_interval_first(tmp_path, ros_domain_id):
    """Issue 14: with CPython's 5 ms GIL switch interval, ~/stop queued for seconds behind the planning thread
    (bench/bench_stop_latency.py). main() sets the node interval (vjepa_core.process) before anything else: a bad
    VJEPA_GIL_SWITCH_INTERVAL_MS is the start-up error, so the setting is known to be applied."""
    params = tmp_path / "planner.yaml"
    params.write_text(json.dumps({"planner_node": {"ros__parameters": PLANNER}}))
    env = dict(os.environ, VJEPA_GIL_SWITCH_INTERVAL_MS="fast")
    proc = subprocess.run([sys.executable, "-m", "vjepa_planner.planner_node", "--ros-args", "--params-file",
                           str(params)], capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "cannot start: VJEPA_GIL_SWITCH_INTERVAL_MS='fast' is not a number" in proc.stdout + proc.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_shutdown_mid_plan_holds_at_the_newest_pose(sig, tmp_path, ros_domain_id):
    """planner_node as a process, a signal while a (slow) plan runs: the hold is the only command, at the pose the
    arm reported last (it was pushed during the plan), the plan in progress is never sent, exit 0."""
    params = tmp_path / "planner.yaml"
    params.write_text(json.dumps({"planner_node": {"ros__parameters": {**PLANNER, **SLOW_PLAN}}}))
    proc = subprocess.Popen([sys.executable, "-m", "vjepa_planner.planner_node", "--ros-args", "--params-file",
                             str(params)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=ros_domain_id)
    node = rclpy.create_node("probe", context=context)
    arm = InstantArm(node, camera=False)
    latent_pub = node.create_publisher(Latent, "/vjepa/latent", 5)
    goal_pub = node.create_publisher(Latent, "/vjepa/goal_latent", 1)
    executor = MultiThreadedExecutor(num_threads=2, context=context)
    executor.add_node(node)
    spinner = Spinner(executor)
    try:
        now = lambda: node.get_clock().now().to_msg()  # noqa: E731
        wait_for(lambda: goal_pub.get_subscription_count() > 0, 60, "planner_node to start")
        wait_for(lambda: latent_pub.get_subscription_count() > 0, 10, "the planner's latent subscription")
        goal_pub.publish(latent_msg(now()))
        wait_for(lambda: any("episode 1: goal set" in line for line in lines), 30, "the goal")
        for i in range(6):  # a pose and a fresh latent: the (endless) plan starts at once
            latent_pub.publish(latent_msg(now(), grid=np.random.default_rng(100 + i).normal(size=1536)))
            time.sleep(0.05)
        time.sleep(0.5)
        arm.push([0.0, 0.02, -0.01, 0, 0, 0, 0])
        pushed = arm.state.copy()
        time.sleep(2.0)  # the pushed pose reaches the planner (50 Hz, best effort; no way to ask the process)
        assert not arm.targets, "a plan finished (it should take far longer than this test)"
        t0 = time.monotonic()
        proc.send_signal(sig)
        proc.wait(timeout=60)
        reader.join(timeout=10)
        out = "".join(lines)
        assert proc.returncode == 0, out
        assert time.monotonic() - t0 < 5.0, "shutdown waited for the plan"
        wait_for(lambda: arm.targets, 5, "the hold command")
        time.sleep(0.5)
        assert len(arm.targets) == 1, "a plan target was sent after the signal"
        np.testing.assert_allclose(arm.targets[0][:3], pushed[:3], atol=1e-6)
        assert "[episode 1 step 0 STOPPED] planner shutting down" in out, out  # it was planning step 0
        assert "never retrieved" not in out and "Traceback" not in out, out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(timeout=10)
        proc.stdout.close()
        spinner.close()
        node.destroy_node()
        rclpy.shutdown(context=context)

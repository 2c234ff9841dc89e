"""franka_ros2 interfaces with their real definitions (franka_msgs jazzy, control_msgs jazzy): the gripper adapters'
goals and faults, robot errors and reflexes, error recovery, all over Fast DDS between real processes. Every gripper
fault (rejected, aborted, failed, unanswered goal, no server) of both action adapters is also run through the real
planner: the arm is held and the episode fails with the reason.

Everything that imports franka_msgs / control_msgs runs in a child process with ``franka_interfaces.env()``
(``franka_graph.py``: a fake franka with real action servers and a FrankaRobotState publisher, a RobotAdapter
driver; and the real planner_node, which imports franka_msgs lazily). Without ``../shared/ros2-tools`` these
tests skip (fail under ``CI=true``).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rclpy
import yaml
from _ros2_helpers import Spinner
from geometry_msgs.msg import PoseStamped
from rclpy.executors import MultiThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_srvs.srv import Trigger

from vjepa_core import franka
from vjepa_core.checkpoint import model_id
from vjepa_core.config import EncoderConfig
from vjepa_core.msgconv import fill_latent_msg, fill_pose_msg, pose_state_from_msg
from vjepa_interfaces.msg import Latent, PlanStatus

HERE = Path(__file__).resolve().parent
GRAPH = HERE / "franka_graph.py"
FIXTURE = Path(__file__).resolve().parents[4] / "tests" / "fixtures" / "parity_tiny_a"
ENCODER_ID = model_id(EncoderConfig.from_dict(json.loads((FIXTURE / "config.json").read_text())["encoder"]),
                      FIXTURE / "checkpoint.pt")
HOME_TCP = np.array([0.5, 0.0, 0.3, np.pi, 0.0, 0.0, 0.0])  # the TCP, fingers pointing down


class LineProcess:
    """A child process speaking the JSON-lines protocol of franka_graph.py (commands in, events out)."""

    def __init__(self, args: list[str], env: dict, log: Path) -> None:
        self.log = log
        self._err = open(log, "w")  # noqa: SIM115 (closed in close())
        self.proc = subprocess.Popen([sys.executable, str(GRAPH), *args], env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self._err, text=True, bufsize=1)
        self.events: list[dict] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            with self._cond:
                self.events.append(event)
                self._cond.notify_all()

    def wait(self, pred: Callable[[dict], bool], timeout: float, what: str, start: int = 0) -> dict:
        """The first event from index ``start`` on that satisfies ``pred``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for e in self.events[start:]:
                    if pred(e):
                        return e
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise AssertionError(f"{what}: not seen within {timeout} s; events {self.events}; "
                                         f"log:\n{self.log.read_text()[-3000:]}")
                self._cond.wait(min(left, 0.1))

    def command(self, cmd: dict, timeout: float = 30.0) -> int:
        """Send ``cmd`` and wait for its ack; returns the index of the first event after the ack."""
        start = len(self.events)
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        self.wait(lambda e: e.get("event") == "ack", timeout, f"ack of {cmd}", start)
        return len(self.events)

    def since(self, start: int, event: str) -> list[dict]:
        with self._cond:
            return [e for e in self.events[start:] if e.get("event") == event]

    def close(self) -> int | None:
        try:
            if self.proc.poll() is None:
                assert self.proc.stdin is not None
                self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait(timeout=10)
        finally:
            for stream in (self.proc.stdin, self.proc.stdout):
                if stream is not None:
                    stream.close()
            self._err.close()
        return self.proc.returncode


@pytest.fixture
def fake_franka(franka_interfaces, ros_domain_id, tmp_path):
    proc = LineProcess(["fake"], franka_interfaces.env(), tmp_path / "fake.log")
    proc.wait(lambda e: e.get("event") == "ready", 60, "fake franka start")
    yield proc
    assert proc.close() == 0, proc.log.read_text()[-3000:]


def adapter(franka_interfaces, tmp_path, gripper: str, target: str, timeout: float = 10.0) -> LineProcess:
    proc = LineProcess(["adapter", "--gripper", gripper, "--gripper-target", target, "--timeout", str(timeout)],
                       franka_interfaces.env(), tmp_path / f"adapter_{gripper}.log")
    proc.wait(lambda e: e.get("event") == "ready", 60, "adapter driver start")
    return proc


def test_robot_error_monitor_on_real_franka_robot_state(franka_interfaces, tmp_path):
    """Which FrankaRobotState messages are faults, and how they are named (current_errors, robot_mode, a new
    last_motion_errors set), with the real message definition."""
    proc = LineProcess(["monitor"], franka_interfaces.env(), tmp_path / "monitor.log")
    out = proc.wait(lambda e: e.get("event") == "monitor", 60, "monitor results")
    assert proc.close() == 0
    r = {x["case"]: x for x in out["results"]}
    assert r["moving"]["fault"] is None and r["moving"]["active"] is None
    assert r["reflex"]["fault"] == ("franka reports current errors: cartesian_reflex; robot mode REFLEX; "
                                    "last motion aborted by: cartesian_reflex")
    assert r["reflex again"]["fault"] == r["reflex"]["fault"]        # persistent: reported while it lasts
    assert r["recovered, old abort kept"]["fault"] is None            # an old abort is not a new fault
    assert r["new abort"]["fault"] == "franka reports last motion aborted by: joint_velocity_violation"
    assert r["new abort"]["active"] is None
    assert r["same abort again"]["fault"] is None                     # reported once
    assert r["user stop"]["fault"] == "franka reports robot mode USER_STOPPED"
    assert r["guiding"]["fault"] is None
    assert r["two errors"]["fault"] == ("franka reports current errors: joint_position_limits_violation, "
                                        "power_limit_violation")
    assert out["n_flags"] == 36
    assert "cartesian_reflex" in out["first_monitor_on_fault"]        # a fault in the first message counts


def test_franka_action_gripper_goals_and_faults(franka_interfaces, fake_franka, tmp_path):
    """franka_action sends Grasp (width, speed, force, epsilon) to close and Move (0.08 m) to open, and reports a
    rejected, aborted, failed or unanswered goal, or a missing server, once, with the reason."""
    drv = adapter(franka_interfaces, tmp_path, "franka_action", franka.GRIPPER_ACTION_NAMESPACE, timeout=1.5)
    try:
        drv.command({"cmd": "wait_server", "timeout": 30})
        assert drv.since(0, "server")[-1]["ready"]
        # close, then open: the right goals, no fault
        mark = len(fake_franka.events)
        drv.command({"cmd": "send", "closedness": 1.0})
        grasp = fake_franka.wait(lambda e: e.get("action") == "grasp", 10, "grasp goal", mark)
        assert grasp == {"event": "goal", "action": "grasp", "width": 0.0, "speed": 0.1, "force": 20.0,
                         "inner": 0.08, "outer": 0.08}
        drv.command({"cmd": "send", "closedness": 0.0})
        move = fake_franka.wait(lambda e: e.get("action") == "move", 10, "move goal", mark)
        assert move == {"event": "goal", "action": "move", "width": franka.MAX_GRIPPER_WIDTH, "speed": 0.1}
        drv.command({"cmd": "send", "closedness": 0.2})  # still open: nothing is sent
        time.sleep(2.0)  # longer than the 1.5 s timeout: a finished goal never times out
        assert len([e for e in fake_franka.events[mark:] if e.get("event") == "goal"]) == 2
        assert drv.since(0, "fault") == []

        def fault_after(behave: dict, closedness: float, what: str) -> str:
            fake_franka.command({"cmd": "behave", **behave})
            start = drv.command({"cmd": "send", "closedness": closedness})
            return drv.wait(lambda e: e.get("event") == "fault", 10, what, start)["reason"]

        assert fault_after({"action": "grasp", "how": "reject"}, 1.0, "rejected grasp") == \
            "gripper grasp: goal rejected by /franka_gripper/grasp"
        assert fault_after({"action": "move", "how": "abort"}, 0.0, "aborted move") == \
            "gripper move ABORTED by /franka_gripper/move: test abort of move"
        assert fault_after({"action": "grasp", "how": "fail"}, 1.0, "failed grasp") == \
            "gripper grasp failed on /franka_gripper/grasp: test fail of grasp"
        mark = len(fake_franka.events)
        assert fault_after({"action": "move", "how": "hang"}, 0.0, "unanswered move") == \
            "gripper move: no result from /franka_gripper/move within 1.5 s"
        fake_franka.wait(lambda e: e.get("event") == "cancel" and e["action"] == "move", 10, "cancel", mark)
        # after a fault the fingers' state is unknown: the same command is sent again
        fake_franka.command({"cmd": "behave", "action": "move", "how": "succeed"})
        mark = len(fake_franka.events)
        drv.command({"cmd": "send", "closedness": 0.0})
        fake_franka.wait(lambda e: e.get("action") == "move", 10, "move re-sent after the fault", mark)
        time.sleep(2.0)
        assert len(drv.since(0, "fault")) == 4  # each fault reported exactly once
    finally:
        assert drv.close() == 0, drv.log.read_text()[-3000:]
    # no gripper server at all
    drv = adapter(franka_interfaces, tmp_path, "franka_action", "/no_such_gripper", timeout=1.5)
    try:
        start = drv.command({"cmd": "send", "closedness": 1.0})
        reason = drv.wait(lambda e: e.get("event") == "fault", 10, "missing server", start)["reason"]
        assert reason == "gripper grasp: action server /no_such_gripper/grasp is not available (waited 1.5 s)"
    finally:
        assert drv.close() == 0


def test_control_msgs_gripper_command(franka_interfaces, fake_franka, tmp_path):
    """control_msgs GripperCommand: position = half the width (franka_gripper doubles it), max_effort = the grasp
    force; an aborted goal is a fault naming the action."""
    name = f"{franka.GRIPPER_ACTION_NAMESPACE}/gripper_action"
    drv = adapter(franka_interfaces, tmp_path, "control_msgs", name)
    try:
        drv.command({"cmd": "wait_server", "timeout": 30})
        mark = len(fake_franka.events)
        drv.command({"cmd": "send", "closedness": 0.0})
        opened = fake_franka.wait(lambda e: e.get("action") == "gripper_action", 10, "open goal", mark)
        assert opened["position"] == pytest.approx(franka.MAX_GRIPPER_WIDTH / 2) and opened["max_effort"] == 20.0
        fake_franka.command({"cmd": "behave", "action": "gripper_action", "how": "abort"})
        start = drv.command({"cmd": "send", "closedness": 1.0})
        closed = fake_franka.wait(lambda e: e.get("action") == "gripper_action" and e["position"] == 0.0, 10,
                                  "close goal", mark)
        assert closed["max_effort"] == 20.0
        reason = drv.wait(lambda e: e.get("event") == "fault", 10, "aborted close", start)["reason"]
        assert reason == f"gripper close ABORTED by {name}"
    finally:
        assert drv.close() == 0


# ---- planner_node (a subprocess with the franka interfaces) ---------------------------------------------------
class Arm:
    """The test's side of the graph: publishes the TCP pose (best effort, like current_pose), finger states and
    camera latents; records target poses and planner statuses."""

    def __init__(self, domain: int) -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain)
        self.node = rclpy.create_node("test_arm", context=self.context)
        self.lock = threading.Lock()
        self.tcp = HOME_TCP.copy()
        self.fingers = 0.04  # each finger joint's position (m): 0.04 open (closedness 0), 0.0 closed (closedness 1)
        self.targets: list[np.ndarray] = []
        self.statuses: list[PlanStatus] = []
        qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
        self.pose_pub = self.node.create_publisher(PoseStamped, franka.CURRENT_POSE_TOPIC, qos)
        from sensor_msgs.msg import JointState

        self._joint_state = JointState
        self.grip_pub = self.node.create_publisher(JointState, franka.GRIPPER_JOINT_STATES_TOPIC, qos)
        self.latent_pub = self.node.create_publisher(Latent, "/vjepa/latent", 5)
        self.goal_pub = self.node.create_publisher(Latent, "/vjepa/goal_latent", 1)
        self.node.create_subscription(PoseStamped, franka.EQUILIBRIUM_POSE_TOPIC, self._on_target, 10)
        self.node.create_subscription(PlanStatus, "/planner_node/status", self._on_status, 100)
        self.node.create_timer(0.02, self._tick)
        self.node.create_timer(0.1, self._latent)
        self.executor = MultiThreadedExecutor(num_threads=2, context=self.context)
        self.executor.add_node(self.node)
        self.spinner = Spinner(self.executor)

    def _on_target(self, msg: PoseStamped) -> None:
        with self.lock:
            self.tcp = pose_state_from_msg(msg, 0.0)
            self.targets.append(self.tcp.copy())

    def _on_status(self, msg: PlanStatus) -> None:
        with self.lock:
            self.statuses.append(msg)

    def _tick(self) -> None:
        msg = PoseStamped()
        msg.header.stamp = self.node.get_clock().now().to_msg()
        msg.header.frame_id = franka.BASE_FRAME
        with self.lock:
            fill_pose_msg(msg.pose, self.tcp)
        self.pose_pub.publish(msg)
        with self.lock:
            fingers = self.fingers
        js = self._joint_state(name=["fr3_finger_joint1", "fr3_finger_joint2"], position=[fingers, fingers])
        js.header.stamp = msg.header.stamp
        self.grip_pub.publish(js)

    def latent(self, seed: int = 0) -> Latent:
        tokens = np.random.default_rng(seed).normal(size=(1, 4, 4, 96)).astype(np.float32)
        msg = fill_latent_msg(Latent(), tokens, model_id=ENCODER_ID, normalized=True, image_size=64,
                              patch_size=16, tubelet_size=2)
        msg.header.stamp = self.node.get_clock().now().to_msg()
        return msg

    def _latent(self) -> None:
        self.latent_pub.publish(self.latent(int(time.monotonic() * 10)))

    def start_episode(self) -> None:
        """Publish a goal latent once the planner listens (a volatile message sent before would be lost)."""
        deadline = time.monotonic() + 30
        while self.goal_pub.get_subscription_count() < 1 or self.node.count_publishers("/planner_node/status") < 1:
            assert time.monotonic() < deadline, "the planner never subscribed to the goal topic"
            time.sleep(0.05)
        self.goal_pub.publish(self.latent(12345))

    def wait_status(self, pred: Callable[[PlanStatus], bool], timeout: float, what: str,
                    start: int = 0) -> PlanStatus:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                for s in self.statuses[start:]:
                    if pred(s):
                        return s
            time.sleep(0.05)
        with self.lock:
            seen = [(s.episode, s.state, s.message) for s in self.statuses[start:]][-15:]
        raise AssertionError(f"{what}: no such status within {timeout} s; last statuses {seen}")

    def call(self, name: str, timeout: float = 60.0) -> Trigger.Response:
        client = self.node.create_client(Trigger, name)
        assert client.wait_for_service(timeout_sec=30), f"{name} not available"
        future = client.call_async(Trigger.Request())
        deadline = time.monotonic() + timeout
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert future.done(), f"{name} did not answer"
        return future.result()

    def close(self) -> None:
        self.spinner.close()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


class Planner:
    """planner_node as a real process (python -m vjepa_planner.planner_node) with the franka interfaces."""

    def __init__(self, env: dict, tmp_path: Path, **params: Any) -> None:
        base = {"checkpoint": str(FIXTURE / "checkpoint.pt"), "model_config": str(FIXTURE / "config.json"),
                "robot": "franka_impedance", "gripper": "franka_action", "cem_samples": 16, "cem_iterations": 2,
                "cem_topk": 4, "cem_sample_gripper": False, "max_steps": 200, "control_rate_hz": 50.0,
                "settle_timeout_s": 1.0, "fault_timeout_s": 60.0, "threads": 1,
                "workspace_min": [0.3, -0.3, 0.1], "workspace_max": [0.7, 0.3, 0.5], "gripper_timeout_s": 5.0}
        path = tmp_path / "planner.yaml"
        path.write_text(yaml.safe_dump({"planner_node": {"ros__parameters": {**base, **params}}}))
        self.log = tmp_path / "planner.log"
        self._out = open(self.log, "w")  # noqa: SIM115 (closed in close())
        self.proc = subprocess.Popen([sys.executable, "-m", "vjepa_planner.planner_node", "--ros-args",
                                      "--params-file", str(path)], env=env, stdout=self._out,
                                     stderr=subprocess.STDOUT)

    def wait_log(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log.read_text():
                return
            assert self.proc.poll() is None, f"planner exited:\n{self.log.read_text()[-3000:]}"
            time.sleep(0.1)
        raise AssertionError(f"{text!r} not logged within {timeout} s:\n{self.log.read_text()[-3000:]}")

    def close(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._out.close()
        return self.proc.returncode


@pytest.fixture
def arm(ros_domain_id):
    a = Arm(ros_domain_id)
    yield a
    a.close()


def _failed(episode: int) -> Callable[[PlanStatus], bool]:
    return lambda s: s.episode == episode and s.state == PlanStatus.STATE_FAILED


def _assert_held(arm: Arm, fail_index: int) -> None:
    """The newest target is a hold at a TCP pose the arm reported (the start pose or one of the two targets before
    it: the pose the planner saw last), and nothing is commanded after it."""
    time.sleep(1.0)
    with arm.lock:
        targets = np.array(arm.targets)
    assert len(targets) == fail_index, "targets were commanded after the hold"
    hold, before = targets[-1], np.vstack([HOME_TCP[None], targets[:-1]])[-2:]
    assert np.min(np.linalg.norm(before[:, :3] - hold[:3], axis=1)) < 1e-6, (hold, before)


def test_planner_gripper_fault_holds_and_fails_the_episode_droid_convention(franka_interfaces, fake_franka, arm,
                                                                             tmp_path):
    """A Move goal aborted by franka_gripper: the planner holds the arm (at the TCP pose the arm reports, the
    gripper left alone) and fails the episode naming the reason. With ee_convention droid the planner plans the
    flange (0.1034 m above the downward-pointing TCP, turned +45 deg about the tool axis) and commands TCP targets,
    which the workspace box bounds. A CEM search range wider than the safety step is warned about at start-up,
    and ~/recover refuses unless allow_recover is set."""
    from vjepa_core.pose import euler_to_matrix

    fake_franka.command({"cmd": "behave", "action": "move", "how": "abort"})
    planner = Planner(franka_interfaces.env(), tmp_path, ee_convention="droid", cem_maxnorm=0.075,
                      max_position_step=0.05)
    try:
        planner.wait_log("planner ready", 120)
        log = planner.log.read_text()
        assert "CEM SEARCH RANGE: cem_maxnorm 0.075 m exceeds max_position_step 0.05 m" in log
        assert "ROBOT ERRORS NOT WATCHED" not in log  # franka_msgs is importable in this process
        refused = arm.call("/planner_node/recover")
        assert not refused.success and "allow_recover" in refused.message
        arm.start_episode()
        executing = arm.wait_status(lambda s: s.state == PlanStatus.STATE_EXECUTING, 60, "a first step")
        planned = np.asarray(executing.ee_state)
        np.testing.assert_allclose(planned[:3], HOME_TCP[:3] + [0, 0, franka.HAND_TCP_OFFSET_Z], atol=1e-6)
        c, s_ = np.cos(-franka.HAND_TCP_YAW), np.sin(-franka.HAND_TCP_YAW)
        np.testing.assert_allclose(euler_to_matrix(planned[3:6]),
                                   euler_to_matrix(HOME_TCP[3:6]) @ [[c, -s_, 0], [s_, c, 0], [0, 0, 1]],
                                   atol=1e-6)
        fail = arm.wait_status(_failed(executing.episode), 30, "the episode failed by the gripper fault")
        assert fail.message == "gripper move ABORTED by /franka_gripper/move: test abort of move"
        with arm.lock:
            n_targets = len(arm.targets)
        _assert_held(arm, n_targets)
        goals = [e for e in fake_franka.events if e.get("event") == "goal"]
        with arm.lock:
            steps = sum(1 for st in arm.statuses
                        if st.episode == executing.episode and st.state == PlanStatus.STATE_EXECUTING)
        # the hold sent no gripper command: every gripper goal is a step's move (at most one per step; a fast second
        # step may command its gripper before the first move's abort arrives), so none came from the hold
        assert goals and {g["action"] for g in goals} == {"move"} and len(goals) <= steps, (goals, steps)
        with arm.lock:
            targets = np.array(arm.targets)
        # the first target is a TCP target: one step (<= 0.05 m per axis) from the TCP, not from the flange
        assert np.all(np.abs(targets[0, :3] - HOME_TCP[:3]) <= 0.05 + 1e-9)
        assert np.all(targets[:, 2] >= 0.1 - 1e-9) and np.all(targets[:, 2] <= 0.5 + 1e-9)
    finally:
        assert planner.close() == 0, planner.log.read_text()[-3000:]


def test_planner_robot_error_fails_the_episode_and_recover_calls_error_recovery(franka_interfaces, fake_franka,
                                                                                arm, tmp_path):
    """A reflex reported on FrankaRobotState fails the running episode naming the errors and holds; while it lasts a
    new episode fails at once; the opt-in ~/recover calls franka's ErrorRecovery action (refused while an episode
    runs; a failed recovery is reported)."""
    planner = Planner(franka_interfaces.env(), tmp_path, gripper="none", allow_recover=True)
    try:
        planner.wait_log("planner ready", 120)
        arm.start_episode()
        executing = arm.wait_status(lambda s: s.state == PlanStatus.STATE_EXECUTING, 60, "a first step")
        refused = arm.call("/planner_node/recover")
        assert not refused.success and "episode is running" in refused.message
        fake_franka.command({"cmd": "state", "mode": 4, "current": ["cartesian_reflex"],
                             "last_motion": ["cartesian_reflex"]})
        fail = arm.wait_status(_failed(executing.episode), 10, "the episode failed by the reflex")
        assert fail.message == ("franka reports current errors: cartesian_reflex; robot mode REFLEX; last motion "
                                "aborted by: cartesian_reflex")
        with arm.lock:
            n_targets = len(arm.targets)
        _assert_held(arm, n_targets)
        # while the reflex lasts, a new episode fails at once
        mark = len(arm.statuses)
        arm.start_episode()
        again = arm.wait_status(lambda s: s.state == PlanStatus.STATE_FAILED, 10, "a new episode failed", mark)
        assert again.episode == executing.episode + 1 and "cartesian_reflex" in again.message
        # recovery: the ErrorRecovery goal reaches franka's action server, which clears the error
        mark = len(fake_franka.events)
        res = arm.call("/planner_node/recover")
        assert res.success, res.message
        assert res.message.startswith("error recovery succeeded (/action_server/error_recovery)")
        fake_franka.wait(lambda e: e.get("action") == "error_recovery", 10, "ErrorRecovery goal", mark)
        # afterwards (no current errors, mode MOVE, the old abort still listed) an episode runs again
        fake_franka.command({"cmd": "state", "mode": 2})
        mark = len(arm.statuses)
        arm.start_episode()
        arm.wait_status(lambda s: s.state == PlanStatus.STATE_EXECUTING, 60, "an episode after recovery", mark)
        # a failing recovery is reported as such
        fake_franka.command({"cmd": "behave", "action": "error_recovery", "how": "abort"})
        assert arm.call("/planner_node/stop").success
        res = arm.call("/planner_node/recover")
        assert not res.success and res.message == "error recovery ABORTED by /action_server/error_recovery"
    finally:
        assert planner.close() == 0, planner.log.read_text()[-3000:]


# Gripper faults the planner must turn into a held arm and a FAILED episode naming them, per gripper adapter:
# (fingers closed at the episode's start: its first gripper command closes, else opens; the fake server's action,
# how it misbehaves, the reason reported). The episodes run one after another in one planner process.
GRIPPER_TIMEOUT_S = 2.0
GRIPPER_FAULTS = {
    "franka_action": (franka.GRIPPER_ACTION_NAMESPACE, [
        (True, "grasp", "reject", "gripper grasp: goal rejected by /franka_gripper/grasp"),
        (True, "grasp", "fail", "gripper grasp failed on /franka_gripper/grasp: test fail of grasp"),
        (False, "move", "hang", f"gripper move: no result from /franka_gripper/move within {GRIPPER_TIMEOUT_S} s"),
    ]),
    "control_msgs": (f"{franka.GRIPPER_ACTION_NAMESPACE}/gripper_action", [
        (False, "gripper_action", "reject", "gripper open: goal rejected by /franka_gripper/gripper_action"),
        (True, "gripper_action", "abort", "gripper close ABORTED by /franka_gripper/gripper_action"),
        (False, "gripper_action", "hang",
         f"gripper open: no result from /franka_gripper/gripper_action within {GRIPPER_TIMEOUT_S} s"),
    ]),
}


def _fail_one_episode(arm: Arm, fake_franka: LineProcess, closed: bool, action: str | None, reason: str) -> None:
    """Start an episode with the fingers open or closed; its first gripper command must meet the fault (the
    fake server misbehaving as set, or no server), fail the episode with ``reason`` and leave the arm held, no gripper
    goal sent by the hold."""
    with arm.lock:
        arm.fingers = 0.0 if closed else 0.04
    time.sleep(1.5)  # the planner (another process) sees the new finger state (50 Hz; stalls of ~1 s happen)
    mark, goals_mark = len(arm.statuses), len(fake_franka.events)
    arm.start_episode()
    executing = arm.wait_status(lambda s: s.state == PlanStatus.STATE_EXECUTING, 60, "a first step", mark)
    fail = arm.wait_status(_failed(executing.episode), 30, f"the episode failed by {reason!r}", mark)
    assert fail.message == reason
    with arm.lock:
        n_targets = len(arm.targets)
    _assert_held(arm, n_targets)
    goals = [e["action"] for e in fake_franka.events[goals_mark:] if e.get("event") == "goal"]
    if action is None:
        assert goals == [], goals
    else:
        with arm.lock:
            steps = sum(1 for st in arm.statuses[mark:]
                        if st.episode == executing.episode and st.state == PlanStatus.STATE_EXECUTING)
        # every gripper goal is a step's command (at most one per step: a fast second step may command the gripper
        # before the first goal's fault comes back, as in the droid test above), so none came from the hold
        assert goals and set(goals) == {action} and len(goals) <= steps, (goals, steps)


@pytest.mark.parametrize("gripper", sorted(GRIPPER_FAULTS))
def test_planner_holds_and_fails_the_episode_on_each_gripper_fault(franka_interfaces, fake_franka, arm, tmp_path,
                                                                   gripper):
    """For both action grippers: a rejected goal, a failed or aborted one and one without a result (then canceled),
    each in its own episode, hold the arm and fail the episode with the adapter's reason; the next episode sends its
    gripper command again."""
    target, faults = GRIPPER_FAULTS[gripper]
    planner = Planner(franka_interfaces.env(), tmp_path, gripper=gripper, gripper_target=target,
                      gripper_timeout_s=GRIPPER_TIMEOUT_S)
    try:
        planner.wait_log("planner ready", 120)
        for closed, action, how, reason in faults:
            fake_franka.command({"cmd": "behave", "action": action, "how": how})
            mark = len(fake_franka.events)
            _fail_one_episode(arm, fake_franka, closed, action, reason)
            if how == "hang":  # the goal that timed out was canceled
                fake_franka.wait(lambda e, a=action: e.get("event") == "cancel" and e["action"] == a, 10,
                                 f"cancel of the {action} goal", mark)
            fake_franka.command({"cmd": "behave", "action": action, "how": "succeed"})
    finally:
        assert planner.close() == 0, planner.log.read_text()[-3000:]


@pytest.mark.parametrize("gripper", sorted(GRIPPER_FAULTS))
def test_planner_holds_and_fails_the_episode_without_a_gripper_server(franka_interfaces, fake_franka, arm, tmp_path,
                                                                      gripper):
    """No action server under gripper_target: the first gripper command of an episode is a fault after
    gripper_timeout_s, the arm holds and the episode fails saying which server is missing."""
    target = "/no_such_gripper" + ("/gripper_action" if gripper == "control_msgs" else "")
    server = f"{target}/move" if gripper == "franka_action" else target
    what = "move" if gripper == "franka_action" else "open"
    planner = Planner(franka_interfaces.env(), tmp_path, gripper=gripper, gripper_target=target,
                      gripper_timeout_s=GRIPPER_TIMEOUT_S)
    try:
        planner.wait_log("planner ready", 120)
        _fail_one_episode(arm, fake_franka, False, None, f"gripper {what}: action server {server} is not available "
                                                         f"(waited {GRIPPER_TIMEOUT_S} s)")
    finally:
        assert planner.close() == 0, planner.log.read_text()[-3000:]


def test_planner_without_franka_msgs_starts_and_fails_only_a_gripper_command(arm, tmp_path):
    """Where franka_msgs is not built (no franka_ros2), the default franka_action gripper no longer stops the node at
    start-up: it warns, plans, and each episode's first gripper command is a gripper fault saying what is missing
    (held arm, FAILED episode)."""
    import os

    env = dict(os.environ)
    probe = subprocess.run([sys.executable, "-c", "import franka_msgs"], env=env, capture_output=True)
    assert probe.returncode != 0, "franka_msgs is importable here: this test needs an environment without it"
    planner = Planner(env, tmp_path, gripper="franka_action")
    try:
        planner.wait_log("planner ready", 120)
        log = planner.log.read_text()
        assert "GRIPPER UNAVAILABLE: gripper 'franka_action' needs franka_msgs" in log, log[-3000:]
        assert "ROBOT ERRORS NOT WATCHED" in log
        arm.start_episode()
        executing = arm.wait_status(lambda s: s.state == PlanStatus.STATE_EXECUTING, 60, "a first step")
        fail = arm.wait_status(_failed(executing.episode), 30, "the episode failed by the missing franka_msgs")
        assert fail.message == ("gripper move: gripper 'franka_action' needs franka_msgs, which is not installed "
                                "here (build franka_ros2's franka_msgs), or set gripper to 'control_msgs', "
                                "'sim_topic' or 'none'")
        with arm.lock:
            n_targets = len(arm.targets)
        _assert_held(arm, n_targets)
    finally:
        assert planner.close() == 0, planner.log.read_text()[-3000:]

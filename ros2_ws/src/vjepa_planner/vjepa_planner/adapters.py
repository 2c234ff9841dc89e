"""Robot adapters: how a safe 7-D target state becomes messages for a particular arm and gripper.

Selected by the planner's ``robot`` and ``gripper`` parameters, so switching between the simulator and a lab
FR3 is a configuration change. Every arm adapter publishes one ``geometry_msgs/PoseStamped`` per command (a
planning step, or a hold at the newest pose on stop / pause / fault): ``header.frame_id`` = ``base_frame``,
``header.stamp`` = the node's clock, the pose = the TCP target (after :mod:`vjepa_planner.conventions`), the
orientation a unit quaternion. QoS: reliable, volatile, keep last 1. Nothing is published between commands: the
controller holds the last target.

=====================  ========================================================================================
``robot``              target pose output (geometry_msgs/PoseStamped in ``base_frame``)
=====================  ========================================================================================
``franka_impedance``   franka_ros2 **Jazzy** (>= 3.3): ``cartesian_impedance_example_controller`` subscribes to
                       ``~/equilibrium_pose`` (default ``target_topic``
                       ``/cartesian_impedance_example_controller/equilibrium_pose``, reliable); it ignores
                       ``header.frame_id`` and takes the pose in the robot base frame, rejects a degenerate
                       quaternion (jazzy ``franka_example_controllers/src/fr3/cartesian_impedance_example_controller
                       .cpp``).
``crisp``              franka_ros2 **Humble** (v2.x) has no topic-driven Cartesian controller: its Cartesian
                       example controllers generate motion internally and subscribe to nothing
                       (frankarobotics/franka_ros2#40, #114; ../shared/reference/ros2-franka-droid-rosbags.md
                       1.5, 1.8). The Humble path is utiasDSL/crisp_controllers' ``CartesianController``
                       (a ros2_control effort controller, loaded into franka_ros2's controller manager next to
                       ``franka_robot_state_broadcaster``): it subscribes to ``target_pose`` relative to its
                       namespace, so ``/target_pose`` without a namespace (``target_topic: /target_pose``), with
                       ``rclcpp::QoS(1)`` (reliable, volatile, depth 1). It ignores ``header.frame_id`` (the pose
                       is of its ``end_effector_frame``, ``fr3_hand_tcp`` in crisp_py's FR3 config, in the URDF
                       root frame), and **drops every target while more than one publisher is on the topic**
                       (``check_topic_publisher_count``): run one planner, and no crisp_py client beside it
                       (crisp_controllers ``src/cartesian_controller.cpp``). The target is filtered and slerped
                       toward inside the controller, so 1-15 Hz planner targets need no interpolation.
``sim``                ``vjepa_sim``'s equilibrium_pose input (same message and QoS as ``franka_impedance``)
=====================  ========================================================================================

=====================  ========================================================================================
``gripper``            gripper output (closedness > 0.5 closes, below opens; sent only when that state changes)
=====================  ========================================================================================
``franka_action``      franka_gripper's ``<gripper_target>/grasp`` (``franka_msgs/action/Grasp``: ``width``
                       ``grasp_width``, ``speed``, ``force`` = ``grasp_force``, ``epsilon.inner/outer``; success
                       when ``width - inner < measured < width + outer``) to close, ``<gripper_target>/move``
                       (``Move``: ``width`` = 0.08 m, ``speed``) to open. ``franka_msgs`` is imported lazily
                       (it exists only where franka_ros2 is built): without it the node starts with a warning and
                       every gripper command is a gripper fault saying so (``gripper: none`` where no gripper is
                       commanded).
``control_msgs``       ``control_msgs/action/GripperCommand`` on ``gripper_target`` (``command.position`` = half the
                       width, as franka_gripper's ``~/gripper_action`` doubles it; ``max_effort`` =
                       ``grasp_force``). franka_gripper grasps with its own ``default_grasp_epsilon`` (0.005 m)
                       when closing, so closing on an object reports a failure unless that parameter is raised.
                       Without control_msgs, as franka_action without franka_msgs.
``sim_topic``          ``vjepa_interfaces/msg/GripperCommand`` on the simulator's topic (no result to watch)
``none``               the gripper is not commanded
=====================  ========================================================================================

Action goals are watched: a goal that is rejected, aborted or canceled, a result with ``success: false``, an
action server still not discovered, or no result, ``gripper_timeout_s`` after the command is a gripper fault (a
goal for a server not discovered yet is sent as soon as it appears; a goal that timed out is canceled). The adapter
reports it once through ``on_gripper_fault(reason)`` (the planner then holds the arm and fails the episode with
that reason; see ``planner_node``), from a timer of its own, never from inside :meth:`RobotAdapter.send`. Only the
newest gripper command counts: the outcome of a goal superseded by a newer command is ignored.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from vjepa_core.franka import MAX_GRIPPER_WIDTH
from vjepa_core.msgconv import fill_pose_msg

from .conventions import EndEffectorConvention

__all__ = ["ROBOTS", "GRIPPERS", "TARGET_QOS", "AdapterError", "GripperSettings", "RobotAdapter",
           "state_to_pose_msg"]

ROBOTS = ("franka_impedance", "crisp", "sim")
GRIPPERS = ("franka_action", "control_msgs", "sim_topic", "none")
# What every arm adapter publishes with: reliable (franka's equilibrium_pose and crisp's target_pose subscribe
# reliable), volatile, keep last 1 (only the newest target matters).
TARGET_QOS = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, durability=DurabilityPolicy.VOLATILE,
                        reliability=ReliabilityPolicy.RELIABLE)
WATCH_PERIOD_S = 0.05
# action_msgs/msg/GoalStatus
_STATUS_NAMES = {0: "UNKNOWN", 1: "ACCEPTED", 2: "EXECUTING", 3: "CANCELING", 4: "SUCCEEDED", 5: "CANCELED",
                 6: "ABORTED"}
_SUCCEEDED = 4


class AdapterError(RuntimeError):
    """The configured robot or gripper interface cannot be used (unknown name, message package missing)."""


@dataclass(frozen=True)
class GripperSettings:
    """How gripper goals are built and watched. Widths in m, speed in m/s, force in N, time in s."""

    grasp_force: float = 20.0
    speed: float = 0.1
    grasp_width: float = 0.0           # the width a grasp closes to (0: close on whatever is there)
    epsilon_inner: float = 0.08        # a grasp succeeds when grasp_width - inner < width < grasp_width + outer;
    epsilon_outer: float = 0.08        # 0.08 m each: any object the hand can hold counts as grasped
    timeout_s: float = 10.0            # no result by then is a fault

    def __post_init__(self) -> None:
        problems = []
        for name in ("grasp_force", "speed", "timeout_s"):
            if not float(getattr(self, name)) > 0:
                problems.append(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("grasp_width", "epsilon_inner", "epsilon_outer"):
            if not 0.0 <= float(getattr(self, name)) <= MAX_GRIPPER_WIDTH:
                problems.append(f"{name} must be in [0, {MAX_GRIPPER_WIDTH}] m, got {getattr(self, name)}")
        if problems:
            raise ValueError("; ".join(problems))


def state_to_pose_msg(state: np.ndarray, frame_id: str, stamp: Any) -> PoseStamped:
    """7-D state (xyz, extrinsic xyz Euler, gripper) -> PoseStamped in ``frame_id`` (the gripper is dropped)."""
    msg = PoseStamped()
    msg.header.frame_id = frame_id
    msg.header.stamp = stamp
    fill_pose_msg(msg.pose, state)
    return msg


class _Goal:
    """One gripper command as an action goal, until its outcome is known (or it times out)."""

    def __init__(self, what: str, server: str, client: Any, goal: Any) -> None:
        self.what, self.server, self.client, self.goal = what, server, client, goal
        self.sent = time.monotonic()
        self.dispatched = False          # sent to the server (else waiting for it to appear)
        self.handle: Any = None
        self.failure: str | None = None
        self.finished = False
        self.reported = False


class RobotAdapter:
    """Publishes target poses and gripper commands for one robot configuration (see the module docstring)."""

    def __init__(self, node: Node, robot: str, gripper: str, target_topic: str, gripper_target: str,
                 base_frame: str, grasp_force: float = 20.0, gripper_speed: float = 0.1, *,
                 gripper_settings: GripperSettings | None = None, convention: EndEffectorConvention | None = None,
                 on_gripper_fault: Callable[[str], None] | None = None) -> None:
        if robot not in ROBOTS:
            raise AdapterError(f"unknown robot adapter {robot!r}; choose one of {', '.join(ROBOTS)}")
        if gripper not in GRIPPERS:
            raise AdapterError(f"unknown gripper adapter {gripper!r}; choose one of {', '.join(GRIPPERS)}")
        self.node = node
        self.base_frame = base_frame
        self.settings = gripper_settings or GripperSettings(grasp_force=grasp_force, speed=gripper_speed)
        self.grasp_force = self.settings.grasp_force
        self.gripper_speed = self.settings.speed
        self.convention = convention or EndEffectorConvention()
        self.on_gripper_fault = on_gripper_fault
        self.gripper_target = gripper_target
        self._closed: bool | None = None
        self._lock = threading.Lock()     # the newest goal (set by send, read by result callbacks and the watch)
        self._goal: _Goal | None = None
        self.pose_pub = node.create_publisher(PoseStamped, target_topic, TARGET_QOS)
        self.gripper_kind = gripper
        self._gripper: Any = None
        self.unavailable: str | None = None  # why the gripper cannot be commanded here (its messages are missing)
        if gripper == "sim_topic":
            from vjepa_interfaces.msg import GripperCommand

            self._gripper_msg = GripperCommand
            self._gripper = node.create_publisher(GripperCommand, gripper_target, 10)
        elif gripper in ("franka_action", "control_msgs"):
            from rclpy.action import ActionClient

            group = ReentrantCallbackGroup()
            if gripper == "franka_action":
                base = gripper_target.rstrip("/")
                self._names = (f"{base}/move", f"{base}/grasp")
                try:
                    from franka_msgs.action import Grasp, Move
                except ImportError:
                    self.unavailable = ("gripper 'franka_action' needs franka_msgs, which is not installed here "
                                        "(build franka_ros2's franka_msgs), or set gripper to 'control_msgs', "
                                        "'sim_topic' or 'none'")
                else:
                    self._move_type, self._grasp_type = Move, Grasp
                    self._gripper = (ActionClient(node, Move, self._names[0], callback_group=group),
                                     ActionClient(node, Grasp, self._names[1], callback_group=group))
            else:
                self._names = (gripper_target, gripper_target)
                try:
                    from control_msgs.action import GripperCommand as GripperAction
                except ImportError:
                    self.unavailable = ("gripper 'control_msgs' needs control_msgs, which is not installed here, or "
                                        "set gripper to 'franka_action', 'sim_topic' or 'none'")
                else:
                    self._action_type = GripperAction
                    self._gripper = ActionClient(node, GripperAction, gripper_target, callback_group=group)
            if self.unavailable is not None:
                node.get_logger().warning(f"GRIPPER UNAVAILABLE: {self.unavailable}; every gripper command will be "
                                          "a gripper fault (the arm holds, the episode fails)")
            self._watch_timer = node.create_timer(WATCH_PERIOD_S, self._watch,
                                                  callback_group=MutuallyExclusiveCallbackGroup())

    # ---- arm -------------------------------------------------------------------------------------------------
    def _publish_pose(self, state: np.ndarray) -> None:
        command = self.convention.planned_to_command(state)
        stamp = self.node.get_clock().now().to_msg()
        self.pose_pub.publish(state_to_pose_msg(command, self.base_frame, stamp))

    def send(self, state: np.ndarray) -> None:
        """Command the arm to the planned 7-D target ``state`` and the gripper to its closedness (when it
        changed)."""
        self._publish_pose(state)
        self._send_gripper(float(state[6]))

    def hold(self, state: np.ndarray) -> None:
        """Command the arm to ``state`` and leave the gripper alone (a hold after a fault must not open a hand
        that holds an object, nor close one)."""
        self._publish_pose(state)

    def forget_gripper(self) -> None:
        """Forget the last gripper command (a new episode: the fingers may have moved since, e.g. a simulator reset
        or an operator opening the hand), so the episode's first command is sent whatever it is."""
        with self._lock:
            self._closed = None

    # ---- gripper ---------------------------------------------------------------------------------------------
    def _send_gripper(self, closedness: float) -> None:
        closed = closedness > 0.5
        if (self._gripper is None and self.unavailable is None) or closed == self._closed:
            return
        self._closed = closed
        if self.unavailable is not None:  # reported by the watch timer, as any other gripper fault
            what = ("grasp" if closed else "move") if self.gripper_kind == "franka_action" else (
                "close" if closed else "open")
            record = _Goal(what, self._names[1 if closed else 0], None, None)
            record.failure = f"gripper {what}: {self.unavailable}"
            with self._lock:
                self._goal = record
            return
        s = self.settings
        width = s.grasp_width if closed else MAX_GRIPPER_WIDTH
        if self.gripper_kind == "sim_topic":
            msg = self._gripper_msg()
            msg.header.stamp = self.node.get_clock().now().to_msg()
            msg.width, msg.speed, msg.grasp, msg.force = width, s.speed, closed, s.grasp_force
            self._gripper.publish(msg)
            return
        if self.gripper_kind == "franka_action":
            move_client, grasp_client = self._gripper
            if closed:
                goal = self._grasp_type.Goal()
                goal.width, goal.speed, goal.force = float(width), float(s.speed), float(s.grasp_force)
                goal.epsilon.inner, goal.epsilon.outer = float(s.epsilon_inner), float(s.epsilon_outer)
                self._send_goal(grasp_client, self._names[1], goal, "grasp")
            else:
                goal = self._move_type.Goal()
                goal.width, goal.speed = float(width), float(s.speed)
                self._send_goal(move_client, self._names[0], goal, "move")
        elif self.gripper_kind == "control_msgs":
            goal = self._action_type.Goal()
            goal.command.position = float(width) / 2.0
            goal.command.max_effort = float(s.grasp_force)
            self._send_goal(self._gripper, self._names[0], goal, "close" if closed else "open")

    def _send_goal(self, client: Any, server: str, goal: Any, what: str) -> None:
        """Send ``goal`` to ``server`` and watch it. A server not (yet) discovered gets the goal from the watch
        timer once it appears; one still missing after ``timeout_s`` is a fault."""
        record = _Goal(what, server, client, goal)
        with self._lock:
            self._goal = record
        if client.server_is_ready():
            self._dispatch(record)

    def _dispatch(self, record: _Goal) -> None:
        record.dispatched = True
        future = record.client.send_goal_async(record.goal)
        future.add_done_callback(lambda f, r=record: self._on_goal_response(r, f))

    def _on_goal_response(self, record: _Goal, future: Any) -> None:
        exc = future.exception()
        if exc is not None:
            record.failure = f"gripper {record.what}: sending the goal to {record.server} failed: {exc!r}"
            return
        handle = future.result()
        if not handle.accepted:
            record.failure = f"gripper {record.what}: goal rejected by {record.server}"
            return
        record.handle = handle
        handle.get_result_async().add_done_callback(lambda f, r=record: self._on_result(r, f))

    def _on_result(self, record: _Goal, future: Any) -> None:
        exc = future.exception()
        if exc is not None:
            record.failure = f"gripper {record.what}: no result from {record.server}: {exc!r}"
            return
        response = future.result()
        status, result = int(response.status), response.result
        error = str(getattr(result, "error", "") or "")
        if status != _SUCCEEDED:
            record.failure = (f"gripper {record.what} {_STATUS_NAMES.get(status, status)} by {record.server}"
                              + (f": {error}" if error else ""))
        elif getattr(result, "success", True) is False:
            record.failure = f"gripper {record.what} failed on {record.server}" + (f": {error}" if error else "")
        else:
            record.finished = True

    def _watch(self) -> None:
        """Timer: send a goal whose server appeared; report the newest goal's failure or timeout, once; cancel a
        goal that timed out."""
        with self._lock:
            record = self._goal
            if record is None or record.reported or record.finished:
                return
            reason = record.failure
            timed_out = time.monotonic() - record.sent > self.settings.timeout_s
            if reason is None and not record.dispatched:
                if not timed_out and record.client.server_is_ready():
                    self._dispatch(record)
                elif timed_out:
                    reason = (f"gripper {record.what}: action server {record.server} is not available (waited "
                              f"{self.settings.timeout_s:.1f} s)")
            elif reason is None and timed_out:
                reason = (f"gripper {record.what}: no result from {record.server} within "
                          f"{self.settings.timeout_s:.1f} s")
                if record.handle is not None:
                    record.handle.cancel_goal_async()
            if reason is None:
                return
            record.reported = True
            self._closed = None  # the fingers' state is unknown: the next command is sent whatever it is
        if self.on_gripper_fault is not None:
            self.on_gripper_fault(reason)
        else:
            self.node.get_logger().error(reason)

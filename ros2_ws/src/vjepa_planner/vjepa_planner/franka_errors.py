"""franka_ros2 robot errors and reflexes, seen by the planner, and franka's error recovery.

franka_robot_state_broadcaster publishes ``franka_msgs/msg/FrankaRobotState`` on ``~/robot_state``
(``/franka_robot_state_broadcaster/robot_state``, reliable, at the controller rate of 1 kHz; franka_ros2
``franka_robot_state_broadcaster``; ../shared/reference/ros2-franka-droid-rosbags.md 1.6). Three of its fields
say that the arm cannot follow targets:

- ``current_errors`` (``franka_msgs/msg/Errors``: 36 named flags such as ``cartesian_reflex``,
  ``joint_velocity_violation``, ``communication_constraints_violation``): any flag set is a fault for as long as
  it stays set;
- ``robot_mode``: ``ROBOT_MODE_REFLEX`` (4), ``ROBOT_MODE_USER_STOPPED`` (5, the external stop is pressed) and
  ``ROBOT_MODE_AUTOMATIC_ERROR_RECOVERY`` (6) are faults while they last. ``IDLE`` (1, no controller running),
  ``MOVE`` (2), ``GUIDING`` (3) and ``OTHER`` (0) are not: the planner's settle and freshness checks already
  cover an arm that does not move;
- ``last_motion_errors``: the errors that aborted the previous motion. They stay set after the motion ended, so
  only a change to a new non-empty set is a fault (reported once), with the flags named.

On a fault the planner holds the arm and fails the running episode with the error named (an episode started
while a persistent fault lasts is failed at once). Recovery stays with the operator: franka_hardware's
``action_server`` node offers ``~/error_recovery`` (``franka_msgs/action/ErrorRecovery``, empty goal;
``franka_hardware/src/franka_action_server.cpp``), which the planner's opt-in ``~/recover`` service calls. After
it, franka_ros2 also needs the hardware component set active again and the controllers re-activated (on Humble
deactivate them first, ros2_control#2318): franka_hardware ``doc/index.rst`` "error recovery".

The 1 kHz stream is subscribed raw and decoded at most every :data:`CHECK_PERIOD_S` (errors and modes persist
for many messages, so none is missed), which keeps the Python cost of the subscription small. ``franka_msgs`` is
imported lazily: it exists only where franka_ros2 is built.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy

__all__ = ["CHECK_PERIOD_S", "FAULT_MODES", "ROBOT_MODES", "ErrorRecoveryClient", "RobotErrorMonitor",
           "RobotStateWatcher", "set_error_names"]

CHECK_PERIOD_S = 0.02
# franka_msgs/msg/FrankaRobotState ROBOT_MODE_* constants
ROBOT_MODES = {0: "OTHER", 1: "IDLE", 2: "MOVE", 3: "GUIDING", 4: "REFLEX", 5: "USER_STOPPED",
               6: "AUTOMATIC_ERROR_RECOVERY"}
FAULT_MODES = (4, 5, 6)


def set_error_names(errors: Any) -> list[str]:
    """Names of the flags set in a ``franka_msgs/msg/Errors`` message, in the message's field order."""
    return [name for name in errors.get_fields_and_field_types() if getattr(errors, name) is True]


class RobotErrorMonitor:
    """Turns FrankaRobotState messages into fault descriptions (pure logic; no ROS graph needed)."""

    def __init__(self) -> None:
        self._last_motion: tuple[str, ...] | None = None
        self.active: str | None = None   # the persistent fault of the newest message (None: the arm is fine)

    def update(self, msg: Any) -> str | None:
        """The fault this message reports (a persistent one every time, a new motion abort once), or None."""
        current = set_error_names(msg.current_errors)
        motion = tuple(set_error_names(msg.last_motion_errors))
        mode = int(msg.robot_mode)
        parts = []
        if current:
            parts.append("current errors: " + ", ".join(current))
        if mode in FAULT_MODES:
            parts.append(f"robot mode {ROBOT_MODES[mode]}")
        self.active = "; ".join(parts) if parts else None
        new_abort = self._last_motion is not None and motion and motion != self._last_motion
        self._last_motion = motion
        if self.active is None and not new_abort:
            return None
        text = self.active or ""
        if motion and (new_abort or self.active):
            text += ("; " if text else "") + "last motion aborted by: " + ", ".join(motion)
        return f"franka reports {text}"


class RobotStateWatcher:
    """Subscribes to FrankaRobotState and calls ``on_fault(reason)`` for every decoded message that reports a
    fault (see :class:`RobotErrorMonitor`)."""

    def __init__(self, node: Node, topic: str, on_fault: Callable[[str], None]) -> None:
        from franka_msgs.msg import FrankaRobotState  # lazy: only on machines with franka_ros2
        from rclpy.serialization import deserialize_message

        self._type = FrankaRobotState
        self._deserialize = deserialize_message
        self.topic = topic
        self.on_fault = on_fault
        self.monitor = RobotErrorMonitor()
        self.messages = 0            # decoded messages
        self._next_check = 0.0
        self._lock = threading.Lock()
        qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)  # receives from the reliable pub too
        self.subscription = node.create_subscription(FrankaRobotState, topic, self._on_raw, qos, raw=True,
                                                     callback_group=MutuallyExclusiveCallbackGroup())

    def _on_raw(self, data: bytes) -> None:
        now = time.monotonic()
        with self._lock:
            if now < self._next_check:
                return
            self._next_check = now + CHECK_PERIOD_S
            msg = self._deserialize(data, self._type)
            self.messages += 1
            fault = self.monitor.update(msg)
        if fault is not None:
            self.on_fault(fault)

    @property
    def active_fault(self) -> str | None:
        """The persistent fault the newest decoded message reports (None when there is none)."""
        with self._lock:
            return self.monitor.active


class ErrorRecoveryClient:
    """Calls franka's ``ErrorRecovery`` action (empty goal) and waits for its outcome."""

    def __init__(self, node: Node, action_name: str) -> None:
        from franka_msgs.action import ErrorRecovery  # lazy: only on machines with franka_ros2
        from rclpy.action import ActionClient

        self.action_name = action_name
        self._type = ErrorRecovery
        self._client = ActionClient(node, ErrorRecovery, action_name, callback_group=ReentrantCallbackGroup())

    def recover(self, timeout_s: float) -> tuple[bool, str]:
        """Send the goal; ``(succeeded, message)`` once the result arrives or ``timeout_s`` passed. Call it
        from a callback group other than the action client's (it blocks while the executor delivers)."""
        if not self._client.wait_for_server(timeout_sec=min(2.0, timeout_s)):
            return False, f"error recovery action {self.action_name} is not available"
        deadline = time.monotonic() + timeout_s
        done = threading.Event()
        sent = self._client.send_goal_async(self._type.Goal())
        sent.add_done_callback(lambda _f: done.set())
        if not done.wait(max(0.0, deadline - time.monotonic())):
            return False, f"error recovery: {self.action_name} did not answer within {timeout_s:.1f} s"
        if sent.exception() is not None:
            return False, f"error recovery: sending the goal failed: {sent.exception()!r}"
        handle = sent.result()
        if not handle.accepted:
            return False, f"error recovery goal rejected by {self.action_name}"
        done.clear()
        result = handle.get_result_async()
        result.add_done_callback(lambda _f: done.set())
        if not done.wait(max(0.0, deadline - time.monotonic())):
            handle.cancel_goal_async()
            return False, f"error recovery: no result from {self.action_name} within {timeout_s:.1f} s"
        if result.exception() is not None:
            return False, f"error recovery failed: {result.exception()!r}"
        status = int(result.result().status)
        if status != 4:  # action_msgs/GoalStatus STATUS_SUCCEEDED
            names = {5: "CANCELED", 6: "ABORTED"}
            return False, f"error recovery {names.get(status, f'ended with status {status}')} by {self.action_name}"
        return True, (f"error recovery succeeded ({self.action_name}); franka_ros2 may still need the hardware "
                      "component set active and the controllers re-activated before the arm follows targets")

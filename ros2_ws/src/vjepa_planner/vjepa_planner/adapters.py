"""Robot adapters: how a safe 7-D target state becomes messages for a particular arm and gripper.

Selected by the planner's ``robot`` and ``gripper`` parameters, so switching between the simulator and a lab
FR3 is a configuration change:

=====================  ===========================================================================================
``robot``              target pose output (geometry_msgs/PoseStamped in ``base_frame``)
=====================  ===========================================================================================
``franka_impedance``   franka_ros2 (Jazzy) ``cartesian_impedance_example_controller/equilibrium_pose``, reliable
``crisp``              a crisp_controllers-style ``target_pose`` topic, QoS depth 1
``sim``                ``vjepa_sim``'s equilibrium_pose input (same message and QoS as ``franka_impedance``)
=====================  ===========================================================================================

=====================  ===========================================================================================
``gripper``            gripper output (closedness > 0.5 closes, below opens; sent only when that state changes)
=====================  ===========================================================================================
``franka_action``      franka_gripper ``move`` / ``grasp`` actions (``franka_msgs``, imported lazily)
``control_msgs``       ``control_msgs/action/GripperCommand`` (``position`` = half the width, as franka_gripper)
``sim_topic``          ``vjepa_interfaces/msg/GripperCommand`` on the simulator's topic
``none``               the gripper is not commanded
=====================  ===========================================================================================
"""

from __future__ import annotations

from typing import Any

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from vjepa_core.franka import MAX_GRIPPER_WIDTH
from vjepa_core.msgconv import fill_pose_msg

__all__ = ["ROBOTS", "GRIPPERS", "AdapterError", "RobotAdapter", "state_to_pose_msg"]

ROBOTS = ("franka_impedance", "crisp", "sim")
GRIPPERS = ("franka_action", "control_msgs", "sim_topic", "none")


class AdapterError(RuntimeError):
    """The configured robot or gripper interface cannot be used (unknown name, message package missing)."""


def state_to_pose_msg(state: np.ndarray, frame_id: str, stamp: Any) -> PoseStamped:
    """7-D state (xyz, extrinsic xyz Euler, gripper) -> PoseStamped in ``frame_id`` (the gripper is dropped)."""
    msg = PoseStamped()
    msg.header.frame_id = frame_id
    msg.header.stamp = stamp
    fill_pose_msg(msg.pose, state)
    return msg


class RobotAdapter:
    """Publishes target poses and gripper commands for one robot configuration."""

    def __init__(self, node: Node, robot: str, gripper: str, target_topic: str, gripper_target: str,
                 base_frame: str, grasp_force: float = 20.0, gripper_speed: float = 0.1) -> None:
        if robot not in ROBOTS:
            raise AdapterError(f"unknown robot adapter {robot!r}; choose one of {', '.join(ROBOTS)}")
        if gripper not in GRIPPERS:
            raise AdapterError(f"unknown gripper adapter {gripper!r}; choose one of {', '.join(GRIPPERS)}")
        self.node = node
        self.base_frame = base_frame
        self.grasp_force = grasp_force
        self.gripper_speed = gripper_speed
        self._closed: bool | None = None
        qos = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, durability=DurabilityPolicy.VOLATILE,
                         reliability=ReliabilityPolicy.RELIABLE)
        self.pose_pub = node.create_publisher(PoseStamped, target_topic, qos)
        self.gripper_kind = gripper
        self._gripper: Any = None
        if gripper == "sim_topic":
            from vjepa_interfaces.msg import GripperCommand

            self._gripper_msg = GripperCommand
            self._gripper = node.create_publisher(GripperCommand, gripper_target, 10)
        elif gripper == "franka_action":
            try:
                from franka_msgs.action import Grasp, Move
            except ImportError as exc:
                raise AdapterError("gripper 'franka_action' needs franka_msgs (install franka_ros2), or set "
                                   "gripper to 'control_msgs', 'sim_topic' or 'none'") from exc
            from rclpy.action import ActionClient

            self._move_type, self._grasp_type = Move, Grasp
            self._gripper = (ActionClient(node, Move, f"{gripper_target}/move"),
                             ActionClient(node, Grasp, f"{gripper_target}/grasp"))
        elif gripper == "control_msgs":
            try:
                from control_msgs.action import GripperCommand as GripperAction
            except ImportError as exc:
                raise AdapterError("gripper 'control_msgs' needs the control_msgs package") from exc
            from rclpy.action import ActionClient

            self._action_type = GripperAction
            self._gripper = ActionClient(node, GripperAction, gripper_target)

    def send(self, state: np.ndarray) -> None:
        """Command the arm to the 7-D target ``state`` and the gripper to its closedness (when it changed)."""
        stamp = self.node.get_clock().now().to_msg()
        self.pose_pub.publish(state_to_pose_msg(state, self.base_frame, stamp))
        self._send_gripper(float(state[6]))

    def _send_gripper(self, closedness: float) -> None:
        closed = closedness > 0.5
        if self._gripper is None or closed == self._closed:
            return
        self._closed = closed
        width = 0.0 if closed else MAX_GRIPPER_WIDTH
        if self.gripper_kind == "sim_topic":
            msg = self._gripper_msg()
            msg.header.stamp = self.node.get_clock().now().to_msg()
            msg.width, msg.speed, msg.grasp, msg.force = width, self.gripper_speed, closed, self.grasp_force
            self._gripper.publish(msg)
        elif self.gripper_kind == "franka_action":
            move_client, grasp_client = self._gripper
            if closed:
                goal = self._grasp_type.Goal()
                goal.width, goal.speed, goal.force = 0.0, self.gripper_speed, self.grasp_force
                goal.epsilon.inner, goal.epsilon.outer = 0.08, 0.08  # succeed on any object width
                grasp_client.send_goal_async(goal)
            else:
                goal = self._move_type.Goal()
                goal.width, goal.speed = width, self.gripper_speed
                move_client.send_goal_async(goal)
        elif self.gripper_kind == "control_msgs":
            goal = self._action_type.Goal()
            goal.command.position = width / 2.0
            goal.command.max_effort = self.grasp_force
            self._gripper.send_goal_async(goal)

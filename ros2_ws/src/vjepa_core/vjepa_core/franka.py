"""Franka / franka_ros2 facts used across the suite, written once: topic names, frames, gripper geometry.

Sources: franka_ros2 (Jazzy) bringup and controllers, franka_gripper; see
``../shared/reference/ros2-franka-droid-rosbags.md``. The nodes' parameter defaults, the simulator, the recorder
and the dataset builder read them from here, so a change of convention is one edit.
"""

from __future__ import annotations

__all__ = [
    "BASE_FRAME",
    "CURRENT_POSE_TOPIC",
    "EQUILIBRIUM_POSE_TOPIC",
    "FINGER_JOINT_SUFFIXES",
    "GRIPPER_ACTION_NAMESPACE",
    "GRIPPER_JOINT_STATES_TOPIC",
    "JOINT_STATES_TOPIC",
    "MAX_GRIPPER_WIDTH",
]

MAX_GRIPPER_WIDTH = 0.08  # m: the Franka Hand's fully open finger distance (each finger joint = half of it)
BASE_FRAME = "fr3_link0"
CURRENT_POSE_TOPIC = "/franka_robot_state_broadcaster/current_pose"  # PoseStamped, best effort
EQUILIBRIUM_POSE_TOPIC = "/cartesian_impedance_example_controller/equilibrium_pose"  # Jazzy >= 3.3
GRIPPER_JOINT_STATES_TOPIC = "/fr3_gripper/joint_states"  # JointState of fr3_finger_joint1/2
GRIPPER_ACTION_NAMESPACE = "/franka_gripper"  # franka_msgs/action/{Move,Grasp,Homing}
JOINT_STATES_TOPIC = "/joint_states"
FINGER_JOINT_SUFFIXES = ("finger_joint1", "finger_joint2")

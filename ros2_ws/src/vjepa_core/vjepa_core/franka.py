"""Franka / franka_ros2 facts used across the suite, written once: topic names, frames, gripper geometry.

Sources: franka_ros2 (Jazzy) bringup and controllers, franka_gripper; see
``../shared/reference/ros2-franka-droid-rosbags.md``. The nodes' parameter defaults, the simulator, the recorder
and the dataset builder read them from here, so a change of convention is one edit.
"""

from __future__ import annotations

__all__ = [
    "BASE_FRAME",
    "CRISP_TARGET_POSE_TOPIC",
    "CURRENT_POSE_TOPIC",
    "EQUILIBRIUM_POSE_TOPIC",
    "ERROR_RECOVERY_ACTION",
    "FINGER_JOINT_NAMES",
    "FINGER_JOINT_SUFFIXES",
    "GRIPPER_ACTION_NAMESPACE",
    "GRIPPER_JOINT_STATES_TOPIC",
    "HAND_TCP_OFFSET_Z",
    "HAND_TCP_YAW",
    "JOINT_PREFIX",
    "JOINT_STATES_TOPIC",
    "MAX_GRIPPER_WIDTH",
    "ROBOT_STATE_TOPIC",
]

MAX_GRIPPER_WIDTH = 0.08  # m: the Franka Hand's fully open finger distance (each finger joint = half of it)
BASE_FRAME = "fr3_link0"
CURRENT_POSE_TOPIC = "/franka_robot_state_broadcaster/current_pose"  # PoseStamped, best effort
EQUILIBRIUM_POSE_TOPIC = "/cartesian_impedance_example_controller/equilibrium_pose"  # Jazzy >= 3.3
GRIPPER_JOINT_STATES_TOPIC = "/franka_gripper/joint_states"  # franka_gripper ~/joint_states: fr3_finger_joint1/2
GRIPPER_ACTION_NAMESPACE = "/franka_gripper"  # franka_msgs/action/{Move,Grasp,Homing}
JOINT_STATES_TOPIC = "/joint_states"
# franka_msgs/FrankaRobotState at the controller rate (1 kHz), reliable: robot_mode, current_errors,
# last_motion_errors (franka_robot_state_broadcaster ``~/robot_state``)
ROBOT_STATE_TOPIC = "/franka_robot_state_broadcaster/robot_state"
# franka_msgs/action/ErrorRecovery (empty goal) of franka_hardware's ``action_server`` node (``~/error_recovery``,
# franka_hardware/src/franka_action_server.cpp)
ERROR_RECOVERY_ACTION = "/action_server/error_recovery"
# crisp_controllers' CartesianController subscribes to the node-relative ``target_pose`` (Humble and later)
CRISP_TARGET_POSE_TOPIC = "/target_pose"
# The Franka Hand's TCP (``fr3_hand_tcp``, what ``current_pose`` reports with the gripper loaded) relative to the
# flange (``fr3_link8``): turned -45 deg about the flange z axis, then 0.1034 m along it (frankaemika/
# franka_description end_effectors/franka_hand/franka_hand_arguments.xacro: rpy_ee "0 0 -pi/4", tcp_xyz
# "0 0 0.1034"; libfranka's default F_T_NE for the Franka Hand is the same transform).
HAND_TCP_OFFSET_Z = 0.1034
HAND_TCP_YAW = -0.7853981633974483
FINGER_JOINT_SUFFIXES = ("finger_joint1", "finger_joint2")
JOINT_PREFIX = "fr3_"  # franka_description's FR3 joint and link names: fr3_joint1..7, fr3_finger_joint1/2
FINGER_JOINT_NAMES = tuple(JOINT_PREFIX + s for s in FINGER_JOINT_SUFFIXES)  # franka_gripper's ~/joint_states

"""The end-effector convention (TCP vs DROID's flange), the droid preset, the workspace box on the TCP, the CEM search
range check, and the arm adapters' contract (crisp on Humble: message, frame, QoS, one message per command)."""

from __future__ import annotations

import time

import numpy as np
import pytest
import rclpy
from _ros2_helpers import Spinner
from geometry_msgs.msg import PoseStamped
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from vjepa_core import franka
from vjepa_core.msgconv import pose_state_from_msg
from vjepa_core.pose import euler_to_matrix
from vjepa_core.preprocessing import CROP_POLICIES
from vjepa_interfaces.msg import GripperCommand
from vjepa_planner.adapters import RobotAdapter
from vjepa_planner.conventions import DROID_PRESET, EE_CONVENTIONS, STEP_DURATION_S, EndEffectorConvention
from vjepa_planner.planner_node import PARAMETERS, check_parameters
from vjepa_planner.safety import SafetyLimits, make_safe_command, search_range_warning
from vjepa_training.data.droid import CONVENTIONS as IMPORT_CONVENTIONS
from vjepa_training.data.droid import legacy_stride

RNG = np.random.default_rng(0)
DOWN = np.array([0.5, 0.1, 0.3, np.pi, 0.0, 0.3, 0.0])  # TCP pointing down, yawed


def _rz(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _random_states(n: int) -> np.ndarray:
    return np.concatenate([RNG.uniform([0.3, -0.3, 0.1], [0.7, 0.3, 0.6], (n, 3)),
                           RNG.uniform(-np.pi, np.pi, (n, 3)), RNG.uniform(0, 1, (n, 1))], axis=1)


def test_tcp_convention_is_the_identity():
    conv = EndEffectorConvention("tcp")
    for s in _random_states(5):
        np.testing.assert_array_equal(conv.observed_to_planned(s), s)
        np.testing.assert_array_equal(conv.planned_to_command(s), s)
    assert conv.tcp_in_planned_frame == (0.0, 0.0, 0.0)


def test_droid_convention_plans_the_flange():
    """franka's TCP = flange turned -45 deg about z, then 0.1034 m along z (franka_description franka_hand): the
    flange of a downward TCP is 0.1034 m above it, turned +45 deg about the tool axis; the gripper is kept."""
    conv = EndEffectorConvention("droid")
    flange = conv.observed_to_planned(DOWN)
    np.testing.assert_allclose(flange[:3], DOWN[:3] + [0, 0, 0.1034], atol=1e-12)
    np.testing.assert_allclose(euler_to_matrix(flange[3:6]), euler_to_matrix(DOWN[3:6]) @ _rz(np.pi / 4),
                               atol=1e-12)
    assert flange[6] == DOWN[6]
    # independent forward kinematics of the TCP from a flange pose: T_tcp = T_flange * Rz(-pi/4) * Tz(0.1034)
    for s in _random_states(20):
        tcp = conv.planned_to_command(s)
        r = euler_to_matrix(s[3:6])
        np.testing.assert_allclose(tcp[:3], s[:3] + r @ [0, 0, 0.1034], atol=1e-12)
        np.testing.assert_allclose(euler_to_matrix(tcp[3:6]), r @ _rz(-np.pi / 4), atol=1e-12)
        back = conv.observed_to_planned(tcp)  # a hold at the observed pose commands that same TCP pose
        np.testing.assert_allclose(back[:3], s[:3], atol=1e-12)
        np.testing.assert_allclose(euler_to_matrix(back[3:6]), r, atol=1e-12)
    assert conv.tcp_in_planned_frame == (0.0, 0.0, 0.1034)
    with pytest.raises(ValueError):
        EndEffectorConvention("wrist")


def test_droid_preset_is_one_consistent_setting_per_component():
    """The preset's parts are valid values of the encoder crop, the planner convention and the DROID import, and
    import-droid's --convention droid is exactly that preset; at 60 fps / 4 fps the stride is 15 rows (~1 s)."""
    assert DROID_PRESET.crop in CROP_POLICIES and DROID_PRESET.ee_convention in EE_CONVENTIONS
    assert IMPORT_CONVENTIONS["droid"] == (DROID_PRESET.sampling, DROID_PRESET.crop)
    assert IMPORT_CONVENTIONS["physical"] == ("time", "center")
    assert legacy_stride(60.0, 4.0) == 15 and legacy_stride(59.94, 4.0) == 15
    assert legacy_stride(60.0, 4.0) / 15.0 == pytest.approx(STEP_DURATION_S)  # 15 rows of the 15 Hz control loop
    assert PARAMETERS["ee_convention"][0] == "tcp"  # the physical default stays
    assert PARAMETERS["tcp_offset_z"][0] == franka.HAND_TCP_OFFSET_Z


def test_workspace_box_bounds_the_tcp_when_planning_the_flange():
    """With the flange planned, the box must keep the fingertips (0.1034 m below a downward flange) above the table:
    a target whose flange is inside the box but whose TCP is below it is lifted."""
    lo, hi = (0.25, -0.45, 0.02), (0.8, 0.45, 0.7)
    flange_limits = SafetyLimits(workspace_min=lo, workspace_max=hi, workspace_point=(0.0, 0.0, 0.1034))
    tcp_limits = SafetyLimits(workspace_min=lo, workspace_max=hi)
    flange = np.array([0.5, 0.0, 0.14, np.pi, 0.0, 0.0, 0.0])  # its TCP is at z 0.0366
    cmd = make_safe_command(flange, [0, 0, -0.05, 0, 0, 0, 0], flange_limits)
    tcp_z = cmd.target_state[2] - 0.1034
    assert tcp_z == pytest.approx(0.02) and any("workspace z" in c for c in cmd.clipped)
    # the old behaviour (the planned point itself bounded) would have let the fingertips go below the table
    assert make_safe_command(flange, [0, 0, -0.05, 0, 0, 0, 0], tcp_limits).target_state[2] - 0.1034 < 0.0
    # random flange poses and actions: the TCP of every target stays in the box, steps within the limit
    conv = EndEffectorConvention("droid")
    for s in _random_states(200):
        s[3:6] = [np.pi + RNG.normal(0, 0.3), RNG.normal(0, 0.3), RNG.uniform(-np.pi, np.pi)]
        tcp_now = conv.planned_to_command(s)
        if np.any(tcp_now[:3] < lo) or np.any(tcp_now[:3] > hi):
            continue  # starting outside the box moves back one step at a time (tested in test_safety.py)
        cmd = make_safe_command(s, RNG.uniform(-0.2, 0.2, 7), flange_limits)
        tcp = conv.planned_to_command(cmd.target_state)
        assert np.all(tcp[:3] >= np.array(lo) - 1e-9) and np.all(tcp[:3] <= np.array(hi) + 1e-9)
        assert np.all(np.abs(cmd.target_state[:3] - s[:3]) <= 0.05 + 1e-12)
    with pytest.raises(ValueError):
        SafetyLimits(workspace_point=(0.0, float("nan"), 0.1))


def test_search_range_warning():
    warning = search_range_warning(0.075, 0.05)
    assert warning is not None and "cem_maxnorm 0.075 m exceeds max_position_step 0.05 m" in warning
    assert search_range_warning(0.05, 0.05) is None and search_range_warning(0.03, 0.05) is None
    # the shipped defaults agree (the planner no longer scores moves safety never executes)
    assert search_range_warning(PARAMETERS["cem_maxnorm"][0], PARAMETERS["max_position_step"][0]) is None


def test_convention_and_gripper_parameters_are_checked():
    params = {name: default for name, (default, _) in PARAMETERS.items()}
    params["checkpoint"] = "x.pt"
    check_parameters(params)
    with pytest.raises(ValueError, match="ee_convention must be one of tcp, droid"):
        check_parameters({**params, "ee_convention": "flange"})
    with pytest.raises(ValueError, match="gripper_timeout_s must be > 0"):
        check_parameters({**params, "gripper_timeout_s": 0.0})
    with pytest.raises(ValueError, match="grasp_epsilon_outer must be in"):
        check_parameters({**params, "grasp_epsilon_outer": 0.5})


class _Graph:
    def __init__(self, domain: int) -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain)
        self.planner = rclpy.create_node("planner_stand_in", context=self.context)
        self.controller = rclpy.create_node("controller_stand_in", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        for n in (self.planner, self.controller):
            self.executor.add_node(n)
        self.spinner = Spinner(self.executor)

    def close(self) -> None:
        self.spinner.close()
        for n in (self.planner, self.controller):
            n.destroy_node()
        rclpy.shutdown(context=self.context)


def _wait(pred, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def test_crisp_adapter_contract(ros_domain_id):
    """robot crisp (the Humble path): one geometry_msgs/PoseStamped per command on /target_pose, frame base_frame,
    a unit quaternion, the TCP target (droid: converted from the planned flange); published reliable, volatile,
    keep last 1 by exactly one publisher (crisp's CartesianController drops targets while two publish), and nothing
    between commands. A hold commands the arm only: the gripper is left alone."""
    g = _Graph(ros_domain_id)
    try:
        received: list[PoseStamped] = []
        grips: list[GripperCommand] = []
        crisp_qos = QoSProfile(depth=1)  # rclcpp::QoS(1): keep last 1, reliable, volatile
        g.controller.create_subscription(PoseStamped, franka.CRISP_TARGET_POSE_TOPIC, received.append, crisp_qos)
        g.controller.create_subscription(GripperCommand, "/vjepa_sim/gripper_command", grips.append, 10)
        adapter = RobotAdapter(g.planner, "crisp", "sim_topic", franka.CRISP_TARGET_POSE_TOPIC,
                               "/vjepa_sim/gripper_command", franka.BASE_FRAME,
                               convention=EndEffectorConvention("droid"))
        _wait(lambda: adapter.pose_pub.get_subscription_count() == 1, 20, "crisp stand-in never matched")
        info = g.controller.get_publishers_info_by_topic(franka.CRISP_TARGET_POSE_TOPIC)
        assert len(info) == 1
        qos = info[0].qos_profile
        assert info[0].topic_type == "geometry_msgs/msg/PoseStamped"
        assert qos.reliability == ReliabilityPolicy.RELIABLE and qos.durability == DurabilityPolicy.VOLATILE
        assert qos.history in (HistoryPolicy.KEEP_LAST, HistoryPolicy.UNKNOWN)  # history is not discoverable
        flange = np.array([0.5, 0.05, 0.4, np.pi, 0.0, 0.2, 1.0])
        adapter.send(flange)
        _wait(lambda: len(received) == 1 and len(grips) == 1, 10, "target or gripper command not received")
        msg = received[0]
        assert msg.header.frame_id == franka.BASE_FRAME
        q = msg.pose.orientation
        assert np.linalg.norm([q.x, q.y, q.z, q.w]) == pytest.approx(1.0, abs=1e-9)
        tcp = pose_state_from_msg(msg, 0.0)
        expected = EndEffectorConvention("droid").planned_to_command(flange)
        np.testing.assert_allclose(tcp[:3], expected[:3], atol=1e-9)
        np.testing.assert_allclose(euler_to_matrix(tcp[3:6]), euler_to_matrix(expected[3:6]), atol=1e-9)
        assert grips[0].grasp and grips[0].width == 0.0
        open_hold = flange.copy()
        open_hold[6] = 0.0
        adapter.hold(open_hold)  # arm only
        _wait(lambda: len(received) == 2, 10, "hold not received")
        time.sleep(0.5)
        assert len(received) == 2 and len(grips) == 1  # nothing between commands; the hold left the gripper alone
        adapter.send(open_hold)  # a plan step that opens
        _wait(lambda: len(grips) == 2, 10, "open command not received")
        assert not grips[1].grasp and grips[1].width == pytest.approx(franka.MAX_GRIPPER_WIDTH)
    finally:
        g.close()

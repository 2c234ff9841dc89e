"""Which end-effector point the planner's states refer to, and the ``droid`` preset of the released model.

The released V-JEPA 2-AC (``vjepa2-ac-vitg.pt``) was post-trained on raw DROID, whose states are
``observation/robot_state/cartesian_position``: the pose of the **flange** ``panda_link8``, not of the point between
the fingertips. DROID computes it with Polymetis' forward kinematics (``droid/franka/robot.py``
``get_robot_state``: ``self._robot.robot_model.forward_kinematics(joint_positions)``; Polymetis ``ee_link_name:
panda_link8``), and its maintainers describe it as "the wrist site of the robot rather than the actual gripper
location" (droid-dataset/droid#2; ../shared/reference/ros2-franka-droid-rosbags.md section 2.2). franka_ros2's
``current_pose`` instead reports the **TCP** ``fr3_hand_tcp`` when the Franka Hand is loaded
(franka_semantic_components ``franka_robot_state.cpp``; reference section 1.6): the flange turned -45 deg about its
z axis and moved 0.1034 m along it (:data:`vjepa_core.franka.HAND_TCP_OFFSET_Z`, ``HAND_TCP_YAW``).

Planner parameter ``ee_convention``:

==========  ==========================================================================================
``tcp``     (default) states are the pose as received on ``ee_pose_topic`` (the TCP on franka_ros2), and
            targets are sent for that same point. Right for models trained on our own bags.
``droid``   observed TCP poses become flange poses before planning (``T_flange = T_tcp * T_offset^-1``),
            and every planned flange target becomes a TCP target before it is sent
            (``T_tcp = T_flange * T_offset``), with ``T_offset`` = ``tcp_offset_yaw`` about z, then
            ``tcp_offset_z`` along z. Positions move by 0.1034 m along the tool axis, orientations by 45 deg
            about it. Use it with the released model (and models fine-tuned from it on DROID).
==========  ==========================================================================================

The safety workspace box always bounds the TCP (the point that can hit the table): with ``droid`` the planner
gives :class:`~vjepa_planner.safety.SafetyLimits` the TCP's offset from the planned flange point.

The ``droid`` preset, component by component (:data:`DROID_PRESET`; each part is its own parameter, so a lab can
combine them; ``franka_vjepa.launch.py convention:=droid`` sets the node parts at once):

=====================  ===================================  ====================================================
component              setting                              what it matches
=====================  ===================================  ====================================================
planner_node           ``ee_convention: droid``             DROID's flange ``cartesian_position`` (above)
encoder_node           ``crop: droid``                      the reference AC transform: full height x 1.35 height
                                                            centre box of the 16:9 frame, stretched to 256 x 256
                                                            (:func:`vjepa_core.preprocessing.droid_crop_box`)
vjepa-dataset          ``import-droid --convention droid``  the reference loader's clips: rows at stride
                       (= ``--sampling legacy-stride        ``ceil(container_fps / fps)`` (15 for the 60 fps MP4s)
                       --crop droid``)                      and the same crop
planner_node           ``min_step_duration_s: 1.0``         one action ~1 s of robot motion (see below): no
                                                            step commanded sooner after the last
=====================  ===================================  ====================================================

Step duration with the released model: the reference loader strides through the MP4 by
``ceil(video_avg_fps / fps)`` and indexes the trajectory rows with the same indices (``app/vjepa_droid/droid.py``,
legacy sampling); raw DROID MP4s declare 60 fps while the rows come at the 15 Hz control rate, so at ``fps: 4``
consecutive training frames are 15 rows apart (vjepa2#183 measures 7.4 s for 8 frames, 1.06 s per step). The
training entry point loads clips with ``tubelet_size=1`` and encodes every frame on its own
(``app/vjepa_droid/train.py``: ``init_data(..., tubelet_size=1)``, each frame repeated into a 2-frame tubelet), so
one predictor step and one 7-D action span one stride: about 1 s of DROID teleoperation, not the nominal 0.25 s.
The planner should therefore treat one planned action as about one second of motion: displacements of a few
centimetres per step (CEM searches +-``cem_maxnorm`` per axis, which should not exceed ``max_position_step``), the
arm given about a second per step before the next frame (``min_step_duration_s: 1.0``: the planner's episode loop
commands no step sooner than that after the last), and no finer control expected from re-planning faster.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vjepa_core import franka
from vjepa_core.pose import euler_to_matrix, matrix_to_euler

__all__ = ["DROID_PRESET", "EE_CONVENTIONS", "DroidPreset", "EndEffectorConvention", "STEP_DURATION_S"]

EE_CONVENTIONS = ("tcp", "droid")
# Seconds of robot motion one training step of the released model spans (stride 15 rows of the 15 Hz DROID
# control loop; vjepa2#183 measured 1.06 s on a real episode).
STEP_DURATION_S = 1.0


@dataclass(frozen=True)
class DroidPreset:
    """The settings that reproduce what the released model was trained on (see the module docstring)."""

    ee_convention: str = "droid"          # planner_node ee_convention
    crop: str = "droid"                   # encoder_node crop; import-droid --crop
    sampling: str = "legacy-stride"       # import-droid --sampling
    step_duration_s: float = STEP_DURATION_S  # planner_node min_step_duration_s


DROID_PRESET = DroidPreset()


def _offset_matrix(offset_z: float, yaw: float) -> np.ndarray:
    """4x4 transform of the TCP in the flange frame: rotate ``yaw`` about z, translate ``offset_z`` along z."""
    c, s = math.cos(yaw), math.sin(yaw)
    t = np.eye(4)
    t[:2, :2] = [[c, -s], [s, c]]
    t[2, 3] = offset_z
    return t


@dataclass(frozen=True)
class EndEffectorConvention:
    """Converts 7-D states (xyz, extrinsic xyz Euler, gripper) between what the robot reports/takes (the TCP) and
    what the planner plans with (the TCP itself for ``tcp``, the flange for ``droid``)."""

    name: str = "tcp"
    tcp_offset_z: float = franka.HAND_TCP_OFFSET_Z
    tcp_offset_yaw: float = franka.HAND_TCP_YAW

    def __post_init__(self) -> None:
        if self.name not in EE_CONVENTIONS:
            raise ValueError(f"ee_convention must be one of {EE_CONVENTIONS}, got {self.name!r}")
        if not (math.isfinite(self.tcp_offset_z) and math.isfinite(self.tcp_offset_yaw)):
            raise ValueError("tcp_offset_z and tcp_offset_yaw must be finite")

    @property
    def identity(self) -> bool:
        """Whether planned states are the robot's states unchanged."""
        return self.name == "tcp"

    @property
    def tcp_in_planned_frame(self) -> tuple[float, float, float]:
        """Position of the TCP in the planned point's own frame (zero for ``tcp``; the tool-axis offset for
        ``droid``): what the safety workspace box must bound."""
        return (0.0, 0.0, 0.0) if self.identity else (0.0, 0.0, float(self.tcp_offset_z))

    def _apply(self, state: np.ndarray, transform: np.ndarray) -> np.ndarray:
        s = np.asarray(state, dtype=np.float64).reshape(-1)
        if s.shape != (7,):
            raise ValueError(f"a state has 7 values, got {s.size}")
        pose = np.eye(4)
        pose[:3, :3] = euler_to_matrix(s[3:6])
        pose[:3, 3] = s[:3]
        out_pose = pose @ transform
        out = s.copy()
        out[:3] = out_pose[:3, 3]
        out[3:6] = matrix_to_euler(out_pose[:3, :3])
        return out

    def observed_to_planned(self, state: np.ndarray) -> np.ndarray:
        """A state as the robot reports it (TCP) -> the state the planner plans with."""
        if self.identity:
            return np.asarray(state, dtype=np.float64).reshape(-1).copy()
        return self._apply(state, np.linalg.inv(_offset_matrix(self.tcp_offset_z, self.tcp_offset_yaw)))

    def planned_to_command(self, state: np.ndarray) -> np.ndarray:
        """A planned target state -> the TCP target the robot is sent."""
        if self.identity:
            return np.asarray(state, dtype=np.float64).reshape(-1).copy()
        return self._apply(state, _offset_matrix(self.tcp_offset_z, self.tcp_offset_yaw))

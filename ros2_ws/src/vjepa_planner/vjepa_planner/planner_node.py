"""planner_node: drives an arm toward a goal image with V-JEPA 2-AC + CEM, safely (receding horizon).

The search is CEM by default; the ``planner`` parameter picks another kind of :mod:`vjepa_core.planning` (iCEM,
MPPI, CEM/iCEM/MPPI + Adam refinement through the torch predictor) with the same ``cem_*`` sampling budget.

Inputs: latents from encoder_node, the end-effector pose (franka_ros2 ``current_pose``, best effort), the gripper
finger states, and a goal (``~/set_goal`` with an image, encoded through the encoder node's ``~/encode``; or a
Latent on ``goal_latent_topic``). Every incoming message is validated at the edge (:mod:`vjepa_core.msgconv`:
sizes, the predictor's token grid, encoder geometry, finiteness, model id, stamps not in the future); a bad one
is refused with a logged (throttled) reason and a ``~/status`` message, and nothing else happens: no exception,
no command, the running episode goes on.

A worker thread runs :class:`~vjepa_planner.episode.EpisodeLoop` at ``control_rate_hz``: plan, command one action
through the robot adapter, wait until the arm settles and a newer latent arrives, plan again. Planning runs
outside the loop lock, so ``~/stop``, ``~/pause`` and shutdown (SIGINT/SIGTERM) answer at once, hold at the
newest pose, and the plan that was running is cancelled and never sent. Every command passes the limits of
:mod:`vjepa_planner.safety`; faults hold the arm (no new target) and are reported on ``~/status``.

Goal sequences: the ``~/reach_goals`` action (``vjepa_interfaces/action/ReachGoals``) runs one episode through
several goals (images encoded like ``~/set_goal``'s, or latents), each with its own step budget and energy
threshold (the rules: :mod:`vjepa_planner.episode`). Goals are checked (and images encoded) before acceptance; a
refused goal is logged and said on ``~/status``. Every status of the episode is also feedback; the result gives
each goal's outcome. Cancel = ``~/stop`` (hold at the newest pose). Whatever starts a new episode (another
ReachGoals goal, ``~/set_goal``, a goal latent) preempts the running goal, which is aborted, as in Nav2.
"""

from __future__ import annotations

import math
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import rclpy
from geometry_msgs.msg import Point, PoseStamped
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.action.server import ServerGoalHandle
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_srvs.srv import Trigger
from visualization_msgs.msg import Marker, MarkerArray

from vjepa_core import franka
from vjepa_core.inference.torch_backend import PRECISIONS
from vjepa_core.loading import load_world_model
from vjepa_core.msgconv import (
    LatentArray,
    MessageError,
    gripper_closedness,
    latent_from_msg,
    pose_xyzq_from_msg,
    stamp_to_seconds,
)
from vjepa_core.planning import PLANNER_KINDS, ICEMPlanner, MPPIPlanner, planner_class
from vjepa_core.pose import pose_from_pose_stamped
from vjepa_core.process import tune_node_process
from vjepa_interfaces.action import ReachGoals
from vjepa_interfaces.msg import Latent, PlanStatus
from vjepa_interfaces.srv import EncodeImage, SetGoal
from vjepa_planner.adapters import AdapterError, GripperSettings, RobotAdapter
from vjepa_planner.conventions import EE_CONVENTIONS, EndEffectorConvention
from vjepa_planner.episode import (
    TERMINAL,
    Decision,
    EpisodeLoop,
    GoalOutcome,
    GoalResult,
    GoalSpec,
    LoopConfig,
    PlanRequest,
    PoseObservation,
    Severity,
    State,
    Status,
)
from vjepa_planner.franka_errors import ErrorRecoveryClient, RobotStateWatcher
from vjepa_planner.safety import SafetyFault, SafetyLimits, search_range_warning
from vjepa_planner.world_planner import LatentPlanner, checkpoint_encoder_id

__all__ = ["PlannerNode", "PARAMETERS", "check_parameters", "main"]

# name -> (default, description). Defaults equal config/planner.yaml (test_parameters.py checks it).
PARAMETERS: dict[str, tuple[Any, str]] = {
    "latent_topic": ("/vjepa/latent", "vjepa_interfaces/Latent input from encoder_node"),
    "ee_pose_topic": (franka.CURRENT_POSE_TOPIC, "PoseStamped end-effector pose (best effort)"),
    "gripper_state_topic": (franka.GRIPPER_JOINT_STATES_TOPIC,
                            "JointState of the fingers (closedness from the *finger_joint1/2 positions)"),
    "goal_latent_topic": ("/vjepa/goal_latent", "optional Latent goals (each starts an episode)"),
    "encode_service": ("/encoder_node/encode", "vjepa_interfaces/srv/EncodeImage used by ~/set_goal"),
    "checkpoint": ("", "checkpoint holding the AC predictor (required)"),
    "model_config": ("vit_giant", "AC predictor preset or JSON/YAML file; empty: configs embedded in our checkpoints"),
    "backend": ("torch", "torch | onnxruntime | onnxruntime-cuda | onnxruntime-trt | tensorrt"),
    "device": ("cpu", "torch device: cpu | cuda | cuda:N"),
    "precision": ("fp32", "torch backend: fp32 | bf16 | auto (bf16 where the device computes it natively: "
                          "AVX-512 BF16 / AMX CPUs, CUDA; else fp32; exported backends: fp32)"),
    "onnx_dir": ("", "export directory of `vjepa-export onnx` (non-torch backends)"),
    "threads": (0, "CPU inference threads (0 = library default); leave cores for drivers on small machines"),
    "expected_model_id": ("", "encoder model id the predictor needs; empty: the id of the encoder in the "
                              "checkpoint (or, when it holds none, the first goal's, with a warning)"),
    "cem_samples": (800, "CEM samples per iteration"),
    "cem_iterations": (10, "CEM refinement iterations per plan"),
    "cem_topk": (10, "CEM elites kept per iteration to refit the Gaussian"),
    "cem_horizon": (1, "actions per plan (only the first is executed)"),
    "cem_maxnorm": (0.05, "per-axis position bound of sampled actions, m (<= max_position_step, else warned)"),
    "cem_momentum_mean": (0.0, "momentum on the CEM mean"),
    "cem_momentum_std": (0.0, "momentum on the CEM std"),
    "cem_momentum_mean_gripper": (0.15, "momentum on the gripper's CEM mean (the reference's separate gripper "
                                        "momentum)"),
    "cem_momentum_std_gripper": (0.15, "momentum on the gripper's CEM std"),
    "cem_sample_gripper": (True, "search the gripper dimension (then a gripper state is required)"),
    "cem_seed": (0, "CEM seed (negative: nondeterministic)"),
    # the planner kind (vjepa_core.planning.make_planner); the cem_* sampling settings apply to every kind
    "planner": ("cem", "planner: cem | icem | mppi | cem_adam | icem_adam | mppi_adam | adam (*_adam and adam: "
                       "gradient refinement through the torch predictor, backend torch only)"),
    "mppi_temperature": (0.1, "MPPI softmax temperature, relative to the std of each iteration's energies "
                              "(planner mppi, mppi_adam)"),
    "icem_noise_beta": (2.0, "iCEM colored-noise exponent along the horizon (0 = white; no effect below "
                             "cem_horizon 4)"),
    "icem_keep_elites": (0.3, "iCEM: fraction of the cem_topk elites carried into the next iteration"),
    "adam_steps": (5, "Adam steps on the sampled mean through the differentiable predictor (planner *_adam, adam)"),
    "adam_lr": (0.005, "Adam learning rate in action units (m for positions) (planner *_adam, adam)"),
    "robot": ("franka_impedance", "robot adapter: franka_impedance | crisp | sim"),
    "target_topic": (franka.EQUILIBRIUM_POSE_TOPIC, "target pose output"),
    "gripper": ("franka_action", "gripper adapter: franka_action | control_msgs | sim_topic | none"),
    "gripper_target": (franka.GRIPPER_ACTION_NAMESPACE, "gripper action namespace / action / topic"),
    "base_frame": (franka.BASE_FRAME, "frame of poses and targets"),
    "max_position_step": (0.05, "m per axis per command"),
    "max_rotation_step": (0.25, "rad per axis per command"),
    "workspace_min": ([0.25, -0.45, 0.02], "workspace box minimum in the base frame, m"),
    "workspace_max": ([0.80, 0.45, 0.70], "workspace box maximum in the base frame, m"),
    "max_data_age_s": (1.0, "refuse to plan on a pose, gripper state or latent older than this"),
    "max_future_stamp_s": (0.5, "refuse poses, gripper states and latents stamped further ahead of our clock"),
    "control_rate_hz": (20.0, "rate of the control loop"),
    "max_steps": (20, "planning steps per episode"),
    "energy_threshold": (0.0, "goal reached when the goal energy falls below (0 = off)"),
    "settle_position_tolerance": (0.01, "arm settled when within this distance of the target, m"),
    "settle_timeout_s": (5.0, "re-plan after this long even if the arm did not settle"),
    "min_step_duration_s": (0.0, "command the next step no sooner than this long after the last command (0: as "
                                 "soon as the arm settled; the released model's droid preset: 1.0, one action ~1 s)"),
    "fault_timeout_s": (10.0, "a fault lasting this long fails the episode"),
    "goal_timeout_s": (30.0, "how long ~/set_goal waits for the encoder service"),
    # end-effector convention (vjepa_planner.conventions): which point states and targets refer to
    "ee_convention": ("tcp", "tcp: plan the pose as received | droid: plan the flange (DROID cartesian_position, "
                             "the released model's states), converting from/to the TCP"),
    "tcp_offset_z": (franka.HAND_TCP_OFFSET_Z, "TCP along the flange z axis, m (ee_convention droid)"),
    "tcp_offset_yaw": (franka.HAND_TCP_YAW, "TCP rotation about the flange z axis, rad (ee_convention droid)"),
    # gripper action goals (franka_action / control_msgs) and how long their outcome may take
    "grasp_force": (20.0, "grasp force, N (Grasp.force, GripperCommand.max_effort)"),
    "gripper_speed": (0.1, "finger speed, m/s (Grasp/Move speed)"),
    "grasp_width": (0.0, "width a grasp closes to, m"),
    "grasp_epsilon_inner": (0.08, "Grasp epsilon.inner, m (a grasp succeeds above grasp_width - inner)"),
    "grasp_epsilon_outer": (0.08, "Grasp epsilon.outer, m (a grasp succeeds below grasp_width + outer)"),
    "gripper_timeout_s": (10.0, "a gripper goal without a result after this long is a fault"),
    # franka_ros2 robot errors and recovery (vjepa_planner.franka_errors)
    "robot_state_topic": (franka.ROBOT_STATE_TOPIC, "franka_msgs/FrankaRobotState to watch for errors and "
                                                    "reflexes (\"\": not watched)"),
    "allow_recover": (False, "offer ~/recover, which calls franka's ErrorRecovery action"),
    "error_recovery_action": (franka.ERROR_RECOVERY_ACTION, "franka_msgs/action/ErrorRecovery used by ~/recover"),
    "recover_timeout_s": (15.0, "how long ~/recover waits for the recovery result"),
}

REFUSAL_LOG_PERIOD_S = 2.0  # per kind of input: at most one log line and one status per period for a stream
MAX_GOALS = 64  # goals per ReachGoals goal (each image is encoded before acceptance)


@dataclass
class _ActionGoal:
    """A ReachGoals goal and its episode, until the episode ends (then ``done`` is set and the rest is filled)."""

    handle: ServerGoalHandle
    episode: int = 0
    done: threading.Event = field(default_factory=threading.Event)
    state: State = State.STOPPED
    message: str = ""
    results: list[GoalResult] = field(default_factory=list)
    cancel_requested: bool = False


def check_parameters(p: dict[str, Any]) -> None:
    """Raise ``ValueError`` naming every parameter that cannot work (before anything is loaded).

    Rates, timeouts and ages must be positive (``control_rate_hz <= 0`` would otherwise kill the loop thread
    while the node looks alive), and the control period must be shorter than the data age, settle and fault
    timeouts it is meant to check.
    """
    problems = []

    def number(name: str) -> float | None:
        value = p[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            problems.append(f"{name} must be a finite number, got {value!r}")
            return None
        return float(value)

    for name in ("control_rate_hz", "max_data_age_s", "settle_timeout_s", "fault_timeout_s", "goal_timeout_s",
                 "settle_position_tolerance", "max_position_step"):
        value = number(name)
        if value is not None and value <= 0:
            problems.append(f"{name} must be > 0, got {value}")
    for name in ("max_future_stamp_s", "energy_threshold", "max_rotation_step", "min_step_duration_s"):
        value = number(name)
        if value is not None and value < 0:
            problems.append(f"{name} must be >= 0, got {value}")
    if int(p["max_steps"]) < 1:
        problems.append(f"max_steps must be >= 1, got {p['max_steps']}")
    if int(p["threads"]) < 0:
        problems.append(f"threads must be >= 0, got {p['threads']}")
    if not problems:
        period = 1.0 / float(p["control_rate_hz"])
        for name in ("max_data_age_s", "settle_timeout_s", "fault_timeout_s"):
            if period >= float(p[name]):
                problems.append(f"the control period 1/control_rate_hz = {period:.3f} s must be shorter than "
                                f"{name} = {p[name]} s")
    if p["ee_convention"] not in EE_CONVENTIONS:
        problems.append(f"ee_convention must be one of {', '.join(EE_CONVENTIONS)}, got {p['ee_convention']!r}")
    for name in ("grasp_force", "gripper_speed", "gripper_timeout_s", "recover_timeout_s"):
        value = number(name)
        if value is not None and value <= 0:
            problems.append(f"{name} must be > 0, got {value}")
    for name in ("grasp_width", "grasp_epsilon_inner", "grasp_epsilon_outer", "tcp_offset_z", "tcp_offset_yaw"):
        value = number(name)
        if value is not None and name.startswith("grasp") and not 0.0 <= value <= franka.MAX_GRIPPER_WIDTH:
            problems.append(f"{name} must be in [0, {franka.MAX_GRIPPER_WIDTH}] m, got {value}")
    if not p["checkpoint"]:
        problems.append("checkpoint is required (the checkpoint holding the AC predictor)")
    if p["precision"] not in PRECISIONS:
        problems.append(f"precision must be one of {', '.join(PRECISIONS)}, got {p['precision']!r}")
    elif p["precision"] not in ("fp32", "auto") and p["backend"] != "torch":  # auto: an export runs in fp32
        problems.append(f"precision {p['precision']} applies to backend torch only (exported graphs are fp32), "
                        f"got backend {p['backend']!r}")
    problems += _planner_problems(p, number)
    if problems:
        raise ValueError("invalid parameters: " + "; ".join(problems))


def _planner_problems(p: dict[str, Any], number: Callable[[str], float | None]) -> list[str]:
    """What is wrong with the planner kind and its settings (every kind's settings are checked, used or not)."""
    problems = []
    if p["planner"] not in PLANNER_KINDS:
        problems.append(f"planner must be one of {', '.join(PLANNER_KINDS)}, got {p['planner']!r}")
    elif planner_class(p["planner"])[1] and p["backend"] != "torch":
        problems.append(f"planner {p['planner']} refines plans with gradients through the predictor and needs "
                        f"backend torch, got {p['backend']!r}")
    for name in ("mppi_temperature", "adam_lr"):
        value = number(name)
        if value is not None and value <= 0:
            problems.append(f"{name} must be > 0, got {value}")
    beta = number("icem_noise_beta")
    if beta is not None and beta < 0:
        problems.append(f"icem_noise_beta must be >= 0, got {beta}")
    keep = number("icem_keep_elites")
    if keep is not None and not 0 <= keep <= 1:
        problems.append(f"icem_keep_elites must be a fraction in [0, 1], got {keep}")
    if isinstance(p["adam_steps"], bool) or int(p["adam_steps"]) < 1:
        problems.append(f"adam_steps must be >= 1, got {p['adam_steps']}")
    return problems


def planner_settings(p: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """``(kind, config dict)`` for :func:`vjepa_core.planning.make_planner` from the node's parameters: the
    ``cem_*`` sampling settings for every kind, plus the settings of the chosen kind only (a config refuses keys
    it does not know)."""
    kind = p["planner"]
    base, gradient, _ = planner_class(kind)
    cfg: dict[str, Any] = dict(
        samples=p["cem_samples"], iterations=p["cem_iterations"], topk=p["cem_topk"], horizon=p["cem_horizon"],
        maxnorm=p["cem_maxnorm"], momentum_mean=p["cem_momentum_mean"], momentum_std=p["cem_momentum_std"],
        momentum_mean_gripper=p["cem_momentum_mean_gripper"], momentum_std_gripper=p["cem_momentum_std_gripper"],
        sample_gripper=p["cem_sample_gripper"], seed=p["cem_seed"] if p["cem_seed"] >= 0 else None)
    if issubclass(base, MPPIPlanner):
        cfg["temperature"] = float(p["mppi_temperature"])
    if issubclass(base, ICEMPlanner):
        cfg.update(noise_beta=float(p["icem_noise_beta"]), keep_elites=float(p["icem_keep_elites"]))
    if gradient:
        cfg["gradient"] = {"steps": int(p["adam_steps"]), "lr": float(p["adam_lr"])}
    return kind, cfg


class PlannerNode(Node):
    """See the module docstring."""

    def __init__(self, **node_kwargs: Any) -> None:
        super().__init__("planner_node", **node_kwargs)
        for name, (default, description) in PARAMETERS.items():
            self.declare_parameter(name, default, ParameterDescriptor(description=description))
        p = {name: self.get_parameter(name).value for name in PARAMETERS}
        check_parameters(p)
        self.params = p
        self.convention = EndEffectorConvention(p["ee_convention"], p["tcp_offset_z"], p["tcp_offset_yaw"])
        limits = SafetyLimits(max_position_step=p["max_position_step"], max_rotation_step=p["max_rotation_step"],
                              workspace_min=tuple(p["workspace_min"]), workspace_max=tuple(p["workspace_max"]),
                              max_data_age_s=p["max_data_age_s"], max_future_stamp_s=p["max_future_stamp_s"],
                              workspace_point=self.convention.tcp_in_planned_frame)  # the box bounds the TCP
        kind, planner_config = planner_settings(p)
        require_gripper = bool(p["cem_sample_gripper"]) and p["gripper"] != "none"
        loop_config = LoopConfig(max_steps=p["max_steps"], energy_threshold=p["energy_threshold"],
                                 settle_position_tolerance=p["settle_position_tolerance"],
                                 settle_timeout=p["settle_timeout_s"], fault_timeout=p["fault_timeout_s"],
                                 min_step_duration=p["min_step_duration_s"], require_gripper=require_gripper)
        self.get_logger().info(f"loading AC predictor from {p['checkpoint']} ({p['backend']} on {p['device']})")
        model = load_world_model(p["checkpoint"], p["model_config"], encoder=False, predictor=True,
                                 backend=p["backend"], device=p["device"], export_dir=p["onnx_dir"] or None,
                                 threads=p["threads"],
                                 **({"precision": p["precision"]} if p["backend"] == "torch" else {}))
        assert model.predictor_cfg is not None
        self.planner = LatentPlanner(model.world_model, planner_config, model.predictor_cfg.grid_hw, kind)
        expected, why = p["expected_model_id"], ""
        if not expected:
            expected, why = checkpoint_encoder_id(p["checkpoint"], p["model_config"],
                                                  digest=model.predictor_id.rsplit("@", 1)[-1])
        loop_config.expected_model_id = expected
        self.trust_first_goal = not expected  # no id to check against: adopt the first goal's (warned below)
        self.loop = EpisodeLoop(limits, loop_config)
        gripper_settings = GripperSettings(
            grasp_force=p["grasp_force"], speed=p["gripper_speed"], grasp_width=p["grasp_width"],
            epsilon_inner=p["grasp_epsilon_inner"], epsilon_outer=p["grasp_epsilon_outer"],
            timeout_s=p["gripper_timeout_s"])
        self.adapter = RobotAdapter(self, p["robot"], p["gripper"], p["target_topic"], p["gripper_target"],
                                    p["base_frame"], gripper_settings=gripper_settings, convention=self.convention,
                                    on_gripper_fault=self._on_gripper_fault)
        self.limits = limits

        self._obs_lock = threading.Lock()   # the newest observations (held briefly by subscription callbacks)
        self._loop_lock = threading.Lock()  # the episode loop and every command sent (never held while planning)
        self._pose_xyzq: np.ndarray | None = None
        self._pose_stamp = 0.0
        self._gripper = 0.0
        self._gripper_stamp: float | None = None
        self._latent: LatentArray | None = None
        self._target: np.ndarray | None = None
        self._refused: dict[str, tuple[float, int]] = {}  # kind -> (last report, refusals not reported since)
        self._refuse_lock = threading.Lock()
        self._closing = threading.Event()
        self.plan_in_flight: PlanRequest | None = None  # the request being planned right now (for observers)

        goals = MutuallyExclusiveCallbackGroup()
        triggers = MutuallyExclusiveCallbackGroup()  # stop/pause/resume never wait behind a goal being encoded
        self._client_group = ReentrantCallbackGroup()
        best_effort = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
        self.create_subscription(Latent, p["latent_topic"], self._guarded("latent", self._on_latent), 5)
        self.create_subscription(Latent, p["goal_latent_topic"], self._guarded("goal", self._on_goal_latent), 1)
        self.create_subscription(PoseStamped, p["ee_pose_topic"], self._guarded("pose", self._on_pose), best_effort)
        self.create_subscription(JointState, p["gripper_state_topic"], self._guarded("gripper", self._on_gripper),
                                 best_effort)
        self.status_pub = self.create_publisher(PlanStatus, "~/status", 10)
        self.marker_pub = self.create_publisher(MarkerArray, "~/markers", 1)
        self.encode_client = self.create_client(EncodeImage, p["encode_service"], callback_group=self._client_group)
        self.create_service(SetGoal, "~/set_goal", self._on_set_goal, callback_group=goals)
        self.create_service(Trigger, "~/stop", self._on_stop, callback_group=triggers)
        self.create_service(Trigger, "~/pause", self._on_pause, callback_group=triggers)
        self.create_service(Trigger, "~/resume", self._on_resume, callback_group=triggers)
        self._action_lock = threading.Lock()  # the running ReachGoals goal (taken after the loop lock, never before)
        self._action: _ActionGoal | None = None
        self._accepted: dict[bytes, _ActionGoal] = {}  # goal id -> record, until its execute callback takes it
        self._prepared: dict[int, tuple[ReachGoals.Goal, list[GoalSpec]]] = {}  # checked goals, until accepted
        # reentrant: a goal whose images are being encoded never delays a cancel
        self._reach_goals = ActionServer(
            self, ReachGoals, "~/reach_goals", execute_callback=self._execute_reach_goals,
            goal_callback=self._on_reach_goals_request, handle_accepted_callback=self._on_reach_goals_accepted,
            cancel_callback=self._on_reach_goals_cancel, callback_group=ReentrantCallbackGroup())
        self._watch_robot_errors(p)
        if warning := search_range_warning(float(p["cem_maxnorm"]), float(p["max_position_step"])):
            self.get_logger().warning(f"CEM SEARCH RANGE: {warning}")
        if self.trust_first_goal:
            self.get_logger().warning(
                f"NO EXPECTED ENCODER ID: {why}. Set expected_model_id to the id encoder_node publishes; until "
                "then the planner trusts the model id of the first goal it gets, whatever model that is")
        self._worker = threading.Thread(target=self._run, name="planner_loop", daemon=True)
        self._worker.start()
        self.get_logger().info(f"planner ready ({kind} over {model.predictor_id}, latents from "
                               f"{expected or 'the model of the first goal'}, token grid "
                               f"{'x'.join(str(v) for v in self.planner.expected_grid)}); robot adapter "
                               f"{p['robot']}, gripper {p['gripper']}; waiting for a goal on ~/set_goal or "
                               f"{p['goal_latent_topic']}")

    @property
    def expected_model_id(self) -> str:
        """The encoder model id latents must carry ("" until the first goal when none could be derived)."""
        return self.loop.config.expected_model_id

    # ---- franka_ros2 robot errors, gripper faults, error recovery ------------------------------------------------
    def _watch_robot_errors(self, p: dict[str, Any]) -> None:
        """Watch FrankaRobotState for errors and reflexes (franka_msgs imported lazily) and offer ~/recover."""
        self._last_robot_fault: str | None = None
        self.robot_state = None
        if p["robot_state_topic"]:
            try:
                self.robot_state = RobotStateWatcher(self, p["robot_state_topic"], self._on_robot_fault)
            except ImportError:
                self.get_logger().warning(
                    f"ROBOT ERRORS NOT WATCHED: franka_msgs is not installed, so {p['robot_state_topic']} cannot be "
                    "read (build franka_ros2's franka_msgs, or set robot_state_topic to '' where there is none)")
        self.recovery = None
        if p["allow_recover"]:
            try:
                self.recovery = ErrorRecoveryClient(self, p["error_recovery_action"])
            except ImportError as exc:
                raise AdapterError("allow_recover needs franka_msgs (franka_ros2) for the ErrorRecovery action") \
                    from exc
        self.create_service(Trigger, "~/recover", self._on_recover, callback_group=MutuallyExclusiveCallbackGroup())

    def _fail_episode(self, reason: str) -> bool:
        """Hold at the newest pose (the gripper left alone) and fail the running episode with ``reason``; False
        when no episode is running."""
        with self._loop_lock:
            if not self.loop.active:
                return False
            decision = self.loop.fail(self._pose_obs(), reason)
            if decision.target is not None:
                self.adapter.hold(decision.target)
                self._target = decision.target
            if decision.status is not None:
                self._publish_status(decision.status)
        return True

    def _report_error(self, reason: str) -> None:
        with self._loop_lock:
            status = self.loop.report(reason, Severity.ERROR)
        self._publish_status(status)

    def _on_gripper_fault(self, reason: str) -> None:
        """A gripper goal was rejected, aborted, failed or timed out (from the adapter's watch timer)."""
        if not self._fail_episode(reason):
            self._report_error(reason)

    def _on_robot_fault(self, reason: str) -> None:
        """franka reports an error or reflex: fail the running episode; between episodes say it once."""
        if self._fail_episode(reason):
            self._last_robot_fault = reason
        elif reason != self._last_robot_fault:
            self._last_robot_fault = reason
            self._report_error(reason)

    def _on_recover(self, _req: Trigger.Request, res: Trigger.Response) -> Trigger.Response:
        """Opt-in (allow_recover): call franka's ErrorRecovery action; refused while an episode runs."""
        if self.recovery is None:
            res.success, res.message = False, ("~/recover is off: set allow_recover to true (needs franka_msgs) to "
                                               "let it call franka's ErrorRecovery action")
            return res
        with self._loop_lock:
            if self.loop.active:
                res.success, res.message = False, "an episode is running: ~/stop it before recovering the robot"
                return res
        res.success, res.message = self.recovery.recover(float(self.params["recover_timeout_s"]))
        self._last_robot_fault = None
        with self._loop_lock:
            status = self.loop.report(res.message, Severity.INFO if res.success else Severity.WARN)
        self._publish_status(status)
        return res

    # ---- observations (validated at the edge) ---------------------------------------------------------------
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _guarded(self, kind: str, callback: Callable[[Any], None]) -> Callable[[Any], None]:
        """``callback`` that refuses its message on any error instead of raising into the executor."""
        def run(msg: Any) -> None:
            try:
                callback(msg)
            except MessageError as exc:
                self._refuse(kind, str(exc))
            except Exception as exc:  # a bug must not take the node down with it either: report and go on
                self._refuse(kind, f"internal error handling the message: {exc!r}")
        return run

    def _stamp(self, header: Any, now: float, what: str) -> float:
        """A header stamp in seconds (receipt time when unstamped); refuses stamps too far in the future (unless
        our clock has not started yet: sim time before the first /clock message reads 0)."""
        stamp = stamp_to_seconds(header.stamp) or now
        ahead = stamp - now
        if now > 0 and ahead > self.limits.max_future_stamp_s:
            raise MessageError(f"{what} stamped {ahead:.2f} s in the future (limit "
                               f"{self.limits.max_future_stamp_s:.2f} s; clock mismatch?)")
        return stamp

    def _on_pose(self, msg: PoseStamped) -> None:
        now = self._now()
        xyzq = pose_xyzq_from_msg(msg)
        stamp = self._stamp(msg.header, now, "pose")
        with self._obs_lock:
            self._pose_xyzq, self._pose_stamp = xyzq, stamp

    def _on_gripper(self, msg: JointState) -> None:
        now = self._now()
        closedness = gripper_closedness(msg, franka.MAX_GRIPPER_WIDTH)
        stamp = self._stamp(msg.header, now, "gripper state")
        with self._obs_lock:
            self._gripper, self._gripper_stamp = closedness, stamp

    def _validated_latent(self, msg: Latent, what: str) -> LatentArray:
        """A Latent validated against the predictor (grid, geometry, finiteness, stamp, model id when known)."""
        latent = latent_from_msg(msg, expected_grid=self.planner.expected_grid)
        if latent.stamp:
            self._stamp(msg.header, self._now(), what)
        expected = self.expected_model_id
        if expected and latent.model_id != expected:
            raise MessageError(f"latent from model {latent.model_id!r}, but the planner expects {expected!r}")
        return latent

    def _on_latent(self, msg: Latent) -> None:
        latent = self._validated_latent(msg, "latent")
        with self._obs_lock:
            self._latent = latent

    def _pose_obs(self) -> PoseObservation | None:
        """The newest pose (with the newest gripper closedness) as a 7-D state observation."""
        with self._obs_lock:
            if self._pose_xyzq is None:
                return None
            state = self.convention.observed_to_planned(pose_from_pose_stamped(self._pose_xyzq, self._gripper))
            return PoseObservation(self._pose_stamp, state, self._gripper_stamp)

    def _snapshot(self) -> tuple[PoseObservation | None, LatentArray | None]:
        """(pose, latent): the newest observations."""
        pose = self._pose_obs()
        with self._obs_lock:
            return pose, self._latent

    def _refuse(self, kind: str, reason: str, *, throttle: bool = True) -> None:
        """Log why a message was refused and say it on ~/status; for streams at most once per period per kind."""
        now = time.monotonic()
        with self._refuse_lock:
            last, suppressed = self._refused.get(kind, (-math.inf, 0))
            if throttle and now - last < REFUSAL_LOG_PERIOD_S:
                self._refused[kind] = (last, suppressed + 1)
                return
            self._refused[kind] = (now, 0)
        more = f" ({suppressed} more {kind} messages refused since the last report)" if suppressed else ""
        text = f"{kind} refused: {reason}{more}"
        self.get_logger().warning(text)
        with self._loop_lock:
            status = self.loop.report(text, Severity.WARN)
        self._publish_status(status, log=False)

    # ---- goals and commands ---------------------------------------------------------------------------------
    def _start(self, goal: LatentArray | list[GoalSpec], start: bool, action: _ActionGoal | None = None,
               task: str = "") -> int:
        """Start an episode toward one goal (the node's budget and threshold) or a goal sequence. The running
        ReachGoals goal, if any, is preempted (aborted); ``action`` becomes the running one."""
        first = goal if isinstance(goal, LatentArray) else goal[0].latent
        with self._loop_lock:
            if self.trust_first_goal and not self.loop.config.expected_model_id:
                self.loop.config.expected_model_id = first.model_id
                self.get_logger().warning(f"expecting latents from {first.model_id!r} (the first goal's model)")
            results, index = self.loop.results(), self.loop.goal_index  # of the episode this one replaces
            if isinstance(goal, LatentArray):
                episode = self.loop.start(self._now(), goal, paused=not start)
            else:
                episode = self.loop.start_goals(self._now(), goal, paused=not start)
            self.adapter.forget_gripper()  # the episode's first gripper command goes out whatever the last one was
            with self._action_lock:
                if self._action is not None:
                    if index < len(results) and results[index].outcome == GoalOutcome.NOT_STARTED:
                        results[index] = GoalResult(GoalOutcome.STOPPED, results[index].steps,
                                                    results[index].final_goal_energy)
                    self._end_action(State.STOPPED, f"preempted by a new goal (episode {episode})", results)
                if action is not None:
                    action.episode = episode
                    self._action = action
        n = 1 if isinstance(goal, LatentArray) else len(goal)
        self.get_logger().info(f"episode {episode}: {'goal' if n == 1 else f'{n} goals'} set (model {first.model_id})"
                               + (f", task {task!r}" if task else "") + ("" if start else ", paused"))
        return episode

    def _on_goal_latent(self, msg: Latent) -> None:
        try:
            goal = self._validated_latent(msg, "goal latent")
        except MessageError as exc:
            self._refuse("goal", str(exc), throttle=False)
            return
        self._start(goal, True)

    def _encode(self, image: Image, compressed_image: CompressedImage) -> Latent:
        """A goal image encoded by the encoder node's ~/encode (the Latent message, not yet validated); raises
        MessageError when the service is missing, does not answer in ``goal_timeout_s`` or refuses the image."""
        if not self.encode_client.wait_for_service(timeout_sec=min(5.0, self.params["goal_timeout_s"])):
            raise MessageError(f"encoder service {self.params['encode_service']} is not available")
        done = threading.Event()
        future = self.encode_client.call_async(EncodeImage.Request(image=image, compressed_image=compressed_image))
        future.add_done_callback(lambda _f: done.set())
        if not done.wait(self.params["goal_timeout_s"]) or future.exception() is not None or future.result() is None:
            raise MessageError("encoder service did not answer")
        res = future.result()
        if not res.success:
            raise MessageError(f"goal image refused: {res.message}")
        return res.latent

    def _on_set_goal(self, request: SetGoal.Request, response: SetGoal.Response) -> SetGoal.Response:
        response.success = False
        try:
            latent = self._encode(request.image, request.compressed_image)
        except MessageError as exc:
            response.message = str(exc)
            return response
        try:
            goal = self._validated_latent(latent, "goal latent")
        except MessageError as exc:
            response.message = f"goal refused: the encoder's latent is unusable: {exc}"
            self._refuse("goal", f"the encoder's latent is unusable: {exc}", throttle=False)
            return response
        response.episode = self._start(goal, request.start)
        response.success = True
        response.message = f"episode {response.episode} started" + (" (paused)" if not request.start else "")
        return response

    def _trigger(self, action: str, response: Trigger.Response) -> Trigger.Response:
        with self._loop_lock:  # held briefly: planning never holds it
            try:
                if action == "stop":
                    decision = self.loop.stop(self._pose_obs())
                elif action == "pause":
                    decision = self.loop.pause(self._pose_obs())
                else:
                    decision = self.loop.resume(self._now())
            except SafetyFault as exc:
                response.success, response.message = False, str(exc)
                return response
            self._apply(decision)
            response.success, response.message = True, self.loop.message
        return response

    def _on_stop(self, _req: Trigger.Request, res: Trigger.Response) -> Trigger.Response:
        return self._trigger("stop", res)

    def _on_pause(self, _req: Trigger.Request, res: Trigger.Response) -> Trigger.Response:
        return self._trigger("pause", res)

    def _on_resume(self, _req: Trigger.Request, res: Trigger.Response) -> Trigger.Response:
        return self._trigger("resume", res)

    # ---- ~/reach_goals (vjepa_interfaces/action/ReachGoals) -------------------------------------------------
    def _goal_specs(self, goal: ReachGoals.Goal) -> list[GoalSpec]:
        """The goals of a ReachGoals goal, encoded and validated, with the node's defaults resolved; raises
        MessageError naming the first problem (the goal is then rejected)."""
        kinds = [(name, list(items)) for name, items in (("images", goal.images),
                                                          ("compressed_images", goal.compressed_images),
                                                          ("latents", goal.latents)) if len(items)]
        if not kinds:
            raise MessageError("no goals: give images, compressed_images or latents")
        if len(kinds) > 1:
            raise MessageError(f"give one kind of goals, got {' and '.join(k for k, _ in kinds)}")
        kind, items = kinds[0]
        n = len(items)
        if n > MAX_GOALS:
            raise MessageError(f"{n} goals, at most {MAX_GOALS}")
        budgets, thresholds = [int(v) for v in goal.max_steps], [float(v) for v in goal.energy_thresholds]
        modes = [int(v) for v in goal.gripper_modes]
        for what, values in (("max_steps", budgets), ("energy_thresholds", thresholds), ("gripper_modes", modes)):
            if values and len(values) != n:
                raise MessageError(f"{what} has {len(values)} values for {n} goals (give none, or one per goal)")
        steps, limits = [], []
        for i in range(n):
            budget = budgets[i] if budgets else 0
            if budget < 0:
                raise MessageError(f"goal {i}: max_steps {budget} is negative (0 = the node's "
                                   f"{self.params['max_steps']})")
            steps.append(budget or int(self.params["max_steps"]))
            threshold = thresholds[i] if thresholds else 0.0
            if not math.isfinite(threshold):
                raise MessageError(f"goal {i}: energy threshold {threshold} is not finite")
            limits.append(float(self.params["energy_threshold"]) if threshold == 0 else max(threshold, 0.0))
        grippers = [self._gripper_mode(i, mode) for i, mode in enumerate(modes)] if modes else [None] * n
        latents = []
        for i, item in enumerate(items):
            try:
                if kind == "latents":
                    latents.append(self._validated_latent(item, "goal latent"))
                else:
                    raw = self._encode(item, CompressedImage()) if kind == "images" else self._encode(Image(), item)
                    latents.append(self._validated_latent(raw, "goal latent"))
            except MessageError as exc:
                raise MessageError(f"goal {i}: {exc}") from exc
        models = sorted({latent.model_id for latent in latents})
        if len(models) > 1:
            raise MessageError(f"the goals come from different encoders: {models}")
        return [GoalSpec(latent, budget, threshold, plan_gripper=grip)
                for latent, budget, threshold, grip in zip(latents, steps, limits, grippers)]

    def _gripper_mode(self, index: int, mode: int) -> bool | None:
        """A ReachGoals gripper mode as GoalSpec.plan_gripper (None: the node's cem_sample_gripper)."""
        if mode == ReachGoals.Goal.GRIPPER_DEFAULT:
            return None
        if mode == ReachGoals.Goal.GRIPPER_HOLD:
            return False
        if mode == ReachGoals.Goal.GRIPPER_PLAN:
            if self.params["gripper"] == "none":
                raise MessageError(f"goal {index}: gripper mode PLAN, but this node has no gripper (gripper: none)")
            return True
        raise MessageError(f"goal {index}: gripper mode {mode} is none of DEFAULT 0, PLAN 1, HOLD 2")

    def _on_reach_goals_request(self, goal: ReachGoals.Goal) -> GoalResponse:
        """Accept a ReachGoals goal only if every goal in it can work (images are encoded here); otherwise reject
        it and say why in the log and on ~/status (ROS 2 carries no rejection reason)."""
        try:
            specs = self._goal_specs(goal)
        except MessageError as exc:
            self._refuse("reach_goals", str(exc), throttle=False)
            return GoalResponse.REJECT
        with self._action_lock:
            self._prepared[id(goal)] = (goal, specs)
        return GoalResponse.ACCEPT

    def _on_reach_goals_accepted(self, handle: ServerGoalHandle) -> None:
        """Start the accepted goal's episode (preempting a running one) and its execute callback."""
        with self._action_lock:
            goal, specs = self._prepared.pop(id(handle.request))
            record = _ActionGoal(handle)
            self._accepted[bytes(handle.goal_id.uuid)] = record
        assert goal is handle.request
        self._start(specs, True, action=record, task=handle.request.task)
        handle.execute()

    def _on_reach_goals_cancel(self, handle: ServerGoalHandle) -> CancelResponse:
        """Cancel = ~/stop: the episode ends with a hold at the newest pose; the plan in progress is dropped."""
        with self._loop_lock:
            with self._action_lock:
                record = self._action
                if record is None or record.handle.goal_id != handle.goal_id:
                    return CancelResponse.REJECT  # already ended (its result is on its way)
                record.cancel_requested = True
            self._apply(self.loop.stop(self._pose_obs(), reason="cancelled by the action client"))
        return CancelResponse.ACCEPT

    def _end_action(self, state: State, message: str, results: list[GoalResult]) -> None:
        """The running ReachGoals goal's episode ended: fill its record and wake its execute callback
        (action lock held)."""
        record, self._action = self._action, None
        if record is not None:
            record.state, record.message, record.results = state, message, list(results)
            record.done.set()

    def _execute_reach_goals(self, handle: ServerGoalHandle) -> ReachGoals.Result:
        """Wait for the goal's episode to end (feedback comes from the status path) and give its result."""
        with self._action_lock:
            record = self._accepted.pop(bytes(handle.goal_id.uuid))
        while not record.done.wait(0.05):
            if self._closing.is_set():
                with self._action_lock:
                    if self._action is record:
                        self._end_action(State.STOPPED, "planner shutting down", self.loop.results())
                break
        result = ReachGoals.Result(episode=record.episode, state=int(record.state), message=record.message,
                                   success=record.state == State.SUCCEEDED)
        result.outcomes = [int(r.outcome) for r in record.results]
        result.steps = [int(r.steps) for r in record.results]
        result.final_goal_energies = [float(r.final_goal_energy) for r in record.results]
        if record.cancel_requested:
            deadline = time.monotonic() + 2.0  # the cancel callback returned; the server marks CANCELING after it
            while not handle.is_cancel_requested and time.monotonic() < deadline:
                time.sleep(0.005)
        if handle.is_cancel_requested:
            handle.canceled()
        elif result.success:
            handle.succeed()
        else:
            handle.abort()
        return result

    def _to_action(self, s: Status, msg: PlanStatus) -> None:
        """Every status of the running ReachGoals goal's episode is its feedback; a terminal one ends the goal."""
        with self._action_lock:
            record = self._action
            if record is None or s.episode != record.episode:
                return
            record.handle.publish_feedback(ReachGoals.Feedback(status=msg))
            if s.state in TERMINAL:
                self._end_action(s.state, s.message, self.loop.results())

    # ---- the control loop -----------------------------------------------------------------------------------
    def _run(self) -> None:
        period = 1.0 / float(self.params["control_rate_hz"])
        while not self._closing.is_set():
            t0 = time.monotonic()
            try:
                with self._loop_lock:
                    if self._closing.is_set():
                        break
                    pose, latent = self._snapshot()
                    decision = self.loop.tick(self._now(), pose, latent)
                    self._apply(decision)
                if decision.plan is not None:
                    self._plan(decision.plan)
            except Exception as exc:  # never let the loop die silently: fail the episode, hold, and report
                self.get_logger().error(f"planner loop error: {exc!r}")
                with self._loop_lock:
                    self._apply(self.loop.fail(self._pose_obs(), f"internal error: {exc}"))
            self._closing.wait(max(0.0, period - (time.monotonic() - t0)))

    def _plan(self, request: PlanRequest) -> None:
        """Plan ``request`` without holding the loop lock; send its target only if it is still current."""
        def cancelled() -> bool:
            return self._closing.is_set() or not self.loop.is_current(request)

        self.plan_in_flight = request
        try:
            out = self.planner(request, cancelled)
        except Exception as exc:
            with self._loop_lock:
                if self.loop.is_current(request):  # an abandoned plan's failure concerns nobody
                    self.get_logger().error(f"planning failed: {exc!r}")
                    self._apply(self.loop.fail(self._pose_obs(), f"internal error: {exc}"))
            return
        finally:
            self.plan_in_flight = None
        with self._loop_lock:
            self._apply(self.loop.finish(request, out, self._now(), self._pose_obs()))

    def _apply(self, decision: Decision) -> None:
        """Send a decision's target through the adapter and publish its status and markers (loop lock held)."""
        if decision.target is not None:
            self.adapter.send(decision.target)
            self._target = decision.target
        if decision.status is not None:
            self._publish_status(decision.status)
            self._publish_markers(decision.status.ee_state)

    def _publish_status(self, s: Status, log: bool = True) -> None:
        msg = PlanStatus()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = self.params["base_frame"]
        msg.episode, msg.step, msg.state, msg.message = s.episode, s.step, int(s.state), s.message
        msg.energy, msg.goal_energy = s.energy, s.goal_energy
        msg.action = [float(v) for v in s.action]
        msg.raw_action = [float(v) for v in s.raw_action]
        msg.ee_state = [float(v) for v in s.ee_state]
        msg.planning_time, msg.latent_age = s.planning_time, s.latent_age
        msg.goal_index, msg.num_goals, msg.goal_step = s.goal_index, s.num_goals, s.goal_step
        c = self.planner.cem.config
        msg.num_samples, msg.iterations, msg.horizon = c.samples, c.iterations, c.horizon
        self.status_pub.publish(msg)
        self._to_action(s, msg)
        if not log:
            return
        text = (f"[episode {s.episode} step {s.step} {State(s.state).name}] {s.message}"
                + (f" energy={s.energy:.4f} goal_energy={s.goal_energy:.4f}" if np.isfinite(s.energy) else ""))
        if s.severity == Severity.ERROR:  # rclpy binds one severity (and throttle) per call site
            self.get_logger().error(text)
        elif s.severity == Severity.WARN:
            self.get_logger().warning(text, throttle_duration_sec=1.0)
        else:
            self.get_logger().info(text)

    def _publish_markers(self, ee_state: np.ndarray) -> None:
        stamp = self.get_clock().now().to_msg()
        frame = self.params["base_frame"]
        markers = []
        for i, (name, xyz, color) in enumerate((("current", ee_state[:3], (0.2, 0.6, 1.0)),
                                                ("target", None if self._target is None else self._target[:3],
                                                 (1.0, 0.5, 0.1)))):
            if xyz is None or not np.all(np.isfinite(xyz)) or not np.any(xyz):
                continue
            m = Marker(ns=name, id=i, type=Marker.SPHERE, action=Marker.ADD)
            m.header.frame_id, m.header.stamp = frame, stamp
            m.pose.position.x, m.pose.position.y, m.pose.position.z = (float(v) for v in xyz)
            m.pose.orientation.w = 1.0
            m.scale.x = m.scale.y = m.scale.z = 0.03
            m.color.r, m.color.g, m.color.b, m.color.a = (*color, 1.0)
            markers.append(m)
        box = Marker(ns="workspace", id=2, type=Marker.LINE_LIST, action=Marker.ADD)
        box.header.frame_id, box.header.stamp = frame, stamp
        box.pose.orientation.w = 1.0
        box.scale.x = 0.005
        box.color.g, box.color.a = 1.0, 0.8
        lo, hi = self.limits.workspace_min, self.limits.workspace_max
        corners = [(x, y, z) for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]
        for a in range(8):
            for b in range(a + 1, 8):
                if sum(ca != cb for ca, cb in zip(corners[a], corners[b])) == 1:  # cube edges
                    box.points += [Point(x=float(v[0]), y=float(v[1]), z=float(v[2])) for v in (corners[a], corners[b])]
        markers.append(box)
        self.marker_pub.publish(MarkerArray(markers=markers))

    def hold_and_close(self) -> None:
        """Shutdown: if an episode is running, hold at the newest pose at once (call it while the executor still
        spins, so that pose is current); the plan in flight is cancelled and never sent; the loop thread ends."""
        with self._loop_lock:
            self._closing.set()
            if self.loop.active:
                self._apply(self.loop.stop(self._pose_obs(), reason="planner shutting down"))
            with self._action_lock:
                self._end_action(State.STOPPED, "planner shutting down", self.loop.results())
        self._worker.join(timeout=30.0)

    def destroy_node(self) -> None:
        """Also destroy the ~/reach_goals action server (rclpy's destroy_node leaves waitables alone)."""
        self._reach_goals.destroy()
        super().destroy_node()


def _spin(executor: MultiThreadedExecutor, halt: threading.Event, stop: threading.Event) -> None:
    """Run callbacks until ``halt`` (or an external shutdown); then ``stop`` tells main() to close."""
    try:
        while not halt.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=0.05)
    except ExternalShutdownException:
        pass
    finally:
        stop.set()


def main(args: list[str] | None = None) -> int:
    """Entry point: SIGINT/SIGTERM end the episode with a hold at the newest pose before the node exits."""
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        tune_node_process()  # the planning thread and the executor share the GIL: ~/stop answers in ms, not s
        node = PlannerNode()
    except Exception as exc:  # bad parameters, missing or mismatched checkpoint, unavailable adapter
        rclpy.logging.get_logger("planner_node").fatal(f"cannot start: {exc}")
        rclpy.try_shutdown()
        return 1
    executor = MultiThreadedExecutor(num_threads=8)  # a ReachGoals goal holds one thread while its episode runs
    executor.add_node(node)
    halt = threading.Event()
    spinner = threading.Thread(target=_spin, args=(executor, halt, stop), name="planner_spin", daemon=True)
    spinner.start()
    try:
        while not stop.wait(0.1):
            pass
    finally:
        node.hold_and_close()  # the executor still spins: the hold goes to the pose received last
        time.sleep(0.2)  # let DDS deliver the hold before the participant goes away
        halt.set()  # no new callbacks; let those in flight end before the executor and the node go away
        spinner.join(timeout=5.0)
        time.sleep(0.1)
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())

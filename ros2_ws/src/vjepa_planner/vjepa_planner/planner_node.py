"""planner_node: drives an arm toward a goal image with V-JEPA 2-AC + CEM, safely (receding horizon).

Inputs: latents from encoder_node, the end-effector pose (franka_ros2 ``current_pose``, best effort), the gripper
finger states, and a goal (``~/set_goal`` with an image, encoded through the encoder node's ``~/encode``; or a
Latent on ``goal_latent_topic``). A worker thread runs :class:`~vjepa_planner.episode.EpisodeLoop` at
``control_rate_hz``: plan, command one action through the robot adapter, wait until the arm settles and a newer
latent arrives, plan again. Every command passes the limits of :mod:`vjepa_planner.safety`; faults hold the
arm (no new target) and are reported on ``~/status``; stop, pause and shutdown command a hold at the current pose.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from typing import Any

import numpy as np
import rclpy
from geometry_msgs.msg import Point, PoseStamped
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import JointState
from std_srvs.srv import Trigger
from visualization_msgs.msg import Marker, MarkerArray

from vjepa_core.loading import load_world_model
from vjepa_core.planning import CEMConfig
from vjepa_core.pose import pose_from_pose_stamped
from vjepa_interfaces.msg import Latent, PlanStatus
from vjepa_interfaces.srv import EncodeImage, SetGoal
from vjepa_planner.adapters import FRANKA_MAX_WIDTH, RobotAdapter
from vjepa_planner.episode import EpisodeLoop, LoopConfig, Observation, State
from vjepa_planner.safety import SafetyFault, SafetyLimits
from vjepa_planner.world_planner import LatentPlanner

__all__ = ["PlannerNode", "PARAMETERS", "main"]

# name -> (default, description). Defaults mirror config/planner.yaml.
PARAMETERS: dict[str, tuple[Any, str]] = {
    "latent_topic": ("/vjepa/latent", "vjepa_interfaces/Latent input from encoder_node"),
    "ee_pose_topic": ("/franka_robot_state_broadcaster/current_pose", "PoseStamped end-effector pose (best effort)"),
    "gripper_state_topic": ("/fr3_gripper/joint_states", "JointState of the fingers (width = sum of positions)"),
    "goal_latent_topic": ("/vjepa/goal_latent", "optional Latent goals (each starts an episode)"),
    "encode_service": ("/encoder_node/encode", "vjepa_interfaces/srv/EncodeImage used by ~/set_goal"),
    "checkpoint": ("", "checkpoint holding the AC predictor (required)"),
    "model_config": ("", "AC predictor preset or JSON/YAML file; empty: configs embedded in our checkpoints"),
    "backend": ("torch", "torch | onnxruntime | onnxruntime-cuda | onnxruntime-trt | tensorrt"),
    "device": ("cpu", "torch device: cpu | cuda | cuda:N"),
    "onnx_dir": ("", "export directory of `vjepa-export onnx` (non-torch backends)"),
    "threads": (0, "CPU inference threads (0 = library default); leave cores for drivers on small machines"),
    "expected_model_id": ("", "encoder model id the predictor needs; empty: the goal latent's id"),
    "cem_samples": (800, "CEM samples per iteration"),
    "cem_iterations": (10, "CEM refinement iterations per plan"),
    "cem_topk": (10, "CEM elites kept per iteration to refit the Gaussian"),
    "cem_horizon": (1, "actions per plan (only the first is executed)"),
    "cem_maxnorm": (0.075, "per-axis position bound of sampled actions, m"),
    "cem_momentum_mean": (0.0, "momentum on the CEM mean"),
    "cem_momentum_std": (0.0, "momentum on the CEM std"),
    "cem_sample_gripper": (True, "search the gripper dimension"),
    "cem_seed": (0, "CEM seed (negative: nondeterministic)"),
    "robot": ("franka_impedance", "robot adapter: franka_impedance | crisp | sim"),
    "target_topic": ("/cartesian_impedance_example_controller/equilibrium_pose", "target pose output"),
    "gripper": ("franka_action", "gripper adapter: franka_action | control_msgs | sim_topic | none"),
    "gripper_target": ("/franka_gripper", "gripper action namespace / action / topic"),
    "base_frame": ("fr3_link0", "frame of poses and targets"),
    "max_position_step": (0.05, "m per axis per command"),
    "max_rotation_step": (0.25, "rad per axis per command"),
    "workspace_min": ([0.25, -0.45, 0.02], "workspace box minimum in the base frame, m"),
    "workspace_max": ([0.80, 0.45, 0.70], "workspace box maximum in the base frame, m"),
    "max_data_age_s": (1.0, "refuse to plan on a pose or latent older than this"),
    "control_rate_hz": (20.0, "rate of the control loop"),
    "max_steps": (20, "planning steps per episode"),
    "energy_threshold": (0.0, "goal reached when the goal energy falls below (0 = off)"),
    "settle_position_tolerance": (0.01, "arm settled when within this distance of the target, m"),
    "settle_timeout_s": (5.0, "re-plan after this long even if the arm did not settle"),
    "fault_timeout_s": (10.0, "a fault lasting this long fails the episode"),
    "goal_timeout_s": (30.0, "how long ~/set_goal waits for the encoder service"),
}


def _stamp_s(stamp: Any) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


class PlannerNode(Node):
    """See the module docstring."""

    def __init__(self, **node_kwargs: Any) -> None:
        super().__init__("planner_node", **node_kwargs)
        for name, (default, description) in PARAMETERS.items():
            self.declare_parameter(name, default, ParameterDescriptor(description=description))
        p = {name: self.get_parameter(name).value for name in PARAMETERS}
        if not p["checkpoint"]:
            raise ValueError("checkpoint is required (the checkpoint holding the AC predictor)")
        self.params = p
        limits = SafetyLimits(max_position_step=p["max_position_step"], max_rotation_step=p["max_rotation_step"],
                              workspace_min=tuple(p["workspace_min"]), workspace_max=tuple(p["workspace_max"]),
                              max_data_age_s=p["max_data_age_s"])
        cem = CEMConfig(samples=p["cem_samples"], iterations=p["cem_iterations"], topk=p["cem_topk"],
                        horizon=p["cem_horizon"], maxnorm=p["cem_maxnorm"],
                        momentum_mean=p["cem_momentum_mean"], momentum_std=p["cem_momentum_std"],
                        sample_gripper=p["cem_sample_gripper"], seed=p["cem_seed"] if p["cem_seed"] >= 0 else None)
        self.get_logger().info(f"loading AC predictor from {p['checkpoint']} ({p['backend']} on {p['device']})")
        model = load_world_model(p["checkpoint"], p["model_config"], encoder=False, predictor=True,
                                 backend=p["backend"], device=p["device"], export_dir=p["onnx_dir"] or None,
                                 threads=p["threads"])
        self.planner = LatentPlanner(model.world_model, cem)
        self.loop_config = LoopConfig(max_steps=p["max_steps"], energy_threshold=p["energy_threshold"],
                                      settle_position_tolerance=p["settle_position_tolerance"],
                                      settle_timeout=p["settle_timeout_s"], fault_timeout=p["fault_timeout_s"],
                                      expected_model_id=p["expected_model_id"])
        self.loop = EpisodeLoop(self.planner, limits, self.loop_config)
        self.adapter = RobotAdapter(self, p["robot"], p["gripper"], p["target_topic"], p["gripper_target"],
                                    p["base_frame"])
        self.limits = limits

        self._obs_lock = threading.Lock()   # the newest observations (held briefly by subscription callbacks)
        self._loop_lock = threading.Lock()  # the episode loop (held while planning; callbacks never wait on it)
        self._pose: PoseStamped | None = None
        self._pose_time = 0.0
        self._gripper = 0.0
        self._latent: Observation | None = None
        self._target: np.ndarray | None = None
        self._closing = threading.Event()

        services = MutuallyExclusiveCallbackGroup()
        self._client_group = ReentrantCallbackGroup()
        best_effort = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
        self.create_subscription(Latent, p["latent_topic"], self._on_latent, 5)
        self.create_subscription(Latent, p["goal_latent_topic"], self._on_goal_latent, 1)
        self.create_subscription(PoseStamped, p["ee_pose_topic"], self._on_pose, best_effort)
        self.create_subscription(JointState, p["gripper_state_topic"], self._on_gripper, best_effort)
        self.status_pub = self.create_publisher(PlanStatus, "~/status", 10)
        self.marker_pub = self.create_publisher(MarkerArray, "~/markers", 1)
        self.encode_client = self.create_client(EncodeImage, p["encode_service"], callback_group=self._client_group)
        self.create_service(SetGoal, "~/set_goal", self._on_set_goal, callback_group=services)
        self.create_service(Trigger, "~/stop", self._on_stop, callback_group=services)
        self.create_service(Trigger, "~/pause", self._on_pause, callback_group=services)
        self.create_service(Trigger, "~/resume", self._on_resume, callback_group=services)
        self._worker = threading.Thread(target=self._run, name="planner_loop", daemon=True)
        self._worker.start()
        self.get_logger().info(f"planner ready ({model.predictor_id}); robot adapter {p['robot']}, gripper "
                               f"{p['gripper']}; waiting for a goal on ~/set_goal or {p['goal_latent_topic']}")

    # ---- observations --------------------------------------------------------------------------------------
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_pose(self, msg: PoseStamped) -> None:
        with self._obs_lock:
            self._pose = msg
            self._pose_time = self._now()

    def _on_gripper(self, msg: JointState) -> None:
        width = float(sum(msg.position[:2])) if len(msg.position) >= 2 else float("nan")
        with self._obs_lock:
            self._gripper = float(np.clip(1.0 - width / FRANKA_MAX_WIDTH, 0.0, 1.0)) if np.isfinite(width) else 0.0

    def _on_latent(self, msg: Latent) -> None:
        grid = np.asarray(msg.data, dtype=np.float32)
        if grid.size != msg.frames * msg.height * msg.width * msg.dim:
            self.get_logger().warning(f"dropping a Latent whose data ({grid.size}) does not match its grid "
                                      f"{msg.frames}x{msg.height}x{msg.width}x{msg.dim}", throttle_duration_sec=2.0)
            return
        obs = Observation(_stamp_s(msg.header.stamp), (grid.reshape(msg.frames, msg.height, msg.width, msg.dim),
                                                       bool(msg.normalized)), msg.model_id)
        with self._obs_lock:
            self._latent = obs

    def _snapshot(self) -> tuple[Observation | None, Observation | None]:
        """(pose, latent): the newest observations, taken under the observation lock."""
        with self._obs_lock:
            return self._pose_obs(), self._latent

    def _pose_obs(self) -> Observation | None:
        """The newest pose as a 7-D state observation (stamp: header, or receipt time when unstamped)."""
        if self._pose is None:
            return None
        pose = self._pose.pose
        xyzq = np.array([pose.position.x, pose.position.y, pose.position.z, pose.orientation.x,
                         pose.orientation.y, pose.orientation.z, pose.orientation.w], dtype=np.float64)
        if np.all(np.isfinite(xyzq)) and np.linalg.norm(xyzq[3:]) > 1e-6:
            state = pose_from_pose_stamped(xyzq, self._gripper)
        else:
            state = np.full(7, np.nan)
        stamp = _stamp_s(self._pose.header.stamp) or self._pose_time
        return Observation(stamp, state)

    # ---- goals and commands ---------------------------------------------------------------------------------
    def _start(self, grid: np.ndarray, normalized: bool, model_id: str, start: bool) -> int:
        with self._loop_lock:
            self.planner.set_goal(grid, normalized)
            if not self.params["expected_model_id"]:
                self.loop.config.expected_model_id = model_id  # observations must come from the goal's encoder
            episode = self.loop.start(self._now(), paused=not start)
        self.get_logger().info(f"episode {episode}: goal set (model {model_id})" + ("" if start else ", paused"))
        return episode

    def _on_goal_latent(self, msg: Latent) -> None:
        grid = np.asarray(msg.data, dtype=np.float32).reshape(msg.frames, msg.height, msg.width, msg.dim)
        try:
            self._start(grid, msg.normalized, msg.model_id, True)
        except SafetyFault as exc:
            self.get_logger().error(f"goal latent refused: {exc}")

    def _on_set_goal(self, request: SetGoal.Request, response: SetGoal.Response) -> SetGoal.Response:
        if not self.encode_client.wait_for_service(timeout_sec=min(5.0, self.params["goal_timeout_s"])):
            response.success = False
            response.message = f"encoder service {self.params['encode_service']} is not available"
            return response
        done = threading.Event()
        future = self.encode_client.call_async(EncodeImage.Request(image=request.image,
                                                                    compressed_image=request.compressed_image))
        future.add_done_callback(lambda _f: done.set())
        if not done.wait(self.params["goal_timeout_s"]) or future.result() is None:
            response.success, response.message = False, "encoder service did not answer"
            return response
        res = future.result()
        if not res.success:
            response.success, response.message = False, f"goal image refused: {res.message}"
            return response
        lat = res.latent
        grid = np.asarray(lat.data, dtype=np.float32).reshape(lat.frames, lat.height, lat.width, lat.dim)
        try:
            response.episode = self._start(grid, lat.normalized, lat.model_id, request.start)
        except SafetyFault as exc:
            response.success, response.message = False, f"goal refused: {exc}"
            return response
        response.success = True
        response.message = f"episode {response.episode} started" + (" (paused)" if not request.start else "")
        return response

    def _trigger(self, action: str, response: Trigger.Response) -> Trigger.Response:
        pose, _ = self._snapshot()
        with self._loop_lock:
            try:
                if action == "stop":
                    decision = self.loop.stop(pose)
                elif action == "pause":
                    decision = self.loop.pause(pose)
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

    # ---- the control loop -----------------------------------------------------------------------------------
    def _run(self) -> None:
        period = 1.0 / float(self.params["control_rate_hz"])
        while not self._closing.is_set():
            t0 = time.monotonic()
            pose, latent = self._snapshot()
            try:
                with self._loop_lock:
                    self._apply(self.loop.tick(self._now(), pose, latent))
            except Exception as exc:  # never let the loop die silently: fail the episode, hold, and report
                self.get_logger().error(f"planner loop error: {exc!r}")
                with self._loop_lock:
                    self._apply(self.loop.stop(self._snapshot()[0], reason=f"internal error: {exc}"))
                    self.loop.state = State.FAILED
            self._closing.wait(max(0.0, period - (time.monotonic() - t0)))

    def _apply(self, decision: Any) -> None:
        """Send a decision's target through the adapter and publish its status and markers (loop lock held)."""
        if decision.target is not None:
            self.adapter.send(decision.target)
            self._target = decision.target
        if decision.status is not None:
            self._publish_status(decision.status)

    def _publish_status(self, s: dict[str, Any]) -> None:
        msg = PlanStatus()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = self.params["base_frame"]
        msg.episode, msg.step, msg.state, msg.message = s["episode"], s["step"], s["state"], s["message"]
        msg.energy, msg.goal_energy = s["energy"], s["goal_energy"]
        msg.action = [float(v) for v in s["action"]]
        msg.raw_action = [float(v) for v in s["raw_action"]]
        msg.ee_state = [float(v) for v in s["ee_state"]]
        msg.planning_time, msg.latent_age = s["planning_time"], s["latent_age"]
        c = self.planner.planner.config
        msg.num_samples, msg.iterations, msg.horizon = c.samples, c.iterations, c.horizon
        self.status_pub.publish(msg)
        text = (f"[episode {s['episode']} step {s['step']} {State(s['state']).name}] {s['message']}"
                + (f" energy={s['energy']:.4f} goal_energy={s['goal_energy']:.4f}" if np.isfinite(s["energy"]) else ""))
        if "holding" in s["message"]:  # rclpy binds one severity per call site: two separate calls
            self.get_logger().warning(text, throttle_duration_sec=1.0)
        else:
            self.get_logger().info(text)
        self._publish_markers(s["ee_state"])

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
        """Stop the loop; if an episode is running, command a hold at the current pose (shutdown path)."""
        self._closing.set()
        self._worker.join(timeout=30.0)
        pose, _ = self._snapshot()
        with self._loop_lock:
            active = self.loop.state not in (State.IDLE, State.SUCCEEDED, State.FAILED, State.STOPPED)
            if active:
                self._apply(self.loop.stop(pose, reason="planner shutting down"))


def main(args: list[str] | None = None) -> int:
    """Entry point: SIGINT/SIGTERM end the episode with a hold at the current pose before the node exits."""
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        node = PlannerNode()
    except Exception as exc:  # bad parameters, missing or mismatched checkpoint, unavailable adapter
        rclpy.logging.get_logger("planner_node").fatal(f"cannot start: {exc}")
        rclpy.try_shutdown()
        return 1
    executor = MultiThreadedExecutor(num_threads=3)
    executor.add_node(node)
    try:
        while not stop.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=0.1)
    except ExternalShutdownException:
        pass
    finally:
        node.hold_and_close()
        time.sleep(0.2)  # let DDS deliver the hold before the participant goes away
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``sim_node``: the PyBullet Franka behind franka_ros2-shaped ROS 2 interfaces (a thin rclpy adapter).

Publishes (defaults; every name is a parameter):
  /camera/image_raw, /camera/camera_info     sensor_msgs/Image (rgb8), CameraInfo; reliable, depth 5
  /franka_robot_state_broadcaster/current_pose   geometry_msgs/PoseStamped; best effort, depth 1 (franka v2.4+)
  /joint_states                             sensor_msgs/JointState fr3_joint1..7 + fr3_finger_joint1/2; 30 Hz
  /franka_gripper/joint_states              sensor_msgs/JointState fr3_finger_joint1/2 (each = half width); 15 Hz
  /clock                                    rosgraph_msgs/Clock, sim time
  ~/target_status                           std_msgs/String, JSON: {"status", "message", "stamp", ...}
  /diagnostics                              diagnostic_msgs/DiagnosticArray (WARN on rejected/clamped commands)
  /vjepa_sim/task_state                     vjepa_interfaces/TaskState: object poses + the task's success measure
Subscribes:
  /cartesian_impedance_example_controller/equilibrium_pose   geometry_msgs/PoseStamped; reliable (as franka)
  /vjepa_sim/gripper_command                vjepa_interfaces/GripperCommand
Services: ~/reset (vjepa_interfaces/ResetSim; plain or into a manipulation task, vjepa_sim.tasks),
~/render_goal (vjepa_interfaces/RenderGoal; a pose, or a sub-goal of the running task).

Physics runs in its own thread at a fixed step, paced to ``real_time_factor`` x wall time (0 = as fast as
possible); all messages are stamped with sim time. Subscription callbacks only store the latest command; the
physics thread applies it at the next step, so callbacks never block on physics or IK.
"""

from __future__ import annotations

import array
import json
import math
import signal
import threading
import time

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Pose, PoseStamped
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import String

from vjepa_core import franka
from vjepa_core.msgconv import MessageError, fill_pose_xyzq, pose_xyzq_from_msg
from vjepa_interfaces.msg import GripperCommand, TaskState
from vjepa_interfaces.srv import RenderGoal, ResetSim

from . import tasks
from .config import camera_topic, config_from_ros_params, default_ros_params
from .explore import make_explorer
from .scene import MAX_GRIPPER_WIDTH, FrankaSim, TargetResult

__all__ = ["QOS_CAMERA", "QOS_COMMAND", "QOS_POSE", "QOS_STATE", "SimNode", "main"]

# franka_robot_state_broadcaster's convenience topics: rclcpp::QoS(1).best_effort()
QOS_POSE = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT, history=HistoryPolicy.KEEP_LAST,
                      durability=DurabilityPolicy.VOLATILE)
# joint_state_publisher / franka_gripper / status topics: system defaults (reliable)
QOS_STATE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
# cameras: reliable, so both reliable and best-effort (sensor data) subscribers match
QOS_CAMERA = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
# equilibrium_pose and gripper commands: SystemDefaultsQoS, as the franka controller subscribes
QOS_COMMAND = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)

# Node-level parameters (name -> (default, description)); scene parameters come from config.py.
NODE_PARAMS = {
    "base_frame": (franka.BASE_FRAME, "frame_id of poses (the robot base; franka's URDF root link)"),
    "joint_prefix": (franka.JOINT_PREFIX, "joint name prefix: <prefix>joint1..7, <prefix>finger_joint1/2"),
    "real_time_factor": (1.0, "sim seconds per wall second to aim for; 0 = as fast as possible"),
    "camera_rate_hz": (10.0, "camera frame rate [Hz of sim time] (DROID: 15)"),
    "joint_state_rate_hz": (30.0, "/joint_states rate [Hz of sim time] (franka joint_state_rate: 30)"),
    "pose_rate_hz": (100.0, "current_pose rate [Hz of sim time] (franka convenience_publish_rate)"),
    "gripper_state_rate_hz": (15.0, "gripper joint_states rate [Hz] (franka_gripper state_publish_rate: 15)"),
    "clock_rate_hz": (100.0, "/clock rate [Hz of sim time]"),
    "publish_clock": (True, "publish sim time on /clock (other nodes then run with use_sim_time:=true)"),
    "pose_topic": (franka.CURRENT_POSE_TOPIC, "measured end-effector pose (best effort)"),
    "joint_states_topic": (franka.JOINT_STATES_TOPIC, "arm + finger joint states"),
    "gripper_state_topic": (franka.GRIPPER_JOINT_STATES_TOPIC, "finger joint states, as franka_gripper publishes"),
    "target_topic": (franka.EQUILIBRIUM_POSE_TOPIC,
                     "end-effector target (PoseStamped in the base frame; frame_id is ignored, as franka does)"),
    "gripper_command_topic": ("/vjepa_sim/gripper_command", "vjepa_interfaces/GripperCommand input"),
    "target_status_topic": ("~/target_status", "JSON status of every processed command"),
    "task_state_topic": ("/vjepa_sim/task_state", "vjepa_interfaces/TaskState: object poses, task success measure"),
    "task_state_rate_hz": (10.0, "task state rate [Hz of sim time] (on the camera's schedule phase)"),
    "autopilot": ("none", "'none': follow target_topic; 'explore': scripted seeded exploration (data collection)"),
    "explore_policy": ("free", "autopilot policy: 'free' (random moves, reach data) or 'play' (pick-and-place play)"),
    "explore_seed": (0, "seed of the exploration policy (re-seeded with seed + reset seed on ~/reset)"),
    "explore_control_rate_hz": (5.0, "exploration target rate [Hz of sim time]"),
    "explore_max_delta": (0.05, "exploration per-axis step bound [m]"),
}

SCENE_PARAM_HELP = {
    "physics_rate_hz": "physics steps per sim second (fixed step)",
    "control_rate_hz": "Cartesian tracker (interpolation + IK) rate",
    "seed": "seed of the first episode (object layout, start pose)",
    "num_objects": "graspable blocks on the table (0..8; object_set blocks)",
    "object_set": "'blocks' (coloured blocks, reach scenes) or 'manipulation' (one cup or box, play scenes)",
    "box_yaw_range": "manipulation layout: half the boxes lie within this yaw of the wrist's grasp yaw [rad]",
    "object_size": "block edge [m]",
    "object_min_xy": "blocks are placed in this table area: min [x, y] [m]",
    "object_max_xy": "max [x, y] [m]",
    "workspace_min": "targets outside [workspace_min, workspace_max] are clamped or rejected [m]",
    "workspace_max": "see workspace_min",
    "workspace_policy": "'clamp' or 'reject' targets outside the workspace",
    "start_min": "random start end-effector position box, min [m]",
    "start_max": "random start end-effector position box, max [m]",
    "start_yaw_range": "random start yaw offset bound [rad]",
    "max_linear_velocity": "tracker end-effector speed limit [m/s]",
    "max_angular_velocity": "tracker rotation speed limit [rad/s]",
    "tracking_gain": "tracker approach gain [1/s]",
    "ik_tolerance": "a target IK misses by more [m] is unreachable",
    "ik_rot_tolerance": "a target IK misses by more [rad] is unreachable",
    "gripper_speed": "default finger speed [m/s]",
    "gripper_force": "default grasp force [N]",
    "shadows": "TinyRenderer shadows (2x render time)",
    "arm_meshes": "'collision' (low-poly, fast) or 'visual' (stock meshes) for rendering the arm",
    "camera_names": ("cameras to simulate; per camera: "
                     "cameras.<name>.{eye,target,up,fov_deg,width,height,...,tile_below}"),
}


def _stamp(t: float) -> object:
    """builtin_interfaces/Time of a sim time in seconds."""
    from builtin_interfaces.msg import Time

    ns = int(round(t * 1e9))
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def _pose_msg(pos: object, quat: object) -> Pose:
    return fill_pose_xyzq(Pose(), pos, quat)


def _pose_tuple(pose: object) -> tuple:
    """``(position[3], quaternion[4])`` of an incoming ``geometry_msgs/Pose`` (or ``PoseStamped``), read by
    :func:`vjepa_core.msgconv.pose_xyzq_from_msg`: raises its ``MessageError`` (a ``ValueError``) for NaN/inf or a
    zero quaternion, which the callers refuse like the simulator's own checks."""
    xyzq = pose_xyzq_from_msg(pose)
    return xyzq[:3], xyzq[3:]


def _image_msg(img: object, stamp: object, frame_id: str) -> Image:
    msg = Image()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.height, msg.width = int(img.shape[0]), int(img.shape[1])
    msg.encoding = "rgb8"
    msg.is_bigendian = 0
    msg.step = 3 * msg.width
    msg.data = array.array("B", img.tobytes())
    return msg


class _Schedule:
    """Fires every ``period`` of sim time; ``restart`` makes it fire at the next check."""

    def __init__(self, rate_hz: float) -> None:
        self.period = 1.0 / rate_hz
        self.next = 0.0

    def due(self, t: float) -> bool:
        if t + 1e-9 < self.next:
            return False
        self.next += self.period  # stay on the grid started by restart() ...
        if self.next <= t:  # ... unless the rate exceeds the physics rate
            self.next = t + self.period
        return True

    def restart(self, t: float) -> None:
        self.next = t


class SimNode(Node):
    """rclpy adapter around :class:`~vjepa_sim.scene.FrankaSim`; physics runs in a background thread."""

    def __init__(self, overrides: dict | None = None, **node_kwargs: object) -> None:
        params = [Parameter(k, value=v) for k, v in (overrides or {}).items()]
        super().__init__("sim_node", parameter_overrides=params, **node_kwargs)
        self._declare_parameters()
        cfg = config_from_ros_params(self._scene_params)
        self.sim = FrankaSim(cfg)
        self._lock = threading.RLock()  # guards self.sim
        self._cmd_lock = threading.Lock()  # guards the pending commands only (callbacks never wait on physics)
        self._pending_target: PoseStamped | None = None
        self._pending_gripper: GripperCommand | None = None
        self._task: tasks.TaskEpisode | None = None  # the manipulation task of the current episode, if any
        self._make_interfaces()
        self._policy = None
        self._explore_schedule = None
        if self._p["autopilot"] == "explore":
            self._start_explorer(cfg.seed)
        elif self._p["autopilot"] != "none":
            raise ValueError(f"autopilot must be 'none' or 'explore', got {self._p['autopilot']!r}")
        self._running = True
        self._thread = threading.Thread(target=self._physics_loop, name="sim_physics", daemon=True)
        self._thread.start()
        self.get_logger().info(
            f"sim_node up: {len(cfg.cameras)} camera(s) at {self._p['camera_rate_hz']} Hz, "
            f"physics {cfg.physics_rate_hz:.0f} Hz, real_time_factor {self._p['real_time_factor']}, "
            f"seed {cfg.seed}, autopilot {self._p['autopilot']}"
        )

    # ------------------------------------------------------------------ parameters
    def _declare(self, name: str, default: object, description: str) -> object:
        dynamic = isinstance(default, (float, list)) and not isinstance(default, bool)
        desc = ParameterDescriptor(description=description, dynamic_typing=dynamic)
        return self.declare_parameter(name, default, desc).value

    def _declare_parameters(self) -> None:
        """Declare every parameter once with a description; values land in _p and _scene_params."""
        self._p = {k: self._declare(k, d, h) for k, (d, h) in NODE_PARAMS.items()}
        for key in ("camera_rate_hz", "joint_state_rate_hz", "pose_rate_hz", "gripper_state_rate_hz",
                    "clock_rate_hz", "task_state_rate_hz"):
            self._p[key] = float(self._p[key])
            if not 0.1 <= self._p[key] <= 1000.0:
                raise ValueError(f"{key} must be in [0.1, 1000], got {self._p[key]}")
        if self._p["explore_policy"] not in ("free", "play"):
            raise ValueError(f"explore_policy must be 'free' or 'play', got {self._p['explore_policy']!r}")
        self._p["real_time_factor"] = float(self._p["real_time_factor"])
        if not (math.isfinite(self._p["real_time_factor"]) and self._p["real_time_factor"] >= 0.0):
            raise ValueError(f"real_time_factor must be >= 0, got {self._p['real_time_factor']}")
        names = self._declare("camera_names", default_ros_params()["camera_names"], SCENE_PARAM_HELP["camera_names"])
        defaults = default_ros_params(list(names))
        self._scene_params = {"camera_names": list(names)}
        for key, default in defaults.items():
            if key == "camera_names":
                continue
            help_text = SCENE_PARAM_HELP.get(key, f"camera setting {key.split('.')[-1]}")
            self._scene_params[key] = self._declare(key, default, help_text)

    # ------------------------------------------------------------------ interfaces
    def _make_interfaces(self) -> None:
        p = self._p
        self._cams = []
        published = self.sim.config.published_cameras
        for i, cam in enumerate(self.sim.config.cameras):
            if cam not in published:
                continue  # stacked below another camera's view, published inside that image
            topic = camera_topic(cam, i)
            info_topic = topic.rsplit("/", 1)[0] + "/camera_info"
            self._cams.append((
                cam,
                cam.frame_id or f"{cam.name}_optical_frame",
                self.create_publisher(Image, topic, QOS_CAMERA),
                self.create_publisher(CameraInfo, info_topic, QOS_CAMERA),
            ))
        self._pose_pub = self.create_publisher(PoseStamped, p["pose_topic"], QOS_POSE)
        self._joint_pub = self.create_publisher(JointState, p["joint_states_topic"], QOS_STATE)
        self._gripper_pub = self.create_publisher(JointState, p["gripper_state_topic"], QOS_STATE)
        self._status_pub = self.create_publisher(String, p["target_status_topic"], QOS_STATE)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", QOS_STATE)
        self._clock_pub = self.create_publisher(Clock, "/clock", QOS_STATE) if p["publish_clock"] else None
        self._task_pub = self.create_publisher(TaskState, p["task_state_topic"], QOS_STATE)
        self.create_subscription(PoseStamped, p["target_topic"], self._on_target, QOS_COMMAND)
        self.create_subscription(GripperCommand, p["gripper_command_topic"], self._on_gripper, QOS_COMMAND)
        self.create_service(ResetSim, "~/reset", self._on_reset)
        self.create_service(RenderGoal, "~/render_goal", self._on_render_goal)
        prefix = p["joint_prefix"]
        self._arm_names = [f"{prefix}joint{i}" for i in range(1, 8)]
        self._finger_names = [f"{prefix}finger_joint1", f"{prefix}finger_joint2"]
        self._schedules = {
            "camera": _Schedule(p["camera_rate_hz"]),
            "joints": _Schedule(p["joint_state_rate_hz"]),
            "pose": _Schedule(p["pose_rate_hz"]),
            "gripper": _Schedule(p["gripper_state_rate_hz"]),
            "clock": _Schedule(p["clock_rate_hz"]),
            "task": _Schedule(p["task_state_rate_hz"]),
        }

    def _start_explorer(self, seed: int) -> None:
        p = self._p
        self._policy = make_explorer(p["explore_policy"], int(p["explore_seed"]) + int(seed),
                                     float(p["explore_control_rate_hz"]), float(p["explore_max_delta"]))
        self._explore_schedule = _Schedule(self._policy.config.control_rate_hz)
        self._explore_schedule.restart(self.sim.time)

    # ------------------------------------------------------------------ callbacks (non-blocking)
    def _on_target(self, msg: PoseStamped) -> None:
        with self._cmd_lock:
            self._pending_target = msg

    def _on_gripper(self, msg: GripperCommand) -> None:
        with self._cmd_lock:
            self._pending_gripper = msg

    def _on_reset(self, request: ResetSim.Request, response: ResetSim.Response) -> ResetSim.Response:
        episode = None
        if request.task:
            try:
                episode = tasks.make_episode(request.task, int(request.seed), request.object_kind or None)
            except ValueError as err:  # refused: the running episode goes on untouched
                response.success = False
                response.message = f"reset: {err}"
                self._warn("reset", response.message)
                with self._lock:
                    response.ee_pose = _pose_msg(*self.sim.ee_pose())
                return response
        with self._lock:
            with self._cmd_lock:
                self._pending_target = self._pending_gripper = None
            try:
                if episode is not None:
                    pos, quat = tasks.reset_sim(self.sim, episode)
                    what = f"task {episode.task} ({episode.kind}), seed {request.seed}"
                else:
                    start = _pose_tuple(request.start_pose) if request.use_start_pose else None
                    pos, quat = self.sim.reset(int(request.seed), start, float(request.gripper))
                    what = f"seed {request.seed}"
                response.success = True
                response.message = f"reset to {what} at sim time {self.sim.time:.6f} s"
            except ValueError as err:
                pos, quat = self.sim.ee_pose()
                response.success = False
                response.message = f"reset: {err}"
                self._warn("reset", response.message)
            self._task = episode if response.success else None
            if self._policy is not None:
                self._start_explorer(int(request.seed))
            for sched in self._schedules.values():
                sched.restart(self.sim.time)
            self._publish_due()  # the first frame of the episode, stamped with the reset time
            self._fill_scene(response)
        response.ee_pose = _pose_msg(pos, quat)
        return response

    def _fill_scene(self, response: ResetSim.Response) -> None:
        """The reset response's object list, task object, target and sub-goals."""
        objs = self.sim.object_states()
        response.object_names = [o.name for o in objs]
        response.object_kinds = [o.kind for o in objs]
        response.object_poses = [_pose_msg(o.position, o.quaternion) for o in objs]
        ep = self._task
        response.task = ep.task if ep is not None else ""
        response.task_object = ep.task_object if ep is not None else -1
        if ep is None:
            return
        response.target.x, response.target.y, response.target.z = (float(v) for v in ep.target)
        response.goal_names = [g.name for g in ep.goals]
        response.goal_ee_poses = [_pose_msg(g.ee_position, g.ee_quaternion) for g in ep.goals]
        response.goal_grippers = [float(g.gripper) for g in ep.goals]
        response.goal_holds = [bool(g.holds) for g in ep.goals]
        response.goal_max_steps = [int(g.max_steps) for g in ep.goals]
        response.goal_object_poses = [_pose_msg(*g.object_poses[ep.task_object]) for g in ep.goals]

    def _on_render_goal(self, request: RenderGoal.Request, response: RenderGoal.Response) -> RenderGoal.Response:
        objects = None
        try:
            with self._lock:
                if request.use_task_goal:
                    if self._task is None:
                        raise ValueError("use_task_goal needs a task: reset into one first (ResetSim.task)")
                    goal = tasks.render_goal(self.sim, self._task, int(request.goal_index), request.camera or None)
                    objects = list(self._task.goals[int(request.goal_index)].object_poses)
                else:
                    pos, quat = _pose_tuple(request.pose)
                    objects = [_pose_tuple(m) for m in request.object_poses] or None
                    goal = self.sim.render_goal(pos, quat, request.gripper, request.camera or None, objects=objects)
                if objects is None:
                    objects = [(s.position, s.quaternion) for s in self.sim.object_states()]
                cam = self.sim.camera(request.camera or None)
                stamp = _stamp(self.sim.time)
        except ValueError as err:
            response.success = False
            response.message = f"render_goal: {err}"
            self._warn("render_goal", response.message)
            return response
        frame = cam.frame_id or f"{cam.name}_optical_frame"
        response.image = _image_msg(goal.image, stamp, frame)
        response.achieved_pose = _pose_msg(goal.position, goal.quaternion)
        response.object_poses = [_pose_msg(pos, quat) for pos, quat in objects]
        response.success = goal.reachable
        response.message = (
            f"rendered {cam.name}" if goal.reachable
            else f"pose unreachable: IK misses it by {goal.position_error * 100:.1f} cm / "
                 f"{goal.rotation_error:.2f} rad; the image shows the closest pose"
        )
        return response

    # ------------------------------------------------------------------ physics thread
    def _physics_loop(self) -> None:
        """Step physics, apply pending commands, publish what is due, pace to the real-time factor."""
        rtf = self._p["real_time_factor"]
        wall0, sim0 = time.monotonic(), self.sim.time
        try:
            while self._running and self.context.ok():
                with self._lock:
                    self._apply_commands()
                    self._publish_due()
                    self.sim.step(1)
                    t = self.sim.time
                if rtf > 0.0:
                    ahead = (t - sim0) / rtf - (time.monotonic() - wall0)
                    if ahead > 0.002:
                        time.sleep(ahead)
                    elif ahead < -0.25:  # fell behind (slow machine, long service call): re-anchor
                        wall0, sim0 = time.monotonic(), t
        except Exception as err:
            if not self._running or not self.context.ok():
                return  # ROS shut down under us (Ctrl-C): publishing failed, nothing to report
            self.get_logger().fatal(f"physics loop stopped: {type(err).__name__}: {err}")
            raise

    def _apply_commands(self) -> None:
        with self._cmd_lock:
            target, grip = self._pending_target, self._pending_gripper
            self._pending_target = self._pending_gripper = None
        t = self.sim.time
        if self._policy is not None and self._explore_schedule.due(t):
            act = self._policy.decide(self.sim)
            self._report(self.sim.set_target(act.position, act.quaternion), "explore", quiet=True)
            if act.changed_gripper:
                self.sim.set_gripper(0.0 if act.close else MAX_GRIPPER_WIDTH, grasp=act.close)
            target = None  # the autopilot owns the arm
        if target is not None:
            try:
                pos, quat = _pose_tuple(target)
            except MessageError as err:  # refused as the simulator refuses a NaN or degenerate target
                self._report(TargetResult("rejected", f"target rejected: {err}"), "target")
            else:
                self._report(self.sim.set_target(pos, quat), "target")
        if grip is not None:
            try:
                warning = self.sim.set_gripper(grip.width, grip.speed, grip.grasp, grip.force)
                status, msg = ("clamped", warning) if warning else ("accepted", "gripper command accepted")
            except ValueError as err:
                status, msg = "rejected", f"gripper command rejected: {err}"
            self._status("gripper", status, msg)
            if status != "accepted":
                self._warn("gripper", msg)

    def _report(self, result: object, source: str, quiet: bool = False) -> None:
        extra = {}
        if result.position is not None:
            extra = {"position": [round(float(v), 5) for v in result.position],
                     "quaternion": [round(float(v), 5) for v in result.quaternion]}
        if not (quiet and result.accepted):
            self._status(source, result.status, result.message, extra)
        if result.status != "accepted":
            self._warn(source, result.message)

    def _status(self, source: str, status: str, message: str, extra: dict | None = None) -> None:
        body = {"source": source, "status": status, "message": message, "stamp": round(self.sim.time, 6)}
        body.update(extra or {})
        self._status_pub.publish(String(data=json.dumps(body)))

    def _warn(self, source: str, message: str) -> None:
        """Log a warning and publish it on /diagnostics (the sim keeps running)."""
        self.get_logger().warning(message)
        arr = DiagnosticArray()
        arr.header.stamp = _stamp(self.sim.time)
        arr.status = [DiagnosticStatus(level=DiagnosticStatus.WARN, name=f"{self.get_name()}: {source}",
                                       message=message, hardware_id="vjepa_sim",
                                       values=[KeyValue(key="sim_time", value=f"{self.sim.time:.3f}")])]
        self._diag_pub.publish(arr)

    def _publish_due(self) -> None:
        t = self.sim.time
        stamp = _stamp(t)
        s = self._schedules
        if self._clock_pub is not None and s["clock"].due(t):
            self._clock_pub.publish(Clock(clock=stamp))
        if s["pose"].due(t):
            msg = PoseStamped()
            msg.header.stamp, msg.header.frame_id = stamp, self._p["base_frame"]
            msg.pose = _pose_msg(*self.sim.ee_pose())
            self._pose_pub.publish(msg)
        if s["joints"].due(t):
            self._joint_pub.publish(self._joint_state(stamp, arm=True))
        if s["gripper"].due(t):
            self._gripper_pub.publish(self._joint_state(stamp, arm=False))
        if s["task"].due(t):
            self._task_pub.publish(self._task_state(stamp))
        if s["camera"].due(t):
            for cam, frame, img_pub, info_pub in self._cams:
                img_pub.publish(_image_msg(self.sim.render(cam.name), stamp, frame))
                info_pub.publish(self._camera_info(cam, stamp, frame))

    def _task_state(self, stamp: object) -> TaskState:
        """Object poses and, during a task, its measures on the current state (vjepa_sim.tasks.measure)."""
        msg = TaskState()
        msg.header.stamp, msg.header.frame_id = stamp, self._p["base_frame"]
        objs = self.sim.object_states()
        msg.object_names = [o.name for o in objs]
        msg.object_kinds = [o.kind for o in objs]
        msg.object_poses = [_pose_msg(o.position, o.quaternion) for o in objs]
        msg.ee_pose = _pose_msg(*self.sim.ee_pose())
        msg.gripper_width = float(self.sim.gripper_width())
        msg.seed = int(self.sim.seed)
        ep = self._task
        nan = float("nan")
        if ep is None:
            msg.task, msg.task_object = "", -1
            msg.lift = msg.distance = msg.distance_xy = nan
            return msg
        state = tasks.observe(self.sim, ep)
        m = tasks.measure(ep, state)
        msg.task, msg.task_object = ep.task, ep.task_object
        msg.finger_contacts = [bool(c) for c in state.finger_contacts]
        msg.object_speed = float(state.object_speed)
        msg.held, msg.lift, msg.distance, msg.distance_xy = m.held, m.lift, m.distance, m.distance_xy
        msg.gripper_open, msg.resting, msg.success, msg.detail = m.gripper_open, m.resting, m.success, m.detail
        return msg

    def _joint_state(self, stamp: object, arm: bool) -> JointState:
        msg = JointState()
        msg.header.stamp = stamp
        fingers = [float(v) for v in self.sim.finger_positions()]
        finger_vel = [float(v) for v in self.sim.finger_velocities()]
        if arm:
            msg.name = self._arm_names + self._finger_names
            msg.position = [float(v) for v in self.sim.joint_positions()] + fingers
            msg.velocity = [float(v) for v in self.sim.joint_velocities()] + finger_vel
            msg.effort = [float(v) for v in self.sim.joint_efforts()] + [0.0, 0.0]
        else:
            msg.name = list(self._finger_names)
            msg.position, msg.velocity, msg.effort = fingers, finger_vel, [0.0, 0.0]
        return msg

    def _camera_info(self, cam: object, stamp: object, frame: str) -> CameraInfo:
        k = self.sim.intrinsics(cam.name)
        msg = CameraInfo()
        msg.header.stamp, msg.header.frame_id = stamp, frame
        # a tiled camera's image is taller than its own view; K and P describe the top (own) view
        msg.height, msg.width = self.sim.image_shape(cam.name)
        msg.distortion_model = "plumb_bob"
        msg.d = [0.0] * 5
        msg.k = [float(v) for v in k.reshape(-1)]
        msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
        msg.p = [k[0, 0], 0.0, k[0, 2], 0.0, 0.0, k[1, 1], k[1, 2], 0.0, 0.0, 0.0, 1.0, 0.0]
        return msg

    # ------------------------------------------------------------------ shutdown
    def shutdown(self) -> None:
        """Stop the physics thread and close PyBullet (idempotent)."""
        self._running = False
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=5.0)
        with self._lock:
            self.sim.close()

    def destroy_node(self) -> None:
        """Stop physics before the ROS entities go away."""
        self.shutdown()
        super().destroy_node()


def main(args: list | None = None) -> None:
    """Console entry point: ``ros2 run vjepa_sim sim_node --ros-args --params-file config/sim.yaml``."""
    rclpy.init(args=args)
    node = None
    try:
        node = SimNode()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    finally:
        # a second Ctrl-C (a terminal signals the whole group and `ros2 launch` forwards it too) must not interrupt
        # the teardown (PyBullet disconnect) with a traceback: the first one already asked to stop
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()

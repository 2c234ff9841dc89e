"""The evaluation's own rclpy node: service clients, state subscriptions and command publishers (spun in a thread).

``vjepa-sim eval`` (reach, :mod:`.eval`) and the manipulation tasks (:mod:`.task_eval`) drive the graph through
it: ``/sim_node/reset`` and ``~/render_goal``, ``/planner_node/set_goal`` and ``~/stop``, the camera, the pose,
the planner status and the simulator's task state (``/vjepa_sim/task_state``), and the end-effector target and
gripper command topics (the reference policies send those straight to the simulator).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from vjepa_core.franka import BASE_FRAME, CURRENT_POSE_TOPIC, EQUILIBRIUM_POSE_TOPIC, MAX_GRIPPER_WIDTH
from vjepa_core.imgmsg import image_to_rgb
from vjepa_core.msgconv import MessageError, fill_pose_xyzq, pose_xyzq_from_msg
from vjepa_core.msgconv import stamp_to_seconds as stamp_seconds

from .graph import NodeGraph

__all__ = ["Experimenter", "image_array", "pose_msg", "stamp_seconds"]

POSE_TOPIC = CURRENT_POSE_TOPIC
TARGET_TOPIC = EQUILIBRIUM_POSE_TOPIC
GRIPPER_COMMAND_TOPIC = "/vjepa_sim/gripper_command"
TASK_STATE_TOPIC = "/vjepa_sim/task_state"
IMAGE_TOPIC = "/camera/image_raw"
LATENT_TOPIC = "/vjepa/latent"
DOWN_QUAT = (1.0, 0.0, 0.0, 0.0)


def image_array(msg: Any) -> np.ndarray:
    """A sensor_msgs/Image as an [H, W, 3] RGB uint8 array (:func:`vjepa_core.imgmsg.image_to_rgb`)."""
    return image_to_rgb(msg)


def pose_msg(position: Any, quat: Any = DOWN_QUAT) -> Any:
    """geometry_msgs/Pose from a position and an (x, y, z, w) quaternion."""
    from geometry_msgs.msg import Pose

    return fill_pose_xyzq(Pose(), position, quat)


class Experimenter:
    """The experimenter's node, joined to ``graph``'s ROS domain and spun by one executor thread."""

    def __init__(self, graph: NodeGraph) -> None:
        import rclpy
        from geometry_msgs.msg import PoseStamped
        from rclpy.action import ActionClient
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from rosgraph_msgs.msg import Clock
        from sensor_msgs.msg import Image
        from std_srvs.srv import Trigger

        from vjepa_interfaces.action import ReachGoals
        from vjepa_interfaces.msg import GripperCommand, Latent, PlanStatus, TaskState
        from vjepa_interfaces.srv import RenderGoal, ResetSim, SetGoal

        self.graph = graph
        rclpy.init(domain_id=graph.domain_id)  # the graph's domain; our environment stays untouched
        self.node = rclpy.create_node("vjepa_sim_eval")
        self.lock = threading.Lock()
        self.pose: np.ndarray | None = None
        self.image: tuple | None = None  # (stamp, array)
        self.latent_stamp = -1.0
        self.clock = -1.0
        self.status: list = []
        self.task_state: Any = None  # the latest vjepa_interfaces/TaskState
        self.task_state_count = 0
        n = self.node
        n.create_subscription(PoseStamped, POSE_TOPIC, self._on_pose,
                              QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
        n.create_subscription(Image, IMAGE_TOPIC, self._on_image, 5)
        n.create_subscription(Latent, LATENT_TOPIC, self._on_latent, 5)
        n.create_subscription(PlanStatus, "/planner_node/status", self._on_status, 50)
        n.create_subscription(Clock, "/clock", self._on_clock, 10)
        n.create_subscription(TaskState, TASK_STATE_TOPIC, self._on_task_state, 10)
        self.target_pub = n.create_publisher(PoseStamped, TARGET_TOPIC, 10)
        self.gripper_pub = n.create_publisher(GripperCommand, GRIPPER_COMMAND_TOPIC, 10)
        self.reset_cli = n.create_client(ResetSim, "/sim_node/reset")
        self.render_cli = n.create_client(RenderGoal, "/sim_node/render_goal")
        self.goal_cli = n.create_client(SetGoal, "/planner_node/set_goal")
        self.stop_cli = n.create_client(Trigger, "/planner_node/stop")
        self.reach_goals_cli = ActionClient(n, ReachGoals, "/planner_node/reach_goals")
        self.types = {"ResetSim": ResetSim, "RenderGoal": RenderGoal, "SetGoal": SetGoal, "PoseStamped": PoseStamped,
                      "GripperCommand": GripperCommand, "Trigger": Trigger, "PlanStatus": PlanStatus,
                      "ReachGoals": ReachGoals}
        self.executor = SingleThreadedExecutor()  # one thread: callbacks never race the shutdown
        self.executor.add_node(n)
        self._spinning = True
        self._spin = threading.Thread(target=self._spin_loop, daemon=True)
        self._spin.start()

    def _spin_loop(self) -> None:
        """Spin until :meth:`close` asks to stop (the executor is shut down only after this thread ended:
        rclpy's ``Executor.shutdown`` racing a spinning thread can raise inside the executor)."""
        while self._spinning:
            self.executor.spin_once(timeout_sec=0.05)

    # ---- subscriptions
    def _on_pose(self, msg: Any) -> None:
        try:
            xyz = pose_xyzq_from_msg(msg)[:3]
        except MessageError:
            return  # the simulator never publishes one; keep the last good pose
        with self.lock:
            self.pose = xyz

    def _on_image(self, msg: Any) -> None:
        if msg.encoding != "rgb8":
            return
        arr = image_array(msg)
        with self.lock:
            self.image = (stamp_seconds(msg.header.stamp), arr)

    def _on_latent(self, msg: Any) -> None:
        with self.lock:
            self.latent_stamp = stamp_seconds(msg.header.stamp)

    def _on_clock(self, msg: Any) -> None:
        with self.lock:
            self.clock = stamp_seconds(msg.clock)

    def _on_status(self, msg: Any) -> None:
        with self.lock:
            self.status.append(msg)

    def _on_task_state(self, msg: Any) -> None:
        with self.lock:
            self.task_state = msg
            self.task_state_count += 1

    # ---- helpers
    def wait(self, predicate: Any, timeout: float, what: str) -> None:
        """Poll ``predicate`` until true; ``TimeoutError`` naming ``what`` (and the node log) otherwise."""
        deadline = time.monotonic() + timeout
        while not predicate():
            self.graph.check()
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}\n{self.graph.tail()}")
            time.sleep(0.01)

    def call(self, client: Any, request: Any, what: str, timeout: float = 60.0) -> Any:
        """Call a service, waiting for it to appear and answer (``TimeoutError`` otherwise)."""
        deadline = time.monotonic() + timeout
        while not client.wait_for_service(timeout_sec=0.5):
            self.graph.check()
            if time.monotonic() > deadline:
                raise TimeoutError(f"service {what} not available after {timeout:.0f} s\n{self.graph.tail()}")
        future = client.call_async(request)
        self.wait(future.done, timeout, f"the answer of {what}")
        return future.result()

    def send_action_goal(self, client: Any, goal: Any, what: str, on_feedback: Any = None,
                         timeout: float = 60.0) -> Any:
        """Send an action goal, waiting for the server to appear and accept it; the goal handle (``RuntimeError``
        when the server rejects it: the reason is on the server's log and status)."""
        deadline = time.monotonic() + timeout
        while not client.wait_for_server(timeout_sec=0.5):
            self.graph.check()
            if time.monotonic() > deadline:
                raise TimeoutError(f"action {what} not available after {timeout:.0f} s\n{self.graph.tail()}")
        future = client.send_goal_async(goal, feedback_callback=on_feedback)
        self.wait(future.done, timeout, f"{what} to accept the goal")
        handle = future.result()
        if not handle.accepted:
            raise RuntimeError(f"{what} rejected the goal\n{self.graph.tail()}")
        return handle

    def task_state_after(self, t: float, timeout: float = 30.0) -> Any:
        """The first task state stamped at or after sim time ``t`` (waits for it)."""
        def fresh() -> bool:
            with self.lock:
                return self.task_state is not None and stamp_seconds(self.task_state.header.stamp) >= t - 1e-9
        self.wait(fresh, timeout, f"a task state at sim time >= {t:.2f} s")
        with self.lock:
            return self.task_state

    def image_after(self, t: float, timeout: float = 30.0) -> np.ndarray:
        """The first camera frame stamped at or after sim time ``t``."""
        self.wait(lambda: self.image is not None and self.image[0] >= t - 1e-9, timeout,
                  f"a camera frame at sim time >= {t:.2f} s")
        with self.lock:
            return self.image[1].copy()

    def now(self) -> float:
        """The latest sim time heard on /clock."""
        with self.lock:
            return self.clock

    def send_target(self, position: Any, quat: Any = DOWN_QUAT) -> None:
        """Publish an end-effector target to the simulator (as the planner's sim adapter does)."""
        msg = self.types["PoseStamped"]()
        msg.header.frame_id = BASE_FRAME
        msg.pose = pose_msg(position, quat)
        self.target_pub.publish(msg)

    def send_gripper(self, command: str | None, force: float = 0.0) -> None:
        """``close`` (force-limited grasp), ``open`` (move to the full opening, 8 cm) or None (nothing)."""
        if command is None:
            return
        msg = self.types["GripperCommand"]()
        if command == "close":
            msg.width, msg.grasp, msg.force = 0.0, True, float(force)
        elif command == "open":
            msg.width, msg.grasp = MAX_GRIPPER_WIDTH, False
        else:
            raise ValueError(f"gripper command must be 'close' or 'open', got {command!r}")
        self.gripper_pub.publish(msg)

    def close(self) -> None:
        """Stop spinning and leave the graph's domain."""
        import rclpy

        self._spinning = False
        self._spin.join(timeout=10.0)  # the running callback, if any, finishes first
        self.executor.shutdown(timeout_sec=10.0)
        self.reach_goals_cli.destroy()
        self.node.destroy_node()
        rclpy.try_shutdown()

"""Test-only franka_ros2 stand-ins with the real franka_msgs / control_msgs definitions, run as subprocesses.

The interface packages are built for tests only (conftest ``franka_interfaces``); their C libraries are found
through ``LD_LIBRARY_PATH``, which a running process cannot change, so everything importing them runs here, in a
child process started with ``franka_interfaces.env()``. Modes::

    python franka_graph.py fake      # gripper action servers (franka_gripper move/grasp/gripper_action),
                                     # franka_hardware's ErrorRecovery action, FrankaRobotState at 200 Hz
    python franka_graph.py adapter --gripper franka_action|control_msgs --gripper-target NAME --timeout S
                                     # a node with vjepa_planner's RobotAdapter, commanded from stdin
    python franka_graph.py monitor   # RobotErrorMonitor on real FrankaRobotState messages, results as JSON

Protocol: one JSON command per line on stdin (``{"cmd": ...}``; every command is answered with ``{"event":
"ack"}`` once done), one JSON event per line on stdout (goals received, cancels, faults, ...).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from typing import Any

import numpy as np


def emit(event: dict[str, Any]) -> None:
    """One event line on stdout."""
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def _commands(handle: Any) -> None:
    """Run ``handle(cmd)`` for every stdin line until {"cmd": "quit"} or EOF, acknowledging each."""
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        cmd = json.loads(line)
        if cmd["cmd"] == "quit":
            break
        handle(cmd)
        emit({"event": "ack", "cmd": cmd["cmd"]})


def _spin(node: Any, handle: Any) -> int:
    import rclpy
    from rclpy.executors import MultiThreadedExecutor

    executor = MultiThreadedExecutor(num_threads=4)
    executor.add_node(node)
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            executor.spin_once(timeout_sec=0.05)

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    emit({"event": "ready"})
    try:
        _commands(handle)
    finally:
        stop.set()  # no new callbacks; those in flight end before the executor and the node go away
        thread.join(timeout=10.0)
        time.sleep(0.1)
        executor.shutdown(timeout_sec=5.0)
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


# ---- fake franka ----------------------------------------------------------------------------------------------
def run_fake(args: argparse.Namespace) -> int:
    import rclpy
    from control_msgs.action import GripperCommand
    from franka_msgs.action import ErrorRecovery, Grasp, Move
    from franka_msgs.msg import FrankaRobotState
    from rclpy.action import ActionServer, CancelResponse, GoalResponse
    from rclpy.callback_groups import ReentrantCallbackGroup

    rclpy.init()
    node = rclpy.create_node("fake_franka")
    group = ReentrantCallbackGroup()
    lock = threading.Lock()
    behave = {"move": "succeed", "grasp": "succeed", "gripper_action": "succeed", "error_recovery": "succeed"}
    state = {"mode": FrankaRobotState.ROBOT_MODE_MOVE, "current": [], "last_motion": []}

    def goal_fields(name: str, goal: Any) -> dict[str, Any]:
        if name == "grasp":
            return {"width": goal.width, "speed": goal.speed, "force": goal.force,
                    "inner": goal.epsilon.inner, "outer": goal.epsilon.outer}
        if name == "move":
            return {"width": goal.width, "speed": goal.speed}
        if name == "gripper_action":
            return {"position": goal.command.position, "max_effort": goal.command.max_effort}
        return {}

    def make_server(action_type: Any, name: str, path: str) -> ActionServer:
        def on_goal(goal: Any) -> GoalResponse:
            with lock:
                how = behave[name]
            emit({"event": "goal", "action": name, **goal_fields(name, goal)})
            return GoalResponse.REJECT if how == "reject" else GoalResponse.ACCEPT

        def execute(handle: Any) -> Any:
            with lock:
                how = behave[name]
            result = action_type.Result()
            if how == "hang":
                while not handle.is_cancel_requested:
                    time.sleep(0.02)
                emit({"event": "cancel", "action": name})
                handle.canceled()
                return result
            if name == "error_recovery" and how == "succeed":
                with lock:
                    state.update(mode=FrankaRobotState.ROBOT_MODE_IDLE, current=[])
            if hasattr(result, "success"):
                result.success = how == "succeed"
                result.error = "" if how == "succeed" else f"test {how} of {name}"
            if how == "abort":
                handle.abort()
            else:
                handle.succeed()
            return result

        return ActionServer(node, action_type, path, execute, goal_callback=on_goal,
                            cancel_callback=lambda _h: CancelResponse.ACCEPT, callback_group=group)

    ns = args.gripper_namespace.rstrip("/")
    servers = [make_server(Move, "move", f"{ns}/move"), make_server(Grasp, "grasp", f"{ns}/grasp"),
               make_server(GripperCommand, "gripper_action", f"{ns}/gripper_action"),
               make_server(ErrorRecovery, "error_recovery", args.error_recovery_action)]
    pub = node.create_publisher(FrankaRobotState, args.robot_state_topic, 10)

    def publish_state() -> None:
        msg = FrankaRobotState()
        msg.header.stamp = node.get_clock().now().to_msg()
        with lock:
            msg.robot_mode = state["mode"]
            for flag in state["current"]:
                setattr(msg.current_errors, flag, True)
            for flag in state["last_motion"]:
                setattr(msg.last_motion_errors, flag, True)
        pub.publish(msg)

    node.create_timer(1.0 / args.robot_state_hz, publish_state, callback_group=group)

    def handle(cmd: dict[str, Any]) -> None:
        with lock:
            if cmd["cmd"] == "behave":
                behave[cmd["action"]] = cmd["how"]
            elif cmd["cmd"] == "state":
                state.update({k: cmd[k] for k in ("mode", "current", "last_motion") if k in cmd})

    try:
        return _spin(node, handle)
    finally:
        del servers


# ---- RobotAdapter driver --------------------------------------------------------------------------------------
def run_adapter(args: argparse.Namespace) -> int:
    import rclpy

    from vjepa_planner.adapters import GripperSettings, RobotAdapter

    rclpy.init()
    node = rclpy.create_node("adapter_driver")
    adapter = RobotAdapter(node, "crisp", args.gripper, "/adapter_test/target_pose", args.gripper_target,
                           "fr3_link0", gripper_settings=GripperSettings(timeout_s=args.timeout),
                           on_gripper_fault=lambda reason: emit({"event": "fault", "reason": reason}))
    home = np.array([0.5, 0.0, 0.4, np.pi, 0.0, 0.0, 0.0])

    def handle(cmd: dict[str, Any]) -> None:
        if cmd["cmd"] == "send":
            state = home.copy()
            state[6] = float(cmd["closedness"])
            adapter.send(state)
        elif cmd["cmd"] == "wait_server":
            client = adapter._gripper[1] if isinstance(adapter._gripper, tuple) else adapter._gripper
            emit({"event": "server", "ready": bool(client.wait_for_server(timeout_sec=float(cmd["timeout"])))})

    return _spin(node, handle)


# ---- RobotErrorMonitor on real messages -----------------------------------------------------------------------
def run_monitor(_args: argparse.Namespace) -> int:
    from franka_msgs.msg import Errors, FrankaRobotState

    from vjepa_planner.franka_errors import RobotErrorMonitor, set_error_names

    def msg(mode: int = FrankaRobotState.ROBOT_MODE_MOVE, current: tuple[str, ...] = (),
            motion: tuple[str, ...] = ()) -> Any:
        m = FrankaRobotState()
        m.robot_mode = mode
        for flag in current:
            setattr(m.current_errors, flag, True)
        for flag in motion:
            setattr(m.last_motion_errors, flag, True)
        return m

    monitor = RobotErrorMonitor()
    seq = [
        ("moving", msg()),
        ("reflex", msg(FrankaRobotState.ROBOT_MODE_REFLEX, ("cartesian_reflex",), ("cartesian_reflex",))),
        ("reflex again", msg(FrankaRobotState.ROBOT_MODE_REFLEX, ("cartesian_reflex",), ("cartesian_reflex",))),
        ("recovered, old abort kept", msg(FrankaRobotState.ROBOT_MODE_IDLE, (), ("cartesian_reflex",))),
        ("new abort", msg(FrankaRobotState.ROBOT_MODE_MOVE, (), ("joint_velocity_violation",))),
        ("same abort again", msg(FrankaRobotState.ROBOT_MODE_MOVE, (), ("joint_velocity_violation",))),
        ("user stop", msg(FrankaRobotState.ROBOT_MODE_USER_STOPPED)),
        ("guiding", msg(FrankaRobotState.ROBOT_MODE_GUIDING)),
        ("two errors", msg(FrankaRobotState.ROBOT_MODE_MOVE,
                           ("joint_position_limits_violation", "power_limit_violation"))),
    ]
    out = [{"case": name, "fault": monitor.update(m), "active": monitor.active} for name, m in seq]
    all_flags = Errors()
    for name in Errors.get_fields_and_field_types():
        setattr(all_flags, name, True)
    emit({"event": "monitor", "results": out, "n_flags": len(set_error_names(all_flags)),
          "first_monitor_on_fault": RobotErrorMonitor().update(
              msg(FrankaRobotState.ROBOT_MODE_REFLEX, ("cartesian_reflex",), ("cartesian_reflex",)))})
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="mode", required=True)
    f = sub.add_parser("fake")
    f.add_argument("--gripper-namespace", default="/franka_gripper")
    f.add_argument("--error-recovery-action", default="/action_server/error_recovery")
    f.add_argument("--robot-state-topic", default="/franka_robot_state_broadcaster/robot_state")
    f.add_argument("--robot-state-hz", type=float, default=200.0)
    a = sub.add_parser("adapter")
    a.add_argument("--gripper", required=True)
    a.add_argument("--gripper-target", required=True)
    a.add_argument("--timeout", type=float, default=10.0)
    sub.add_parser("monitor")
    args = parser.parse_args(argv)
    return {"fake": run_fake, "adapter": run_adapter, "monitor": run_monitor}[args.mode](args)


if __name__ == "__main__":
    sys.exit(main())

"""`make setup` chooses the right ROS 2 source and is idempotent."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def plan(**env_overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "ROS_DISTRO"}
    env.update(env_overrides)
    out = subprocess.run(["bash", str(ROOT / "scripts" / "setup.sh"), "--print-plan"], env=env, cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def test_sourced_ros_distro_is_used_and_pypi_ros_wheels_are_not_installed():
    p = plan(ROS_DISTRO="jazzy")
    assert p["ros_mode"] == "system"
    assert p["venv_flags"] == "--system-site-packages"
    assert "ros-kilted" not in p["requirements"]


def test_without_ros_the_kilted_wheels_are_installed():
    p = plan()
    assert p["ros_mode"] == "pypi" and "requirements/ros-kilted.txt" in p["requirements"]


def test_second_setup_is_a_fast_no_op():
    """The tree is set up (the test suite runs inside it): setup again must skip every step, also after Python
    wrote bytecode next to the launch files (`ros2 launch` imports them; a clean-clone run without
    PYTHONDONTWRITEBYTECODE rebuilt the workspace because launch/__pycache__ counted as a source change)."""
    probe = ROOT / "launch" / "__pycache__" / "_setup_test_probe.cpython-311.pyc"
    probe.parent.mkdir(exist_ok=True)
    probe.write_bytes(os.urandom(16))  # different in every run
    t0 = time.monotonic()
    try:
        out = subprocess.run(["bash", str(ROOT / "scripts" / "setup.sh")], cwd=ROOT, capture_output=True, text=True,
                             check=True, env={k: v for k, v in os.environ.items() if k != "ROS_DISTRO"}).stdout
    finally:
        probe.unlink(missing_ok=True)
    assert "up to date" in out and "colcon build" not in out.replace("workspace build up to date", "")
    assert time.monotonic() - t0 < 20


def test_ros_wheel_pins_are_a_consistent_kilted_set():
    lines = [ln for ln in (ROOT / "requirements" / "ros-kilted.txt").read_text().splitlines()
             if ln and not ln.startswith("#")]
    assert all("==" in ln for ln in lines), "every ROS wheel must be pinned"
    assert any(ln.startswith("ros-kilted-rclpy==") for ln in lines)
    assert any(ln.startswith("ros-kilted-rmw-fastrtps-cpp==") for ln in lines)
    assert "torch==2.13.0" in (ROOT / "requirements" / "python.txt").read_text()

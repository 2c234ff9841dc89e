"""Shared pytest fixtures for every test directory of vjepa2_ros (root tests/ and ros2_ws/src/*/test/).

ROS 2 node tests get a unique ROS_DOMAIN_ID each, so tests (and CI jobs on one host) never hear each other.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest

# the skip-or-fail rule and the interface workspace cache: tests/_ros2_helpers.py (tests/ is on pytest's
# pythonpath, so tests import it too)
from _ros2_helpers import (
    INTERFACES_HOWTO,
    ROS2_TOOLS_HOWTO,
    InterfaceWorkspace,
    ensure_interface_workspace,
    interface_sources,
    ros2_tools_dir,
    skip_or_fail,
)

from vjepa_core.process import tune_node_process

# Node tests run planner/encoder nodes, their worker threads and probes in this one process: give it the GIL switch
# interval every node process sets in its main (0.1 ms, see vjepa_core.process), or callbacks queue behind the GIL
tune_node_process()

REPO_ROOT = Path(__file__).resolve().parent
FIXTURES = REPO_ROOT / "tests" / "fixtures"

# Fast DDS maps a domain id to UDP ports; ids 1..100 are safe on every platform. Start from the pid so two
# concurrent pytest processes on one host are unlikely to pick the same sequence.
_domain_ids = itertools.cycle(range(1, 101))
for _ in range(os.getpid() % 100):
    next(_domain_ids)


@pytest.fixture
def repo_root() -> Path:
    """The repository root."""
    return REPO_ROOT


@pytest.fixture
def fixtures_dir() -> Path:
    """`tests/fixtures`: reference checkpoints and outputs (read-only; a copy of the reference fixtures, see its
    README), so a clone tests alone."""
    if not FIXTURES.is_dir():
        pytest.fail(f"fixtures not found at {FIXTURES}")
    return FIXTURES


@pytest.fixture
def ros_domain_id(monkeypatch: pytest.MonkeyPatch) -> int:
    """A ROS_DOMAIN_ID unused by other tests of this run, also exported for subprocesses."""
    domain = next(_domain_ids)
    monkeypatch.setenv("ROS_DOMAIN_ID", str(domain))
    monkeypatch.setenv("RMW_IMPLEMENTATION", os.environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp"))
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    return domain


# ---- the real ROS 2 tools (../shared/ros2-tools): launch system, `ros2` CLI, franka/control interfaces ----------
@pytest.fixture(scope="session")
def ros2_cli() -> str:
    """Path of the real ``ros2`` command (with ``launch``/``launch_ros`` importable), else skip (fail in CI)."""
    import importlib.util
    import shutil

    exe = shutil.which("ros2")
    if exe is None or importlib.util.find_spec("launch_ros") is None:
        skip_or_fail(f"the ROS 2 launch system and `ros2` CLI are not installed: {ROS2_TOOLS_HOWTO}")
    return exe


@pytest.fixture(scope="session")
def ros2_tools() -> Path:
    """The ros2-tools directory (``$VJEPA_ROS2_TOOLS`` or ``../shared/ros2-tools``: franka_ros2 / control_msgs
    sources and reference files), else skip (fail in CI)."""
    tools = ros2_tools_dir()
    if tools is None:
        skip_or_fail(f"franka_msgs/control_msgs sources not found (../shared/ros2-tools/src or $VJEPA_ROS2_TOOLS): "
                     f"{INTERFACES_HOWTO}")
    return tools


@pytest.fixture(scope="session")
def franka_interfaces(ros2_tools: Path) -> InterfaceWorkspace:
    """franka_msgs (franka_ros2 jazzy) + control_msgs (jazzy) from ``../shared/ros2-tools/src``, built with colcon
    into ``.test_interfaces/<source hash>/`` (ignored by git) once and reused while the sources do not change."""
    return ensure_interface_workspace(interface_sources(ros2_tools))

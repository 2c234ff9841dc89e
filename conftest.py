"""Shared pytest fixtures for every test directory of vjepa2_ros (root tests/ and ros2_ws/src/*/test/).

ROS 2 node tests get a unique ROS_DOMAIN_ID each, so tests (and CI jobs on one host) never hear each other.
"""

from __future__ import annotations

import itertools
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

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
def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def skip_or_fail(reason: str) -> None:
    """Skip a test that needs something optional, with the reason; under ``CI=true`` fail instead (CI has it all)."""
    if _in_ci():
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(reason)


def ros2_tools_dir() -> Path | None:
    """``$VJEPA_ROS2_TOOLS`` or ``<repo>/../shared/ros2-tools`` when present (sources of the test-only interfaces)."""
    cand = os.environ.get("VJEPA_ROS2_TOOLS") or str(REPO_ROOT / ".." / "shared" / "ros2-tools")
    path = Path(cand).resolve()
    return path if (path / "src").is_dir() else None


@pytest.fixture(scope="session")
def ros2_cli() -> str:
    """Path of the real ``ros2`` command (with ``launch``/``launch_ros`` importable), else skip (fail in CI)."""
    import importlib.util
    import shutil

    exe = shutil.which("ros2")
    if exe is None or importlib.util.find_spec("launch_ros") is None:
        skip_or_fail("the ROS 2 launch system and `ros2` CLI are not installed: run "
                     "`bash ../shared/ros2-tools/install.sh .venv` (or source a ROS 2 distro) to run launch tests")
    return exe


@dataclass(frozen=True)
class InterfaceWorkspace:
    """An install space holding franka_msgs and control_msgs, built for tests only (never installed with the suite).

    ``env()`` is an environment for subprocesses that import them (the generated C libraries are found through
    ``LD_LIBRARY_PATH``, which a running process cannot change, so tests use them from child processes)."""

    install: Path

    def env(self, base: dict | None = None) -> dict:
        env = dict(os.environ if base is None else base)
        for pkg in ("franka_msgs", "control_msgs"):
            prefix = self.install / pkg
            site = next(iter(sorted(prefix.glob("lib/python3*/site-packages"))), prefix / "lib")
            env["PYTHONPATH"] = f"{site}:{env.get('PYTHONPATH', '')}".rstrip(":")
            env["LD_LIBRARY_PATH"] = f"{prefix / 'lib'}:{env.get('LD_LIBRARY_PATH', '')}".rstrip(":")
            env["AMENT_PREFIX_PATH"] = f"{prefix}:{env.get('AMENT_PREFIX_PATH', '')}".rstrip(":")
        return env


@pytest.fixture(scope="session")
def franka_interfaces() -> InterfaceWorkspace:
    """franka_msgs (franka_ros2 jazzy) + control_msgs (jazzy) from ``../shared/ros2-tools/src``, built with colcon
    into ``.test_interfaces/<source hash>/`` (ignored by git) once and reused while the sources do not change."""
    import hashlib
    import shutil
    import subprocess

    tools = ros2_tools_dir()
    if tools is None:
        skip_or_fail("franka_msgs/control_msgs sources not found (../shared/ros2-tools/src or $VJEPA_ROS2_TOOLS)")
    sources = [tools / "src" / "franka_ros2" / "franka_msgs", tools / "src" / "control_msgs" / "control_msgs"]
    digest = hashlib.sha256()
    for src in sources:
        for f in sorted(p for p in src.rglob("*") if p.is_file()):
            digest.update(str(f.relative_to(src.parent)).encode() + f.read_bytes())
    root = REPO_ROOT / ".test_interfaces" / digest.hexdigest()[:16]
    done = root / "install" / ".built"
    if not done.is_file():
        shutil.rmtree(root, ignore_errors=True)
        (root / "src").mkdir(parents=True)
        for src in sources:
            shutil.copytree(src, root / "src" / src.name)
        proc = subprocess.run(
            [sys.executable, "-m", "colcon", "build", "--base-paths", "src", "--event-handlers", "console_direct-",
             "--cmake-args", "-DBUILD_TESTING=OFF", f"-DPython3_EXECUTABLE={sys.executable}"],
            cwd=root, capture_output=True, text=True, timeout=1200)
        if proc.returncode != 0:
            pytest.fail(f"building franka_msgs/control_msgs failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        done.write_text("ok\n")
    return InterfaceWorkspace(root / "install")

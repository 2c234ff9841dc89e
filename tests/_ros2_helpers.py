"""Helpers for ROS 2 tests: the skip-or-fail rule and the cached test-only workspace of franka_msgs / control_msgs
for tests that need the optional real ROS 2 tools (../shared/ros2-tools), and :class:`Spinner`, the one way tests
spin an executor in a thread and stop it cleanly.

An importable module (``tests/`` is on pytest's ``pythonpath``, see pyproject.toml), so the root conftest.py and any
test use the same code without ``from conftest import ...`` (which breaks under a bare ``pytest`` in importlib
mode as soon as a second conftest.py is collected).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
INTERFACE_CACHE = REPO_ROOT / ".test_interfaces"  # git-ignored; a dot-directory, so colcon's crawl never sees it
ROS2_TOOLS_HOWTO = ("run `bash ../shared/ros2-tools/install.sh .venv` (or source a ROS 2 distro) to run launch "
                    "tests")
INTERFACES_HOWTO = ("put ../shared/ros2-tools beside the repository or `export VJEPA_ROS2_TOOLS=<path to "
                    "ros2-tools>`: the franka tests then build franka_msgs/control_msgs from its src/ themselves, once "
                    "(`colcon build --base-paths src --cmake-args -DBUILD_TESTING=OFF` into the git-ignored "
                    ".test_interfaces/, 2-4 minutes; never installed with the suite)")
INTERFACE_PACKAGES = ("franka_msgs", "control_msgs")


def in_ci() -> bool:
    """True when the ``CI`` environment variable says so (1, true, yes)."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def skip_or_fail(reason: str) -> None:
    """Skip a test that needs something optional, with the reason; under ``CI=true`` fail instead (CI has it all)."""
    if in_ci():
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(reason)


def ros2_tools_dir() -> Path | None:
    """``$VJEPA_ROS2_TOOLS`` or ``<repo>/../shared/ros2-tools`` when present (sources of the test-only interfaces)."""
    cand = os.environ.get("VJEPA_ROS2_TOOLS") or str(REPO_ROOT / ".." / "shared" / "ros2-tools")
    path = Path(cand).resolve()
    return path if (path / "src").is_dir() else None


def interface_sources(tools: Path) -> list[Path]:
    """The package directories of franka_msgs (franka_ros2 jazzy) and control_msgs (jazzy) under ``tools/src``."""
    return [tools / "src" / "franka_ros2" / "franka_msgs", tools / "src" / "control_msgs" / "control_msgs"]


def source_key(sources: Sequence[Path]) -> str:
    """16 hex digits of a hash over every file (relative path and bytes) of the ``sources`` directories: the name
    of their cached build, so changed sources get a new build and unchanged ones reuse the old."""
    digest = hashlib.sha256()
    for src in sources:
        for f in sorted(p for p in src.rglob("*") if p.is_file()):
            digest.update(str(f.relative_to(src.parent)).encode() + f.read_bytes())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class InterfaceWorkspace:
    """An install space holding franka_msgs and control_msgs, built for tests only (never installed with the suite).

    ``env()`` is an environment for subprocesses that import them (the generated C libraries are found through
    ``LD_LIBRARY_PATH``, which a running process cannot change, so tests use them from child processes)."""

    install: Path

    def env(self, base: dict | None = None) -> dict:
        """``base`` (default: this process's environment) with the interface packages on PYTHONPATH,
        LD_LIBRARY_PATH and AMENT_PREFIX_PATH."""
        env = dict(os.environ if base is None else base)
        for pkg in INTERFACE_PACKAGES:
            prefix = self.install / pkg
            site = next(iter(sorted(prefix.glob("lib/python3*/site-packages"))), prefix / "lib")
            env["PYTHONPATH"] = f"{site}:{env.get('PYTHONPATH', '')}".rstrip(":")
            env["LD_LIBRARY_PATH"] = f"{prefix / 'lib'}:{env.get('LD_LIBRARY_PATH', '')}".rstrip(":")
            env["AMENT_PREFIX_PATH"] = f"{prefix}:{env.get('AMENT_PREFIX_PATH', '')}".rstrip(":")
        return env


def colcon_build(root: Path) -> None:
    """``colcon build`` of ``root/src`` into ``root/install`` (BUILD_TESTING off: ament_lint is not installed);
    a test failure with colcon's output when it fails."""
    proc = subprocess.run(
        [sys.executable, "-m", "colcon", "build", "--base-paths", "src", "--event-handlers", "console_direct-",
         "--cmake-args", "-DBUILD_TESTING=OFF", f"-DPython3_EXECUTABLE={sys.executable}"],
        cwd=root, capture_output=True, text=True, timeout=1200)
    if proc.returncode != 0:
        pytest.fail(f"building {', '.join(INTERFACE_PACKAGES)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")


def ensure_interface_workspace(sources: Sequence[Path], cache: Path = INTERFACE_CACHE,
                               build: Callable[[Path], None] = colcon_build) -> InterfaceWorkspace:
    """The install space of ``sources`` under ``cache/<source_key>/``: reused when its ``install/.built`` stamp is
    there, else (first use, changed sources, an interrupted build) copied and built afresh with ``build(root)``,
    then stamped."""
    root = cache / source_key(sources)
    done = root / "install" / ".built"
    if not done.is_file():
        shutil.rmtree(root, ignore_errors=True)
        (root / "src").mkdir(parents=True)
        for src in sources:
            shutil.copytree(src, root / "src" / src.name)
        build(root)
        done.parent.mkdir(parents=True, exist_ok=True)
        done.write_text("ok\n")
    return InterfaceWorkspace(root / "install")


class Spinner:
    """Spins ``executor`` in a daemon thread until :meth:`close`.

    close() stops dispatching, joins the thread (callbacks in flight end), then shuts the executor down. Shutting
    an executor down while its thread still spins destroys the guard condition a finishing callback triggers:
    rclpy then raises ``InvalidHandle`` in the spin thread or prints 'never retrieved' errors. Destroy the nodes
    and the context after close()."""

    def __init__(self, executor: Any) -> None:
        self.executor = executor
        self._halt = threading.Event()
        self.thread = threading.Thread(target=self._run, name="test_spinner", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._halt.is_set():
            self.executor.spin_once(timeout_sec=0.05)

    def close(self) -> None:
        """Stop spinning, let the callbacks in flight end, shut the executor down (idempotent)."""
        self._halt.set()
        self.thread.join(5)
        time.sleep(0.1)  # a MultiThreadedExecutor's worker threads finish the callbacks they took
        self.executor.shutdown()

"""Shared pytest fixtures for every test directory of vjepa2_ros (root tests/ and ros2_ws/src/*/test/).

ROS 2 node tests get a unique ROS_DOMAIN_ID each, so tests (and CI jobs on one host) never hear each other.
"""

from __future__ import annotations

import itertools
import os
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

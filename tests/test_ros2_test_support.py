"""The CI plumbing of the optional ROS 2 tools (tests/_ros2_helpers.py, the root conftest's ``ros2_cli``,
``ros2_tools`` and ``franka_interfaces`` fixtures):

- without the tools, launch and franka tests skip with a message saying how to get them; with ``CI=true`` the same
  tests fail instead (run in a child pytest with ``ros2`` taken off PATH and ``VJEPA_ROS2_TOOLS`` pointing nowhere);
- the test-only franka_msgs / control_msgs workspace is built once per source version and reused (a hash-named
  directory with a stamp), and is never part of the suite's own colcon workspace (git-ignored, not listed by the
  `colcon` crawl that `make setup` builds, not in ros2_ws/install).
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from _ros2_helpers import (
    INTERFACE_CACHE,
    INTERFACE_PACKAGES,
    ensure_interface_workspace,
    interface_sources,
    skip_or_fail,
    source_key,
)

ROOT = Path(__file__).resolve().parents[1]
# one test per fixture: ros2_cli (a launch test that needs nothing else), ros2_tools (the franka_bringup reference),
# franka_interfaces (a franka_msgs test)
NEEDS_TOOLS = {
    "tests/test_ros2_launch.py::test_franka_vjepa_passes_only_arguments_franka_bringup_declares":
        "the ROS 2 launch system and `ros2` CLI are not installed: run `bash ../shared/ros2-tools/install.sh .venv`",
    "tests/test_ros2_launch.py::test_standin_declares_exactly_franka_bringups_arguments":
        "franka_msgs/control_msgs sources not found (../shared/ros2-tools/src or $VJEPA_ROS2_TOOLS): put "
        "../shared/ros2-tools beside the repository or `export VJEPA_ROS2_TOOLS=<path to ros2-tools>`",
    "ros2_ws/src/vjepa_planner/test/test_franka_interfaces.py::test_robot_error_monitor_on_real_franka_robot_state":
        "`colcon build --base-paths src --cmake-args -DBUILD_TESTING=OFF`",
}


# ---- skip with a how-to, fail under CI=true ----------------------------------------------------------------------
@pytest.mark.parametrize("ci", ["", "false", "0", "true", "1", "yes", "TRUE"])
def test_skip_or_fail_skips_unless_ci_says_true(monkeypatch, ci):
    monkeypatch.setenv("CI", ci)
    expected = pytest.fail.Exception if ci.lower() in ("true", "1", "yes") else pytest.skip.Exception
    with pytest.raises(expected) as info:
        skip_or_fail("the thing is missing: install it")
    prefix = "CI=true but " if expected is pytest.fail.Exception else ""
    assert str(info.value) == f"{prefix}the thing is missing: install it"


def _without_tools(tmp_path: Path, ci: str | None) -> dict[str, str]:
    """This environment without `ros2` on PATH, with VJEPA_ROS2_TOOLS pointing at an empty directory, CI as given."""
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PATH"] = os.pathsep.join(d for d in env.get("PATH", "").split(os.pathsep)
                                  if d and not (Path(d) / "ros2").exists())
    (tmp_path / "no_tools").mkdir(exist_ok=True)
    env["VJEPA_ROS2_TOOLS"] = str(tmp_path / "no_tools")
    if ci is not None:
        env["CI"] = ci
    return env


def _child_pytest(env: dict[str, str], tmp_path: Path) -> tuple[int, str, dict[str, tuple[str, str]]]:
    """Run the NEEDS_TOOLS tests in a child pytest: its exit status, output, and per test (by name) its outcome
    (skipped / error / failure / passed) with the message, from the child's JUnit XML report."""
    report = tmp_path / f"report_{env.get('CI', 'noci')}.xml"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", f"--junitxml={report}",
                           *NEEDS_TOOLS], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    outcomes = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        kids = [k for k in case if k.tag in ("skipped", "error", "failure")]
        outcomes[case.get("name")] = (kids[0].tag, kids[0].get("message", "")) if kids else ("passed", "")
    return proc.returncode, proc.stdout + proc.stderr, outcomes


def test_tool_tests_skip_with_how_to_get_the_tools_without_ci(tmp_path):
    rc, out, outcomes = _child_pytest(_without_tools(tmp_path, None), tmp_path)
    assert rc == 0, out
    assert sorted(outcomes) == sorted(test.split("::")[1] for test in NEEDS_TOOLS), out
    for test, how_to in NEEDS_TOOLS.items():
        kind, message = outcomes[test.split("::")[1]]
        assert kind == "skipped" and how_to in message, (test, kind, message)


def test_tool_tests_fail_instead_of_skipping_under_ci(tmp_path):
    rc, out, outcomes = _child_pytest(_without_tools(tmp_path, "true"), tmp_path)
    assert rc != 0, out
    assert sorted(outcomes) == sorted(test.split("::")[1] for test in NEEDS_TOOLS), out
    for test, how_to in NEEDS_TOOLS.items():
        kind, message = outcomes[test.split("::")[1]]
        # pytest.fail in a fixture: an error at set-up, never a skip
        assert kind == "error" and "CI=true but " in message and how_to in message, (test, kind, message)


# ---- the test-only interface workspace: cached, never installed --------------------------------------------------
def _sources(tmp_path: Path) -> list[Path]:
    srcs = []
    for name in ("pkg_a", "pkg_b"):
        src = tmp_path / "src" / name
        (src / "msg").mkdir(parents=True)
        (src / "package.xml").write_text(f"<package><name>{name}</name></package>\n")
        (src / "msg" / "A.msg").write_text("int32 a\n")
        srcs.append(src)
    return srcs


def test_interface_workspace_is_built_once_per_source_version(tmp_path):
    sources, cache, builds = _sources(tmp_path), tmp_path / "cache", []

    def build(root: Path) -> None:
        builds.append(root)
        assert sorted(p.name for p in (root / "src").iterdir()) == ["pkg_a", "pkg_b"]  # a copy of the sources
        (root / "install" / "pkg_a").mkdir(parents=True)

    first = ensure_interface_workspace(sources, cache, build)
    assert first.install == cache / source_key(sources) / "install" and len(builds) == 1
    assert (first.install / ".built").is_file()
    # second use: the stamped build is reused, nothing is rebuilt
    assert ensure_interface_workspace(sources, cache, build) == first and len(builds) == 1
    # an interrupted build (no stamp) is redone in the same place
    (first.install / ".built").unlink()
    assert ensure_interface_workspace(sources, cache, build) == first and len(builds) == 2
    # changed sources: a new key, a new build
    (sources[1] / "msg" / "A.msg").write_text("int64 a\n")
    changed = ensure_interface_workspace(sources, cache, build)
    assert changed.install.parent.name == source_key(sources) != first.install.parent.name and len(builds) == 3
    assert ensure_interface_workspace(sources, cache, build) == changed and len(builds) == 3


def test_franka_interfaces_come_from_the_cache_and_are_never_installed(franka_interfaces, ros2_tools):
    sources = interface_sources(ros2_tools)
    # the fixture's workspace is the cached build of these sources, and using it again builds nothing
    assert franka_interfaces.install == INTERFACE_CACHE / source_key(sources) / "install"
    assert (franka_interfaces.install / ".built").is_file()

    def no_build(root: Path) -> None:
        pytest.fail(f"the cached interface workspace was rebuilt in {root}")
    assert ensure_interface_workspace(sources, build=no_build) == franka_interfaces
    for pkg in INTERFACE_PACKAGES:
        assert (franka_interfaces.install / pkg).is_dir(), pkg

    # never installed with the suite: git ignores the cache, `make setup`'s colcon crawl (scripts/setup.sh) lists
    # only this repository's packages, and ros2_ws/install holds none of the interfaces
    ignored = subprocess.run(["git", "check-ignore", "-q", str(franka_interfaces.install / ".built")], cwd=ROOT)
    assert ignored.returncode == 0, f"{franka_interfaces.install} is not ignored by git"
    ours = {ET.parse(p).getroot().findtext("name") for p in [ROOT / "package.xml",
                                                              *(ROOT / "ros2_ws" / "src").glob("*/package.xml")]}
    listed = subprocess.run([sys.executable, "-m", "colcon", "list", "--names-only", "--base-paths", "src", ".."],
                            cwd=ROOT / "ros2_ws", capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert set(listed.stdout.split()) == ours, listed.stdout
    installed = ROOT / "ros2_ws" / "install"
    assert not [pkg for pkg in INTERFACE_PACKAGES if (installed / pkg).exists()]

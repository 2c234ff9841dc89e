"""Issue 14: a passing ``make test`` prints no stray traceback, "... was never retrieved" message or ResourceWarning.
``scripts/check_quiet_output.py`` scans the tee'd pytest output and ``make test`` fails on a noisy run even when
every test passed; pyproject.toml shows ResourceWarnings so that an unclosed file reaches the scan."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "check_quiet_output.py"
QUIET = "........................................ [ 40%]\n....s... [100%]\n48 passed, 1 skipped in 12.3s\n"
NOISE = {
    "traceback": "Exception in thread Thread-3:\nTraceback (most recent call last):\n  File \"x.py\", line 1\n",
    "never_retrieved": "Future exception was never retrieved\nfuture: <Future finished exception=...>\n",
    "resource_warning": "  /x/export.py:12: ResourceWarning: unclosed file <_io.TextIOWrapper name='a.csv'>\n",
}


def scan(tmp_path: Path, text: str) -> subprocess.CompletedProcess:
    log = tmp_path / "pytest.log"
    log.write_text(text)
    return subprocess.run([sys.executable, str(SCRIPT), str(log)], capture_output=True, text=True, timeout=60)


def test_quiet_output_passes(tmp_path):
    res = scan(tmp_path, QUIET)
    assert res.returncode == 0 and not res.stderr


@pytest.mark.parametrize("kind", sorted(NOISE))
def test_each_kind_of_noise_fails_and_is_named(tmp_path, kind):
    res = scan(tmp_path, QUIET.replace("[100%]\n", "[100%]\n" + NOISE[kind]))
    assert res.returncode == 1, res
    offending = next(line for line in NOISE[kind].splitlines() if any(p in line for p in (
        "Traceback (most recent call last)", "was never retrieved", "ResourceWarning")))
    assert "not quiet" in res.stderr and f"line {3 + NOISE[kind].splitlines().index(offending)}: {offending}" in \
        res.stderr, res.stderr


def test_unreadable_log_is_exit_2(tmp_path):
    res = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "missing.log")], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 2 and "cannot read" in res.stderr


def test_resource_warnings_are_shown_to_the_scan():
    section = (ROOT / "pyproject.toml").read_text().split("[tool.pytest.ini_options]", 1)[1].split("\n[", 1)[0]
    assert re.search(r'^filterwarnings\s*=\s*\[[^\]]*"always::ResourceWarning"', section, re.M | re.S), section


FAKE_PYTEST = textwrap.dedent("""\
    import sys
    print("........ [100%]")
    if "noisy" in sys.argv:
        print("Traceback (most recent call last):", file=sys.stderr)
    print("8 passed in 0.1s")
    sys.exit(1 if "failing" in sys.argv else 0)
    """)


@pytest.mark.parametrize(("args", "status"), [("", 0), ("noisy", 2), ("failing", 2)])
def test_make_test_fails_on_noise_even_when_the_tests_pass(tmp_path, args, status):
    """``make test`` itself, with a stand-in pytest (``PYTEST=...``) and ``setup`` taken as done (``-o setup``):
    quiet and passing -> 0; passing but a stray traceback -> make fails; a failing pytest still fails."""
    make = shutil.which("make")
    if make is None:
        pytest.skip("no make")
    fake = tmp_path / "fake_pytest.py"
    fake.write_text(FAKE_PYTEST)
    res = subprocess.run([make, "-s", "-o", "setup", "test", f"PYTEST={sys.executable} {fake}",
                          f"PYTEST_ARGS={args}"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == status, res.stdout + res.stderr
    assert "8 passed" in res.stdout  # the output still reaches the terminal
    if args == "noisy":
        assert "not quiet" in res.stderr

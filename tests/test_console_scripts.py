"""Every console script of the suite is installed and answers --help (DESIGN.md contract)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

SCRIPTS = ["vjepa-export", "vjepa-bench", "vjepa-train", "vjepa-dataset", "vjepa-sim", "vjepa-run"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_help(script):
    path = shutil.which(script)
    assert path, f"{script} is not on PATH (make setup installs the packages in the venv)"
    result = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "usage" in result.stdout.lower()

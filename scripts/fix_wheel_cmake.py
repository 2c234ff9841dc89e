"""Point the CMake exports of the PyPI ROS 2 wheels at this venv's Python and numpy headers.

The `ros-kilted-*` wheels were built in a manylinux container and their exported CMake files hard-code that
container's paths (``/opt/python/cp311-cp311/include/python3.11`` and its numpy include dir). Building our own
interfaces against them fails until those paths name real directories. Rewriting the files in the venv is
idempotent: a second run finds nothing to change.
"""

from __future__ import annotations

import sys
import sysconfig
from pathlib import Path

import numpy

BUILDER_PYTHON_INCLUDE = "/opt/python/cp311-cp311/include/python3.11"
BUILDER_NUMPY_INCLUDE = "/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include"


def fix(prefix: Path) -> int:
    """Rewrite builder paths in every ``*.cmake`` file under ``prefix/share``; return the number changed."""
    replacements = {
        BUILDER_NUMPY_INCLUDE: numpy.get_include(),
        BUILDER_PYTHON_INCLUDE: sysconfig.get_paths()["include"],
    }
    changed = 0
    for path in (prefix / "share").rglob("*.cmake"):
        text = path.read_text(errors="surrogateescape")
        if "/opt/python/cp311-cp311" not in text:
            continue
        for old, new in replacements.items():  # numpy first: it is the longer, more specific path
            text = text.replace(old, new)
        path.write_text(text, errors="surrogateescape")
        changed += 1
    return changed


if __name__ == "__main__":
    venv = Path(sys.argv[1] if len(sys.argv) > 1 else sys.prefix)
    n = fix(venv)
    print(f"[setup] wheel CMake workaround: {n} file(s) rewritten" if n else "[setup] wheel CMake paths already fixed")

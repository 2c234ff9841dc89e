#!/usr/bin/env python3
"""Fail when a test run's terminal output holds a stray traceback, an asyncio "... was never retrieved" message or
a ResourceWarning (issue 14: a passing ``make test`` prints none of them).

    python -m pytest -q 2>&1 | tee LOG; python scripts/check_quiet_output.py LOG

``make test`` runs it on the tee'd pytest output. A test that expects a traceback captures it (capsys, a
subprocess's pipes); what reaches the terminal is stray: a daemon thread dying, an executor shut down under a
running callback, a file left open. pyproject.toml shows every ResourceWarning (``always``), so an unclosed file
appears in pytest's warnings summary and is caught here. Exit status: 0 quiet, 1 noisy (each offending line is
printed with its line number and a little context), 2 unreadable log.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

__all__ = ["PATTERNS", "main", "noisy_lines"]

PATTERNS = ("Traceback (most recent call last)", "was never retrieved", "ResourceWarning")


def noisy_lines(lines: Iterable[str]) -> list[tuple[int, str]]:
    """``(line number, line)`` of every line holding one of :data:`PATTERNS` (1-based)."""
    return [(i, line.rstrip("\n")) for i, line in enumerate(lines, 1) if any(p in line for p in PATTERNS)]


def main(argv: list[str] | None = None) -> int:
    """Scan the log named in ``argv`` (``-`` or nothing: stdin); see the module docstring for the exit status."""
    args = sys.argv[1:] if argv is None else argv
    name = args[0] if args else "-"
    try:
        text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        print(f"check_quiet_output: cannot read {name}: {exc}", file=sys.stderr)
        return 2
    lines = text.splitlines()
    hits = noisy_lines(lines)
    if not hits:
        return 0
    print(f"check_quiet_output: the test output ({name}) is not quiet: {len(hits)} line(s) with "
          f"{' / '.join(repr(p) for p in PATTERNS)}:", file=sys.stderr)
    for i, line in hits[:20]:
        context = lines[i - 1: i + 3]
        print(f"  line {i}: {line}", file=sys.stderr)
        for extra in context[1:]:
            print(f"           {extra}", file=sys.stderr)
    if len(hits) > 20:
        print(f"  ... and {len(hits) - 20} more", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())

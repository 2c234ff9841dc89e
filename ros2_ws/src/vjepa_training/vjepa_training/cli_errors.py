"""How ``vjepa-train`` and ``vjepa-dataset`` end on failure: one line on stderr naming the problem, a non-zero exit.

Bad input (a missing data source, an unreadable or corrupt checkpoint, bag or cache, a config conflict) raises
one of the suite's error types, all ``ValueError``/``OSError``/``CheckpointError`` subclasses: the command prints
``<prog>: error: <message>`` and exits with the status the caller chose for bad input. Anything else is a bug:
``<prog>: internal error: <type>: <message> (rerun with --debug ...)``, exit 1. ``--debug`` or ``VJEPA_DEBUG=1``
lets every exception propagate with its traceback instead.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

__all__ = ["DEBUG_ENV", "debug_requested", "error_line", "run_guarded"]

DEBUG_ENV = "VJEPA_DEBUG"


def debug_requested(flag: bool = False) -> bool:
    """True with ``--debug`` or ``VJEPA_DEBUG`` set to anything but empty/0."""
    return bool(flag) or os.environ.get(DEBUG_ENV, "").strip() not in ("", "0")


def error_line(exc: BaseException) -> str:
    """The exception's message on one line (multi-line messages, e.g. lists of mismatched keys, joined by "; ")."""
    text = str(exc).strip()
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}"
    parts = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return "; ".join(parts) if parts else type(exc).__name__


def _expected_types() -> tuple[type[BaseException], ...]:
    types: tuple[type[BaseException], ...] = (ValueError, OSError, FloatingPointError)
    ckpt = sys.modules.get("vjepa_core.checkpoint")  # not imported: nothing raised a CheckpointError (no torch import)
    return types + (ckpt.CheckpointError,) if ckpt is not None else types


def run_guarded(prog: str, fn: Callable[[], int], *, debug: bool = False,
                expected: tuple[type[BaseException], ...] = (),
                status: Callable[[BaseException], int] | None = None) -> int:
    """Run ``fn`` and turn any exception into one ``<prog>: error: ...`` line on stderr and an exit status.

    Bad-input errors are ``ValueError``, ``OSError``, ``FloatingPointError``, ``CheckpointError`` and the
    ``expected`` types; ``status(exc)`` gives their exit status (default 2). Unexpected exceptions
    (bugs) exit 1 with a hint to rerun with ``--debug``. Ctrl-C exits 130. With ``debug`` (or ``VJEPA_DEBUG=1``)
    exceptions propagate unchanged, traceback and all.
    """
    if debug_requested(debug):
        return fn()
    try:
        return fn()
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except _expected_types() + tuple(expected) as exc:
        print(f"{prog}: error: {error_line(exc)}", file=sys.stderr)
        return status(exc) if status is not None else 2
    except Exception as exc:  # a bug: say so in one line, the traceback is one flag away
        print(f"{prog}: internal error: {type(exc).__name__}: {error_line(exc)} (rerun with --debug or "
              f"{DEBUG_ENV}=1 for the traceback)", file=sys.stderr)
        return 1

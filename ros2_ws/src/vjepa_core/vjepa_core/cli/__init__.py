"""Command-line tools of vjepa_core: ``vjepa-export`` and ``vjepa-bench``."""

from __future__ import annotations

"""Shared pytest fixtures for vjepa_core: where the ground-truth fixtures live, and a quiet torch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)  # the CI box has 2 cores shared with other jobs


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """``<repo>/tests/fixtures`` (repo root = parents[4] of this file's directory entries)."""
    d = Path(__file__).resolve().parents[4] / "tests" / "fixtures"
    assert d.is_dir(), f"fixtures not found at {d}"
    return d

"""Safety limits: each rule on its own, and random actions from random states never leave the limits."""

from __future__ import annotations

import numpy as np
import pytest

from vjepa_planner.safety import (
    SafetyFault,
    SafetyLimits,
    check_finite,
    check_fresh,
    check_model,
    clamp_to_workspace,
    clip_action,
    make_safe_command,
)

LIMITS = SafetyLimits()
HOME = np.array([0.5, 0.0, 0.4, np.pi, 0.0, 0.0, 0.0])


def test_per_axis_position_and_rotation_clipping_is_reported():
    out, why = clip_action([0.2, -0.01, -0.3, 1.0, 0.0, -0.1, 2.0], LIMITS)
    np.testing.assert_allclose(out, [0.05, -0.01, -0.05, 0.25, 0.0, -0.1, 1.0])
    assert [w.split()[0] for w in why] == ["dx", "dz", "droll", "dgripper"]


def test_workspace_clamp():
    out, why = clamp_to_workspace([1.5, 0.0, -0.2], LIMITS)
    np.testing.assert_allclose(out, [0.80, 0.0, 0.02])
    assert len(why) == 2


@pytest.mark.parametrize("bad", [[np.nan] + [0.0] * 6, [np.inf] + [0.0] * 6, [0.0] * 6])
def test_non_finite_or_short_pose_is_a_fault(bad):
    with pytest.raises(SafetyFault):
        check_finite(bad)
    with pytest.raises(SafetyFault):
        make_safe_command(bad, np.zeros(7), LIMITS)


def test_nan_action_is_a_fault():
    with pytest.raises(SafetyFault, match="finite"):
        make_safe_command(HOME, [np.nan, 0, 0, 0, 0, 0, 0], LIMITS)


def test_freshness_and_model_checks():
    assert check_fresh(10.0, 10.5, 1.0, "pose") == pytest.approx(0.5)
    with pytest.raises(SafetyFault, match="stale"):
        check_fresh(10.0, 11.5, 1.0, "pose")
    with pytest.raises(SafetyFault, match="no latent"):
        check_fresh(None, 11.5, 1.0, "latent")
    with pytest.raises(SafetyFault, match="future"):
        check_fresh(20.0, 11.5, 1.0, "pose")
    check_model("a@1", "a@1")
    check_model("a@1", "")
    with pytest.raises(SafetyFault, match="expects"):
        check_model("a@1", "b@2")


def test_random_actions_never_violate_limits():
    rng = np.random.default_rng(0)
    lo, hi = np.array(LIMITS.workspace_min), np.array(LIMITS.workspace_max)
    for _ in range(2000):
        state = HOME.copy()
        state[:3] = rng.uniform(lo - 0.2, hi + 0.2)  # sometimes outside the box already
        state[6] = rng.uniform(0, 1)
        action = rng.normal(0, 0.5, size=7)
        cmd = make_safe_command(state, action, LIMITS)
        step = cmd.target_state[:3] - state[:3]
        assert np.all(np.abs(step) <= LIMITS.max_position_step + 1e-12)
        inside_before = np.all((state[:3] >= lo) & (state[:3] <= hi))
        if inside_before:
            assert np.all(cmd.target_state[:3] >= lo - 1e-12) and np.all(cmd.target_state[:3] <= hi + 1e-12)
        else:  # never moves further out of the box
            dist = lambda p: np.linalg.norm(np.maximum(lo - p, 0) + np.maximum(p - hi, 0))  # noqa: E731
            assert dist(cmd.target_state[:3]) <= dist(state[:3]) + 1e-12
        assert 0.0 <= cmd.target_state[6] <= 1.0


def test_stamps_in_the_future_beyond_the_tolerance_are_refused():
    """A clock mismatch must not make data look fresh: more than max_future_s ahead is a fault (the old check
    allowed up to max_age ahead)."""
    assert check_fresh(10.3, 10.0, 1.0, "pose", max_future_s=0.5) == pytest.approx(-0.3)
    with pytest.raises(SafetyFault, match=r"0\.80 s in the future"):
        check_fresh(10.8, 10.0, 1.0, "pose", max_future_s=0.5)
    with pytest.raises(SafetyFault, match="future"):
        check_fresh(10.6, 10.0, 1.0, "pose")  # default tolerance 0.5 s
    with pytest.raises(ValueError, match="max_future_stamp_s"):
        SafetyLimits(max_future_stamp_s=-0.1)


def test_invalid_limits_are_rejected():
    with pytest.raises(ValueError, match="below"):
        SafetyLimits(workspace_min=(1, 0, 0), workspace_max=(0, 1, 1))
    with pytest.raises(ValueError):
        SafetyLimits(max_position_step=0)

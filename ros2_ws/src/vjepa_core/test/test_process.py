"""vjepa_core.process: the GIL switch interval every inferring node's process sets (issue 14: ~/stop answered in
seconds while a plan ran because the planning thread and the executor waited 5 ms per GIL hand-over)."""

from __future__ import annotations

import sys

import pytest

from vjepa_core.process import NODE_SWITCH_INTERVAL_S, SWITCH_INTERVAL_ENV, node_switch_interval, tune_node_process


def test_default_is_a_tenth_of_a_millisecond():
    assert node_switch_interval({}) == NODE_SWITCH_INTERVAL_S == 1e-4
    assert node_switch_interval({SWITCH_INTERVAL_ENV: "  "}) == NODE_SWITCH_INTERVAL_S


def test_the_environment_overrides_in_milliseconds():
    assert node_switch_interval({SWITCH_INTERVAL_ENV: "5"}) == pytest.approx(0.005)
    assert node_switch_interval({SWITCH_INTERVAL_ENV: "0.5"}) == pytest.approx(0.0005)


@pytest.mark.parametrize("text", ["fast", "0", "-1", "nan", "inf"])
def test_bad_values_are_refused_with_the_variable_named(text):
    with pytest.raises(ValueError, match=SWITCH_INTERVAL_ENV):
        node_switch_interval({SWITCH_INTERVAL_ENV: text})


def test_tune_sets_the_interpreter_interval(monkeypatch):
    before = sys.getswitchinterval()
    try:
        monkeypatch.setenv(SWITCH_INTERVAL_ENV, "2")
        assert tune_node_process() == pytest.approx(0.002)
        assert sys.getswitchinterval() == pytest.approx(0.002)
    finally:
        sys.setswitchinterval(before)

"""encoder_node's declared parameter defaults are the values in config/perception.yaml: one set of defaults, so the
node started bare and the node started from the params file (launch, vjepa-run) behave the same."""

from __future__ import annotations

from pathlib import Path

import yaml

from vjepa_perception.encoder_node import PARAMETERS

CONFIG = Path(__file__).resolve().parents[4] / "config" / "perception.yaml"


def test_declared_defaults_equal_the_config_file():
    params = yaml.safe_load(CONFIG.read_text())["encoder_node"]["ros__parameters"]
    assert set(params) == set(PARAMETERS), f"keys differ: {sorted(set(params) ^ set(PARAMETERS))}"
    differing = {name: (PARAMETERS[name][0], value) for name, value in params.items()
                 if (type(PARAMETERS[name][0]), PARAMETERS[name][0]) != (type(value), value)}
    assert not differing, f"declared default vs perception.yaml: {differing}"

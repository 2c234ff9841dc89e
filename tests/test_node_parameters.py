"""The parameter files in config/ and the parameters the nodes declare agree: no typo'd key is silently ignored,
every declared parameter has a description and a default in its config file, and the two defaults are equal."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from vjepa_perception.action_node import PARAMETERS as ACTION
from vjepa_perception.encoder_node import PARAMETERS as ENCODER
from vjepa_planner.planner_node import PARAMETERS as PLANNER

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("config", "node", "declared"),
                         [("perception.yaml", "encoder_node", ENCODER), ("planner.yaml", "planner_node", PLANNER),
                          ("action.yaml", "action_node", ACTION)])
def test_config_file_matches_declared_parameters(config, node, declared):
    params = yaml.safe_load((ROOT / "config" / config).read_text())[node]["ros__parameters"]
    assert set(params) <= set(declared), f"unknown keys in {config}: {sorted(set(params) - set(declared))}"
    missing = set(declared) - set(params)
    assert not missing, f"{config} lacks defaults for {sorted(missing)}"
    for name, (default, description) in declared.items():
        assert description and len(description) > 10, f"{node}.{name} has no useful description"
        if name in params:
            assert type(params[name]) is type(default) or (isinstance(default, float) and
                                                          isinstance(params[name], (int, float))), (
                f"{config}: {name} is {type(params[name]).__name__}, node declares {type(default).__name__}")
            assert params[name] == default, (
                f"{config}: {name} = {params[name]!r} but the node's default is {default!r} (one value, two places)")

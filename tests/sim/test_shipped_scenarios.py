"""The scenarios shipped in simulations/ parse, and the default one builds its workload."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoscaler.sim.experiment import build_trace
from autoscaler.sim.policies import NAMES
from autoscaler.sim.scenario import default_scenario_path, load_scenario

SHIPPED = sorted(default_scenario_path().parent.glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_scenario_parses(path: Path) -> None:
    scenario = load_scenario(path)
    assert scenario.policies == NAMES


def test_default_scenario_is_an_hour_of_realistic_load() -> None:
    path = default_scenario_path()
    trace = build_trace(load_scenario(path), base_dir=path.parent)
    assert 3500 < trace.duration_s <= 3600
    assert 10 <= trace.mean_rate <= 40
    assert trace.has_hashes

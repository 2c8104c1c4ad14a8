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
    if any(scenario.cluster.minimum(phase) == 0 for phase in scenario.mode.phases):
        # Scale to zero: WVA and Dynamo's planner refuse a minimum of 0 replicas.
        assert scenario.policies == tuple(n for n in NAMES if n not in ("wva", "dynamo"))
    else:
        assert scenario.policies == NAMES


def test_default_scenario_is_half_an_hour_at_cluster_scale() -> None:
    """Azure conversation's 5.5 req/s scaled about 20x: tens of replicas' worth, with prefix hashes."""
    path = default_scenario_path()
    trace = build_trace(load_scenario(path), base_dir=path.parent)
    assert 1700 < trace.duration_s <= 1800
    assert 100 <= trace.mean_rate <= 160
    assert trace.has_hashes

"""The capacity model and the simulator agree on the fewest fixed replicas that meet the SLO (within one)."""

from __future__ import annotations

import pytest

from autoscaler.config.profiles import load_profile
from autoscaler.core.phases import ServingMode
from autoscaler.core.slo import LatencyTarget, Slo
from autoscaler.sim.agreement import compare

PROFILE = load_profile("llama-3.1-8b/h100-tp1")
SLO = Slo(ttft=LatencyTarget(1.0), itl=LatencyTarget(0.03))


@pytest.mark.parametrize("mode", list(ServingMode), ids=lambda m: m.value)
def test_fewest_replicas_agree_within_one(mode: ServingMode) -> None:
    points = compare(PROFILE, SLO, mode=mode, rates=[30.0, 90.0], duration_s=90.0)
    disagreements = [p for p in points if not p.agrees]
    assert not disagreements, disagreements

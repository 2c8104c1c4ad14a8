"""The clairvoyant is a measured run: its counts grow from the floor where the simulator says the SLO is
missed, never past the maximum, and it reports the windows it could not bring within the SLO."""

from __future__ import annotations

import numpy as np
import pytest

from autoscaler.config.profiles import load_profile
from autoscaler.core.phases import Phase
from autoscaler.sim.experiment import build_trace, run_clairvoyant
from autoscaler.sim.feasibility import feasibility
from autoscaler.sim.lower_bound import lower_bound
from autoscaler.sim.scenario import Scenario


def _scenario(rate: float, maximum: int) -> Scenario:
    return Scenario.model_validate(
        {
            "name": "clairvoyant",
            "seed": 5,
            "slo": {"ttft_s": 1.0, "itl_s": 0.03},
            "workload": {
                "kind": "synthetic",
                "duration_s": 180,
                "lengths": "azure-conversation",
                "arrivals": {"kind": "poisson", "rate": rate},
            },
            "cluster": {
                "initial_replicas": {"prefill": 1, "decode": 1},
                "max_replicas": {"prefill": maximum, "decode": maximum},
            },
            "router": "least-loaded",
        }
    )


@pytest.mark.parametrize(
    ("rate", "maximum", "all_met"),
    [(20.0, 8, True), (60.0, 1, False)],
    ids=[
        "room to grow: every window meets the SLO",
        "capped at one replica: misses reported, never exceeded",
    ],
)
def test_clairvoyant_respects_the_maximum_and_reports_misses(
    rate: float, maximum: int, all_met: bool
) -> None:
    scenario = _scenario(rate, maximum)
    trace = build_trace(scenario, base_dir=None)
    profile = load_profile(scenario.profile)
    slo = scenario.slo.build()
    feasible = feasibility(trace, profile=profile, slo=slo, mode=scenario.mode)
    floor = lower_bound(
        trace,
        profile=profile,
        slo=slo,
        mode=scenario.mode,
        cached_tokens=np.zeros(len(trace), dtype=np.int64),
        min_replicas={p: 1 for p in scenario.mode.phases},
        max_replicas={p: maximum for p in scenario.mode.phases},
    )
    result = run_clairvoyant(scenario, trace=trace, floor=floor, feasible=feasible)
    for phase in (Phase.PREFILL, Phase.DECODE):
        counts = np.array(result.policy.replicas[phase])
        assert counts.max() <= maximum
        assert (counts >= floor.replicas[phase]).all()
        timeline = result.run.timeline
        assert (timeline.ready[phase] + timeline.starting[phase]).max() <= maximum
        assert not timeline.starting[phase].any()  # its replicas are ready the moment they are asked for
    assert (result.windows_met == result.windows_judged) is all_met
    assert 1 <= result.runs <= 6

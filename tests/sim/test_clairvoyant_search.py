"""The clairvoyant is a measured run: its counts grow from the floor where the simulator says the SLO is
missed, never past the maximum, and it reports the windows it could not bring within the SLO. Its counts
replayed at the cluster's real start-up times show what its attainment owes to starting replicas at once."""

from __future__ import annotations

import numpy as np
import pytest

from autoscaler.config.profiles import load_profile
from autoscaler.core.phases import Phase
from autoscaler.core.slo import Slo
from autoscaler.sim.clairvoyant import ClairvoyantResult
from autoscaler.sim.driver import RunResult
from autoscaler.sim.experiment import build_trace, run_clairvoyant, run_clairvoyant_real_startup
from autoscaler.sim.feasibility import feasibility
from autoscaler.sim.lower_bound import LowerBound, lower_bound
from autoscaler.sim.scenario import Scenario


def _scenario(rate: float, maximum: int, *, step_to: float | None = None) -> Scenario:
    arrivals: dict[str, object] = {"kind": "poisson", "rate": rate}
    if step_to is not None:
        arrivals = {"kind": "steps", "base_rate": rate, "changes": [[120, step_to]]}
    return Scenario.model_validate(
        {
            "name": "clairvoyant",
            "seed": 5,
            "slo": {"ttft_s": 1.0, "itl_s": 0.03},
            "workload": {
                "kind": "synthetic",
                "duration_s": 180,
                "lengths": "azure-conversation",
                "arrivals": arrivals,
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
    result, floor = _search(_scenario(rate, maximum), maximum)
    for phase in (Phase.PREFILL, Phase.DECODE):
        counts = np.array(result.policy.replicas[phase])
        assert counts.max() <= maximum
        assert (counts >= floor.replicas[phase]).all()
        timeline = result.run.timeline
        assert (timeline.ready[phase] + timeline.starting[phase]).max() <= maximum
        assert not timeline.starting[phase].any()  # its replicas are ready the moment they are asked for
    assert (result.windows_met == result.windows_judged) is all_met
    assert 1 <= result.runs <= 6


def _search(scenario: Scenario, maximum: int) -> tuple[ClairvoyantResult, LowerBound]:
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
    return run_clairvoyant(scenario, trace=trace, floor=floor, feasible=feasible), floor


def _attainment(run: RunResult, slo: Slo) -> float:
    met = run.finished & (run.ttft_s <= slo.ttft.seconds) & (run.itl_s <= slo.itl.seconds)
    return float(met.mean())


@pytest.mark.parametrize(
    ("step_to", "loses"),
    [(None, False), (60.0, True)],
    ids=["steady load: nothing to start, the same attainment", "a 3x step: the start-ups cost attainment"],
)
def test_the_clairvoyants_counts_at_real_start_up_lose_what_instant_starts_hid(
    step_to: float | None, loses: bool
) -> None:
    scenario = _scenario(20.0, 8, step_to=step_to)
    result, _ = _search(scenario, 8)
    replay = run_clairvoyant_real_startup(
        scenario, trace=build_trace(scenario, base_dir=None), schedule=result.policy, window_s=60.0
    )
    slo = scenario.slo.build()
    asked = {p: replay.timeline.ready[p] + replay.timeline.starting[p] for p in (Phase.PREFILL, Phase.DECODE)}
    assert all(asked[p].max() == max(result.policy.replicas[p]) for p in asked)  # the same counts asked
    assert any(replay.timeline.starting[p].any() for p in asked) is loses  # ... but they take time to start
    instant, real = _attainment(result.run, slo), _attainment(replay, slo)
    if loses:
        assert real < instant - 0.05
    else:
        assert real == pytest.approx(instant, abs=0.01)

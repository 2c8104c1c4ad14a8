"""The model oracle runs, in every window, the replicas the capacity model sizes for that window's load."""

from __future__ import annotations

import numpy as np
import pytest

from autoscaler.capacity.load import Load
from autoscaler.capacity.plan import plan
from autoscaler.core.phases import Phase, ServingMode
from autoscaler.core.slo import Slo
from autoscaler.profiles.schema import Profile
from autoscaler.sim.oracle import oracle
from autoscaler.sim.workloads.trace import Trace


def _bounds(mode: ServingMode, low: int = 1, high: int = 32) -> dict[str, dict[Phase, int]]:
    return {
        "min_replicas": {p: low for p in mode.phases},
        "max_replicas": {p: high for p in mode.phases},
    }


def _steady(rate: float, duration: float) -> Trace:
    arrivals = np.arange(0.0, duration, 1.0 / rate)
    n = arrivals.size
    return Trace(name="steady", arrival_s=arrivals, prompt_tokens=[1000] * n, output_tokens=[200] * n)


def test_steady_load_costs_the_planned_replicas_for_the_whole_span(profile: Profile, slo: Slo) -> None:
    trace = _steady(20.0, 600.0)
    mode = ServingMode.DISAGGREGATED
    bound = oracle(
        trace, profile=profile, slo=slo, mode=mode, prefix_hit_rate=0.0, window_s=60.0, **_bounds(mode)
    )
    load = Load.of(rate=20.0, prompt_tokens=1000.0, output_tokens=200.0, prompt_cv=0.0)
    gpus = plan(profile, load, slo, mode).gpus
    assert bound.gpu_hours == pytest.approx(gpus * trace.duration_s / 3600.0)


def test_more_load_never_costs_less(profile: Profile, slo: Slo) -> None:
    mode = ServingMode.DISAGGREGATED
    low = oracle(
        _steady(5.0, 600.0), profile=profile, slo=slo, mode=mode, prefix_hit_rate=0.0, **_bounds(mode)
    )
    high = oracle(
        _steady(80.0, 600.0), profile=profile, slo=slo, mode=mode, prefix_hit_rate=0.0, **_bounds(mode)
    )
    assert high.gpu_hours > low.gpu_hours


def test_empty_windows_keep_the_minimum(profile: Profile, slo: Slo) -> None:
    trace = Trace(name="two", arrival_s=[0.0, 600.0], prompt_tokens=[100, 100], output_tokens=[10, 10])
    mode = ServingMode.AGGREGATED
    bound = oracle(trace, profile=profile, slo=slo, mode=mode, prefix_hit_rate=0.0, **_bounds(mode))
    assert bound.replicas[Phase.AGGREGATED].min() == 1.0
    assert bound.gpu_hours == pytest.approx(600.0 / 3600.0)


def test_the_model_oracle_stays_within_the_maximum(profile: Profile, slo: Slo) -> None:
    mode = ServingMode.DISAGGREGATED
    bound = oracle(
        _steady(200.0, 300.0),
        profile=profile,
        slo=slo,
        mode=mode,
        prefix_hit_rate=0.0,
        **_bounds(mode, high=2),
    )
    assert all(r.max() <= 2 for r in bound.replicas.values())


def test_infeasible_requests_leave_the_model_oracle_finite(profile: Profile, slo: Slo) -> None:
    """A 100k-token prompt cannot meet a 2 s TTFT: sized over the feasible requests, the oracle is finite."""
    trace = Trace(
        name="one-long",
        arrival_s=[0.0, 30.0, 60.0],
        prompt_tokens=[100, 100_000, 100],
        output_tokens=[10, 10, 10],
    )
    mode = ServingMode.DISAGGREGATED
    feasible = np.array([True, False, True])
    bound = oracle(
        trace, profile=profile, slo=slo, mode=mode, prefix_hit_rate=0.0, feasible=feasible, **_bounds(mode)
    )
    assert np.isfinite(bound.gpu_hours) and bound.gpu_hours > 0

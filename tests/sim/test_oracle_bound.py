"""The oracle runs, in every window, exactly the replicas the capacity model sizes for that window's load."""

from __future__ import annotations

import numpy as np
import pytest

from autoscaler.capacity.load import Load
from autoscaler.capacity.plan import plan
from autoscaler.core.phases import ServingMode
from autoscaler.core.slo import Slo
from autoscaler.profiles.schema import Profile
from autoscaler.sim.oracle import oracle
from autoscaler.sim.workloads.trace import Trace


def _steady(rate: float, duration: float) -> Trace:
    arrivals = np.arange(0.0, duration, 1.0 / rate)
    n = arrivals.size
    return Trace(name="steady", arrival_s=arrivals, prompt_tokens=[1000] * n, output_tokens=[200] * n)


def test_steady_load_costs_the_planned_replicas_for_the_whole_span(profile: Profile, slo: Slo) -> None:
    trace = _steady(20.0, 600.0)
    mode = ServingMode.DISAGGREGATED
    bound = oracle(trace, profile=profile, slo=slo, mode=mode, prefix_hit_rate=0.0, window_s=60.0)
    load = Load.of(rate=20.0, prompt_tokens=1000.0, output_tokens=200.0, prompt_cv=0.0)
    gpus = plan(profile, load, slo, mode).gpus
    assert bound.gpu_hours == pytest.approx(gpus * trace.duration_s / 3600.0)


def test_more_load_never_costs_less(profile: Profile, slo: Slo) -> None:
    mode = ServingMode.DISAGGREGATED
    low = oracle(_steady(5.0, 600.0), profile=profile, slo=slo, mode=mode, prefix_hit_rate=0.0)
    high = oracle(_steady(80.0, 600.0), profile=profile, slo=slo, mode=mode, prefix_hit_rate=0.0)
    assert high.gpu_hours > low.gpu_hours


def test_empty_windows_keep_the_minimum(profile: Profile, slo: Slo) -> None:
    trace = Trace(name="two", arrival_s=[0.0, 600.0], prompt_tokens=[100, 100], output_tokens=[10, 10])
    bound = oracle(trace, profile=profile, slo=slo, mode=ServingMode.AGGREGATED, prefix_hit_rate=0.0)
    assert bound.replicas[next(iter(bound.replicas))].min() == 1.0
    assert bound.gpu_hours == pytest.approx(600.0 / 3600.0)

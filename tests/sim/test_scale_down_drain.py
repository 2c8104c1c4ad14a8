"""Scale-down in the simulator follows the controller's actuation model: the count holds while a victim
still serves (and the victim is paid for), marked replicas are revived when demand returns, and a drain that
outlasts its time-out removes the victim and fails what it still served."""

from __future__ import annotations

import math

import numpy as np
import pytest

from autoscaler.core.phases import Phase, ServingMode
from autoscaler.core.slo import Slo
from autoscaler.profiles.schema import Profile
from autoscaler.routing.least_loaded import LeastLoadedPlacer
from autoscaler.sim.driver import RunResult, SimSettings, simulate
from autoscaler.sim.workloads.trace import Trace
from tests.sim.scripted_policy import ScriptedPolicy

A, P, D = Phase.AGGREGATED, Phase.PREFILL, Phase.DECODE
TWO_THEN_ONE = ((0.0, {A: 2}), (20.0, {A: 1}))  # control steps at 30, 60, ...: marked at 30


def _two_long_then_sparse(first_outputs: tuple[int, int]) -> Trace:
    """Two requests at 5 s (one per replica), then short ones every 100 s up to 1000 s (the horizon)."""
    arrivals = [5.0, 5.0, *(float(t) for t in range(100, 1001, 100))]
    outputs = [*first_outputs, *([5] * (len(arrivals) - 2))]
    return Trace(name="drain", arrival_s=arrivals, prompt_tokens=[200] * len(arrivals), output_tokens=outputs)


def _run(
    trace: Trace,
    schedule: tuple[tuple[float, dict[Phase, int]], ...],
    *,
    profile: Profile,
    slo: Slo,
    initial: dict[Phase, int],
    drain_timeout_s: float,
) -> RunResult:
    mode = ServingMode.AGGREGATED if A in initial else ServingMode.DISAGGREGATED
    settings = SimSettings(mode=mode, slo=slo, initial_replicas=initial, drain_timeout_s=drain_timeout_s)
    return simulate(
        trace,
        profile=profile,
        policy=ScriptedPolicy(schedule=schedule),
        placer=LeastLoadedPlacer(),
        settings=settings,
        seed=0,
    )


@pytest.mark.parametrize(
    ("case", "outputs", "schedule", "timeout_s", "paid_beyond_one", "failed", "resizes"),
    [
        # The other request (20 tokens) is done by 30 s: the idle replica is the victim and goes at once.
        ("an idle victim goes in the step that marks it", (4000, 20), TWO_THEN_ONE, 120.0, 30.0, 0, 1),
        # Both serve a 30 s request until 35 s: the count holds at 30 and drops at the step after, 60.
        ("a serving victim is paid for until the count drops", (4000, 4000), TWO_THEN_ONE, 120.0, 60.0, 0, 1),
        # Demand back at 60 s: the mark is lifted, nothing new starts, the count never changed.
        (
            "a marked replica is revived when demand returns",
            (4000, 4000),
            ((0.0, {A: 2}), (20.0, {A: 1}), (50.0, {A: 2})),
            120.0,
            1000.0,
            0,
            0,
        ),
        # Requests of about 68 s: at 60 s the 20 s bound has passed; the victim goes, its request fails.
        ("a drain past its time-out removes the victim", (9000, 9000), TWO_THEN_ONE, 20.0, 60.0, 1, 1),
    ],
)
def test_scale_down_follows_the_controller(
    profile: Profile,
    slo: Slo,
    case: str,
    outputs: tuple[int, int],
    schedule: tuple[tuple[float, dict[Phase, int]], ...],
    timeout_s: float,
    paid_beyond_one: float,
    failed: int,
    resizes: int,
) -> None:
    trace = _two_long_then_sparse(outputs)
    result = _run(trace, schedule, profile=profile, slo=slo, initial={A: 2}, drain_timeout_s=timeout_s)
    assert result.gpu_seconds == pytest.approx(1000.0 + paid_beyond_one), case
    assert int(np.isnan(result.e2e_s).sum()) == failed, case
    assert result.scale_events == resizes, case


def test_a_draining_replica_is_counted_as_current_and_shown_draining(profile: Profile, slo: Slo) -> None:
    trace = _two_long_then_sparse((4000, 4000))
    result = _run(trace, TWO_THEN_ONE, profile=profile, slo=slo, initial={A: 2}, drain_timeout_s=120.0)
    at = {float(t): i for i, t in enumerate(result.timeline.time_s)}
    assert result.timeline.draining[A][at[45.0]] == 1
    assert result.timeline.draining[A][at[75.0]] == 0
    previous = {d.time: d.phases[A].previous for d in result.decisions}
    assert (previous[60.0], previous[90.0]) == (2, 1)  # the policy saw the victim until the count dropped
    (victim,) = (life for life in result.lifetimes if life.gone != math.inf)
    assert (victim.draining_since, victim.gone) == (30.0, 60.0)  # its drain is part of its lifetime
    assert sum(life.seconds(result.horizon_s) for life in result.lifetimes) == result.gpu_seconds


def test_requests_bound_for_a_removed_decode_replica_fail_where_they_wait(profile: Profile, slo: Slo) -> None:
    """200 long prompts queue on the one prefill replica at 29 s; at 30 s one decode replica goes at once
    (no drain time), so the requests bound for it fail, those still queued for prefill included."""
    trace = Trace(name="burst", arrival_s=[29.0] * 200, prompt_tokens=[2000] * 200, output_tokens=[50] * 200)
    schedule = ((0.0, {P: 1, D: 2}), (20.0, {P: 1, D: 1}))
    result = _run(trace, schedule, profile=profile, slo=slo, initial={P: 1, D: 2}, drain_timeout_s=0.0)
    failed = int(np.isnan(result.e2e_s).sum())
    assert 0 < failed <= 100  # the least-loaded placer sent every other request to the removed one
    assert math.isfinite(result.end_s)
    assert np.isfinite(result.e2e_s).sum() == 200 - failed

"""Replica lifecycle: GPU-hours count every replica from asked-for to gone; draining takes no new requests."""

from __future__ import annotations

import pytest

from autoscaler.core.phases import Phase
from autoscaler.core.slo import Slo
from autoscaler.profiles.schema import Profile
from autoscaler.sim.workloads.trace import Trace
from tests.sim.helpers import run
from tests.sim.scripted_policy import ScriptedPolicy


def _sparse_trace(duration: float) -> Trace:
    arrivals = [float(t) for t in range(0, int(duration) + 1, 50)]
    return Trace(
        name="sparse",
        arrival_s=arrivals,
        prompt_tokens=[200] * len(arrivals),
        output_tokens=[5] * len(arrivals),
    )


def test_gpu_hours_count_replicas_from_request_to_removal(profile: Profile, slo: Slo) -> None:
    trace = _sparse_trace(3000)
    one = {Phase.AGGREGATED: 1}
    policy = ScriptedPolicy(schedule=((0.0, one), (100.0, {Phase.AGGREGATED: 3}), (1000.0, one)))
    result = run(trace, profile=profile, slo=slo, policy=policy, initial=one)
    # Control steps fall every 30 s: 120 s asks for two more, 1020 s drains two (idle: gone at once).
    expected = 3000.0 + 2 * (1020.0 - 120.0)
    assert result.gpu_seconds == pytest.approx(expected)
    assert result.scale_events == 2
    assert result.finished.all()


def test_scale_down_before_ready_cancels_the_starting_replica(profile: Profile, slo: Slo) -> None:
    trace = _sparse_trace(1000)
    one = {Phase.AGGREGATED: 1}
    policy = ScriptedPolicy(schedule=((0.0, one), (50.0, {Phase.AGGREGATED: 2}), (80.0, one)))
    result = run(trace, profile=profile, slo=slo, policy=policy, initial=one)
    # Asked for at 60 s, cancelled at 90 s: well inside the 120 s start-up.
    assert result.gpu_seconds == pytest.approx(1000.0 + 30.0)
    assert result.timeline.ready[Phase.AGGREGATED].max() == 1


def test_requests_wait_at_the_router_while_no_replica_is_ready(profile: Profile, slo: Slo) -> None:
    trace = _sparse_trace(1000)
    none = {Phase.AGGREGATED: 0}
    policy = ScriptedPolicy(schedule=((0.0, {Phase.AGGREGATED: 1}),))
    result = run(trace, profile=profile, slo=slo, policy=policy, initial=none)
    assert result.finished.all()
    # The first request waited for the control step at 30 s plus the start-up delay (about 120 s).
    assert result.ttft_s[0] > 60.0


def test_pending_time_is_paid_for_and_shown_as_starting(profile: Profile, slo: Slo) -> None:
    trace = _sparse_trace(1000)
    one = {Phase.AGGREGATED: 1}
    policy = ScriptedPolicy(schedule=((0.0, one), (50.0, {Phase.AGGREGATED: 2}), (400.0, one)))
    result = run(trace, profile=profile, slo=slo, policy=policy, initial=one, pending_delay_s=100.0)
    # Asked for at 60 s, drained (idle) at 420 s: pending and start-up time are paid like serving time.
    assert result.gpu_seconds == pytest.approx(1000.0 + 360.0)
    timeline = result.timeline
    at = {float(t): i for i, t in enumerate(timeline.time_s)}
    assert timeline.starting[Phase.AGGREGATED][at[150.0]] == 1  # still pending
    assert timeline.ready[Phase.AGGREGATED][at[150.0]] == 1
    assert timeline.ready[Phase.AGGREGATED].max() == 2  # ready after 160 s + about 120 s

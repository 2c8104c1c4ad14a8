"""Dynamo SLA planner, throughput mode: profiled throughput, correction factors, GPU budget, interval.

The round test engine prefills 1000 tokens in 0.11 s (9,091 tokens/s per GPU) and decodes a batch of b in
10 ms + 0.1 ms x b; 100,000 KV tokens at a context of 1000 + 200 / 2 hold 90.9 sequences, whose ITL of 19.1 ms
meets a 20 ms target at 4,762 output tokens/s.
"""

from __future__ import annotations

import math

import pytest

from autoscaler.core.decision import Decision, Reason
from autoscaler.core.observation import Observation
from autoscaler.core.phases import Phase
from autoscaler.core.slo import LatencyTarget, Slo
from autoscaler.policy.baselines import DynamoPolicy, DynamoSettings, ReplicaBounds
from tests.policy.baselines.builders import drive, observe, round_profile, signals


def dynamo(*, itl: float = 0.02, budget: int | None = None, correction: bool = True) -> DynamoPolicy:
    bounds = {phase: ReplicaBounds(1, 100) for phase in Phase}
    return DynamoPolicy(
        profile=round_profile(),
        slo=Slo(ttft=LatencyTarget(1.0), itl=LatencyTarget(itl)),
        settings=DynamoSettings(bounds=bounds, max_gpu_budget=budget, correction=correction),
    )


def disagg(
    time: float = 0.0,
    *,
    rate: float | None = 20.0,
    ttft: float | None = 0.11,
    itl: float | None = 0.02,
    decode_ready: int = 1,
) -> Observation:
    return observe(
        time,
        prefill=signals(current=2, rate=rate, ttft=ttft),
        decode=signals(current=decode_ready, rate=rate, itl=itl),
    )


def first(policy: DynamoPolicy, observation: Observation) -> Decision:
    return drive(policy, [observation])[0]


@pytest.mark.parametrize(
    ("rate", "itl_target", "expected"),
    [
        (20.0, 0.02, (3, 1)),
        (50.0, 0.02, (6, 3)),
        (20.0, 0.015, (3, 2)),
        (20.0, 0.005, (3, 41)),
        (0.01, 0.02, (1, 1)),
    ],
    ids=[
        "20 req/s: ceil(20k / 9,091) = 3 prefill, ceil(4k / 4,762) = 1 decode",
        "50 req/s: 6 prefill, 3 decode",
        "15 ms ITL: best grid point 49.6 sequences, 3,315 tokens/s: 2 decode",
        "ITL target below any profiled point: the lowest point (batch 1, 99 tokens/s)",
        "a trickle: min_endpoint 1 each",
    ],
)
def test_sizing_without_correction(rate: float, itl_target: float, expected: tuple[int, int]) -> None:
    decision = first(dynamo(itl=itl_target, correction=False), disagg(rate=rate))
    assert (decision.phases[Phase.PREFILL].replicas, decision.phases[Phase.DECODE].replicas) == expected


@pytest.mark.parametrize(
    ("ttft", "itl", "expected"),
    [
        (0.11, None, (3, 1)),
        (0.055, None, (2, 1)),
        (5.0, None, (3, 1)),
        (0.11, 0.04, (3, 2)),
    ],
    ids=[
        "observed TTFT as profiled: p_cf 1",
        "prefix hits halve TTFT: p_cf 0.5 halves the prefill load",
        "queueing inflates TTFT 45x: min(1, p_cf) adds no prefill (issue #10528)",
        "observed ITL 1.53x the profiled one at 161 sequences: target / d_cf needs 2 decode",
    ],
)
def test_correction_factors(ttft: float, itl: float | None, expected: tuple[int, int]) -> None:
    """Unless stated, the observed ITL equals the profiled one at Little's-law concurrency (d_cf 1)."""
    profiled_itl = itl is None
    if itl is None:
        # ITL = 0.01 + 1e-4 x c with c = 20 req/s x (TTFT + 199 x ITL) on one engine, solved for ITL
        itl = (0.01 + 1e-4 * 20.0 * ttft) / (1 - 1e-4 * 20.0 * 199)
    decision = first(dynamo(), disagg(ttft=ttft, itl=itl))
    got = (decision.phases[Phase.PREFILL].replicas, decision.phases[Phase.DECODE].replicas)
    assert got == expected, decision.phases[Phase.DECODE].message
    assert ("d_cf 1.00" in decision.phases[Phase.DECODE].message) == profiled_itl


def test_gpu_budget_scales_both_phases_proportionally() -> None:
    decision = first(dynamo(budget=8, correction=False), disagg(rate=50.0))
    assert decision.replicas() == {Phase.PREFILL: 5, Phase.DECODE: 3}  # 6 + 3 > 8: round(6 x 8/9) = 5, 8 - 5
    assert decision.notes and "GPU budget 8" in decision.notes[0]


@pytest.mark.parametrize(
    ("rate", "budget", "expected"),
    [(20.0, None, 3), (50.0, None, 6), (50.0, 4, 4)],
    ids=["prefill binds: max(3, 1)", "prefill binds: max(6, 3)", "the budget caps engines at 4"],
)
def test_aggregated_engines_size_by_the_binding_phase(rate: float, budget: int | None, expected: int) -> None:
    observation = observe(0.0, aggregated=signals(current=2, rate=rate, ttft=0.11, itl=0.02))
    decision = first(dynamo(budget=budget, correction=False), observation)
    assert decision.phases[Phase.AGGREGATED].replicas == expected


def test_holds_between_adjustments_of_180_s() -> None:
    decisions = drive(
        dynamo(correction=False), [disagg(0.0), disagg(100.0, rate=50.0), disagg(180.0, rate=50.0)]
    )
    assert [d.replicas()[Phase.PREFILL] for d in decisions] == [3, 2, 6]
    assert decisions[1].phases[Phase.PREFILL].reason == Reason.HOLD_ADJUSTMENT_INTERVAL


@pytest.mark.parametrize(
    "observation",
    [
        disagg(itl=None),
        disagg(ttft=math.nan),
        disagg(rate=None),
        disagg(rate=0.0),
        observe(0.0, prefill=signals(current=2, rate=20.0, prompt=None, ttft=0.1), decode=signals(itl=0.02)),
    ],
    ids=[
        "no ITL",
        "NaN TTFT",
        "no request rate",
        "no requests: NaN means, no scale-down (issue #6985)",
        "no ISL",
    ],
)
def test_missing_metrics_skip_the_adjustment(observation: Observation) -> None:
    decisions = drive(dynamo(), [observation, disagg(100.0)])
    assert decisions[0].replicas() == {Phase.PREFILL: 2, Phase.DECODE: 1}
    assert decisions[0].phases[Phase.PREFILL].reason == Reason.HOLD_MISSING_SIGNALS
    # the interval restarted
    assert decisions[1].phases[Phase.PREFILL].reason == Reason.HOLD_ADJUSTMENT_INTERVAL


def test_minimum_below_one_is_rejected() -> None:
    with pytest.raises(ValueError, match="min_endpoint"):
        DynamoSettings(bounds={Phase.DECODE: ReplicaBounds(0, 4)})

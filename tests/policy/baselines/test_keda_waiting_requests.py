"""KEDA on sum(vllm:num_requests_waiting) with threshold 5 via its HPA; 0 <-> 1 by activation and cooldown."""

from __future__ import annotations

import math

import pytest

from autoscaler.core.decision import Reason
from autoscaler.core.phases import Phase
from autoscaler.policy.baselines import KedaPolicy, KedaSettings, ReplicaBounds
from tests.policy.baselines.builders import drive, observe, signals

BOUNDS = {phase: ReplicaBounds(1, 20) for phase in Phase}


def keda(**overrides: object) -> KedaPolicy:
    return KedaPolicy(KedaSettings(**{"bounds": BOUNDS, **overrides}))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("current", "waiting", "expected", "reason"),
    [
        (3, 40.0, 7, Reason.SCALE_UP_LIMITED),
        (4, 40.0, 8, Reason.SCALE_UP),
        (3, 16.0, 3, Reason.STEADY),
        (3, 13.5, 3, Reason.STEADY),
        (3, 17.0, 4, Reason.SCALE_UP),
        (2, 500.0, 6, Reason.SCALE_UP_LIMITED),
        (3, None, 3, Reason.SCALE_DOWN_STABILIZED),
        (3, math.nan, 3, Reason.SCALE_DOWN_STABILIZED),
    ],
    ids=[
        "3 replicas, 40 waiting: proposes 8, the 15 s rate limit allows 7",
        "4 replicas, 40 waiting: 8",
        "16 waiting on 3 is within tolerance: hold",
        "13.5 waiting on 3 is at the tolerance edge: hold",
        "17 waiting on 3: 4",
        "a burst of 500 on 2: 2 + 4 pods per 15 s",
        "missing queue reads as 0 (ignoreNullValues), the down window holds",
        "NaN queue reads as 0 as well",
    ],
)
def test_first_sync(current: int, waiting: float | None, expected: int, reason: str) -> None:
    [decision] = drive(keda(), [observe(0.0, aggregated=signals(current=current, queue=waiting))])
    got = decision.phases[Phase.AGGREGATED]
    assert (got.replicas, got.reason, got.previous) == (expected, reason, current)


def follow(
    policy: KedaPolicy, waiting: list[float | None], *, current: int, every: float = 15.0
) -> list[int]:
    """Steps every ``every`` seconds; the replica set becomes what the policy asked for (instantly ready)."""
    state = policy.initial_state()
    replicas = []
    for i, queue in enumerate(waiting):
        observation = observe(i * every, aggregated=signals(current=current, queue=queue))
        decision, state = policy.step(observation, state, now=observation.time)
        current = decision.phases[Phase.AGGREGATED].replicas
        replicas.append(current)
    return replicas


def test_scale_down_waits_300_s_after_the_last_high_proposal() -> None:
    replicas = follow(keda(), [40.0] + [0.0] * 20, current=8)
    assert replicas[:20] == [8] * 20  # t = 0 .. 285 s
    assert replicas[20] == 1  # t = 300 s: the window no longer holds the 8


def test_missing_signals_scale_down_to_the_minimum_after_the_window() -> None:
    replicas = follow(keda(), [None] * 21, current=5)
    assert replicas[19] == 5
    assert replicas[20] == 1


def test_steps_between_syncs_hold() -> None:
    replicas = follow(keda(), [40.0, 40.0, 40.0, 40.0], current=3, every=5.0)
    assert replicas == [7, 7, 7, 8]  # t = 0, 5, 10 hold until the next 15 s sync


def test_disaggregated_phases_scale_on_their_own_queues() -> None:
    observation = observe(0.0, prefill=signals(current=2, queue=30.0), decode=signals(current=4, queue=20.0))
    [decision] = drive(keda(), [observation])
    assert decision.replicas() == {Phase.PREFILL: 6, Phase.DECODE: 4}


def zero_to_one(keepalive: bool, steps: list[tuple[float, float | None, float]], current: int) -> list[str]:
    """(time, waiting, arrival rate) steps with minReplicaCount 0; returns 'replicas:reason' per step."""
    bounds = {Phase.AGGREGATED: ReplicaBounds(0, 20)}
    policy = KedaPolicy(KedaSettings(bounds=bounds, keepalive_trigger=keepalive))
    state = policy.initial_state()
    out = []
    for now, waiting, rate in steps:
        observation = observe(now, aggregated=signals(current=current, queue=waiting, rate=rate))
        decision, state = policy.step(observation, state, now=now)
        current = decision.phases[Phase.AGGREGATED].replicas
        out.append(f"{current}:{decision.phases[Phase.AGGREGATED].reason}")
    return out


@pytest.mark.parametrize(
    ("keepalive", "steps", "current", "expected"),
    [
        (False, [(0.0, None, 5.0), (15.0, None, 5.0)], 0, ["0:Inactive", "0:Inactive"]),
        (True, [(0.0, None, 5.0), (15.0, 12.0, 5.0)], 0, ["1:Activated", "3:ScaleUp"]),
        (
            True,
            [(0.0, 0.0, 1.0), (15.0, 0.0, 0.0), (360.0, 0.0, 0.0), (375.0, 0.0, 0.0)],
            1,
            ["1:Steady", "1:ScaleDownStabilized", "1:TooFewReplicas", "0:Deactivated"],
        ),
        (
            True,
            [(0.0, None, 0.0), (5.0, None, 3.0), (15.0, None, 3.0)],
            0,
            ["0:Inactive", "0:ScalingDisabled", "1:Activated"],
        ),
    ],
    ids=[
        "queue trigger alone never wakes a set at 0: no engine, no metric",
        "keep-alive trigger wakes it, then the queue scales it",
        "the HPA stops at 1; KEDA deactivates once 360 s (cooldownPeriod) have passed",
        "traffic between polls waits for the next 15 s poll",
    ],
)
def test_scale_to_and_from_zero(
    keepalive: bool, steps: list[tuple[float, float | None, float]], current: int, expected: list[str]
) -> None:
    assert zero_to_one(keepalive, steps, current) == expected

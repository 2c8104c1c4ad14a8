"""The HPA that KEDA and WVA act through: AverageValue proposals, tolerance, stabilization and rate limits."""

from __future__ import annotations

import pytest

from autoscaler.core.decision import Reason
from autoscaler.policy.baselines import hpa
from autoscaler.policy.baselines.wva import SAMPLE_BEHAVIOR
from autoscaler.policy.bounds import ReplicaBounds

BOUNDS = ReplicaBounds(1, 10)


@pytest.mark.parametrize(
    ("total", "target", "pods", "expected"),
    [
        (40, 5, 3, 8),
        (16, 5, 3, 3),
        (16.5, 5, 3, 3),
        (13.5, 5, 3, 3),
        (10, 5, 3, 2),
        (17, 5, 3, 4),
        (0, 5, 3, 0),
        (7, 5, 0, 2),
        (11, 1, 10, 10),
        (12, 1, 10, 12),
    ],
    ids=[
        "3 pods, 40 waiting: ceil(40 / 5) = 8",
        "ratio 1.07 is within the 10 % band: keep 3",
        "ratio 1.10 is still within the band",
        "ratio 0.90 is still within the band",
        "ratio 0.67: ceil(10 / 5) = 2",
        "ratio 1.13: ceil(17 / 5) = 4",
        "no load proposes 0",
        "no pods yet: no band, ceil(7 / 5) = 2",
        "desired-replicas metric 11 on 10 pods is hidden by the band",
        "desired-replicas metric 12 on 10 pods gets through",
    ],
)
def test_average_value_proposal(total: float, target: float, pods: int, expected: int) -> None:
    assert (
        hpa.average_value_proposal(
            metric_total=total, target_per_replica=target, existing_pods=pods, tolerance=0.1
        )
        == expected
    )


def run(
    steps: list[tuple[float, int]], *, current: int, settings: hpa.HpaSettings | None = None
) -> list[hpa.HpaOutcome]:
    """Reconcile each (time, proposal) in turn; the target follows what the HPA sets."""
    settings = settings or hpa.HpaSettings()
    state = hpa.HpaState()
    outcomes = []
    for now, proposal in steps:
        outcome = hpa.reconcile(
            proposal=proposal, current=current, bounds=BOUNDS, settings=settings, state=state, now=now
        )
        outcomes.append(outcome)
        current, state = outcome.replicas, outcome.state
    return outcomes


@pytest.mark.parametrize(
    ("steps", "current", "expected"),
    [
        ([(0, 8), (15, 8)], 3, [(7, Reason.SCALE_UP_LIMITED), (8, Reason.SCALE_UP)]),
        ([(0, 10), (15, 10)], 1, [(5, Reason.SCALE_UP_LIMITED), (10, Reason.SCALE_UP)]),
        ([(0, 8), (5, 8)], 3, [(7, Reason.SCALE_UP_LIMITED), (7, Reason.HOLD_SYNC_PERIOD)]),
        ([(0, 50)], 8, [(10, Reason.TOO_MANY_REPLICAS)]),
        ([(0, 0), (300, 0)], 1, [(1, Reason.SCALE_DOWN_STABILIZED), (1, Reason.TOO_FEW_REPLICAS)]),
        ([(0, 5)], 0, [(0, Reason.SCALING_DISABLED)]),
        ([(0, 5)], 12, [(10, Reason.TOO_MANY_REPLICAS)]),
    ],
    ids=[
        "scale up: 3 -> 8 limited to max(100 %, 4 pods) = 7 per 15 s, then 8",
        "scale up: 1 -> 10 limited to 1 + 4 = 5, then 10",
        "between syncs the replicas stay put",
        "scale up: capped at maxReplicas",
        "at the minimum, zero load holds: first the window, then minReplicas",
        "scaling disabled at 0 replicas with minReplicas 1",
        "above maxReplicas: back to the maximum without looking at the metric",
    ],
)
def test_reconcile(steps: list[tuple[float, int]], current: int, expected: list[tuple[int, str]]) -> None:
    assert [(o.replicas, o.reason) for o in run(steps, current=current)] == expected


def test_scale_down_waits_for_the_300_s_window() -> None:
    """8 replicas, the load drops at t=15: the highest proposal of the last 300 s (8) holds until t=300."""
    steps = [(0.0, 8)] + [(15.0 * i, 2) for i in range(1, 21)]
    outcomes = run(steps, current=8)
    assert [o.replicas for o in outcomes[:20]] == [8] * 20
    assert {o.reason for o in outcomes[1:20]} == {Reason.SCALE_DOWN_STABILIZED}
    assert (outcomes[20].replicas, outcomes[20].reason) == (2, Reason.SCALE_DOWN)


def test_a_new_hpa_does_not_scale_down_in_its_first_window() -> None:
    """recordInitialRecommendation: the first sync remembers the running replicas as a recommendation."""
    outcomes = run([(0.0, 1), (285.0, 1), (300.0, 1)], current=6)
    assert [o.replicas for o in outcomes] == [6, 6, 1]


def test_wva_sample_behaviour_removes_one_pod_a_minute() -> None:
    settings = hpa.HpaSettings(behavior=SAMPLE_BEHAVIOR)
    steps = [(15.0 * i, 1) for i in range(26)]  # up to t = 375 s
    replicas = {
        now: o.replicas for (now, _), o in zip(steps, run(steps, current=4, settings=settings), strict=True)
    }
    assert replicas[285.0] == 4
    assert replicas[300.0] == 3
    assert replicas[345.0] == 3
    assert replicas[360.0] == 2

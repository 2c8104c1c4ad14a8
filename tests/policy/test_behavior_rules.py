"""HPA-style stabilization and rate limits, table-driven."""

from __future__ import annotations

import pytest

from autoscaler.core.decision import Reason
from autoscaler.policy import behavior
from autoscaler.policy.settings import Behavior, RateLimit

RULES = Behavior(
    up_window_s=0.0,
    down_window_s=300.0,
    up_limit=RateLimit(pods=4, percent=100.0, period_s=15.0),
    down_limit=RateLimit(pods=1, percent=10.0, period_s=60.0),
)


@pytest.mark.parametrize(
    ("current", "history", "expected", "reason"),
    [
        (4, [(100.0, 2), (200.0, 8)], 8, None),
        (8, [(0.0, 8), (100.0, 8), (200.0, 3)], 8, Reason.SCALE_DOWN_STABILIZED),
        (8, [(-150.0, 8), (100.0, 5), (200.0, 3)], 5, Reason.SCALE_DOWN_STABILIZED),
        (8, [(-101.0, 8), (200.0, 3)], 3, None),
        (5, [(100.0, 9), (200.0, 5)], 5, None),
    ],
    ids=[
        "scale up: immediate with no up window",
        "scale down: held by a recent higher recommendation",
        "scale down: only to the highest in the window, older ones fall out",
        "scale down: window passed, go all the way",
        "no change: newest equals current",
    ],
)
def test_stabilize(current: int, history: list[tuple[float, int]], expected: int, reason: str | None) -> None:
    got = behavior.stabilize(current=current, recommendations=tuple(history), now=200.0, behavior=RULES)
    assert got == (expected, reason)


@pytest.mark.parametrize(
    ("current", "desired", "events", "expected", "reason"),
    [
        (2, 20, [], 6, Reason.SCALE_UP_LIMITED),
        (10, 40, [], 20, Reason.SCALE_UP_LIMITED),
        (10, 14, [], 14, None),
        (6, 20, [(195.0, 2)], 6, Reason.SCALE_UP_LIMITED),
        (10, 2, [], 9, Reason.SCALE_DOWN_LIMITED),
        (30, 10, [], 27, Reason.SCALE_DOWN_LIMITED),
        (9, 2, [(170.0, 10)], 9, Reason.SCALE_DOWN_LIMITED),
        (9, 2, [(100.0, 10)], 8, Reason.SCALE_DOWN_LIMITED),
    ],
    ids=[
        "up: at least 4 pods per period",
        "up: or 100 percent",
        "up: within the limit passes",
        "up: the period counts from the replicas at its start",
        "down: one pod per minute",
        "down: or 10 percent",
        "down: nothing more within the same minute",
        "down: the next minute allows one more",
    ],
)
def test_rate_limit(
    current: int, desired: int, events: list[tuple[float, int]], expected: int, reason: str | None
) -> None:
    got = behavior.rate_limit(
        current=current, desired=desired, events=tuple(events), now=200.0, behavior=RULES
    )
    assert got == (expected, reason)

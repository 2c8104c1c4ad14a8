"""Retry delays grow with the failures in a row, stop growing at the cap, and are jittered within [d/2, d]."""

from __future__ import annotations

import random

import pytest

from autoscaler.controller.backoff import Backoff


@pytest.mark.parametrize(
    ("failures", "ceiling"),
    [(0, 1.0), (1, 1.0), (2, 2.0), (3, 4.0), (6, 32.0), (7, 60.0), (10_000, 60.0)],
    ids=["none yet counts as one", "first", "second doubles", "third", "sixth", "capped", "far past the cap"],
)
def test_the_delay_lies_between_half_and_all_of_its_ceiling(failures: int, ceiling: float) -> None:
    rng = random.Random(1)
    delays = [Backoff(base_s=1.0, cap_s=60.0).delay(failures, rng=rng) for _ in range(200)]
    assert all(ceiling / 2 <= d <= ceiling for d in delays)
    assert max(delays) - min(delays) > ceiling / 4  # jittered, not one value


def test_replicas_failing_together_do_not_retry_together() -> None:
    first, second = (Backoff().delay(5, rng=random.Random(seed)) for seed in (1, 2))
    assert first != second


@pytest.mark.parametrize(("base", "cap"), [(0.0, 1.0), (2.0, 1.0), (-1.0, 5.0)])
def test_settings_that_cannot_back_off_are_refused(base: float, cap: float) -> None:
    with pytest.raises(ValueError, match="base_s"):
        Backoff(base_s=base, cap_s=cap)

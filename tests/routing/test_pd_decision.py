"""The queue-aware P/D decider: short prompts and backlogged prefill pools prefill on the decode endpoint."""

from __future__ import annotations

import pytest

from autoscaler.routing import pd
from autoscaler.routing.settings import PrefillDecider

CONFIG = PrefillDecider(
    min_remote_prefill_tokens=256, prefill_tokens_per_s=10_000, local_prefill_budget_s=0.5
)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        (dict(uncached_on_decode=100, uncached_on_prefill=100, prefill_backlog_tokens=0), (False, pd.SHORT)),
        (
            dict(uncached_on_decode=2000, uncached_on_prefill=2000, prefill_backlog_tokens=0),
            (True, pd.REMOTE),
        ),
        (
            dict(uncached_on_decode=2000, uncached_on_prefill=2000, prefill_backlog_tokens=50_000),
            (False, pd.BACKLOGGED),
        ),
        # The prompt is mostly cached on the prefill endpoint: short there, but the decider asks about decode.
        (dict(uncached_on_decode=100, uncached_on_prefill=0, prefill_backlog_tokens=0), (False, pd.SHORT)),
    ],
    ids=["short uncached prompt", "idle prefill pool", "backlogged prefill pool", "short on decode"],
)
def test_decision(case: dict[str, float], expected: tuple[bool, str]) -> None:
    assert pd.decide(CONFIG, decode_backlog_tokens=0, decode_kv_usage=0.0, **case) == expected


def test_backlog_stays_remote_when_decode_has_no_headroom() -> None:
    """A full decode endpoint cannot absorb a prefill, however long the prefill queue."""
    busy = dict(uncached_on_decode=2000, uncached_on_prefill=2000, prefill_backlog_tokens=50_000)
    assert pd.decide(CONFIG, decode_backlog_tokens=0, decode_kv_usage=0.99, **busy) == (True, pd.REMOTE)
    assert pd.decide(CONFIG, decode_backlog_tokens=4500, decode_kv_usage=0.0, **busy) == (True, pd.REMOTE)


def test_threshold_is_queue_aware_not_fixed() -> None:
    """The same prompt flips from remote to local as the prefill backlog grows past the local cost."""
    decisions = [
        pd.decide(
            CONFIG,
            uncached_on_decode=3000,
            uncached_on_prefill=3000,
            prefill_backlog_tokens=backlog,
            decode_backlog_tokens=0,
            decode_kv_usage=0.2,
        )[0]
        for backlog in (0, 1000, 3000, 5000)
    ]
    assert decisions == [True, True, True, False]


def test_zero_budget_always_disaggregates_long_prompts() -> None:
    config = PrefillDecider(min_remote_prefill_tokens=0, local_prefill_budget_s=0)
    got = pd.decide(
        config,
        uncached_on_decode=1,
        uncached_on_prefill=1,
        prefill_backlog_tokens=10**9,
        decode_backlog_tokens=0,
        decode_kv_usage=0,
    )
    assert got == (True, pd.REMOTE)

"""The queue-aware P/D decider: short prompts and backlogged prefill pools prefill on the decode endpoint,
unless the stall of the sequences decoding there costs more."""

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
        # A short prompt's local prefill stalls each of 90 decoding sequences: 100 x 90 tokens of stall
        # against the 256 a transfer costs.
        (
            dict(
                uncached_on_decode=100, uncached_on_prefill=100, prefill_backlog_tokens=0, decode_sequences=90
            ),
            (True, pd.REMOTE),
        ),
        # The backlog (5 s) must outweigh the stall of every sequence (2000 tokens x 30 = 6 s), not of one.
        (
            dict(
                uncached_on_decode=2000,
                uncached_on_prefill=2000,
                prefill_backlog_tokens=50_000,
                decode_sequences=30,
            ),
            (True, pd.REMOTE),
        ),
        # ... and a 7 s backlog does.
        (
            dict(
                uncached_on_decode=2000,
                uncached_on_prefill=2000,
                prefill_backlog_tokens=70_000,
                decode_sequences=30,
            ),
            (False, pd.BACKLOGGED),
        ),
    ],
    ids=[
        "short uncached prompt",
        "idle prefill pool",
        "backlogged prefill pool",
        "short on decode",
        "short but stalls a busy decode endpoint",
        "backlog below the stall of every sequence",
        "backlog above the stall of every sequence",
    ],
)
def test_decision(case: dict[str, float], expected: tuple[bool, str]) -> None:
    args = {"decode_sequences": 0, **case}
    assert pd.decide(CONFIG, decode_backlog_tokens=0, decode_kv_usage=0.0, **args) == expected


def test_backlog_stays_remote_when_decode_has_no_headroom() -> None:
    """A full decode endpoint cannot absorb a prefill, however long the prefill queue."""
    busy = dict(uncached_on_decode=2000, uncached_on_prefill=2000, prefill_backlog_tokens=50_000)
    assert pd.decide(CONFIG, decode_backlog_tokens=0, decode_kv_usage=0.99, decode_sequences=0, **busy) == (
        True,
        pd.REMOTE,
    )
    assert pd.decide(CONFIG, decode_backlog_tokens=4500, decode_kv_usage=0.0, decode_sequences=0, **busy) == (
        True,
        pd.REMOTE,
    )


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
            decode_sequences=1,
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
        decode_sequences=0,
    )
    assert got == (True, pd.REMOTE)

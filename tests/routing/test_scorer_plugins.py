"""Each scorer plugin: its formula on hand-built endpoints, and every score within [0, 1]."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autoscaler.core.phases import Phase
from autoscaler.routing import scorers
from autoscaler.routing import settings as cfg
from autoscaler.routing.endpoint import Endpoint
from autoscaler.routing.interface import RouteRequest


def _endpoint(slot: int, *, queue: float = 0, kv: float = 0, tokens: int = 0) -> Endpoint:
    e = Endpoint(f"e{slot}", phase=Phase.AGGREGATED, slot=slot, added_at=0.0)
    e.queue_length, e.kv_usage, e.in_flight_tokens = queue, kv, tokens
    return e


def _cycle(
    *, blocks: int = 4, matched: dict[int, int] | None = None, session_slot: int = -1
) -> scorers.Cycle:
    request = RouteRequest(
        request_id=1, prompt_tokens=100 * blocks, output_tokens=10, block_hashes=range(blocks)
    )
    return scorers.Cycle(request, matched=matched or {}, block_tokens=100, session_slot=session_slot)


ENDPOINTS = [
    _endpoint(0, queue=0, kv=0.1, tokens=0),
    _endpoint(1, queue=8, kv=0.5, tokens=1000),
    _endpoint(2, queue=40, kv=1.0, tokens=5000),
]


def test_prefix_affinity_is_the_matched_fraction() -> None:
    cycle = _cycle(blocks=4, matched={0: 4, 2: 1})
    assert scorers.PrefixAffinityScorer().score(cycle, ENDPOINTS) == [1.0, 0.0, 0.25]
    assert scorers.PrefixAffinityScorer().score(_cycle(blocks=0), ENDPOINTS) is None  # None: 0 everywhere


def test_in_flight_tokens_counts_the_uncached_lookahead() -> None:
    """400-token prompt: endpoint 0 caches 300 of it so would carry 100 more tokens; 1 carries 400 more."""
    scorer = scorers.InFlightTokensScorer(cfg.InFlightTokens(threshold_tokens=2000))
    got = scorer.score(_cycle(blocks=4, matched={0: 3}), ENDPOINTS)
    assert got == pytest.approx([1 - 100 / 2000, 1 - 1400 / 2000, 0.0])


def test_queue_length_is_linear_up_to_the_threshold() -> None:
    scorer = scorers.QueueLengthScorer(cfg.QueueLength(threshold=16))
    assert scorer.score(_cycle(), ENDPOINTS) == [1.0, 0.5, 0.0]


def test_kv_usage_is_free_fraction() -> None:
    assert scorers.KvUsageScorer().score(_cycle(), ENDPOINTS) == pytest.approx([0.9, 0.5, 0.0])


def test_session_affinity_marks_only_the_previous_endpoint() -> None:
    assert scorers.SessionAffinityScorer().score(_cycle(session_slot=1), ENDPOINTS) == [0.0, 1.0, 0.0]
    assert scorers.SessionAffinityScorer().score(_cycle(), ENDPOINTS) is None


def test_build_keeps_positive_weights_in_order() -> None:
    built = scorers.build([cfg.KvUsage(weight=0), cfg.QueueLength(weight=2), cfg.PrefixAffinity(weight=1)])
    assert [(w, type(s).__name__) for w, s in built] == [
        (2, "QueueLengthScorer"),
        (1, "PrefixAffinityScorer"),
    ]


ALL: list[scorers.Scorer] = [
    scorers.PrefixAffinityScorer(),
    scorers.InFlightTokensScorer(cfg.InFlightTokens(threshold_tokens=1000)),
    scorers.QueueLengthScorer(cfg.QueueLength(threshold=4)),
    scorers.KvUsageScorer(),
    scorers.SessionAffinityScorer(),
]


@given(
    queue=st.floats(0, 1e4),
    kv=st.floats(-0.5, 1.5),
    tokens=st.integers(0, 10**7),
    blocks=st.integers(0, 8),
    matched=st.integers(0, 8),
)
def test_every_plugin_scores_within_unit_interval(
    queue: float, kv: float, tokens: int, blocks: int, matched: int
) -> None:
    endpoints = [_endpoint(0, queue=queue, kv=kv, tokens=tokens), _endpoint(1)]
    cycle = _cycle(
        blocks=blocks, matched={0: min(matched, blocks)} if min(matched, blocks) else {}, session_slot=0
    )
    for scorer in ALL:
        scores = scorer.score(cycle, endpoints)
        assert scores is None or all(0.0 <= s <= 1.0 for s in scores), type(scorer).__name__

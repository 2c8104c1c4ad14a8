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
    *,
    blocks: int = 4,
    matched: dict[int, int] | None = None,
    session_slot: int = -1,
    weights: dict[int, float] | None = None,
) -> scorers.Cycle:
    request = RouteRequest(
        request_id=1, prompt_tokens=100 * blocks, output_tokens=10, block_hashes=range(blocks)
    )
    return scorers.Cycle(
        request, matched=matched or {}, block_tokens=100, session_slot=session_slot, weights=weights
    )


ENDPOINTS = [
    _endpoint(0, queue=0, kv=0.1, tokens=0),
    _endpoint(1, queue=8, kv=0.5, tokens=1000),
    _endpoint(2, queue=40, kv=1.0, tokens=5000),
]


def test_prefix_affinity_is_the_matched_fraction() -> None:
    cycle = _cycle(blocks=4, matched={0: 4, 2: 1})
    assert scorers.PrefixAffinityScorer().score(cycle, ENDPOINTS) == [1.0, 0.0, 0.25]
    assert scorers.PrefixAffinityScorer().score(_cycle(blocks=0), ENDPOINTS) is None  # None: 0 everywhere


@pytest.mark.parametrize(
    ("tokens", "blocks", "matched", "weights", "expected"),
    [
        # Relative to the fleet, not to a fixed threshold: twice the load scores half at any scale.
        ([999, 1999], 0, {}, {}, [1.0, 0.5]),
        ([99_999, 199_999], 0, {}, {}, [1.0, 0.5]),
        # The lookahead: endpoint 0 caches 300 of the 400-token prompt, so it would carry 100 (+1) more.
        ([0, 0], 4, {0: 3}, {}, [1.0, 101 / 401]),
        # A shared prefix both hold lowers both loads alike; the in-flight tokens decide.
        ([1000, 2000], 4, {0: 1, 1: 1}, {}, [1.0, 1301 / 2301]),
        # Slow start: at weight 0.1 the new endpoint's 100 tokens count as 1000, more than the warm 901.
        ([900, 99], 0, {}, {1: 0.1}, [1.0, 901 / 1000]),
    ],
    ids=["small fleet load", "large fleet load", "cache hit lookahead", "shared prefix", "slow start"],
)
def test_in_flight_tokens_scores_the_lightest_load_over_each(
    tokens: list[int], blocks: int, matched: dict[int, int], weights: dict[int, float], expected: list[float]
) -> None:
    endpoints = [_endpoint(slot, tokens=t) for slot, t in enumerate(tokens)]
    cycle = _cycle(blocks=blocks, matched=matched, weights=weights)
    assert scorers.InFlightTokensScorer().score(cycle, endpoints) == pytest.approx(expected)


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
    scorers.InFlightTokensScorer(),
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
    weight=st.floats(0.01, 1.0),
)
def test_every_plugin_scores_within_unit_interval(
    queue: float, kv: float, tokens: int, blocks: int, matched: int, weight: float
) -> None:
    endpoints = [_endpoint(0, queue=queue, kv=kv, tokens=tokens), _endpoint(1)]
    cycle = _cycle(
        blocks=blocks,
        matched={0: min(matched, blocks)} if min(matched, blocks) else {},
        session_slot=0,
        weights={1: weight},
    )
    for scorer in ALL:
        scores = scorer.score(cycle, endpoints)
        assert scores is None or all(0.0 <= s <= 1.0 for s in scores), type(scorer).__name__

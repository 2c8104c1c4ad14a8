"""The router's fast paths give exactly what the plain forms give: the block index's LRU order after any
sequence of stores (holes in a chain included), and each endpoint scorer's ``score_one`` against its list
form, edge values included. The simulator's bytes depend on both."""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.core.phases import Phase
from autoscaler.routing import scorers
from autoscaler.routing import settings as cfg
from autoscaler.routing.endpoint import Endpoint
from autoscaler.routing.index import BlockIndex
from autoscaler.routing.interface import RouteRequest


def _plain_store(lru: OrderedDict[int, None], hashes: Sequence[int], held: int, capacity: int) -> None:
    """The store as first written: new blocks tail first, then every block already there touched from the
    chain's end backwards, then the oldest dropped beyond capacity."""
    new = [h for h in hashes[held:] if h not in lru]
    for h in reversed(new):
        lru[h] = None
    fresh = set(new)
    for h in reversed(hashes):
        if h not in fresh:
            lru.move_to_end(h)
    while len(lru) > capacity:
        lru.popitem(last=False)


@settings(max_examples=300, deadline=None)
@given(
    capacity=st.integers(1, 12),
    chains=st.lists(st.lists(st.integers(0, 30), max_size=10), max_size=40),
)
def test_index_lru_order_is_the_plain_store_order(capacity: int, chains: list[list[int]]) -> None:
    index = BlockIndex()
    slot = index.add_slot(capacity_blocks=capacity)
    reference: OrderedDict[int, None] = OrderedDict()
    for hashes in chains:
        held = index.prefix_lengths(hashes).get(slot, 0)
        index.store(slot, hashes, held=held)
        _plain_store(reference, hashes, held, capacity)
        assert index.blocks(slot) == list(reference)


def _endpoint(*, queue: float, kv: float) -> Endpoint:
    endpoint = Endpoint("e", phase=Phase.DECODE, slot=0, added_at=0.0)
    endpoint.queue_length, endpoint.kv_usage = queue, kv
    return endpoint


EDGES = [-1.0, -0.0, 0.0, 0.3, 1.0, 15.9, 16.0, 40.0, math.inf, -math.inf, math.nan]
CYCLE = scorers.Cycle(
    RouteRequest(request_id=0, prompt_tokens=1, output_tokens=1), matched={}, block_tokens=1, session_slot=-1
)


@pytest.mark.parametrize(
    ("scorer", "reference"),
    [
        (
            scorers.QueueLengthScorer(cfg.QueueLength(threshold=16)),
            lambda e: max(0.0, 1.0 - e.queue_length / 16),
        ),
        (scorers.KvUsageScorer(), lambda e: min(1.0, max(0.0, 1.0 - e.kv_usage))),
    ],
    ids=["queue-length", "kv-usage"],
)
@pytest.mark.parametrize("value", EDGES)
def test_score_one_is_the_min_max_clamp(
    scorer: scorers.EndpointScorer, reference: object, value: float
) -> None:
    endpoint = _endpoint(queue=value, kv=value)
    got = scorer.score_one(endpoint)
    assert got == reference(endpoint)  # type: ignore[operator]
    assert got >= 0.0 and math.copysign(1.0, got) == 1.0  # never NaN, never -0.0
    assert scorer.score(CYCLE, [endpoint]) == [got]

"""The comparison placers: round-robin order, SGLang cache-aware's load gate, threshold and smallest tree."""

from __future__ import annotations

import pytest

from autoscaler.core.phases import Phase
from autoscaler.routing import baselines
from autoscaler.routing.baselines import CacheAwarePlacer, CacheAwareSettings, RoundRobinPlacer
from autoscaler.routing.interface import NoEndpointError, RouteRequest

BLOCK = 64
NAMES = ("e0", "e1", "e2")

_ids = iter(range(10**9))


def _request(blocks: range | list[int] = range(0)) -> RouteRequest:
    hashes = list(blocks)
    return RouteRequest(
        request_id=next(_ids),
        prompt_tokens=BLOCK * max(1, len(hashes)),
        output_tokens=10,
        block_hashes=hashes,
    )


def _fleet(placer: RoundRobinPlacer | CacheAwarePlacer, phase: Phase = Phase.AGGREGATED) -> None:
    for name in NAMES:
        placer.add_endpoint(name, phase=phase, kv_capacity_tokens=BLOCK * 1000, now=0.0)


def _on(placer: CacheAwarePlacer, name: str, request: RouteRequest, *, keep: bool) -> None:
    """Place ``request`` on ``name`` (the others drained meanwhile); ``keep``: leave it in flight."""
    others = [n for n in NAMES if n != name]
    for other in others:
        placer.set_draining(other, True)
    placement = placer.place(request, now=0.0)
    assert placement.endpoint == name
    if not keep:
        placer.finished(placement, now=0.0)
    for other in others:
        placer.set_draining(other, False)


def _cache_aware() -> CacheAwarePlacer:
    placer = CacheAwarePlacer(CacheAwareSettings(block_tokens=BLOCK))
    _fleet(placer)
    return placer


def test_round_robin_cycles_in_added_order_and_skips_draining() -> None:
    placer = RoundRobinPlacer()
    _fleet(placer)
    assert [placer.place(_request(), now=0.0).endpoint for _ in range(4)] == ["e0", "e1", "e2", "e0"]
    placer.set_draining("e2", True)
    assert [placer.place(_request(), now=0.0).endpoint for _ in range(4)] == ["e0", "e1", "e0", "e1"]
    assert placer.in_flight("e0") == 4


def test_round_robin_releases_in_flight_once_and_needs_an_open_endpoint() -> None:
    placer = RoundRobinPlacer()
    placer.add_endpoint("e0", phase=Phase.AGGREGATED, kv_capacity_tokens=1, now=0.0)
    placement = placer.place(_request(), now=0.0)
    assert placer.in_flight("e0") == 1
    placer.finished(placement, now=0.0)
    assert placer.in_flight("e0") == 0
    placer.set_draining("e0", True)
    with pytest.raises(NoEndpointError):
        placer.place(_request(), now=0.0)


@pytest.mark.parametrize(
    ("case", "loads", "request_blocks", "want", "reason"),
    [
        # e0 caches blocks 0..9; e1 caches 100..104 (the smallest tree); e2 caches 200..207.
        ("balanced, long match: longest match", {}, range(10), "e0", baselines.CACHE_HIT),
        (
            "match of 4/10 > 0.3: longest match",
            {},
            [0, 1, 2, 3, 50, 51, 52, 53, 54, 55],
            "e0",
            baselines.CACHE_HIT,
        ),
        (
            "match of exactly 0.3 is not above it: smallest tree",
            {},
            [0, 1, 2, *range(60, 67)],
            "e1",
            baselines.SMALLEST_TREE,
        ),
        (
            "miss: smallest tree, whatever its load",
            {"e1": 50},
            range(300, 310),
            "e1",
            baselines.SMALLEST_TREE,
        ),
        (
            "imbalanced (diff 70 > 64, 70 > 1.5 x 0): shortest queue",
            {"e0": 70, "e1": 70},
            range(10),
            "e2",
            baselines.IMBALANCED,
        ),
        (
            "diff > 64 but max <= 1.5 x min: still balanced",
            {"e0": 200, "e1": 135, "e2": 135},
            range(10),
            "e0",
            baselines.CACHE_HIT,
        ),
        ("max > 1.5 x min but diff <= 64: still balanced", {"e0": 60}, range(10), "e0", baselines.CACHE_HIT),
    ],
)
def test_cache_aware_switches_on_load_gate_and_match_threshold(
    case: str, loads: dict[str, int], request_blocks: range | list[int], want: str, reason: str
) -> None:
    placer = _cache_aware()
    _on(placer, "e0", _request(range(10)), keep=False)
    _on(placer, "e1", _request(range(100, 105)), keep=False)
    _on(placer, "e2", _request(range(200, 208)), keep=False)
    for name, count in loads.items():
        for _ in range(count):
            _on(placer, name, _request(), keep=True)
    placement = placer.place(_request(request_blocks), now=0.0)
    assert (placement.endpoint, placement.reason) == (want, reason), case


def test_cache_aware_inserts_where_it_placed_and_estimates_cached_tokens() -> None:
    placer = _cache_aware()
    first = placer.place(_request(range(10)), now=0.0)  # all trees empty: smallest tree, the first added
    assert (first.endpoint, first.reason, first.cached_tokens) == ("e0", baselines.SMALLEST_TREE, 0)
    assert placer.tree_blocks("e0") == 10
    again = placer.place(_request(range(12)), now=0.0)
    assert (again.endpoint, again.reason, again.cached_tokens) == ("e0", baselines.CACHE_HIT, 10 * BLOCK)
    assert placer.tree_blocks("e0") == 12


def test_cache_aware_skips_draining_and_bounds_each_tree() -> None:
    placer = CacheAwarePlacer(CacheAwareSettings(block_tokens=BLOCK, max_tree_tokens=8 * BLOCK))
    _fleet(placer)
    _on(placer, "e0", _request(range(10)), keep=False)
    assert placer.tree_blocks("e0") == 8  # the tail went first
    placer.set_draining("e0", True)
    assert placer.place(_request(range(10)), now=0.0).endpoint != "e0"


def test_cache_aware_under_pd_picks_a_prefill_endpoint_and_releases_it_at_prefill_done() -> None:
    placer = CacheAwarePlacer(CacheAwareSettings(block_tokens=BLOCK))
    placer.add_endpoint("p0", phase=Phase.PREFILL, kv_capacity_tokens=BLOCK * 1000, now=0.0)
    placer.add_endpoint("d0", phase=Phase.DECODE, kv_capacity_tokens=BLOCK * 1000, now=0.0)
    placement = placer.place(_request(range(4)), now=0.0)
    assert (placement.endpoint, placement.prefill_endpoint) == ("d0", "p0")
    assert placer.in_flight("p0") == 1
    placer.prefill_done(placement, now=0.0)
    placer.finished(placement, now=0.0)
    assert (placer.in_flight("p0"), placer.in_flight("d0")) == (0, 0)


def test_cache_aware_settings_reject_nonsense() -> None:
    with pytest.raises(ValueError, match="cache_threshold"):
        CacheAwareSettings(cache_threshold=1.5)
    with pytest.raises(ValueError, match="balance"):
        CacheAwareSettings(balance_rel_threshold=0.5)

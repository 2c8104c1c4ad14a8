"""The affinity router on the pure Placer interface: affinity vs load, overload, ties, lifecycle."""

from __future__ import annotations

from collections import Counter

import pytest

from autoscaler.config.profiles import load_profile
from autoscaler.core.phases import Phase
from autoscaler.routing import interface, pd
from autoscaler.routing import settings as cfg
from autoscaler.routing.router import AffinityRouter, RoutedPlacement

KV = 64 * 1000  # 1000 blocks of 64 tokens per endpoint


def _router(
    n: int = 3, *, phase: Phase = Phase.AGGREGATED, seed: int = 0, **overrides: object
) -> AffinityRouter:
    settings = cfg.RouterSettings(slow_start=cfg.SlowStart(window_s=0), **overrides)
    router = AffinityRouter(settings, seed=seed)
    for i in range(n):
        router.add_endpoint(f"e{i}", phase=phase, kv_capacity_tokens=KV, now=0.0)
    return router


def _request(
    rid: int, blocks: range | list[int] = range(8), *, session: str | None = None
) -> interface.RouteRequest:
    hashes = list(blocks)
    return interface.RouteRequest(
        request_id=rid,
        prompt_tokens=64 * len(hashes),
        output_tokens=100,
        block_hashes=hashes,
        session_id=session,
    )


def _metrics(queue: float = 0, kv: float = 0) -> interface.EndpointMetrics:
    return interface.EndpointMetrics(queue_length=queue, running=0, kv_usage=kv)


def test_router_is_a_placer() -> None:
    placer: interface.Placer = _router()
    assert list(placer.endpoints()) == ["e0", "e1", "e2"]


def test_shared_prefix_follows_the_cache_and_a_miss_goes_least_loaded() -> None:
    router = _router()
    first = router.place(_request(1), now=1.0)
    assert first.reason == "least-loaded"
    again = router.place(_request(2, [*range(8), 100, 101]), now=1.0)
    assert (again.endpoint, again.reason, again.cached_tokens) == (first.endpoint, "affinity", 8 * 64)
    other = router.place(_request(3, range(500, 508)), now=1.0)
    assert other.endpoint != first.endpoint and other.reason == "least-loaded"


@pytest.mark.parametrize(
    ("warm_tokens", "expected"), [(0, "warm"), (2_000, "new")], ids=["idle fleet", "busy fleet"]
)
def test_a_new_endpoint_without_the_shared_prefix_gets_work_once_the_fleet_is_busy(
    warm_tokens: int, expected: str
) -> None:
    """Every warm endpoint holds the shared first block (a system prompt); a new one holds nothing. Load is
    measured against the fleet, so 2,000 tokens in flight outweigh the 64-token block the new endpoint
    lacks; against a fixed 262,144-token threshold it took over 130,000 (new replicas sat idle)."""
    router = _router(2)
    for name in ("e0", "e1"):
        router.blocks_stored(name, [0])
        router.endpoint(name).in_flight_tokens = warm_tokens
    router.add_endpoint("new", phase=Phase.AGGREGATED, kv_capacity_tokens=KV, now=0.5)
    chosen = router.place(_request(1, [0, 1, 2]), now=1.0).endpoint
    assert ("new" if chosen == "new" else "warm") == expected


def test_an_overloaded_endpoint_is_skipped_alone() -> None:
    """The hot endpoint loses its prefix; the other prefixes keep their affinity."""
    router = _router()
    a = router.place(_request(1, range(8)), now=1.0)
    b = router.place(_request(2, range(100, 108)), now=1.0)
    assert a.endpoint != b.endpoint
    router.update_metrics(a.endpoint, _metrics(queue=100), now=2.0)
    moved = router.place(_request(3, range(8)), now=2.0)
    kept = router.place(_request(4, range(100, 108)), now=2.0)
    assert moved.endpoint != a.endpoint
    assert (kept.endpoint, kept.reason) == (b.endpoint, "affinity")


def test_when_all_are_overloaded_the_request_is_still_placed() -> None:
    router = _router(2)
    for name in router.endpoints():
        router.update_metrics(name, _metrics(kv=0.99), now=0.0)
    assert router.place(_request(1), now=1.0).reason == "all-overloaded"


def test_load_outweighs_affinity_when_an_endpoint_is_busy() -> None:
    router = _router(2, scorers=(cfg.PrefixAffinity(weight=1), cfg.QueueLength(weight=2, threshold=10)))
    cached = router.place(_request(1), now=1.0).endpoint
    router.update_metrics(cached, _metrics(queue=8), now=1.0)  # not overloaded, but busy: 1 + 2*0.2 < 2
    assert router.place(_request(2), now=1.0).endpoint != cached


@pytest.mark.parametrize(
    ("scorer", "readings", "estimate", "correct"),
    [
        (cfg.KvUsage(), [_metrics(kv=0.1), _metrics(kv=0.2)], "kv_usage", True),
        (cfg.QueueLength(threshold=64), [_metrics(queue=2), _metrics(queue=6)], "queue_length", True),
        (cfg.KvUsage(), [_metrics(kv=0.1), _metrics(kv=0.2)], "kv_usage", False),
    ],
    ids=["kv usage", "queue length", "read as is (llm-d)"],
)
def test_a_stale_scrape_is_corrected_by_the_placements_since(
    scorer: cfg.ScorerConfig, readings: list[interface.EndpointMetrics], estimate: str, correct: bool
) -> None:
    """Read as is, a scrape sends every request until the next one to the endpoint that looked emptiest
    (hundreds at 100+ requests/s). Corrected by what the router placed there since, the two estimates
    meet and the requests spread; the next scrape puts the engine's own figure back."""
    router = _router(2, scorers=(scorer,), correct_scrapes=correct)
    for name, reading in zip(("e0", "e1"), readings, strict=True):
        router.update_metrics(name, reading, now=0.0)
    placed = Counter(router.place(_request(i, [i]), now=1.0).endpoint for i in range(100))
    e0, e1 = router.endpoint("e0"), router.endpoint("e1")
    if not correct:
        assert placed["e0"] == 100
        return
    assert placed["e1"] > 20
    one_request = 1 if estimate == "queue_length" else (64 + 100) / KV
    assert abs(getattr(e0, estimate) - getattr(e1, estimate)) <= one_request + 1e-9
    router.update_metrics("e0", readings[0], now=2.0)
    assert getattr(e0, estimate) == getattr(readings[0], estimate)


def test_ties_break_with_the_seeded_rng() -> None:
    def spread(seed: int) -> list[str]:
        router = _router(4, seed=seed, scorers=(cfg.PrefixAffinity(weight=1),))
        return [router.place(_request(i, [10_000 + i]), now=1.0).endpoint for i in range(40)]

    assert spread(7) == spread(7)
    assert spread(7) != spread(8)
    assert len(set(spread(7))) == 4


def test_draining_endpoint_gets_nothing_new_and_keeps_its_in_flight() -> None:
    router = _router(2)
    held = router.place(_request(1), now=1.0)
    router.set_draining(held.endpoint, True)
    assert all(router.place(_request(i), now=1.0).endpoint != held.endpoint for i in range(2, 10))
    assert router.in_flight(held.endpoint) == 1
    router.finished(held, now=2.0)
    assert router.in_flight(held.endpoint) == 0
    router.set_draining(next(n for n in router.endpoints() if n != held.endpoint), True)
    with pytest.raises(interface.NoEndpointError):
        router.place(_request(99), now=3.0)


def test_no_endpoint_is_an_error() -> None:
    with pytest.raises(interface.NoEndpointError):
        AffinityRouter().place(_request(1), now=0.0)


@pytest.mark.parametrize(
    ("now", "share"),
    [(1.0, 0.1 / 1.1), (50.0, 0.5 / 1.5), (200.0, 0.5)],
    ids=["weight 0.1", "weight 0.5", "warm"],
)
def test_new_endpoint_takes_its_slow_start_weight_in_share(now: float, share: float) -> None:
    """At weight w a new endpoint's load counts 1/w times, so it takes about w/(1+w) of the requests,
    ramping with time instead of getting nothing, then everything, as when its total score was scaled."""
    settings = cfg.RouterSettings(
        scorers=(cfg.InFlightTokens(),), slow_start=cfg.SlowStart(window_s=100, min_weight=0.1)
    )
    router = AffinityRouter(settings, seed=1)
    router.add_endpoint("old", phase=Phase.AGGREGATED, kv_capacity_tokens=KV, now=-1000.0)
    router.add_endpoint("new", phase=Phase.AGGREGATED, kv_capacity_tokens=KV, now=0.0)
    placed = Counter(router.place(_request(i, [i]), now=now).endpoint for i in range(200))
    assert placed["new"] / 200 == pytest.approx(share, abs=0.02)


def test_session_sticks_until_its_ttl() -> None:
    router = _router(3, session_ttl_s=10.0)
    first = router.place(_request(1, [1], session="s"), now=0.0)
    follow = router.place(_request(2, [2], session="s"), now=5.0)
    assert (follow.endpoint, follow.reason) == (first.endpoint, "session")
    later = router.place(_request(3, [3], session="s"), now=100.0)
    assert later.reason != "session"


def test_finished_releases_exactly_and_twice_is_harmless() -> None:
    router = _router(2)
    placements = [router.place(_request(i), now=1.0) for i in range(5)]
    for p in placements:
        router.finished(p, now=2.0)
        router.finished(p, now=2.0)
    for name in router.endpoints():
        e = router.endpoint(name)
        assert (e.in_flight, e.in_flight_tokens, e.prefill_tokens) == (0, 0, 0)


def _pd_router(**overrides: object) -> AffinityRouter:
    router = AffinityRouter(cfg.RouterSettings(slow_start=cfg.SlowStart(window_s=0), **overrides), seed=3)
    for i in range(2):
        router.add_endpoint(f"p{i}", phase=Phase.PREFILL, kv_capacity_tokens=KV, now=0.0)
        router.add_endpoint(f"d{i}", phase=Phase.DECODE, kv_capacity_tokens=KV, now=0.0)
    return router


def test_pd_picks_a_decode_and_a_prefill_endpoint_and_releases_both() -> None:
    router = _pd_router()
    placement = router.place(_request(1, range(40)), now=1.0)
    assert isinstance(placement, RoutedPlacement)
    assert placement.endpoint.startswith("d") and placement.prefill_endpoint is not None
    assert placement.prefill_endpoint.startswith("p") and placement.prefill_reason == pd.REMOTE
    prefill = router.endpoint(placement.prefill_endpoint)
    assert (prefill.in_flight, prefill.prefill_tokens) == (1, 40 * 64)
    # The decode endpoint carries the prompt's KV (transferred) and the output: that is its load.
    assert router.endpoint(placement.endpoint).in_flight_tokens == 40 * 64 + 100
    router.prefill_done(placement, now=2.0)
    assert (prefill.in_flight, prefill.prefill_tokens, prefill.in_flight_tokens) == (0, 0, 0)
    assert router.in_flight(placement.endpoint) == 1
    router.finished(placement, now=3.0)
    assert (
        router.in_flight(placement.endpoint) == 0
        and router.endpoint(placement.endpoint).in_flight_tokens == 0
    )


@pytest.mark.parametrize(
    ("busy", "remote", "reason"), [(0, False, pd.SHORT), (8, True, pd.REMOTE)], ids=["idle", "busy decode"]
)
def test_pd_short_prompt_prefills_on_decode_unless_it_stalls_many(
    busy: int, remote: bool, reason: str
) -> None:
    """128 uncached tokens: local on an idle decode endpoint; 4 requests in flight there make it 512 tokens
    of stall, more than the 256 a transfer costs."""
    router = _pd_router()
    for i in range(busy):  # prefilled remotely, now decoding: the prefill pool is idle again
        running = router.place(_request(100 + i, range(1000 * (i + 1), 1000 * (i + 1) + 40)), now=0.5)
        router.prefill_done(running, now=0.6)
    placement = router.place(_request(1, range(2)), now=1.0)
    assert (placement.prefill_endpoint is not None, placement.prefill_reason) == (remote, reason)
    assert placement.endpoint.startswith("d")


def test_pd_backlogged_prefill_pool_sheds_to_decode() -> None:
    router = _pd_router(
        prefill_decider=cfg.PrefillDecider(prefill_tokens_per_s=10_000, local_prefill_budget_s=1.0)
    )
    for name in ("p0", "p1"):
        router.endpoint(name).prefill_tokens = 60_000  # 6 s of queued prefill work on each
    placement = router.place(_request(1, range(40)), now=1.0)
    assert (placement.prefill_endpoint, placement.prefill_reason) == (None, pd.BACKLOGGED)
    assert router.endpoint(placement.endpoint).prefill_tokens == 40 * 64


def test_pd_without_prefill_endpoints_prefills_locally() -> None:
    router = _pd_router()
    router.set_draining("p0", True)
    router.set_draining("p1", True)
    placement = router.place(_request(1, range(40)), now=1.0)
    assert (placement.prefill_endpoint, placement.prefill_reason) == (None, pd.NO_PREFILL_ENDPOINT)


def test_kv_event_mode_learns_only_from_events() -> None:
    router = _router(2, index_source=cfg.IndexSource.KV_EVENTS)
    first = router.place(_request(1), now=1.0)
    assert router.cached_blocks(first.endpoint) == []
    router.blocks_stored("e1", list(range(8)))
    assert router.place(_request(2), now=1.0).endpoint == "e1"
    router.blocks_removed("e1", [0])
    router.all_blocks_cleared("e1")
    assert router.cached_blocks("e1") == []


def test_capacity_bounds_what_an_endpoint_is_believed_to_hold() -> None:
    router = _router(1)
    router.set_kv_capacity("e0", 64 * 5)
    router.place(_request(1, range(40)), now=1.0)
    assert router.cached_blocks("e0") == [4, 3, 2, 1, 0]


def test_settings_reject_useless_scorer_lists() -> None:
    with pytest.raises(ValueError, match="positive weight"):
        cfg.RouterSettings(scorers=(cfg.KvUsage(weight=0),))
    with pytest.raises(ValueError, match="once"):
        cfg.RouterSettings(scorers=(cfg.KvUsage(), cfg.KvUsage()))
    parsed = cfg.RouterSettings.model_validate(
        {"scorers": [{"type": "queue-length", "weight": 1, "threshold": 4}]}
    )
    assert parsed.scorers == (cfg.QueueLength(weight=1, threshold=4),)


def test_decider_rate_comes_from_the_shared_profile() -> None:
    profile = load_profile("llama-3.1-8b/h100-tp1")
    settings = cfg.calibrated(cfg.RouterSettings(), profile)
    chunk = profile.max_num_batched_tokens
    assert settings.prefill_decider.prefill_tokens_per_s == pytest.approx(chunk / profile.prefill_time(chunk))
    assert settings.scorers == cfg.RouterSettings().scorers


def test_non_finite_metrics_keep_the_last_good_reading() -> None:
    router = _router(2)
    router.update_metrics("e0", _metrics(queue=3, kv=0.5), now=1.0)
    router.update_metrics("e0", _metrics(queue=float("nan"), kv=float("inf")), now=2.0)
    assert (router.endpoint("e0").queue_length, router.endpoint("e0").kv_usage) == (3, 0.5)
    assert router.place(_request(1), now=3.0).endpoint == "e1"

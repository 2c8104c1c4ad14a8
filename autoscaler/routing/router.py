"""The cache-affinity router: a ``Placer`` that weighs prefix-cache affinity against load, per endpoint.

Per request (``place``):

1. Look up, once, how many leading blocks of the prompt each endpoint holds (``BlockIndex``).
2. Pick the endpoint that serves it (the decode endpoint under P/D, else the aggregated one): drop
   draining endpoints, then drop *each* overloaded endpoint on its own (queue, KV use or in-flight tokens
   past ``Overload``), never switching affinity off for the whole fleet because one endpoint is hot. Score
   the rest with the configured plugins (``sum weight x score``; new endpoints' loads count more during
   slow start), and take the best; exact ties go to the seeded RNG. A prompt nobody caches scores zero on
   affinity everywhere, so it lands on the least-loaded endpoint. If every candidate is overloaded the
   request still goes to the best of them: the router sheds nothing (flow control is not its job).
3. Under P/D, pick a prefill endpoint the same way (its own scorers) and ask the P/D decider
   (``autoscaler.routing.pd``) whether to prefill there or on the decode endpoint.
4. Count the request in flight where it went, and (approximate mode) record its blocks as cached there.
   A decode endpoint is charged the whole prompt besides the output: the prompt's KV arrives there with
   the transfer and every decode step reads it, so that is the load it carries (``_admit``).

Accounting cannot leak: a request whose token counts are out of bounds is refused before anything
changes, the counts and the request's ``_Live`` record change together before the estimates derived
from them, and a placement that fails after admission is released before the error propagates (the
caller, who never got it, could not release it).

Everything is O(prompt blocks + endpoints x scorers) with no per-endpoint allocation; the state lives in
``Endpoint`` records updated in place.
"""

from __future__ import annotations

import math
import random
from collections import OrderedDict
from collections.abc import Container, Sequence
from itertools import repeat
from operator import add, attrgetter, mul

from autoscaler.core.phases import Phase
from autoscaler.routing import pd, scorers
from autoscaler.routing.endpoint import Endpoint
from autoscaler.routing.index import BlockIndex
from autoscaler.routing.interface import EndpointMetrics, NoEndpointError, Placement, RouteRequest
from autoscaler.routing.interface import RoutedPlacement as RoutedPlacement  # re-exported
from autoscaler.routing.settings import IndexSource, RouterSettings

AFFINITY = "affinity"
LEAST_LOADED = "least-loaded"
SESSION = "session"
ALL_OVERLOADED = "all-overloaded"

_BASE_SCORE = attrgetter("base_score")
# A request's prompt or output tokens beyond this are refused: far past any context window, and small
# enough that any sum of them stays an exact float (the estimates divide them; 10**400 would overflow).
MAX_REQUEST_TOKENS = 1 << 40


class _Pool:
    """The endpoints one scheduling profile chooses among, with its scorers and a per-request cache.

    ``usable`` (the members not overloaded, or all members when every one is) changes only when an
    endpoint joins, leaves, drains or crosses an overload threshold; the router marks the pool ``stale``
    then, and requests in between reuse the list as it is.
    """

    __slots__ = ("members", "overloaded", "per_endpoint", "per_request", "stale", "usable")

    def __init__(self, weighted: tuple[tuple[float, scorers.Scorer], ...]) -> None:
        self.per_request = tuple((w, s) for w, s in weighted if s.per_request)
        self.per_endpoint = tuple(  # scored on every placement and release: a plain float each
            (w, s.score_one)
            for w, s in weighted
            if not s.per_request and isinstance(s, scorers.EndpointScorer)
        )
        self.members: list[Endpoint] = []  # non-draining, in the order they were added
        self.usable: list[Endpoint] = []
        self.overloaded = False
        self.stale = True

    def refresh(self) -> None:
        usable = [e for e in self.members if not e.hot]
        self.overloaded = not usable
        self.usable = usable or self.members
        self.stale = False

    @classmethod
    def subset(cls, pool: _Pool, eligible: Container[str]) -> _Pool:
        """A one-request copy of ``pool`` limited to the ``eligible`` members, same scorers."""
        narrowed = cls(())
        narrowed.per_request, narrowed.per_endpoint = pool.per_request, pool.per_endpoint
        narrowed.members = [e for e in pool.members if e.name in eligible]
        return narrowed


class _Live:
    """What a placed request holds until it finishes, so that releasing it is exact and idempotent."""

    __slots__ = ("decode", "held", "prefill_owner", "remote", "uncached")

    def __init__(
        self, decode: Endpoint, *, prefill_owner: Endpoint | None, remote: bool, uncached: int, held: int
    ) -> None:
        self.decode = decode
        self.prefill_owner = prefill_owner  # where the prompt's prefill is pending; None once done
        self.remote = remote
        self.uncached = uncached
        self.held = held  # tokens charged to the decode endpoint until the request finishes


class AffinityRouter:
    """Implements ``autoscaler.routing.interface.Placer``; see the module docstring."""

    def __init__(self, settings: RouterSettings | None = None, *, seed: int = 0) -> None:
        self._settings = settings = settings or RouterSettings()
        self._rng = random.Random(seed)
        self._index = BlockIndex()
        self._by_name: dict[str, Endpoint] = {}
        self._primary = _Pool(scorers.build(settings.scorers))  # endpoints that serve requests
        self._prefill = _Pool(scorers.build(settings.prefill_scorers))  # prefill endpoints (P/D)
        self._sessions: OrderedDict[str, tuple[str, float]] = OrderedDict()  # id -> (endpoint, expiry)
        self._live: dict[int | str, _Live] = {}
        self._slow_start_until = float("-inf")
        self._store_on_place = settings.index_source is IndexSource.PLACEMENT
        self._correct_scrapes = settings.correct_scrapes
        ov = settings.overload
        self._max_queue, self._max_kv, self._max_tokens = (
            ov.max_queue,
            ov.max_kv_usage,
            ov.max_in_flight_tokens,
        )

    @property
    def settings(self) -> RouterSettings:
        return self._settings

    # --- endpoints ---------------------------------------------------------------------------------

    def add_endpoint(self, name: str, *, phase: Phase, kv_capacity_tokens: int, now: float) -> None:
        if name in self._by_name:
            raise ValueError(f"endpoint {name!r} is already known")
        slot = self._index.add_slot(capacity_blocks=kv_capacity_tokens // self._settings.block_tokens)
        endpoint = self._by_name[name] = Endpoint(name, phase=phase, slot=slot, added_at=now)
        endpoint.kv_capacity_tokens = max(1, kv_capacity_tokens)
        self._rescore(endpoint)
        self._slow_start_until = max(self._slow_start_until, now + self._settings.slow_start.window_s)
        self._refresh_candidates()

    def remove_endpoint(self, name: str) -> None:
        endpoint = self._by_name.pop(name, None)
        if endpoint is not None:
            self._index.remove_slot(endpoint.slot)
            self._refresh_candidates()

    def set_draining(self, name: str, draining: bool) -> None:
        endpoint = self._by_name.get(name)
        if endpoint is not None and endpoint.draining != draining:
            endpoint.draining = draining
            self._refresh_candidates()

    def set_kv_capacity(self, name: str, kv_capacity_tokens: int) -> None:
        """The engine reported its real KV capacity (``vllm:cache_config_info``): resize its index."""
        endpoint = self._by_name[name]
        self._index.set_capacity(endpoint.slot, kv_capacity_tokens // self._settings.block_tokens)
        endpoint.kv_capacity_tokens = max(1, kv_capacity_tokens)
        self._rescore(endpoint)

    def update_metrics(self, name: str, metrics: EndpointMetrics, *, now: float) -> None:
        endpoint = self._by_name.get(name)
        if endpoint is None:
            return
        # A reading that is not a finite number keeps the last good one (NaN would poison every score).
        if math.isfinite(metrics.queue_length):
            endpoint.scraped_queue_length = metrics.queue_length
        if math.isfinite(metrics.running):
            endpoint.running = metrics.running
        if math.isfinite(metrics.kv_usage):
            endpoint.scraped_kv_usage = metrics.kv_usage
        endpoint.in_flight_at_scrape = endpoint.in_flight
        endpoint.tokens_at_scrape = endpoint.in_flight_tokens
        self._rescore(endpoint)

    def endpoints(self, phase: Phase | None = None) -> Sequence[str]:
        return [e.name for e in self._by_name.values() if phase is None or e.phase is phase]

    def endpoint(self, name: str) -> Endpoint:
        """The endpoint's record, read-only by convention (metrics exporters read the router's load)."""
        return self._by_name[name]

    def in_flight(self, name: str) -> int:
        endpoint = self._by_name.get(name)
        return endpoint.in_flight if endpoint is not None else 0

    # --- KV events (precise mode) ------------------------------------------------------------------

    def blocks_stored(self, name: str, block_hashes: Sequence[int]) -> None:
        endpoint = self._by_name.get(name)
        if endpoint is not None:
            self._index.store(endpoint.slot, block_hashes)

    def blocks_removed(self, name: str, block_hashes: Sequence[int]) -> None:
        endpoint = self._by_name.get(name)
        if endpoint is not None:
            self._index.remove(endpoint.slot, block_hashes)

    def all_blocks_cleared(self, name: str) -> None:
        endpoint = self._by_name.get(name)
        if endpoint is not None:
            self._index.clear(endpoint.slot)

    def index_size(self, name: str) -> int:
        """How many blocks the index says ``name`` holds."""
        return self._index.size(self._by_name[name].slot)

    def cached_blocks(self, name: str) -> list[int]:
        """The blocks the index says ``name`` holds, least recently used first."""
        return self._index.blocks(self._by_name[name].slot)

    # --- requests ----------------------------------------------------------------------------------

    def place(
        self, request: RouteRequest, *, now: float, eligible: Container[str] | None = None
    ) -> RoutedPlacement:
        """Place ``request``; ``eligible`` (endpoint names) limits every choice to that subset, as a
        gateway's subset hint does: no eligible endpoint to serve it raises ``NoEndpointError``, no
        eligible prefill endpoint means it prefills on its decode endpoint. Token counts outside
        0..``MAX_REQUEST_TOKENS`` raise ``ValueError``. Either error leaves nothing counted."""
        if not (
            0 <= request.prompt_tokens <= MAX_REQUEST_TOKENS
            and 0 <= request.output_tokens <= MAX_REQUEST_TOKENS
        ):
            raise ValueError(f"token counts must be within 0..{MAX_REQUEST_TOKENS}")
        primary, prefill_pool = self._primary, self._prefill
        if eligible is not None:
            primary, prefill_pool = _Pool.subset(primary, eligible), _Pool.subset(prefill_pool, eligible)
        if not primary.members:
            raise NoEndpointError("no ready, non-draining endpoint")
        settings = self._settings
        cycle = scorers.Cycle(
            request,
            matched=self._index.prefix_lengths(request.block_hashes),
            block_tokens=settings.block_tokens,
            session_slot=self._session_slot(request.session_id, now)
            if request.session_id is not None
            else -1,
            weights=self._slow_start_weights(now) if now < self._slow_start_until else None,
        )
        decode, reason = self._pick(primary, cycle)
        prompt = request.prompt_tokens
        cached = cycle.cached.get(decode.slot, 0)
        prefill: Endpoint | None = None
        prefill_reason = ""
        if prefill_pool.members:
            candidate, _ = self._pick(prefill_pool, cycle)
            cached_remote = cycle.cached.get(candidate.slot, 0)
            remote, prefill_reason = pd.decide(
                settings.prefill_decider,
                uncached_on_decode=prompt - cached,
                uncached_on_prefill=prompt - cached_remote,
                prefill_backlog_tokens=candidate.prefill_tokens,
                decode_backlog_tokens=decode.prefill_tokens,
                decode_kv_usage=decode.kv_usage,
                decode_sequences=decode.in_flight,
            )
            if remote:
                prefill, cached = candidate, cached_remote
        elif decode.phase is Phase.DECODE:
            prefill_reason = pd.NO_PREFILL_ENDPOINT

        self._admit(request, decode=decode, prefill=prefill, uncached=prompt - cached)
        try:
            if self._store_on_place and request.block_hashes:
                matched = cycle.matched
                self._index.store(decode.slot, request.block_hashes, held=matched.get(decode.slot, 0))
                if prefill is not None:
                    self._index.store(prefill.slot, request.block_hashes, held=matched.get(prefill.slot, 0))
            if request.session_id is not None:
                self._remember_session(request.session_id, decode.name, now)
        except BaseException:
            self._release(request.request_id)
            raise
        return RoutedPlacement(
            request=request,
            endpoint=decode.name,
            prefill_endpoint=prefill.name if prefill is not None else None,
            cached_tokens=cached,
            reason=reason,
            prefill_reason=prefill_reason,
        )

    def prefill_done(self, placement: Placement, *, now: float) -> None:
        live = self._live.get(placement.request.request_id)
        if live is not None:
            self._release_prefill(live)

    def finished(self, placement: Placement, *, now: float) -> None:
        self._release(placement.request.request_id)

    # --- internals ---------------------------------------------------------------------------------

    def _pick(self, pool: _Pool, cycle: scorers.Cycle) -> tuple[Endpoint, str]:
        if pool.stale:
            pool.refresh()
        usable = pool.usable
        if len(usable) == 1:
            chosen = usable[0]
        else:
            totals = list(map(_BASE_SCORE, usable))  # C-level loop
            for weight, scorer in pool.per_request:
                scores = scorer.score(cycle, usable)
                if scores is not None:
                    totals = list(map(add, totals, map(mul, repeat(weight), scores)))  # C-level loop
            best = max(totals)
            # Equal inputs give bit-identical totals (same operations in the same order): exact ties.
            if totals.count(best) == 1:
                chosen = usable[totals.index(best)]
            else:
                chosen = usable[self._rng.choice([i for i, t in enumerate(totals) if t == best])]
        if pool.overloaded:
            return chosen, ALL_OVERLOADED
        if chosen.slot == cycle.session_slot:
            return chosen, SESSION
        if chosen.slot in cycle.matched:
            return chosen, AFFINITY
        return chosen, LEAST_LOADED

    def _rescore(self, endpoint: Endpoint) -> None:
        """Re-estimate the endpoint's queue and KV use, then its overload flag and base score.

        A scrape is a snapshot up to a scrape interval old, and at 100+ requests/s that is hundreds of
        placements: read as is, every one of them prefers the endpoint that looked emptiest at the last
        scrape, which then gets them all. So the estimate is the scrape corrected by what the router placed
        and released there since (dead reckoning): requests in flight added to the queue, in-flight tokens
        over the KV capacity added to the KV use. The next scrape resets it to the engine's own figures.
        The queue estimate is an upper bound (an engine with free batch slots runs new requests instead of
        queueing them), so the overload gate reads the engine's reported queue; KV is conserved, so the
        gate reads its estimate. Without ``correct_scrapes`` the estimates are the scrape as is.
        """
        if self._correct_scrapes:
            queue = endpoint.scraped_queue_length + endpoint.in_flight - endpoint.in_flight_at_scrape
            endpoint.queue_length = queue if queue > 0.0 else 0.0
            endpoint.kv_usage = (
                endpoint.scraped_kv_usage
                + (endpoint.in_flight_tokens - endpoint.tokens_at_scrape) / endpoint.kv_capacity_tokens
            )
        else:
            endpoint.queue_length = endpoint.scraped_queue_length
            endpoint.kv_usage = endpoint.scraped_kv_usage
        hot = (
            endpoint.scraped_queue_length >= self._max_queue
            or endpoint.kv_usage >= self._max_kv
            or endpoint.in_flight_tokens >= self._max_tokens
        )
        if hot is not endpoint.hot:
            endpoint.hot = hot
            self._primary.stale = self._prefill.stale = True
        profile = self._prefill if endpoint.phase is Phase.PREFILL else self._primary
        base = 0.0
        for weight, score_one in profile.per_endpoint:  # runs on every placement and release: a plain loop
            base += weight * score_one(endpoint)
        endpoint.base_score = base

    def _slow_start_weights(self, now: float) -> dict[int, float]:
        """Slot -> weight of each endpoint still in its slow start (``settings.SlowStart``)."""
        slow = self._settings.slow_start
        return {
            e.slot: max(slow.min_weight, (now - e.added_at) / slow.window_s)
            for e in self._by_name.values()
            if now - e.added_at < slow.window_s
        }

    def _admit(
        self, request: RouteRequest, *, decode: Endpoint, prefill: Endpoint | None, uncached: int
    ) -> None:
        """Count the request where it goes and record what it holds; the counts and the record change
        together, before any estimate is derived from them."""
        owner = prefill if prefill is not None else decode
        held = request.output_tokens
        if decode.phase is Phase.DECODE:  # its load is the context it decodes, the prompt's KV included
            held += request.prompt_tokens
        self._live[request.request_id] = _Live(
            decode, prefill_owner=owner, remote=prefill is not None, uncached=uncached, held=held
        )
        owner.prefill_tokens += uncached
        decode.in_flight += 1
        decode.in_flight_tokens += held
        owner.in_flight += 1 if prefill is not None else 0
        owner.in_flight_tokens += uncached
        if prefill is not None:
            self._rescore(prefill)
        self._rescore(decode)

    def _release(self, request_id: int | str) -> None:
        """Give back what a request holds; idempotent (a second release finds no record)."""
        live = self._live.pop(request_id, None)
        if live is None:
            return
        decode = live.decode
        if live.prefill_owner is decode:  # prefilled there and never reported done: one update, not two
            decode.prefill_tokens -= live.uncached
            self._account(decode, requests=-1, tokens=-live.held - live.uncached)
        else:
            self._release_prefill(live)
            self._account(decode, requests=-1, tokens=-live.held)

    def _release_prefill(self, live: _Live) -> None:
        owner = live.prefill_owner
        if owner is None:
            return
        live.prefill_owner = None
        owner.prefill_tokens -= live.uncached
        self._account(owner, requests=-1 if live.remote else 0, tokens=-live.uncached)

    def _account(self, endpoint: Endpoint, *, requests: int, tokens: int) -> None:
        """Change an endpoint's in-flight requests and tokens, then what the router estimates from them."""
        endpoint.in_flight += requests
        endpoint.in_flight_tokens += tokens
        self._rescore(endpoint)

    def _session_slot(self, session_id: str | None, now: float) -> int:
        if session_id is None:
            return -1
        entry = self._sessions.get(session_id)
        if entry is None or entry[1] < now:
            return -1
        endpoint = self._by_name.get(entry[0])
        if endpoint is None or endpoint.draining:
            return -1
        return endpoint.slot

    def _remember_session(self, session_id: str, name: str, now: float) -> None:
        sessions = self._sessions
        sessions[session_id] = (name, now + self._settings.session_ttl_s)
        sessions.move_to_end(session_id)
        if len(sessions) > self._settings.max_sessions:
            sessions.popitem(last=False)

    def _refresh_candidates(self) -> None:
        ready = [e for e in self._by_name.values() if not e.draining]
        self._primary.members = [e for e in ready if e.phase is not Phase.PREFILL]
        self._prefill.members = [e for e in ready if e.phase is Phase.PREFILL]
        self._primary.stale = self._prefill.stale = True

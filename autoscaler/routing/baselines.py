"""Comparison placers: round-robin and SGLang's cache-aware policy, on the pure ``Placer`` interface.

They exist to measure the affinity router against what peers ship (``benchmarks/router_quality.py``), not
to serve traffic. Both count load as the router-tracked requests in flight per endpoint, as SGLang's router
does (``worker.load()``), and ignore scraped metrics. Draining endpoints get no new requests.

Under P/D each placer picks the decode endpoint and, when there are prefill endpoints, a prefill endpoint
(remote prefill always) with the same rule applied to that pool; without prefill endpoints the decode
endpoint prefills locally. llm-d's default scheduler needs no class here: it is an ``AffinityRouter``
configured with llm-d's default weights (prefix 3, queue 2, KV 2).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from autoscaler.core.phases import Phase
from autoscaler.routing.index import BlockIndex
from autoscaler.routing.interface import EndpointMetrics, NoEndpointError, Placement, RouteRequest

__all__ = ["CacheAwarePlacer", "CacheAwareSettings", "RoundRobinPlacer"]

ROUND_ROBIN = "round-robin"
IMBALANCED = "imbalanced"  # cache-aware: load gate tripped, shortest queue
CACHE_HIT = "cache-hit"  # cache-aware: longest prefix match above the threshold
SMALLEST_TREE = "smallest-tree"  # cache-aware: match too short, the worker with the most spare cache


class _Counted:
    """Endpoint membership, draining and router-tracked in-flight counts; subclasses choose the endpoint.

    ``_choose(names, request)`` picks among the non-draining endpoints of one pool (the serving pool, then
    the prefill pool under P/D) and returns the chosen name, the reason and the cached-token estimate.
    ``_placed`` hears where the request went (both endpoints under P/D).
    """

    def __init__(self) -> None:
        self._phase: dict[str, Phase] = {}
        self._in_flight: dict[str, int] = {}
        self._open: dict[Phase, list[str]] = {phase: [] for phase in Phase}  # not draining, in added order
        self._remote_prefill: dict[int | str, str] = {}  # request id -> prefill endpoint not done yet

    def add_endpoint(self, name: str, *, phase: Phase, kv_capacity_tokens: int, now: float) -> None:
        if name in self._phase:
            raise ValueError(f"endpoint {name!r} is already known")
        self._phase[name] = phase
        self._in_flight[name] = 0
        self._open[phase].append(name)
        self._added(name)

    def remove_endpoint(self, name: str) -> None:
        phase = self._phase.pop(name, None)
        if phase is None:
            return
        del self._in_flight[name]
        if name in self._open[phase]:
            self._open[phase].remove(name)
        self._removed(name)

    def set_draining(self, name: str, draining: bool) -> None:
        open_names = self._open[self._phase[name]]
        if draining and name in open_names:
            open_names.remove(name)
        elif not draining and name not in open_names:
            open_names.append(name)

    def update_metrics(self, name: str, metrics: EndpointMetrics, *, now: float) -> None:
        """Load is the router's own in-flight count; scraped metrics are not used."""

    def place(self, request: RouteRequest, *, now: float) -> Placement:
        serving = self._open[Phase.DECODE] or self._open[Phase.AGGREGATED]
        if not serving:
            raise NoEndpointError("no ready, non-draining endpoint")
        endpoint, reason, cached = self._choose(serving, request)
        prefill = None
        if self._open[Phase.DECODE] and self._open[Phase.PREFILL]:
            prefill, _, cached = self._choose(self._open[Phase.PREFILL], request)
            self._in_flight[prefill] += 1
            self._remote_prefill[request.request_id] = prefill
            self._placed(prefill, request)
        self._in_flight[endpoint] += 1
        self._placed(endpoint, request)
        return Placement(
            request=request, endpoint=endpoint, prefill_endpoint=prefill, cached_tokens=cached, reason=reason
        )

    def prefill_done(self, placement: Placement, *, now: float) -> None:
        self._release_prefill(placement.request.request_id)

    def finished(self, placement: Placement, *, now: float) -> None:
        self._release_prefill(placement.request.request_id)
        self._decrement(placement.endpoint)

    def in_flight(self, name: str) -> int:
        return self._in_flight.get(name, 0)

    def endpoints(self, phase: Phase | None = None) -> Sequence[str]:
        return [name for name, p in self._phase.items() if phase is None or p is phase]

    # --- hooks -------------------------------------------------------------------------------------

    def _choose(self, names: list[str], request: RouteRequest) -> tuple[str, str, int]:
        raise NotImplementedError

    def _added(self, name: str) -> None:
        """A new endpoint (no state by default)."""

    def _removed(self, name: str) -> None:
        """An endpoint left (no state by default)."""

    def _placed(self, name: str, request: RouteRequest) -> None:
        """``request`` went to ``name`` (nothing to remember by default)."""

    # --- internals ---------------------------------------------------------------------------------

    def _release_prefill(self, request_id: int | str) -> None:
        prefill = self._remote_prefill.pop(request_id, None)
        if prefill is not None:
            self._decrement(prefill)

    def _decrement(self, name: str) -> None:
        if name in self._in_flight:  # a removed endpoint is forgotten
            self._in_flight[name] -= 1


class RoundRobinPlacer(_Counted):
    """Each pool's open endpoints in turn, whatever their load or cache; implements ``Placer``.

    The cursor is per pool and counts placements, so an endpoint that drains or joins shifts the order by
    one instead of resetting it.
    """

    def __init__(self) -> None:
        super().__init__()
        self._turn: dict[Phase, int] = {}

    def _choose(self, names: list[str], request: RouteRequest) -> tuple[str, str, int]:
        phase = self._phase[names[0]]
        turn = self._turn.get(phase, 0)
        self._turn[phase] = turn + 1
        return names[turn % len(names)], ROUND_ROBIN, 0


@dataclasses.dataclass(frozen=True, slots=True)
class CacheAwareSettings:
    """SGLang router defaults (``RouterArgs``; reference/peers.md D.2).

    ``max_tree_tokens``: SGLang bounds each worker's tree at ``max_tree_size = 2**26`` characters; at
    about 4 characters per token that is ``2**24`` tokens. ``block_tokens``: tokens per hashed block of
    the requests' ``block_hashes`` (the tree here holds block hashes, not text).
    """

    cache_threshold: float = 0.3
    balance_abs_threshold: int = 64
    balance_rel_threshold: float = 1.5
    max_tree_tokens: int = 2**24
    block_tokens: int = 64

    def __post_init__(self) -> None:
        if not 0 <= self.cache_threshold <= 1:
            raise ValueError("cache_threshold must be within [0, 1]")
        if self.balance_abs_threshold < 0 or self.balance_rel_threshold < 1:
            raise ValueError("balance thresholds: abs >= 0 and rel >= 1")
        if self.block_tokens < 1 or self.max_tree_tokens < self.block_tokens:
            raise ValueError("block_tokens >= 1 and max_tree_tokens >= block_tokens")


class CacheAwarePlacer(_Counted):
    """SGLang's cache-aware policy (``policies/cache_aware.rs``; reference/peers.md D.2); a ``Placer``.

    Per request, over the pool's open workers:

    - *imbalanced* when ``max_load - min_load > balance_abs_threshold`` and
      ``max_load > balance_rel_threshold x min_load`` (load = in-flight requests): the least-loaded worker;
    - otherwise the longest prefix match if ``matched / prompt > cache_threshold``, else the worker with
      the smallest tree (the most spare cache, load ignored: SGLang's known "death spiral" on misses).

    Either way the prompt is inserted into the chosen worker's tree. The approximate radix tree is kept
    as chained block hashes per worker (equal chained hashes are equal prefixes, so a prefix match in the
    tree is the run of leading hashes present), LRU-evicted past ``max_tree_tokens`` with a prompt's tail
    evicted before its head, as SGLang evicts leaves first. SGLang evicts in a background thread every
    60 s; this evicts on insert, so a tree never exceeds its bound. Ties between equal matches go to the
    least-loaded, then the first-added worker (SGLang's later fix for its load tie-break, PR #27547).
    """

    def __init__(self, settings: CacheAwareSettings | None = None) -> None:
        super().__init__()
        self._settings = settings = settings or CacheAwareSettings()
        self._trees = BlockIndex()
        self._slot: dict[str, int] = {}
        self._tree_blocks = settings.max_tree_tokens // settings.block_tokens

    def tree_blocks(self, name: str) -> int:
        """How many blocks ``name``'s tree holds."""
        return self._trees.size(self._slot[name])

    def _added(self, name: str) -> None:
        self._slot[name] = self._trees.add_slot(capacity_blocks=self._tree_blocks)

    def _removed(self, name: str) -> None:
        self._trees.remove_slot(self._slot.pop(name))

    def _placed(self, name: str, request: RouteRequest) -> None:
        if request.block_hashes:
            self._trees.store(self._slot[name], request.block_hashes)

    def _choose(self, names: list[str], request: RouteRequest) -> tuple[str, str, int]:
        settings = self._settings
        load = self._in_flight.__getitem__
        loads = [load(n) for n in names]
        least = names[loads.index(min(loads))]
        matched = self._trees.prefix_lengths(request.block_hashes)
        slot = self._slot

        def cached(name: str) -> int:
            return min(matched.get(slot[name], 0) * settings.block_tokens, request.prompt_tokens)

        high, low = max(loads), min(loads)
        if high - low > settings.balance_abs_threshold and high > settings.balance_rel_threshold * low:
            return least, IMBALANCED, cached(least)
        best = max(names, key=lambda n: (matched.get(slot[n], 0), -load(n)))  # first-added on ties
        hit = cached(best)
        if request.prompt_tokens and hit / request.prompt_tokens > settings.cache_threshold:
            return best, CACHE_HIT, hit
        smallest = min(names, key=lambda n: self._trees.size(slot[n]))
        return smallest, SMALLEST_TREE, cached(smallest)

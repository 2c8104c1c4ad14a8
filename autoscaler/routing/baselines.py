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

from autoscaler.core.phases import Phase
from autoscaler.routing.counted import CountedPlacer
from autoscaler.routing.index import BlockIndex
from autoscaler.routing.interface import RouteRequest

__all__ = ["CacheAwarePlacer", "CacheAwareSettings", "RoundRobinPlacer"]

ROUND_ROBIN = "round-robin"
IMBALANCED = "imbalanced"  # cache-aware: load gate tripped, shortest queue
CACHE_HIT = "cache-hit"  # cache-aware: longest prefix match above the threshold
SMALLEST_TREE = "smallest-tree"  # cache-aware: match too short, the worker with the most spare cache


class RoundRobinPlacer(CountedPlacer):
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


class CacheAwarePlacer(CountedPlacer):
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

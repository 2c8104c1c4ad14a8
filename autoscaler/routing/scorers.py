"""Scorer plugins: one small interface, one class per signal, weights from configuration.

A scorer rates every candidate endpoint of one request in [0, 1] (higher is better) in one call, so the
per-request cost is one Python call per scorer rather than one per scorer and endpoint. It may answer
``None`` for "0 everywhere" (no endpoint caches the prompt, the request has no session), which spares the
router adding a row of zeros. The router sums ``weight x score`` per endpoint and picks the best
(``autoscaler.routing.router``).

A scorer whose ``per_request`` is False reads only the endpoint's state (queue and KV use, which the router
estimates from the last scrape and its own placements since): it is an ``EndpointScorer``, and the router
calls its ``score_one`` when that state changes (a scrape, a request placed or released there), not every
candidate on every request. That runs four times per request, so it returns a plain float, no list.
Scorers are stateless given the ``Cycle`` and the endpoints' records, and return values already in
[0, 1], which the tests check for every plugin.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import repeat
from operator import truediv
from typing import Protocol

from autoscaler.routing import settings as cfg
from autoscaler.routing.endpoint import Endpoint
from autoscaler.routing.interface import RouteRequest


class Cycle:
    """Per-request scratch shared by the scorers of one placement."""

    __slots__ = ("cached", "matched", "request", "session_slot", "total_blocks", "weights")

    def __init__(
        self,
        request: RouteRequest,
        *,
        matched: dict[int, int],
        block_tokens: int,
        session_slot: int,
        weights: dict[int, float] | None = None,
    ) -> None:
        prompt = request.prompt_tokens
        self.request = request
        self.matched = matched  # index slot -> leading prompt blocks it holds (absent: none)
        # tokens; most prompts match nowhere, and an empty dict costs no comprehension
        self.cached = {slot: min(prompt, n * block_tokens) for slot, n in matched.items()} if matched else {}
        self.total_blocks = len(request.block_hashes)
        self.session_slot = session_slot  # slot of the session's previous endpoint, -1 if none
        self.weights = weights or {}  # slot -> slow-start weight in (0, 1), for endpoints still ramping up


class Scorer(Protocol):
    per_request: bool  # False: depends only on the endpoint's scraped state

    def score(self, cycle: Cycle, endpoints: Sequence[Endpoint]) -> list[float] | None:
        """One score in [0, 1] per endpoint, in order; None when every score is 0."""
        ...


class EndpointScorer:
    """A scorer of one endpoint's own state (``per_request`` False): its subclasses define ``score_one``.

    A base class rather than a runtime-checkable protocol, so that the router tells them apart with a plain
    ``isinstance`` and the module compiles with mypyc (``benchmarks/build_compiled.py``).
    """

    per_request = False

    def score(self, cycle: Cycle, endpoints: Sequence[Endpoint]) -> list[float]:
        return [self.score_one(e) for e in endpoints]

    def score_one(self, endpoint: Endpoint) -> float:
        """The endpoint's score in [0, 1]."""
        raise NotImplementedError


class PrefixAffinityScorer:
    per_request = True

    def score(self, cycle: Cycle, endpoints: Sequence[Endpoint]) -> list[float] | None:
        matched = cycle.matched
        if not matched:
            return None
        get = matched.get
        scale = 1.0 / cycle.total_blocks
        return [get(e.slot, 0) * scale for e in endpoints]


class InFlightTokensScorer:
    """The lightest candidate's load over each one's (``settings.InFlightTokens`` says why relative)."""

    per_request = True

    def score(self, cycle: Cycle, endpoints: Sequence[Endpoint]) -> list[float]:
        # One token more than the uncached prompt, so that an idle endpoint caching all of it costs 1, not 0.
        lookahead = cycle.request.prompt_tokens + 1
        cached = cycle.cached
        loads: list[float]
        if cached:
            get = cached.get
            loads = [e.in_flight_tokens + lookahead - get(e.slot, 0) for e in endpoints]
        else:
            loads = [e.in_flight_tokens + lookahead for e in endpoints]
        weights = cycle.weights
        if weights:
            get_weight = weights.get
            loads = [load / get_weight(e.slot, 1.0) for load, e in zip(loads, endpoints, strict=True)]
        return list(map(truediv, repeat(min(loads)), loads))  # C-level loop


class QueueLengthScorer(EndpointScorer):
    def __init__(self, config: cfg.QueueLength) -> None:
        self._threshold = config.threshold

    def score_one(self, endpoint: Endpoint) -> float:
        score = 1.0 - endpoint.queue_length / self._threshold
        return score if score > 0.0 else 0.0  # max(0.0, score) without the call, NaN to 0 likewise


class KvUsageScorer(EndpointScorer):
    def score_one(self, endpoint: Endpoint) -> float:
        score = 1.0 - endpoint.kv_usage
        if not score > 0.0:  # clamped to [0, 1] without min/max calls, NaN to 0 as they would
            return 0.0
        return score if score < 1.0 else 1.0


class SessionAffinityScorer:
    per_request = True

    def score(self, cycle: Cycle, endpoints: Sequence[Endpoint]) -> list[float] | None:
        slot = cycle.session_slot
        if slot < 0:
            return None
        return [1.0 if e.slot == slot else 0.0 for e in endpoints]


def _build_one(config: cfg.ScorerConfig) -> Scorer:
    match config:
        case cfg.PrefixAffinity():
            return PrefixAffinityScorer()
        case cfg.InFlightTokens():
            return InFlightTokensScorer()
        case cfg.QueueLength():
            return QueueLengthScorer(config)
        case cfg.KvUsage():
            return KvUsageScorer()
        case cfg.SessionAffinity():
            return SessionAffinityScorer()


def build(configs: Sequence[cfg.ScorerConfig]) -> tuple[tuple[float, Scorer], ...]:
    """``(weight, scorer)`` for each configured scorer with a positive weight."""
    return tuple((c.weight, _build_one(c)) for c in configs if c.weight > 0)

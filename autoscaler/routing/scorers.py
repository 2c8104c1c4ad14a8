"""Scorer plugins: one small interface, one class per signal, weights from configuration.

A scorer rates every candidate endpoint of one request in [0, 1] (higher is better) in one call, so the
per-request cost is one Python call per scorer rather than one per scorer and endpoint. The router sums
``weight x score`` per endpoint and picks the best (``autoscaler.routing.router``). Scorers are stateless
given the ``Cycle`` (what the router worked out once for this request) and the endpoints' records; each
returns values already in [0, 1], which the tests check for every plugin.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from autoscaler.routing import settings as cfg
from autoscaler.routing.endpoint import Endpoint
from autoscaler.routing.interface import RouteRequest


class Cycle:
    """Per-request scratch shared by the scorers of one placement."""

    __slots__ = ("block_tokens", "matched", "request", "session_slot", "total_blocks")

    def __init__(
        self, request: RouteRequest, *, matched: dict[int, int], block_tokens: int, session_slot: int
    ) -> None:
        self.request = request
        self.matched = matched  # index slot -> leading prompt blocks it holds (absent: none)
        self.total_blocks = len(request.block_hashes)
        self.block_tokens = block_tokens
        self.session_slot = session_slot  # slot of the session's previous endpoint, -1 if none

    def cached_tokens(self, slot: int) -> int:
        return min(self.request.prompt_tokens, self.matched.get(slot, 0) * self.block_tokens)


class Scorer(Protocol):
    def score(self, cycle: Cycle, endpoints: Sequence[Endpoint]) -> list[float]:
        """One score in [0, 1] per endpoint, in order."""
        ...


class PrefixAffinityScorer:
    def score(self, cycle: Cycle, endpoints: Sequence[Endpoint]) -> list[float]:
        matched, total = cycle.matched, cycle.total_blocks
        if not matched:
            return [0.0] * len(endpoints)
        return [matched.get(e.slot, 0) / total for e in endpoints]


class InFlightTokensScorer:
    def __init__(self, config: cfg.InFlightTokens) -> None:
        self._threshold = config.threshold_tokens

    def score(self, cycle: Cycle, endpoints: Sequence[Endpoint]) -> list[float]:
        threshold = self._threshold
        prompt = cycle.request.prompt_tokens
        cached = cycle.cached_tokens
        return [max(0.0, 1.0 - (e.in_flight_tokens + prompt - cached(e.slot)) / threshold) for e in endpoints]


class QueueLengthScorer:
    def __init__(self, config: cfg.QueueLength) -> None:
        self._threshold = config.threshold

    def score(self, cycle: Cycle, endpoints: Sequence[Endpoint]) -> list[float]:
        threshold = self._threshold
        return [max(0.0, 1.0 - e.queue_length / threshold) for e in endpoints]


class KvUsageScorer:
    def score(self, cycle: Cycle, endpoints: Sequence[Endpoint]) -> list[float]:
        return [min(1.0, max(0.0, 1.0 - e.kv_usage)) for e in endpoints]


class SessionAffinityScorer:
    def score(self, cycle: Cycle, endpoints: Sequence[Endpoint]) -> list[float]:
        slot = cycle.session_slot
        return [1.0 if e.slot == slot else 0.0 for e in endpoints]


def _build_one(config: cfg.ScorerConfig) -> Scorer:
    match config:
        case cfg.PrefixAffinity():
            return PrefixAffinityScorer()
        case cfg.InFlightTokens():
            return InFlightTokensScorer(config)
        case cfg.QueueLength():
            return QueueLengthScorer(config)
        case cfg.KvUsage():
            return KvUsageScorer()
        case cfg.SessionAffinity():
            return SessionAffinityScorer()


def build(configs: Sequence[cfg.ScorerConfig]) -> tuple[tuple[float, Scorer], ...]:
    """``(weight, scorer)`` for each configured scorer with a positive weight."""
    return tuple((c.weight, _build_one(c)) for c in configs if c.weight > 0)

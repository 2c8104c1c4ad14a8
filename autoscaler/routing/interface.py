"""The routing layer's interface, shared by the proxy (live) and the simulator.

A placer is a stateful but pure object: it keeps what a router knows (endpoints, their in-flight work, the
blocks each probably caches) and is told about every change by its driver. It never reads a clock
(``now`` is an argument) and draws randomness only from the seeded RNG it was built with.

Request lifecycle as the driver reports it::

    placement = placer.place(request, now=t)        # choose endpoint(s); counts the request in flight
    placer.prefill_done(placement, now=t2)          # P/D only: the prefill endpoint is free of it
    placer.finished(placement, now=t3)              # the request left the system (done, failed, cancelled)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Protocol

from autoscaler.core.phases import Phase


@dataclasses.dataclass(frozen=True, slots=True)
class RouteRequest:
    request_id: int | str
    prompt_tokens: int
    output_tokens: int  # expected (max_tokens or the trace's), for in-flight token accounting
    block_hashes: Sequence[int] = ()  # chained prefix-block hashes of the prompt, in order
    session_id: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Placement:
    request: RouteRequest
    endpoint: str  # serves decode (P/D) or the whole request (aggregated)
    prefill_endpoint: str | None  # P/D with remote prefill; None when the decode endpoint prefills locally
    cached_tokens: int  # the placer's estimate of prompt tokens already cached where the prefill runs
    reason: str  # why this endpoint: "affinity", "least-loaded", "session", ...


@dataclasses.dataclass(frozen=True, slots=True)
class RoutedPlacement(Placement):
    """A ``Placement`` that also says why P/D prefilled where it did (``pd.REMOTE``, ``pd.SHORT``, ...).

    Empty for aggregated serving. The affinity router returns it (``autoscaler.routing.router``, which
    re-exports it); it lives here, in a module mypyc leaves alone, because a class mypyc compiles cannot
    subclass one with ``__slots__`` (``benchmarks/build_compiled.py`` compiles the router).
    """

    prefill_reason: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class EndpointMetrics:
    """What a scrape of an engine's /metrics says (vLLM names in comments)."""

    queue_length: float  # vllm:num_requests_waiting
    running: float  # vllm:num_requests_running
    kv_usage: float  # vllm:kv_cache_usage_perc, 0..1


class NoEndpointError(RuntimeError):
    """No ready, non-draining endpoint can take the request (the proxy answers 503)."""


class Placer(Protocol):
    def add_endpoint(self, name: str, *, phase: Phase, kv_capacity_tokens: int, now: float) -> None: ...

    def remove_endpoint(self, name: str) -> None: ...

    def set_draining(self, name: str, draining: bool) -> None: ...

    def update_metrics(self, name: str, metrics: EndpointMetrics, *, now: float) -> None: ...

    def place(self, request: RouteRequest, *, now: float) -> Placement: ...

    def prefill_done(self, placement: Placement, *, now: float) -> None: ...

    def finished(self, placement: Placement, *, now: float) -> None: ...

    def in_flight(self, name: str) -> int: ...

    def endpoints(self, phase: Phase | None = None) -> Sequence[str]: ...

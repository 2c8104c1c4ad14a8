"""The simplest ``Placer``: each request goes to the endpoint with the fewest requests in flight.

It knows nothing about prefix caches; it exists so the simulator and the proxy have a placement that works
before (and without) the cache-affinity router, and as the "load only" comparison point for it. Draining
endpoints get no new requests. Ties go to the endpoint added first, so placement is deterministic.

In P/D it picks a decode endpoint and, when the pool has prefill endpoints, a prefill endpoint (remote
prefill always); with no prefill endpoint the decode endpoint prefills locally.
"""

from __future__ import annotations

from collections.abc import Sequence

from autoscaler.core.phases import Phase
from autoscaler.routing.interface import EndpointMetrics, NoEndpointError, Placement, RouteRequest

__all__ = ["LeastLoadedPlacer"]


class LeastLoadedPlacer:
    """Fewest in-flight requests per phase; implements ``autoscaler.routing.interface.Placer``."""

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

    def remove_endpoint(self, name: str) -> None:
        phase = self._phase.pop(name)
        del self._in_flight[name]
        if name in self._open[phase]:
            self._open[phase].remove(name)

    def set_draining(self, name: str, draining: bool) -> None:
        open_names = self._open[self._phase[name]]
        if draining and name in open_names:
            open_names.remove(name)
        elif not draining and name not in open_names:
            open_names.append(name)

    def update_metrics(self, name: str, metrics: EndpointMetrics, *, now: float) -> None:
        """Load comes from this placer's own in-flight counts; scraped metrics are not needed."""

    def place(self, request: RouteRequest, *, now: float) -> Placement:
        in_flight = self._in_flight
        decode = self._open[Phase.DECODE]
        if decode:
            endpoint = min(decode, key=in_flight.__getitem__)
            prefill_names = self._open[Phase.PREFILL]
            prefill = min(prefill_names, key=in_flight.__getitem__) if prefill_names else None
        else:
            aggregated = self._open[Phase.AGGREGATED]
            if not aggregated:
                raise NoEndpointError("no ready, non-draining endpoint")
            endpoint = min(aggregated, key=in_flight.__getitem__)
            prefill = None
        in_flight[endpoint] += 1
        if prefill is not None:
            in_flight[prefill] += 1
            self._remote_prefill[request.request_id] = prefill
        return Placement(
            request=request,
            endpoint=endpoint,
            prefill_endpoint=prefill,
            cached_tokens=0,
            reason="least-loaded",
        )

    def prefill_done(self, placement: Placement, *, now: float) -> None:
        self._release_prefill(placement.request.request_id)

    def finished(self, placement: Placement, *, now: float) -> None:
        self._release_prefill(placement.request.request_id)
        self._decrement(placement.endpoint)

    def in_flight(self, name: str) -> int:
        return self._in_flight[name]

    def endpoints(self, phase: Phase | None = None) -> Sequence[str]:
        return [name for name, p in self._phase.items() if phase is None or p is phase]

    def _release_prefill(self, request_id: int | str) -> None:
        prefill = self._remote_prefill.pop(request_id, None)
        if prefill is not None:
            self._decrement(prefill)

    def _decrement(self, name: str) -> None:
        if name in self._in_flight:  # a removed endpoint is forgotten
            self._in_flight[name] -= 1

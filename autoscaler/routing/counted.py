"""The shared half of the placers that count load themselves: endpoints, draining, requests in flight.

``LeastLoadedPlacer`` and the comparison placers (``baselines``) differ only in which endpoint they choose;
membership, draining, P/D pairing and the in-flight counts the router tracks (scraped metrics unused) are
this one class.
"""

from __future__ import annotations

from collections.abc import Sequence

from autoscaler.core.phases import Phase
from autoscaler.routing.interface import EndpointMetrics, NoEndpointError, Placement, RouteRequest

__all__ = ["CountedPlacer"]


class CountedPlacer:
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

"""The simplest ``Placer``: each request goes to the endpoint with the fewest requests in flight.

It knows nothing about prefix caches; it exists so the simulator and the proxy have a placement that works
before (and without) the cache-affinity router, and as the "load only" comparison point for it. Draining
endpoints get no new requests. Ties go to the endpoint added first, so placement is deterministic.

In P/D it picks a decode endpoint and, when the pool has prefill endpoints, a prefill endpoint (remote
prefill always); with no prefill endpoint the decode endpoint prefills locally.
"""

from __future__ import annotations

from autoscaler.routing.counted import CountedPlacer
from autoscaler.routing.interface import RouteRequest

__all__ = ["LeastLoadedPlacer"]

LEAST_LOADED = "least-loaded"


class LeastLoadedPlacer(CountedPlacer):
    """Fewest in-flight requests per phase; implements ``autoscaler.routing.interface.Placer``."""

    def _choose(self, names: list[str], request: RouteRequest) -> tuple[str, str, int]:
        return min(names, key=self._in_flight.__getitem__), LEAST_LOADED, 0

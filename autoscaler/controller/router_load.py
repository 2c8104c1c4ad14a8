"""What the router says about each replica: requests in flight and prefix blocks cached.

Scale-down removes the replicas that cost least to lose (fewest requests in flight, least cached state) and
waits until the chosen ones have no request left. Both facts are on the router's ``/metrics`` per endpoint
(``autoscaler_router_endpoint_in_flight_requests`` and ``autoscaler_router_endpoint_index_blocks``; the
endpoint label is the pod's name), read directly rather than through Prometheus so a drain is judged on the
router's state now, not a scrape ago. Unreachable or unset: ``None``, and the drain falls back to its bound.
"""

from __future__ import annotations

import dataclasses
import logging

import httpx
from prometheus_client.parser import text_string_to_metric_families

IN_FLIGHT = "autoscaler_router_endpoint_in_flight_requests"
BLOCKS = "autoscaler_router_endpoint_index_blocks"

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class EndpointLoad:
    in_flight: float
    cached_blocks: float


RouterLoad = dict[str, EndpointLoad]  # by endpoint (pod) name


class RouterLoadReader:
    def __init__(self, *, timeout_s: float = 2.0) -> None:
        self._timeout_s = timeout_s

    async def read(self, metrics_url: str | None) -> RouterLoad | None:
        if not metrics_url:
            return None
        try:
            async with httpx.AsyncClient(timeout=self._timeout_s) as http:
                response = await http.get(metrics_url)
                response.raise_for_status()
        except httpx.HTTPError as error:
            log.warning(
                "router metrics unavailable", extra={"fields": {"url": metrics_url, "error": str(error)}}
            )
            return None
        return parse(response.text)


def parse(text: str) -> RouterLoad:
    in_flight: dict[str, float] = {}
    blocks: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        target = {IN_FLIGHT: in_flight, BLOCKS: blocks}.get(family.name)
        if target is None:
            continue
        for sample in family.samples:
            endpoint = sample.labels.get("endpoint")
            if endpoint:
                target[endpoint] = target.get(endpoint, 0.0) + sample.value
    return {
        name: EndpointLoad(in_flight=in_flight.get(name, 0.0), cached_blocks=blocks.get(name, 0.0))
        for name in in_flight.keys() | blocks.keys()
    }

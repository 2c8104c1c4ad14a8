"""The placeholder placer: fewest requests in flight, draining endpoints skipped, P/D pairs, ties by order."""

from __future__ import annotations

import pytest

from autoscaler.core.phases import Phase
from autoscaler.routing.interface import NoEndpointError, RouteRequest
from autoscaler.routing.least_loaded import LeastLoadedPlacer


def _request(i: int) -> RouteRequest:
    return RouteRequest(request_id=i, prompt_tokens=100, output_tokens=10)


def _placer(*names: tuple[str, Phase]) -> LeastLoadedPlacer:
    placer = LeastLoadedPlacer()
    for name, phase in names:
        placer.add_endpoint(name, phase=phase, kv_capacity_tokens=1000, now=0.0)
    return placer


def test_spreads_requests_over_the_least_loaded_endpoints() -> None:
    placer = _placer(("a", Phase.AGGREGATED), ("b", Phase.AGGREGATED))
    first, second, third = (placer.place(_request(i), now=0.0) for i in range(3))
    assert (first.endpoint, second.endpoint, third.endpoint) == ("a", "b", "a")
    placer.finished(first, now=1.0)
    placer.finished(third, now=1.0)
    assert placer.place(_request(3), now=1.0).endpoint == "a"


def test_draining_endpoints_get_nothing_new() -> None:
    placer = _placer(("a", Phase.AGGREGATED), ("b", Phase.AGGREGATED))
    placer.set_draining("a", True)
    assert {placer.place(_request(i), now=0.0).endpoint for i in range(3)} == {"b"}
    placer.set_draining("b", True)
    with pytest.raises(NoEndpointError):
        placer.place(_request(9), now=0.0)


def test_disaggregated_placement_counts_prefill_until_it_is_done() -> None:
    placer = _placer(("p", Phase.PREFILL), ("d", Phase.DECODE))
    placement = placer.place(_request(0), now=0.0)
    assert (placement.prefill_endpoint, placement.endpoint) == ("p", "d")
    assert placer.in_flight("p") == 1 and placer.in_flight("d") == 1
    placer.prefill_done(placement, now=1.0)
    assert placer.in_flight("p") == 0 and placer.in_flight("d") == 1
    placer.finished(placement, now=2.0)
    assert placer.in_flight("d") == 0


def test_without_prefill_endpoints_the_decode_endpoint_prefills_locally() -> None:
    placer = _placer(("d", Phase.DECODE))
    assert placer.place(_request(0), now=0.0).prefill_endpoint is None

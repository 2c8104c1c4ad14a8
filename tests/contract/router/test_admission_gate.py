"""The admission gate on an event loop, over the real router, with a manual clock: what a waiting handler
gets, and that a placement is never leaked when its handler goes away around the dispatch."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry

from autoscaler.adapters.admission_gate import AdmissionGate
from autoscaler.core.phases import Phase
from autoscaler.routing.admission import AdmissionQueue, AdmissionSettings, EndpointLimits
from autoscaler.routing.interface import RouteRequest
from autoscaler.routing.router import AffinityRouter

pytestmark = pytest.mark.timeout(10)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def gate_over_one_endpoint() -> tuple[AdmissionGate, AffinityRouter, Clock]:
    router = AffinityRouter()
    router.add_endpoint("e", phase=Phase.AGGREGATED, kv_capacity_tokens=100_000, now=0.0)
    clock = Clock()
    queue = AdmissionQueue(AdmissionSettings(), EndpointLimits(max_requests=1, max_kv_fraction=None))
    return AdmissionGate(router, queue, pool="p", registry=CollectorRegistry(), clock=clock), router, clock


def request(i: int) -> RouteRequest:
    return RouteRequest(request_id=i, prompt_tokens=100, output_tokens=10)


async def test_a_waiting_handler_gets_its_placement_and_the_time_it_waited() -> None:
    gate, router, clock = gate_over_one_endpoint()
    standard = gate.priority(None)
    first = await gate.place(request(1), standard)
    assert first.waited_s == 0 and router.in_flight("e") == 1
    second = asyncio.create_task(gate.place(request(2), standard))
    await asyncio.sleep(0)
    assert gate.waiting == 1 and not second.done()
    clock.now += 2.5
    router.finished(first.placement, now=clock.now)
    gate.pump()
    admitted = await second
    assert admitted.waited_s == 2.5 and admitted.placement.endpoint == "e"
    assert router.in_flight("e") == 1


async def test_a_handler_cancelled_just_after_its_dispatch_releases_the_placement() -> None:
    gate, router, clock = gate_over_one_endpoint()
    standard = gate.priority(None)
    first = await gate.place(request(1), standard)
    second = asyncio.create_task(gate.place(request(2), standard))
    await asyncio.sleep(0)
    router.finished(first.placement, now=clock.now)
    gate.pump()  # placed on "e" and handed over, but the handler has not run since
    second.cancel()
    with pytest.raises(asyncio.CancelledError):
        await second
    assert router.in_flight("e") == 0 and gate.waiting == 0


async def test_a_handler_cancelled_while_waiting_leaves_the_queue() -> None:
    gate, router, _ = gate_over_one_endpoint()
    standard = gate.priority(None)
    await gate.place(request(1), standard)
    second = asyncio.create_task(gate.place(request(2), standard))
    await asyncio.sleep(0)
    second.cancel()
    with pytest.raises(asyncio.CancelledError):
        await second
    assert gate.waiting == 0 and router.in_flight("e") == 1

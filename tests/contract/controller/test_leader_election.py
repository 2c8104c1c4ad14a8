"""Two controllers against one fake API server: exactly one acts; when it dies the other takes over within
the lease duration, and no replica count is ever written by both. Then the live loop (apscheduler jobs, the
renewal task, the watch, /healthz, /readyz, /metrics) runs and shuts down gracefully, releasing the lease."""

from __future__ import annotations

import asyncio
import time

import httpx

from autoscaler.controller.loop import Controller
from tests.contract.controller.conftest import (
    POOL,
    ControllerFactory,
    WallClock,
    add_autoscaler,
    add_pool,
    assert_everything_written_is_valid,
    autoscaler,
    events,
    heavy,
    replicas,
    status,
)
from tests.contract.kubernetes.conftest import ManualClock
from tests.fakes.kube_apiserver import FakeKubeApiServer
from tests.fakes.kube_resources import LEASES
from tests.fakes.prometheus_api import FakePrometheus

DURATION_S = 15


def _scalers(kube: FakeKubeApiServer) -> list[str]:
    """The controller instance behind each scale Event, in order."""
    scaled = [e for e in events(kube) if e["reason"] in ("ScaledUp", "ScaledDown")]
    return [e["reportingInstance"] for e in sorted(scaled, key=lambda e: e["eventTime"])]


async def _tick(controllers: list[Controller], clock: ManualClock, seconds: float) -> list[str]:
    clock.advance(seconds)
    for controller in controllers:
        await controller.elect()
    return [await c.reconcile("default", POOL) for c in controllers]


async def test_one_leader_acts_and_a_dead_leader_is_replaced_within_the_lease_duration(
    kube: FakeKubeApiServer, prom: FakePrometheus, make_controller: ControllerFactory, clock: ManualClock
) -> None:
    add_pool(kube)
    add_autoscaler(kube, autoscaler(max_replicas=32))
    heavy(prom)
    a = make_controller("controller-a", lease_duration_s=DURATION_S)
    b = make_controller("controller-b", lease_duration_s=DURATION_S)

    assert [await a.elect(), await b.elect()] == [True, False]
    assert [await a.reconcile("default", POOL), await b.reconcile("default", POOL)] == ["decided", "follower"]
    assert await _tick([a, b], clock, 5) == ["decided", "follower"]
    writes_by_a = len(kube.requests_to("/scale$", method="PUT"))
    assert writes_by_a >= 2 and set(_scalers(kube)) == {"controller-a"}

    # a dies: it renews no more. Until the lease runs out, nobody acts.
    heavy_er = 4.0
    for phase in ("prefill", "decode"):
        prom.load(POOL, phase, rate=100.0 * heavy_er)
    assert await _tick([b], clock, DURATION_S - 1) == ["follower"]
    assert len(kube.requests_to("/scale$", method="PUT")) == writes_by_a

    outcomes = await _tick([b], clock, 2)  # past the duration since b last saw a renew
    assert outcomes == ["decided"]
    assert kube.get(LEASES, "inference-autoscaler")["spec"]["holderIdentity"] == "controller-b"
    assert kube.get(LEASES, "inference-autoscaler")["spec"]["leaseTransitions"] == 1

    # a comes back from the dead (its lease has lapsed): it must not act before it renews, and cannot renew
    assert await a.reconcile("default", POOL) == "follower"
    assert not await a.elect()
    assert await a.reconcile("default", POOL) == "follower"

    scalers = _scalers(kube)
    assert "controller-b" in scalers
    first_b = scalers.index("controller-b")
    assert set(scalers[:first_b]) == {"controller-a"} and set(scalers[first_b:]) == {"controller-b"}
    assert len(kube.requests_to("/scale$", method="PUT")) == len(scalers)  # one Event per write, no extras
    assert_everything_written_is_valid(kube)


async def _until(condition: object, *, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def test_the_live_loop_scales_serves_health_and_releases_the_lease_on_shutdown(
    kube: FakeKubeApiServer, prom: FakePrometheus, make_controller: ControllerFactory
) -> None:
    add_pool(kube)
    add_autoscaler(kube, autoscaler())
    heavy(prom)
    live = make_controller("controller-live", own_clock=WallClock(), renew_every_s=0.2)
    stop = asyncio.Event()
    task = asyncio.create_task(live.run(stop, health_host="127.0.0.1", health_port=0))

    await _until(lambda: status(kube).get("lastDecisionTime") is not None)
    assert replicas(kube, "decode") > 1
    port = live.health_port
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        assert (await http.get("/healthz")).status_code == 200
        await _until(live.ready)
        assert (await http.get("/readyz")).status_code == 200
        metrics = (await http.get("/metrics")).text
    assert (
        'autoscaler_controller_cycles_total{autoscaler="llama",namespace="default",outcome="decided"}'
        in metrics
    )
    assert "autoscaler_controller_leader 1.0" in metrics

    stop.set()
    await asyncio.wait_for(task, timeout=10)

    assert kube.get(LEASES, "inference-autoscaler")["spec"]["holderIdentity"] == ""
    successor = make_controller("controller-next")
    assert await successor.elect()  # no wait for the lease duration
    assert_everything_written_is_valid(kube)

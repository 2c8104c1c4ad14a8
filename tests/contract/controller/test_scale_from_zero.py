"""Scale from zero, end to end: a request reaches the router of a pool with no replica, the router holds it
and exports it as demand, the controller reads that and wakes prefill and decode together through the
Kubernetes API (the fake), the emulated engines come up, and the held request completes through them. The
controller's wake watch finds that request within its poll, not at the next cycle."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from autoscaler.adapters.proxy.app import PROXY, Proxy, build_app, serving
from autoscaler.adapters.proxy.settings import ProxySettings
from autoscaler.adapters.router_metrics import parse_queue
from autoscaler.cli.router import build_proxy
from autoscaler.config.profiles import load_profile
from autoscaler.core.observation import RouterQueue
from autoscaler.emulator import server
from autoscaler.emulator.settings import EmulatorSettings, Role
from tests.contract.controller.conftest import (
    POOL,
    ControllerFactory,
    WallClock,
    add_autoscaler,
    add_pool,
    assert_everything_written_is_valid,
    autoscaler,
    idle,
    replicas,
    status,
)
from tests.fakes.kube_apiserver import FakeKubeApiServer
from tests.fakes.prometheus_api import FakePrometheus

pytestmark = pytest.mark.timeout(60)
PROFILE = load_profile("llama-3.1-8b/h100-tp1")
MODEL = "tiny"


@contextlib.asynccontextmanager
async def router(endpoints_file: Path) -> AsyncIterator[tuple[str, Proxy]]:
    settings = ProxySettings.model_validate(
        {
            "pool": POOL,
            "endpoints": {"file": str(endpoints_file), "file_poll_s": 0.02},
            "scrape_interval_s": 0.05,
            "admission": {"wake_timeout_s": 30},
        }
    )
    app = build_app(build_proxy(settings, profile=PROFILE))
    async with serving(app, host="127.0.0.1", port=0, shutdown_timeout_s=5) as port:
        proxy = app[PROXY]
        await proxy.fleet.discovered.wait()
        yield f"http://127.0.0.1:{port}", proxy


@contextlib.asynccontextmanager
async def emulated(role: Role) -> AsyncIterator[str]:
    """One emulated vLLM replica of ``role`` (20x real time) on a free port; yields its URL."""
    sock = server.bind_socket("127.0.0.1", 0)
    settings = EmulatorSettings(model=MODEL, speed=20, role=role)
    async with server.running(PROFILE, settings, sock=sock, kv_events=None):
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


async def until(condition: Any, *, timeout_s: float = 10.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.01)


def from_zero(router_url: str) -> dict[str, Any]:
    obj = autoscaler(router={"metricsUrl": f"{router_url}/metrics"})
    for phase in obj["spec"]["phases"].values():
        phase["minReplicas"] = 0
    return obj


@pytest.fixture
def endpoints(kube: FakeKubeApiServer, prom: FakePrometheus, tmp_path: Path) -> Path:
    """A pool at zero replicas: its Deployments at 0, nothing placed or served (every rate reads zero), and
    the router's endpoints file empty; returns the file, where replicas that come up are listed."""
    add_pool(kube, prefill=0, decode=0)
    idle(prom)
    found = tmp_path / "endpoints.yaml"
    found.write_text("[]\n")
    return found


def held(client: httpx.AsyncClient, router_url: str) -> asyncio.Task[httpx.Response]:
    """A completion sent to the router of a pool at zero: it is held there until a replica is up."""
    body = {"model": MODEL, "prompt": "wake up " * 200, "max_tokens": 8}
    return asyncio.create_task(client.post(f"{router_url}/v1/completions", json=body))


async def test_a_request_at_zero_replicas_wakes_prefill_and_decode_and_completes(
    kube: FakeKubeApiServer, make_controller: ControllerFactory, endpoints: Path
) -> None:
    controller = make_controller()
    assert await controller.elect()
    async with router(endpoints) as (url, proxy), httpx.AsyncClient(timeout=30) as client:
        add_autoscaler(kube, from_zero(url))
        assert await controller.reconcile("default", POOL) == "decided"
        assert (replicas(kube, "prefill"), replicas(kube, "decode")) == (0, 0)  # idle: stays at zero

        request = held(client, url)
        await until(lambda: proxy.admission.waiting == 1)  # held, not refused

        assert await controller.reconcile("default", POOL) == "decided"
        woken = {phase: replicas(kube, phase) for phase in ("prefill", "decode")}
        assert woken["prefill"] >= 1 and woken["decode"] >= 1, status(kube)
        got = status(kube)["phases"]
        assert {got[p]["reason"] for p in woken} <= {"Activated", "ScaleUp", "ScaleUpLimited"}, got

        # The replicas the controller asked for come up (as a kubelet would start them) and join the router.
        async with emulated(Role.PREFILL) as prefill_url, emulated(Role.DECODE) as decode_url:
            endpoints.write_text(
                f"- {{url: '{prefill_url}', name: {POOL}-prefill-0, phase: prefill}}\n"
                f"- {{url: '{decode_url}', name: {POOL}-decode-0, phase: decode}}\n"
            )
            answer = await asyncio.wait_for(request, 20)
            assert proxy.admission.waiting == 0
    assert answer.status_code == 200, answer.text
    assert json.loads(answer.content)["usage"]["completion_tokens"] == 8
    assert_everything_written_is_valid(kube)


async def test_the_wake_watch_picks_the_sleeping_pools_whose_router_holds_a_request(
    kube: FakeKubeApiServer, make_controller: ControllerFactory, endpoints: Path
) -> None:
    controller = make_controller()
    assert await controller.elect()
    async with router(endpoints) as (url, proxy), httpx.AsyncClient(timeout=30) as client:
        assert await controller.wake() == []  # no cycle yet: nothing known to sleep
        add_autoscaler(kube, from_zero(url))
        assert await controller.reconcile("default", POOL) == "decided"
        assert await controller.wake() == []  # asleep, but nothing held
        request = held(client, url)
        await until(lambda: proxy.admission.waiting == 1)
        assert await controller.wake() == [("default", POOL)]
        assert await controller.reconcile("default", POOL) == "decided"
        assert await controller.wake() == []  # awake now: the cycles take it from here
        request.cancel()


async def test_a_request_held_at_zero_wakes_the_pool_long_before_the_next_cycle(
    kube: FakeKubeApiServer, make_controller: ControllerFactory, endpoints: Path
) -> None:
    controller = make_controller(own_clock=WallClock(), renew_every_s=0.2, wake_poll_s=0.05)
    stop = asyncio.Event()
    async with router(endpoints) as (url, proxy), httpx.AsyncClient(timeout=30) as client:
        hourly = from_zero(url)
        hourly["spec"]["controlIntervalSeconds"] = 3600
        add_autoscaler(kube, hourly)
        running = asyncio.create_task(controller.run(stop))
        request: asyncio.Task[httpx.Response] | None = None
        try:
            await until(lambda: status(kube).get("observedGeneration") == 1)  # first cycle: asleep at zero
            assert (replicas(kube, "prefill"), replicas(kube, "decode")) == (0, 0)
            request = held(client, url)
            await until(lambda: replicas(kube, "prefill") >= 1 and replicas(kube, "decode") >= 1)
            assert proxy.admission.waiting == 1  # still held: woken by the watch, an hour before the cycle
        finally:
            if request is not None:
                request.cancel()
            stop.set()
            await asyncio.wait_for(running, timeout=10)
    assert_everything_written_is_valid(kube)


QUEUE_TEXT = """# TYPE autoscaler_router_queued_requests gauge
autoscaler_router_queued_requests{pool="p",class="standard"} 3.0
autoscaler_router_queued_requests{pool="p",class="critical"} 1.0
# TYPE autoscaler_router_queued_tokens gauge
autoscaler_router_queued_tokens{pool="p",class="standard",kind="prompt"} 3000.0
autoscaler_router_queued_tokens{pool="p",class="standard",kind="output"} 300.0
autoscaler_router_queued_tokens{pool="p",class="critical",kind="prompt"} 1000.0
# TYPE autoscaler_router_shed_requests_total counter
autoscaler_router_shed_requests_total{pool="p",class="standard",reason="expired"} 7.0
# TYPE autoscaler_router_shed_requests_created gauge
autoscaler_router_shed_requests_created{pool="p",class="standard",reason="expired"} 1.7e9
"""


@pytest.mark.parametrize(
    ("text", "want"),
    [
        (QUEUE_TEXT, (RouterQueue(requests=4, prompt_tokens=4000, output_tokens=300), 7.0)),
        ("# TYPE other gauge\nother 1\n", None),  # a router without the queue: nothing to read
        (QUEUE_TEXT.replace(" 3.0\n", " -3.0\n", 1), None),  # not a queue's numbers
        (QUEUE_TEXT.replace(" 7.0\n", " NaN\n"), (RouterQueue(4, 4000, 300), 0.0)),
    ],
    ids=["queued and shed", "no queue exported", "negative", "shed not a number"],
)
def test_router_queue_metrics_are_read_over_classes(text: str, want: object) -> None:
    assert parse_queue(text) == want

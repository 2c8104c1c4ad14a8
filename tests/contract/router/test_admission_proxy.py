"""The admission queue on the real proxy, in front of fake engines over real HTTP.

Each engine holds its requests until the test opens its gate, so what is in flight and what waits in the
router is known exactly when a request arrives.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from autoscaler.adapters.proxy.app import Proxy
from tests.contract.router.conftest import ProxyFactory, serve
from tests.contract.router.fake_engine import FakeEngine, completion

pytestmark = pytest.mark.timeout(60)


def held_engine(name: str) -> FakeEngine:
    engine = FakeEngine(name)
    engine.gate = asyncio.Event()
    return engine


def prompt_of(body: dict[str, Any]) -> str:
    return str(body["prompt"]).split()[0]


async def until(condition: Any, *, timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.005)


@asynccontextmanager
async def engines(*fakes: FakeEngine) -> AsyncIterator[list[str]]:
    async with AsyncExitStack() as stack:
        yield [await stack.enter_async_context(serve(f.app)) for f in fakes]


def send(
    client: httpx.AsyncClient, url: str, tag: str, *, priority: str | None = None
) -> asyncio.Task[httpx.Response]:
    headers = {"x-priority-class": priority} if priority else {}
    body = completion(prompt=f"{tag} " + "pad " * 50)
    return asyncio.create_task(client.post(f"{url}/v1/completions", content=body, headers=headers))


async def queued(proxy: Proxy, count: int) -> None:
    await until(lambda: proxy.admission.waiting == count)


ONE_AT_A_TIME = {"admission": {"max_requests_per_endpoint": 1}}


async def test_burst_larger_than_the_fleet_is_served_in_order_with_nothing_lost(
    proxy_for: ProxyFactory, client: httpx.AsyncClient
) -> None:
    a, b = held_engine("a"), held_engine("b")
    b.bodies = a.bodies  # one record of arrivals across both engines
    async with engines(a, b) as urls, proxy_for([{"url": u} for u in urls], **ONE_AT_A_TIME) as (url, proxy):
        first = [send(client, url, f"r{i}") for i in range(2)]
        await until(lambda: len(a.bodies) == 2)  # one on each engine: the fleet is full
        rest = []
        for i in range(2, 12):
            rest.append(send(client, url, f"r{i}"))
            await queued(proxy, i - 1)  # arrival order is the order sent
        assert len(a.bodies) == 2
        a.gate.set()  # type: ignore[union-attr]
        b.gate.set()  # type: ignore[union-attr]
        answers = await asyncio.gather(*first, *rest)
    assert [r.status_code for r in answers] == [200] * 12
    served = [prompt_of(body) for body in a.bodies]
    assert sorted(served[:2]) == ["r0", "r1"]
    # Dispatch is in arrival order; two dispatched at once may reach their engines in either order.
    assert [int(t[1:]) // 2 for t in served[2:]] == [i // 2 for i in range(2, 12)]
    assert proxy.admission.waiting == 0


@dataclasses.dataclass(frozen=True)
class OrderCase:
    name: str
    sent: list[tuple[str, str | None]]  # (tag, priority header), all queued behind one busy request
    served: list[str]


ORDER_CASES = [
    OrderCase("one class: first come first served", [("a", None), ("b", None), ("c", None)], ["a", "b", "c"]),
    OrderCase(
        "higher classes overtake lower ones",
        [("s", "sheddable"), ("n", "standard"), ("c", "critical")],
        ["c", "n", "s"],
    ),
    OrderCase(
        "within a class, arrival order",
        [("n1", None), ("c1", "critical"), ("n2", "standard"), ("c2", "Critical")],
        ["c1", "c2", "n1", "n2"],
    ),
]


@pytest.mark.parametrize("case", ORDER_CASES, ids=lambda c: c.name)
async def test_priority_classes_then_arrival_order(
    case: OrderCase, proxy_for: ProxyFactory, client: httpx.AsyncClient
) -> None:
    engine = held_engine("e")
    async with engines(engine) as urls, proxy_for([{"url": urls[0]}], **ONE_AT_A_TIME) as (url, proxy):
        busy = send(client, url, "busy")
        await until(lambda: len(engine.bodies) == 1)
        tasks = []
        for i, (tag, priority) in enumerate(case.sent):
            tasks.append(send(client, url, tag, priority=priority))
            await queued(proxy, i + 1)
        engine.gate.set()  # type: ignore[union-attr]
        answers = await asyncio.gather(busy, *tasks)
    assert all(r.status_code == 200 for r in answers)
    assert [prompt_of(b) for b in engine.bodies] == ["busy", *case.served]


@dataclasses.dataclass(frozen=True)
class ShedCase:
    name: str
    admission: dict[str, Any]
    priority: str | None
    status: int
    retry_after: bool


SHED_CASES = [
    ShedCase(
        "waited past its class's TTL: 429",
        {"classes": [{"name": "standard", "rank": 0, "ttl_s": 0.2}]},
        None,
        429,
        True,
    ),
    ShedCase("queue at its bound: 429 at once", {"max_queued_requests": 1}, None, 429, True),
    ShedCase("token bound: 429 at once", {"max_queued_tokens": 80}, None, 429, True),
    ShedCase("an unknown class: 400", {}, "urgent", 400, False),
]


@pytest.mark.parametrize("case", SHED_CASES, ids=lambda c: c.name)
async def test_shed_requests_are_told_when_to_retry(
    case: ShedCase, proxy_for: ProxyFactory, client: httpx.AsyncClient
) -> None:
    engine = held_engine("e")
    admission = {"max_requests_per_endpoint": 1, **case.admission}
    async with engines(engine) as urls, proxy_for([{"url": urls[0]}], admission=admission) as (url, proxy):
        busy = send(client, url, "busy")
        await until(lambda: len(engine.bodies) == 1)
        waiting = send(client, url, "waiting") if "max_queued" in str(case.admission) else None
        if waiting is not None:
            await queued(proxy, 1)
        answer = await send(client, url, "shed", priority=case.priority)
        metrics = (await client.get(f"{url}/metrics")).text
        engine.gate.set()  # type: ignore[union-attr]
        await busy
        if waiting is not None:
            assert (await waiting).status_code == 200
    assert answer.status_code == case.status
    assert ("Retry-After" in answer.headers) is case.retry_after
    assert json.loads(answer.content)["error"]["code"] == case.status
    assert "shed" not in [prompt_of(b) for b in engine.bodies]
    if case.status == 429:
        assert 'autoscaler_router_shed_requests_total{class="standard"' in metrics


async def test_a_client_that_leaves_while_queued_is_removed_and_never_sent(
    proxy_for: ProxyFactory, client: httpx.AsyncClient
) -> None:
    engine = held_engine("e")
    async with engines(engine) as urls, proxy_for([{"url": urls[0]}], **ONE_AT_A_TIME) as (url, proxy):
        busy = send(client, url, "busy")
        await until(lambda: len(engine.bodies) == 1)
        body = completion(stream=True, prompt="gone " + "pad " * 50)
        leaving = asyncio.create_task(
            client.send(client.build_request("POST", f"{url}/v1/completions", content=body), stream=True)
        )
        await queued(proxy, 1)
        await asyncio.sleep(0.2)
        assert not leaving.done()  # a streaming client hears nothing, not even headers, while it waits
        leaving.cancel()
        await until(lambda: proxy.admission.waiting == 0)
        metrics = (await client.get(f"{url}/metrics")).text
        engine.gate.set()  # type: ignore[union-attr]
        assert (await busy).status_code == 200
        after = send(client, url, "after")
        assert (await after).status_code == 200
    assert [prompt_of(b) for b in engine.bodies] == ["busy", "after"]
    assert 'autoscaler_router_queued_requests{class="standard",pool="default"} 0.0' in metrics


async def test_a_waiting_request_goes_to_a_replica_that_joins(
    proxy_for: ProxyFactory, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    old, new = held_engine("old"), FakeEngine("new")
    path = tmp_path / "endpoints.yaml"
    async with engines(old, new) as (old_url, new_url):
        path.write_text(f"- {{url: '{old_url}', name: old}}\n")
        discovery = {"file": str(path), "file_poll_s": 0.02}
        async with proxy_for(discovery, **ONE_AT_A_TIME) as (url, proxy):
            busy = send(client, url, "busy")
            await until(lambda: len(old.bodies) == 1)
            waiting = send(client, url, "waiting")
            await queued(proxy, 1)
            path.write_text(f"- {{url: '{old_url}', name: old}}\n- {{url: '{new_url}', name: new}}\n")
            answer = await asyncio.wait_for(waiting, 5)  # served while the old replica is still busy
            old.gate.set()  # type: ignore[union-attr]
            await busy
    assert answer.status_code == 200
    assert [prompt_of(b) for b in new.bodies] == ["waiting"]
    assert [prompt_of(b) for b in old.bodies] == ["busy"]


@dataclasses.dataclass(frozen=True)
class ZeroCase:
    name: str
    wake_timeout_s: float
    replica_after_s: float | None  # when an endpoint appears; None: never
    status: int


ZERO_CASES = [
    ZeroCase("no endpoint and no wake: 503 at once", 0, None, 503),
    ZeroCase("no endpoint, one comes within the wake time-out: served", 10, 0.3, 200),
    ZeroCase("no endpoint comes within the wake time-out: 503", 0.3, None, 503),
]


@pytest.mark.parametrize("case", ZERO_CASES, ids=lambda c: c.name)
async def test_at_zero_replicas_requests_are_held_for_the_wake(
    case: ZeroCase, proxy_for: ProxyFactory, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    engine = FakeEngine("e")
    path = tmp_path / "endpoints.yaml"
    path.write_text("[]\n")
    admission = {"wake_timeout_s": case.wake_timeout_s}
    async with engines(engine) as urls:
        discovery = {"file": str(path), "file_poll_s": 0.02}
        async with proxy_for(discovery, admission=admission) as (url, proxy):
            request = send(client, url, "cold")
            if case.replica_after_s is not None:
                await queued(proxy, 1)
                metrics = (await client.get(f"{url}/metrics")).text
                assert 'autoscaler_router_queued_requests{class="standard",pool="default"} 1.0' in metrics
                await asyncio.sleep(case.replica_after_s)
                path.write_text(f"- {{url: '{urls[0]}', name: e}}\n")
            answer = await request
    assert answer.status_code == case.status
    assert len(engine.bodies) == (case.status == 200)
    if case.status == 503:
        assert "Retry-After" in answer.headers

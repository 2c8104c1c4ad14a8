"""Refused connections are retried elsewhere, a client that leaves cancels the engine's work, and a
bounded soak of concurrent mixed requests loses none."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.contract.router.conftest import ProxyFactory, refused_url, serve
from tests.contract.router.fake_engine import JSON_ANSWER, FakeEngine, completion, expected_stream

HEADERS = {"content-type": "application/json"}


async def test_refused_connection_is_retried_on_another_endpoint(
    proxy_for: ProxyFactory, client: httpx.AsyncClient
) -> None:
    engine = FakeEngine("live")
    dead = refused_url()
    async with (
        serve(engine.app) as engine_url,
        proxy_for([{"url": dead, "name": "dead"}, {"url": engine_url, "name": "live"}]) as (url, proxy),
    ):
        answers = [
            await client.post(
                f"{url}/v1/completions", content=completion(prompt=f"p{i} " * 50), headers=HEADERS
            )
            for i in range(8)
        ]
        text = (await client.get(f"{url}/metrics")).text
    assert [a.status_code for a in answers] == [200] * 8
    assert all(a.content == JSON_ANSWER for a in answers)
    assert (
        'autoscaler_router_upstream_errors_total{endpoint="dead",kind="refused",pool="default"} 1.0' in text
    )
    assert proxy.fleet.ready() == ["live"]
    assert proxy.router.in_flight("dead") == proxy.router.in_flight("live") == 0


async def test_only_refusing_endpoints_end_in_503(proxy_for: ProxyFactory, client: httpx.AsyncClient) -> None:
    async with proxy_for([{"url": refused_url()}, {"url": refused_url()}]) as (url, _):
        r = await client.post(f"{url}/v1/completions", content=completion(), headers=HEADERS)
    assert r.status_code == 503


async def test_client_disconnect_cancels_the_upstream_stream(
    proxy_for: ProxyFactory, client: httpx.AsyncClient
) -> None:
    engine = FakeEngine("a", chunk_delay_s=0.02)
    async with serve(engine.app) as engine_url, proxy_for([{"url": engine_url, "name": "a"}]) as (url, proxy):
        request = client.stream(
            "POST",
            f"{url}/v1/completions",
            content=completion(stream=True, max_tokens=500),
            headers=HEADERS,
        )
        async with request as r:
            async for _ in r.aiter_raw():
                break  # the first frame arrived: hang up
        for _ in range(300):
            if engine.cancelled and proxy.router.in_flight("a") == 0:
                break
            await asyncio.sleep(0.01)
    assert engine.cancelled == 1
    assert proxy.router.in_flight("a") == 0


async def test_client_leaving_before_the_answer_starts_cancels_it(
    proxy_for: ProxyFactory, client: httpx.AsyncClient
) -> None:
    """The engine has not answered yet (a slow prefill, say): the proxy drops its upstream request too."""
    engine = FakeEngine("a")
    engine.gate = asyncio.Event()
    async with serve(engine.app) as engine_url, proxy_for([{"url": engine_url, "name": "a"}]) as (url, proxy):
        call = asyncio.create_task(
            client.post(f"{url}/v1/completions", content=completion(), headers=HEADERS)
        )
        await asyncio.wait_for(engine.arrived.wait(), 5)
        call.cancel()
        for _ in range(300):
            if proxy.router.in_flight("a") == 0:
                break
            await asyncio.sleep(0.01)
        engine.gate.set()
        for _ in range(300):
            if engine.cancelled:
                break
            await asyncio.sleep(0.01)
    assert proxy.router.in_flight("a") == 0
    assert engine.cancelled == 1


async def test_engine_failing_mid_stream_cuts_the_client_off(
    proxy_for: ProxyFactory, client: httpx.AsyncClient
) -> None:
    """Bytes already went out: the client must see a broken stream, never a clean but truncated end."""
    engine = FakeEngine("a", fail_after=3, chunk_delay_s=0.01)
    async with serve(engine.app) as engine_url, proxy_for([{"url": engine_url, "name": "a"}]) as (url, proxy):
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post(
                f"{url}/v1/completions", content=completion(stream=True, max_tokens=9), headers=HEADERS
            )
        text = (await client.get(f"{url}/metrics")).text
        assert proxy.router.in_flight("a") == 0
    assert 'autoscaler_router_upstream_errors_total{endpoint="a",kind="stream",pool="default"} 1.0' in text


async def test_soak_loses_no_request(proxy_for: ProxyFactory, client: httpx.AsyncClient) -> None:
    engines = [FakeEngine("a"), FakeEngine("b")]
    async with (
        serve(engines[0].app) as a_url,
        serve(engines[1].app) as b_url,
        proxy_for([{"url": a_url, "name": "a"}, {"url": b_url, "name": "b"}]) as (url, proxy),
    ):
        limit = asyncio.Semaphore(16)

        async def one(client: httpx.AsyncClient, i: int) -> bool:
            stream = i % 2 == 0
            body = completion(stream=stream, max_tokens=3 + i % 5, prompt=f"shared prefix {i % 7} " * 40)
            async with limit:
                r = await client.post(f"{url}/v1/completions", content=body, headers=HEADERS)
            if r.status_code != 200:
                return False
            if not stream:
                return r.content == JSON_ANSWER
            return any(r.content == b"".join(expected_stream(e.name, 3 + i % 5)) for e in engines)

        results = await asyncio.gather(*(one(client, i) for i in range(300)))
        text = (await client.get(f"{url}/metrics")).text
        assert all(results)
        assert sum(len(e.bodies) for e in engines) == 300
        assert proxy.router.in_flight("a") == proxy.router.in_flight("b") == 0
        assert 'autoscaler_router_requests_total{phase="aggregated",pool="default"} 300.0' in text

"""The proxy relays engines' answers unchanged (streamed or not) and serves models, health and metrics."""

from __future__ import annotations

import json

import httpx

from tests.contract.router.conftest import ProxyFactory, serve
from tests.contract.router.fake_engine import JSON_ANSWER, FakeEngine, completion, expected_stream

HEADERS = {"content-type": "application/json"}


async def test_streaming_answer_is_relayed_byte_for_byte(
    proxy_for: ProxyFactory, client: httpx.AsyncClient
) -> None:
    engine = FakeEngine("a")
    async with (
        serve(engine.app) as engine_url,
        proxy_for([{"url": engine_url, "name": "a"}]) as (url, _),
        client.stream(
            "POST", f"{url}/v1/completions", content=completion(stream=True, max_tokens=25), headers=HEADERS
        ) as r,
    ):
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        received = b"".join([chunk async for chunk in r.aiter_raw()])
    assert received == b"".join(expected_stream("a", 25))


async def test_json_answer_and_request_body_pass_unchanged(
    proxy_for: ProxyFactory, client: httpx.AsyncClient
) -> None:
    engine = FakeEngine("a")
    body = b'{"model":"tiny",  "messages":[{"role":"user","content":"h\xc3\xa9"}], "max_tokens": 3}'
    async with serve(engine.app) as engine_url, proxy_for([{"url": engine_url}]) as (url, _):
        r = await client.post(f"{url}/v1/chat/completions", content=body, headers=HEADERS)
    assert r.status_code == 200
    assert r.content == JSON_ANSWER
    assert r.headers["content-length"] == str(len(JSON_ANSWER))
    assert engine.bodies == [json.loads(body)]


async def test_models_health_and_metrics(proxy_for: ProxyFactory, client: httpx.AsyncClient) -> None:
    engine = FakeEngine("a", waiting=3)
    async with serve(engine.app) as engine_url, proxy_for([{"url": engine_url, "name": "a"}]) as (url, proxy):
        assert (await client.get(f"{url}/v1/models")).json()["data"][0]["id"] == "tiny"
        health = await client.get(f"{url}/health")
        assert (health.status_code, health.json()["ready_endpoints"]) == (200, 1)
        for _ in range(2):
            r = await client.post(f"{url}/v1/completions", content=completion(), headers=HEADERS)
            assert r.status_code == 200
        await proxy.fleet.scrape_once()
        text = (await client.get(f"{url}/metrics")).text
    assert proxy.router.endpoint("a").queue_length == 3  # scraped from the engine's vllm: gauges
    assert 'autoscaler_router_requests_total{phase="aggregated",pool="default"} 2.0' in text
    assert 'autoscaler_router_prompt_tokens_total{phase="aggregated",pool="default"}' in text
    assert "autoscaler_router_cached_prompt_tokens_total" in text
    assert (
        'autoscaler_router_endpoint_in_flight_requests{endpoint="a",phase="aggregated",pool="default"} 0.0'
        in text
    )
    assert "autoscaler_router_placement_seconds_bucket" in text
    assert 'autoscaler_router_responses_total{code="200",pool="default"} 2.0' in text


async def test_session_header_keeps_a_conversation_on_one_engine(
    proxy_for: ProxyFactory, client: httpx.AsyncClient
) -> None:
    engines = [FakeEngine("a"), FakeEngine("b")]
    async with (
        serve(engines[0].app) as a_url,
        serve(engines[1].app) as b_url,
        proxy_for([{"url": a_url, "name": "a"}, {"url": b_url, "name": "b"}]) as (url, _),
    ):
        for turn in range(6):
            body = completion(prompt=f"unrelated prompt number {turn} " * 30)
            r = await client.post(
                f"{url}/v1/completions", content=body, headers={**HEADERS, "x-session-id": "s1"}
            )
            assert r.status_code == 200
    assert sorted(len(e.bodies) for e in engines) == [0, 6]

"""Bad input answers in OpenAI's error shape: 400 malformed or model-less, 413 too large, 503 no endpoint."""

from __future__ import annotations

import httpx
import pytest

from tests.contract.router.conftest import ProxyFactory, serve
from tests.contract.router.fake_engine import FakeEngine, completion

HEADERS = {"content-type": "application/json"}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b'{"model": "tiny", "prompt": ', None),
        (b'{"prompt": "hello"}', "model"),
        (b'{"model": "tiny"}', "prompt"),
        (b"[1, 2]", None),
    ],
    ids=["malformed JSON", "no model", "no prompt", "not an object"],
)
async def test_unusable_body_is_400(
    proxy_for: ProxyFactory, client: httpx.AsyncClient, body: bytes, param: str | None
) -> None:
    engine = FakeEngine("a")
    async with serve(engine.app) as engine_url, proxy_for([{"url": engine_url}]) as (url, _):
        r = await client.post(f"{url}/v1/completions", content=body, headers=HEADERS)
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error" and err["message"] and err["param"] == param
    assert engine.bodies == []


async def test_oversized_body_is_413_declared_or_streamed(
    proxy_for: ProxyFactory, client: httpx.AsyncClient
) -> None:
    engine = FakeEngine("a")
    big = completion(prompt="x" * 5000)

    async def chunked() -> object:  # no Content-Length: the proxy must count as it reads
        for i in range(0, len(big), 1000):
            yield big[i : i + 1000]

    async with (
        serve(engine.app) as engine_url,
        proxy_for([{"url": engine_url}], max_body_bytes=4096) as (url, _),
    ):
        declared = await client.post(f"{url}/v1/completions", content=big, headers=HEADERS)
        streamed = await client.post(f"{url}/v1/completions", content=chunked(), headers=HEADERS)
        fits = await client.post(f"{url}/v1/completions", content=completion(), headers=HEADERS)
    assert declared.status_code == streamed.status_code == 413
    assert declared.json()["error"]["type"] == "invalid_request_error"
    assert fits.status_code == 200
    assert len(engine.bodies) == 1


async def test_no_ready_endpoint_is_503_with_retry_after(
    proxy_for: ProxyFactory, client: httpx.AsyncClient
) -> None:
    engine = FakeEngine("a")
    async with (
        serve(engine.app) as engine_url,
        proxy_for([{"url": engine_url, "draining": True}], retry_after_s=3) as (url, _),
    ):
        r = await client.post(f"{url}/v1/completions", content=completion(), headers=HEADERS)
        health = await client.get(f"{url}/health")
    assert r.status_code == 503 and r.headers["retry-after"] == "3"
    assert r.json()["error"]["type"] == "service_unavailable"
    assert health.status_code == 503
    assert engine.bodies == []

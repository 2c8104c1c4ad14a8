"""Bad input answers in OpenAI's error shape, with nothing left in flight and no traceback in the log: 400
malformed, model-less, out-of-bounds counts, deep JSON, lone surrogates and unparseable HTTP; 413 too large;
404 and 405 for unknown routes; 502 and 503 naming no engine's address."""

from __future__ import annotations

import asyncio
import json
import logging
import threading

import httpx
import pytest

from autoscaler.adapters.proxy import prompts
from tests.contract.router.conftest import ProxyFactory, refused_url, serve
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


def _no_traceback_logged(caplog: pytest.LogCaptureFixture) -> bool:
    return not any(r.exc_info or r.levelno >= logging.ERROR for r in caplog.records)


@pytest.mark.parametrize(
    ("field", "literal"),
    [
        ("max_tokens", "1" + "0" * 400),  # 10**400, a valid JSON integer
        ("max_tokens", "-1"),
        ("max_tokens", "1.5"),
        ("max_tokens", "4.0"),
        ("max_tokens", "true"),
        ("max_tokens", '"5"'),
        ("max_tokens", "16777217"),  # one over MAX_TOKENS
        ("max_completion_tokens", "1" + "0" * 400),
        ("n", "1" + "0" * 400),
        ("n", "0"),
        ("n", "-3"),
        ("n", "false"),
        ("n", "2.5"),
        ("n", "129"),
    ],
)
async def test_token_counts_out_of_bounds_are_400_and_nothing_stays_in_flight(
    proxy_for: ProxyFactory,
    client: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
    field: str,
    literal: str,
) -> None:
    engine = FakeEngine("a")
    body = f'{{"model": "tiny", "prompt": "hello", "{field}": {literal}}}'.encode()
    async with serve(engine.app) as engine_url, proxy_for([{"url": engine_url, "name": "a"}]) as (url, proxy):
        refused = await client.post(f"{url}/v1/completions", content=body, headers=HEADERS)
        metrics = await client.get(f"{url}/metrics")
        after = await client.post(f"{url}/v1/completions", content=completion(), headers=HEADERS)
        in_flight = proxy.router.in_flight("a")
    assert refused.status_code == 400
    assert refused.json()["error"]["type"] == "invalid_request_error"
    assert refused.json()["error"]["param"] == field
    assert in_flight == 0
    assert metrics.status_code == 200 and "autoscaler_router_endpoint_in_flight_requests" in metrics.text
    assert after.status_code == 200
    assert len(engine.bodies) == 1
    assert _no_traceback_logged(caplog)


DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize(
    ("path", "body", "status", "param"),
    [
        ("/v1/completions", DEEP, 400, None),
        ("/v1/completions", b'{"model": "m", "prompt": ' + DEEP + b"}", 400, None),
        ("/v1/completions", b'{"model": "m", "prompt": "a\\ud800b"}', 400, "prompt"),
        ("/v1/completions", b'{"model": "m", "prompt": ["ok", "\\udfff"]}', 400, "prompt"),
        (
            "/v1/chat/completions",
            b'{"model": "m", "messages": [{"role": "user", "content": "x\\ud800"}]}',
            400,
            "messages",
        ),
        ("/v1/completions", b'{"model": "m", "prompt": [1, 2, 4294967296]}', 400, "prompt"),
        ("/v1/completions", b'{"model": "m", "prompt": [1, true, 3]}', 400, "prompt"),
        ("/v1/completions", b'{"model": "m", "prompt": "' + b"x" * 9000 + b'"}', 413, "prompt"),
        (
            "/v1/completions",
            b'{"model": "m", "prompt": ' + str(list(range(1100))).encode() + b"}",
            413,
            "prompt",
        ),
        ("/v1/completions", b'{"model": "m", "prompt": "x", "max_tokens": 1' + b"0" * 5000 + b"}", 400, None),
        ("/v1/completions", b'{"model": "m", "prompt": "x"' + b" " * 70_000 + b"}" + b"\xff", 400, None),
    ],
    ids=[
        "100k-deep JSON",
        "100k-deep prompt",
        "lone surrogate",
        "lone surrogate in a batch",
        "lone surrogate in a chat",
        "token id out of range",
        "bool as a token id",
        "text prompt over the limit",
        "token prompt over the limit",
        "integer too long to parse",
        "invalid UTF-8",
    ],
)
async def test_hostile_bodies_are_4xx_without_traceback(
    proxy_for: ProxyFactory,
    client: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
    path: str,
    body: bytes,
    status: int,
    param: str | None,
) -> None:
    engine = FakeEngine("a")
    async with (
        serve(engine.app) as engine_url,
        proxy_for([{"url": engine_url, "name": "a"}], max_prompt_tokens=1000) as (url, proxy),
    ):
        r = await client.post(f"{url}{path}", content=body, headers=HEADERS)
        health = await client.get(f"{url}/health")
        in_flight = proxy.router.in_flight("a")
    assert r.status_code == status
    assert r.json()["error"]["type"] == "invalid_request_error"
    assert r.json()["error"]["param"] == param
    assert health.status_code == 200 and in_flight == 0
    assert engine.bodies == []
    assert _no_traceback_logged(caplog)


async def test_odd_but_usable_bodies_are_relayed(proxy_for: ProxyFactory, client: httpx.AsyncClient) -> None:
    """Non-text content parts, a numeric role, null limits: the engine decides, the proxy only counts."""
    engine = FakeEngine("a")
    bodies = [
        b'{"model": "m", "messages": [{"role": 7, "content": [{"type": "text", "text": 5}, "x"]}]}',
        b'{"model": "m", "prompt": "x", "max_tokens": null, "n": null}',
        b'{"model": "m", "prompt": [[1, 2], [3]], "max_tokens": 0}',
    ]
    async with serve(engine.app) as engine_url, proxy_for([{"url": engine_url, "name": "a"}]) as (url, proxy):
        answers = [
            await client.post(
                f"{url}/v1/{'chat/' if b'messages' in body else ''}completions", content=body, headers=HEADERS
            )
            for body in bodies
        ]
        in_flight = proxy.router.in_flight("a")
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert in_flight == 0


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/nowhere", 404), ("POST", "/v1/embeddings", 404), ("GET", "/v1/completions", 405)],
)
async def test_unknown_routes_answer_in_openai_shape(
    proxy_for: ProxyFactory, client: httpx.AsyncClient, method: str, path: str, status: int
) -> None:
    async with proxy_for([{"url": refused_url()}]) as (url, _):
        r = await client.request(method, f"{url}{path}")
    assert r.status_code == status
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["error"]["code"] == status
    if status == 405:
        assert "POST" in r.headers["allow"]


POST = b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n"


@pytest.mark.parametrize(
    "raw",
    [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        POST + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
        POST + b"Transfer-Encoding: chunked\r\n\r\nZZ\r\nab\r\n0\r\n\r\n",
        POST + b"Content-Encoding: gzip\r\nContent-Length: 4\r\n\r\nnope",
    ],
    ids=["not HTTP", "header without colon", "request line too long", "two lengths", "bad chunk", "bad gzip"],
)
async def test_malformed_http_is_a_json_400_logged_without_traceback(
    proxy_for: ProxyFactory, caplog: pytest.LogCaptureFixture, raw: bytes
) -> None:
    engine = FakeEngine("a")
    async with serve(engine.app) as engine_url, proxy_for([{"url": engine_url, "name": "a"}]) as (url, proxy):
        port = int(url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(raw)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(65536), 10)
        writer.close()
        in_flight = proxy.router.in_flight("a")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b"\r\n", 1)[0].split()[1] == b"400", answer[:200]
    assert b"application/json" in head.lower()
    assert json.loads(body)["error"]["code"] == 400
    assert in_flight == 0 and engine.bodies == []
    assert _no_traceback_logged(caplog)


async def test_models_tries_another_engine_and_errors_name_no_address(
    proxy_for: ProxyFactory, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    engine = FakeEngine("live")
    dead = [refused_url(), refused_url()]
    async with serve(engine.app) as engine_url:
        endpoints = [{"url": dead[0], "name": "dead"}, {"url": engine_url, "name": "live"}]
        async with proxy_for(endpoints) as (url, _):
            listed = await client.get(f"{url}/v1/models")
        async with proxy_for([{"url": d} for d in dead]) as (url, _):
            failed = await client.get(f"{url}/v1/models")
            generate = await client.post(f"{url}/v1/completions", content=completion(), headers=HEADERS)
    assert listed.status_code == 200 and listed.json()["data"][0]["id"] == "tiny"
    assert failed.status_code == 502 and failed.json()["error"]["type"] == "upstream_error"
    assert generate.status_code == 503  # both are out of rotation now
    for answer in (failed, generate):
        assert "127.0.0.1" not in answer.text
    assert any("502" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


async def test_a_14_mb_prompt_is_parsed_off_the_event_loop_and_refused_before_hashing(
    proxy_for: ProxyFactory, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    """Default limits: the body fits (16 MiB) but the prompt is over max_prompt_tokens; the parse runs in a
    worker thread (on 2 busy cores: the loop stalled 0.12 s instead of 0.35-0.56 s for parse and hash)."""
    engine = FakeEngine("a")
    body = completion(prompt="hello world " * (14_000_000 // 12))
    assert await prompts.off_loop_if_large(len(body), threading.get_ident) != threading.get_ident()
    assert await prompts.off_loop_if_large(1000, threading.get_ident) == threading.get_ident()
    async with serve(engine.app) as engine_url, proxy_for([{"url": engine_url, "name": "a"}]) as (url, proxy):
        r = await client.post(f"{url}/v1/completions", content=body, headers=HEADERS)
        health = await client.get(f"{url}/health")
        in_flight = proxy.router.in_flight("a")
    assert r.status_code == 413 and r.json()["error"]["param"] == "prompt"
    assert health.status_code == 200 and in_flight == 0 and engine.bodies == []
    assert _no_traceback_logged(caplog)

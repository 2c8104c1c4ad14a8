"""Faults on real processes and real sockets: engines killed or stopped (SIGSTOP) before the first byte or
mid-stream, and clients that are slow or silent. Each is bounded by the configured time-outs, not by the
600 s upstream read time-out, and leaves nothing in flight.

Engine faults run the fake engine in a process of its own (``python -m tests.contract.router.fake_engine``)
so that it can be stopped and killed; time-outs are shortened so that every test takes seconds.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from tests.contract.router.conftest import ProxyFactory, refused_url, serve
from tests.contract.router.fake_engine import JSON_ANSWER, FakeEngine, completion

HEADERS = {"content-type": "application/json"}
# A stopped engine misses three scrapes (0.2 s each, 0.05 s apart) and then has 0.3 s to say anything.
FAST_FAILURE = {"scrape_timeout_s": 0.2, "stall_timeout_s": 0.3}
DETECTION_S = 3 * (0.2 + 0.05) + 0.3


@asynccontextmanager
async def engine_process(
    name: str, *, port: int | None = None, **delays: float
) -> AsyncIterator[tuple[str, asyncio.subprocess.Process]]:
    """A fake engine in its own process on 127.0.0.1; yields its URL (once it answers) and the process."""
    port = port or int(refused_url().rsplit(":", 1)[1])
    options = [f"--{k.replace('_', '-')}={v}" for k, v in delays.items()]
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.contract.router.fake_engine",
        f"--port={port}",
        f"--name={name}",
        *options,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(timeout=1) as probe:
            for _ in range(300):
                try:
                    if (await probe.get(f"{url}/metrics")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
            else:
                raise RuntimeError(f"fake engine {name} did not start")
        yield url, process
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGCONT)
            process.kill()
        await asyncio.wait_for(process.wait(), 10)


async def _until(condition: object, timeout_s: float = 10.0) -> float:
    """Seconds until ``condition()`` holds (polled); fails after ``timeout_s``."""
    start = time.monotonic()
    while not condition():  # type: ignore[operator]
        if time.monotonic() - start > timeout_s:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


def _errors(text: str, endpoint: str, kind: str) -> float:
    prefix = f'autoscaler_router_upstream_errors_total{{endpoint="{endpoint}",kind="{kind}",pool="default"}} '
    return sum(float(line[len(prefix) :]) for line in text.splitlines() if line.startswith(prefix))


async def test_stopped_engine_before_the_first_byte_its_requests_go_elsewhere(
    proxy_for: ProxyFactory, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    live = FakeEngine("b", answer_delay_s=0.2)
    async with (
        engine_process("a", answer_delay_s=0.2) as (a_url, a),
        serve(live.app) as b_url,
        proxy_for([{"url": a_url, "name": "a"}, {"url": b_url, "name": "b"}], **FAST_FAILURE) as (url, proxy),
    ):
        a.send_signal(signal.SIGSTOP)
        start = time.monotonic()
        answers = await asyncio.gather(
            *(
                client.post(
                    f"{url}/v1/completions", content=completion(prompt=f"p{i} " * 50), headers=HEADERS
                )
                for i in range(6)
            )
        )
        elapsed = time.monotonic() - start
        metrics = (await client.get(f"{url}/metrics")).text
        assert proxy.fleet.ready() == ["b"]
        a.send_signal(signal.SIGCONT)
        back_after = await _until(lambda: "a" in proxy.fleet.ready())
        assert proxy.router.in_flight("a") == proxy.router.in_flight("b") == 0
    assert [r.status_code for r in answers] == [200] * 6
    assert all(r.content == JSON_ANSWER for r in answers)
    assert _errors(metrics, "a", "stalled") >= 1  # some were placed on the stopped engine, then again
    assert elapsed < DETECTION_S + 3.0
    assert back_after < 2.0
    assert not any(r.exc_info for r in caplog.records)  # logged in one line each, no traceback


async def test_stopped_engine_mid_stream_cuts_the_stream_then_comes_back(
    proxy_for: ProxyFactory, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    async with (
        engine_process("a", chunk_delay_s=0.05) as (a_url, a),
        proxy_for([{"url": a_url, "name": "a"}], **FAST_FAILURE) as (url, proxy),
    ):
        start = time.monotonic()
        with pytest.raises(httpx.RemoteProtocolError):
            request = client.stream(
                "POST",
                f"{url}/v1/completions",
                content=completion(stream=True, max_tokens=60),
                headers=HEADERS,
            )
            async with request as r:
                assert r.status_code == 200
                async for _ in r.aiter_raw():
                    if a.returncode is None and time.monotonic() - start > 0.3:
                        a.send_signal(signal.SIGSTOP)
                        stopped = time.monotonic()
        cut_after = time.monotonic() - stopped
        metrics = (await client.get(f"{url}/metrics")).text
        assert proxy.router.in_flight("a") == 0
        a.send_signal(signal.SIGCONT)
        await _until(lambda: proxy.fleet.ready() == ["a"])
        again = await client.post(f"{url}/v1/completions", content=completion(), headers=HEADERS)
    assert cut_after < DETECTION_S + 2.0
    assert _errors(metrics, "a", "stream") == 1
    assert again.status_code == 200
    assert not any(r.exc_info for r in caplog.records)  # logged in one line each, no traceback


async def test_killed_engine_before_the_first_byte_its_requests_go_elsewhere_and_it_returns(
    proxy_for: ProxyFactory, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    live = FakeEngine("b", answer_delay_s=0.3)
    port = int(refused_url().rsplit(":", 1)[1])
    async with (
        serve(live.app) as b_url,
        proxy_for(
            [{"url": f"http://127.0.0.1:{port}", "name": "a"}, {"url": b_url, "name": "b"}], **FAST_FAILURE
        ) as (url, proxy),
    ):
        async with engine_process("a", port=port, answer_delay_s=2.0) as (_, a):
            await _until(lambda: proxy.fleet.ready() == ["a", "b"])
            calls = [
                asyncio.create_task(
                    client.post(
                        f"{url}/v1/completions", content=completion(prompt=f"k{i} " * 50), headers=HEADERS
                    )
                )
                for i in range(6)
            ]
            await asyncio.sleep(0.6)
            a.kill()
            answers = await asyncio.gather(*calls)
            await _until(lambda: proxy.fleet.ready() == ["b"])
        metrics = (await client.get(f"{url}/metrics")).text
        async with engine_process("a", port=port):
            back_after = await _until(lambda: proxy.fleet.ready() == ["a", "b"])
        assert proxy.router.in_flight("a") == proxy.router.in_flight("b") == 0
    assert [r.status_code for r in answers] == [200] * 6
    assert _errors(metrics, "a", "disconnected") >= 1
    assert back_after < 2.0
    assert not any(r.exc_info for r in caplog.records)  # logged in one line each, no traceback


async def test_killed_engine_mid_stream_cuts_the_stream(
    proxy_for: ProxyFactory, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    async with (
        engine_process("a", chunk_delay_s=0.05) as (a_url, a),
        proxy_for([{"url": a_url, "name": "a"}], **FAST_FAILURE) as (url, proxy),
    ):
        start = time.monotonic()
        with pytest.raises(httpx.RemoteProtocolError):
            request = client.stream(
                "POST",
                f"{url}/v1/completions",
                content=completion(stream=True, max_tokens=60),
                headers=HEADERS,
            )
            async with request as r:
                async for _ in r.aiter_raw():
                    if a.returncode is None and time.monotonic() - start > 0.3:
                        a.kill()
                        await a.wait()
        await _until(lambda: proxy.fleet.ready() == [])
        assert proxy.router.in_flight("a") == 0
        refused = await client.post(f"{url}/v1/completions", content=completion(), headers=HEADERS)
    assert refused.status_code == 503 and "127.0.0.1" not in refused.text
    assert time.monotonic() - start < 10
    assert not any(r.exc_info for r in caplog.records)  # logged in one line each, no traceback


async def _closed_after(
    port: int, steps: list[tuple[float, bytes]], *, limit_s: float
) -> tuple[float, bytes]:
    """Send ``steps`` (pause, bytes), then read until the server closes; (seconds from connecting to the
    close, everything read). A server that stops reading shows as a write error: closed then too."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    start = time.monotonic()
    received = b""

    async def talk() -> None:
        for pause, data in steps:
            await asyncio.sleep(pause)
            writer.write(data)
            await writer.drain()

    sender = asyncio.create_task(talk())
    try:
        async with asyncio.timeout(limit_s):
            while chunk := await reader.read(65536):
                received += chunk
    except ConnectionResetError:
        pass
    finally:
        sender.cancel()
        writer.close()
    return time.monotonic() - start, received


HEAD = b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"


@pytest.mark.parametrize(
    ("steps", "timeout", "status"),
    [
        ([], "idle_timeout_s", None),
        (
            [(0.0, b"POST /v1/completions HTTP/1.1\r\n")] + [(0.1, b"X-Slow: y\r\n")] * 100,
            "idle_timeout_s",
            None,
        ),
        ([(0.0, HEAD + b"Content-Length: 100\r\n\r\n")] + [(0.1, b" ")] * 100, "body_timeout_s", b"408"),
        ([(0.0, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")], "idle_timeout_s", b"200"),
    ],
    ids=["silent connection", "slow headers", "slow body", "idle after an answer"],
)
async def test_slow_or_silent_clients_are_closed_within_the_time_outs(
    proxy_for: ProxyFactory, steps: list[tuple[float, bytes]], timeout: str, status: bytes | None
) -> None:
    engine = FakeEngine("a")
    limits = {"idle_timeout_s": 0.6, "body_timeout_s": 0.6}
    async with (
        serve(engine.app) as engine_url,
        proxy_for([{"url": engine_url, "name": "a"}], **limits) as (url, proxy),
    ):
        elapsed, received = await _closed_after(int(url.rsplit(":", 1)[1]), steps, limit_s=8)
        assert proxy.router.in_flight("a") == 0
    assert limits[timeout] * 0.9 <= elapsed < limits[timeout] + 2.0  # 1 s of lingering after a 408 at most
    if status is None:
        assert received == b""
    else:
        assert received.split(b"\r\n", 1)[0].split()[1] == status


async def test_stopped_prefill_engine_the_decode_engine_prefills_itself(
    proxy_for: ProxyFactory, client: httpx.AsyncClient
) -> None:
    decode = FakeEngine("d")
    async with (
        engine_process("p") as (p_url, p),
        serve(decode.app) as d_url,
        proxy_for(
            [{"url": p_url, "name": "p", "phase": "prefill"}, {"url": d_url, "name": "d", "phase": "decode"}],
            **FAST_FAILURE,
        ) as (url, proxy),
    ):
        p.send_signal(signal.SIGSTOP)
        start = time.monotonic()
        r = await client.post(
            f"{url}/v1/completions", content=completion(prompt="long " * 400), headers=HEADERS
        )
        elapsed = time.monotonic() - start
        metrics = (await client.get(f"{url}/metrics")).text
        assert proxy.router.in_flight("p") == proxy.router.in_flight("d") == 0
    assert r.status_code == 200 and r.content == JSON_ANSWER
    assert "kv_transfer_params" not in decode.bodies[-1]  # no prefill to take over: it prefilled itself
    assert _errors(metrics, "p", "prefill") == 1
    assert elapsed < DETECTION_S + 2.0

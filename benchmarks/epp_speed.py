"""How fast the endpoint picker decides, against what the proxy costs per request, on the same machine.

The picker (``autoscaler router --mode epp``) runs as its own process with 32 endpoints; this process
plays Envoy over gRPC on 127.0.0.1, full-duplex streamed, with 8k-token prompts (text, ~4 characters a
token, 64-token blocks: 128 per prompt) that share prefixes as a chat service's do (one of 16 system
prompts of 6k tokens, then 2k of their own), so the index is warm and affinity decides.

- ``decision_p50_us`` / ``decision_p99_us``: the latency the picker adds to a request, as the gateway sees
  it: from sending the body's last chunk to receiving the routing answer (the request headers' answer with
  the destination), one stream at a time. It includes gRPC on loopback both ways and parsing, hashing and
  placing the request; the body's way back to the gateway and the response path are not in it.
- ``decisions_per_second``: whole exchanges (request routed, body handed back, response headers that end
  the stream) completed per second with 32 streams open at once.
- ``decision_cpu_p50_us`` / ``_p99_us``: the picker's own work per decision in process, no gRPC
  (``Exchange.on`` for the request headers and body chunks).
- ``proxy``: the proxy mode's per-request cost for the same prompts and 32 endpoints (``autoscaler router``
  in front of a stub engine that answers at once): its added latency (proxied minus direct, p50/p99) and
  its throughput with 32 requests in flight. ``epp_vs_proxy_added_p50`` is the ratio of the two p50s.
  The one-at-a-time latencies of the picker, the engine directly and the proxy are taken in turn, request
  by request, so all three see the same machine.

The client's own work shares this machine's cores with the picker, so both rates are lower bounds, and the
picker's latency includes this process's Python gRPC client where a gateway has Envoy's C++ one; on a
machine shared with other work, p99s carry the scheduler's 4 ms time slices.

    python benchmarks/epp_speed.py [--quick] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import httpx
from _harness import free_port, percentile, stub_engine_command, wait_ready
from envoy.config.core.v3 import base_pb2
from envoy.extensions.filters.http.ext_proc.v3 import processing_mode_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as ext_proc
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from autoscaler.adapters.epp.exchange import Exchange
from autoscaler.adapters.epp.server import EndpointPicker
from autoscaler.adapters.epp.settings import EppSettings

ENDPOINTS = 32
PROMPT_TOKENS = 8192
SHARED_TOKENS = 6144
SYSTEM_PROMPTS = 16
CHARS_PER_TOKEN = 4
BODY_CHUNKS = 4  # Envoy streams a 32 kB body in a few messages
FULL_DUPLEX = processing_mode_pb2.ProcessingMode.FULL_DUPLEX_STREAMED


def _bodies(count: int, rng: random.Random) -> list[bytes]:
    systems = [_text(rng, SHARED_TOKENS * CHARS_PER_TOKEN) for _ in range(SYSTEM_PROMPTS)]
    own = (PROMPT_TOKENS - SHARED_TOKENS) * CHARS_PER_TOKEN
    return [
        json.dumps(
            {"model": "m", "prompt": rng.choice(systems) + _text(rng, own), "max_tokens": 64, "stream": True}
        ).encode()
        for _ in range(count)
    ]


def _text(rng: random.Random, chars: int) -> str:
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]
    out: list[str] = []
    size = 0
    while size < chars:
        word = rng.choice(words)
        out.append(word)
        size += len(word) + 1
    return " ".join(out)[:chars]


def _headers(values: dict[str, str]) -> Any:
    return base_pb2.HeaderMap(
        headers=[base_pb2.HeaderValue(key=k, raw_value=v.encode()) for k, v in values.items()]
    )


def _request_messages(body: bytes) -> list[Any]:
    size = -(-len(body) // BODY_CHUNKS)
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    return [
        ext_proc.ProcessingRequest(
            request_headers=ext_proc.HttpHeaders(
                headers=_headers({":method": "POST", ":path": "/v1/completions"})
            ),
            protocol_config=ext_proc.ProtocolConfiguration(
                request_body_mode=FULL_DUPLEX, response_body_mode=FULL_DUPLEX
            ),
        ),
        *(
            ext_proc.ProcessingRequest(
                request_body=ext_proc.HttpBody(body=piece, end_of_stream=i == len(pieces) - 1)
            )
            for i, piece in enumerate(pieces)
        ),
    ]


_END = ext_proc.ProcessingRequest(
    response_headers=ext_proc.HttpHeaders(headers=_headers({":status": "200"}), end_of_stream=True)
)


async def _exchange(stub: Any, body: bytes) -> float:
    """One request through the picker; seconds from the body's last chunk to the routing answer."""
    call = stub.Process()
    *head, last = _request_messages(body)
    for message in head:
        await call.write(message)
    start = time.perf_counter()
    await call.write(last)
    answer = await call.read()
    added = time.perf_counter() - start
    assert answer.WhichOneof("response") == "request_headers", answer
    while True:  # the body handed back
        answer = await call.read()
        if answer.request_body.response.body_mutation.streamed_response.end_of_stream:
            break
    await call.write(_END)
    await call.read()
    await call.done_writing()
    assert await call.read() == grpc.aio.EOF
    return added


async def _measure(
    picker_port: int, engine_url: str, proxy_port: int, bodies: list[bytes], *, warm: int
) -> tuple[dict[str, float], dict[str, float]]:
    """Picker and proxy rows. The one-at-a-time latencies interleave the three paths request by request
    (picker, engine directly, proxy), so a change in the machine's load hits all three alike."""
    proxy_url = f"http://127.0.0.1:{proxy_port}"
    async with (
        grpc.aio.insecure_channel(f"127.0.0.1:{picker_port}") as channel,
        httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=64)) as client,
    ):
        await _wait_serving(channel)
        await wait_ready(client, f"{proxy_url}/health")
        stub = external_processor_pb2_grpc.ExternalProcessorStub(channel)
        picked: list[float] = []
        direct: list[float] = []
        proxied: list[float] = []
        for i, body in enumerate(bodies):
            times = (
                await _exchange(stub, body) * 1e6,
                await _post(client, engine_url, body),
                await _post(client, proxy_url, body),
            )
            if i >= warm:
                for series, value in zip((picked, direct, proxied), times, strict=True):
                    series.append(value)
        decisions = await _rate(bodies, lambda body: _exchange(stub, body))
        proxy_rate = await _rate(bodies, lambda body: _post(client, proxy_url, body))
    for series in (picked, direct, proxied):
        series.sort()
    picker = {
        "decision_p50_us": percentile(picked, 0.5),
        "decision_p99_us": percentile(picked, 0.99),
        "decisions_per_second": decisions,
    }
    proxy = {
        "added_p50_us": percentile(proxied, 0.5) - percentile(direct, 0.5),
        "added_p99_us": percentile(proxied, 0.99) - percentile(direct, 0.99),
        "direct_p50_us": percentile(direct, 0.5),
        "proxied_p50_us": percentile(proxied, 0.5),
        "requests_per_second_at_32": proxy_rate,
    }
    return picker, proxy


async def _rate(bodies: list[bytes], one: Callable[[bytes], Awaitable[float]]) -> float:
    """Requests completed per second with 32 in flight."""
    limit = asyncio.Semaphore(32)

    async def bounded(body: bytes) -> None:
        async with limit:
            await one(body)

    start = time.perf_counter()
    await asyncio.gather(*(bounded(b) for b in bodies))
    return len(bodies) / (time.perf_counter() - start)


async def _post(client: httpx.AsyncClient, url: str, body: bytes) -> float:
    start = time.perf_counter()
    (await client.post(f"{url}/v1/completions", content=body)).raise_for_status()
    return (time.perf_counter() - start) * 1e6


async def _wait_serving(channel: grpc.aio.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for _ in range(600):
        try:
            answer = await health.Check(health_pb2.HealthCheckRequest(service="readiness"), timeout=1)
            if answer.status == health_pb2.HealthCheckResponse.SERVING:
                return
        except grpc.aio.AioRpcError:
            pass
        await asyncio.sleep(0.05)
    raise RuntimeError("the picker did not become ready")


async def _cpu_rows(bodies: list[bytes], *, warm: int) -> dict[str, float]:
    """The picker's own work per decision, in process: no gRPC (a 32 kB body is parsed on the loop)."""
    settings = EppSettings.model_validate(
        {"endpoints": {"static": [{"url": f"http://127.0.0.1:{1000 + i}"} for i in range(ENDPOINTS)]}}
    )
    picker = EndpointPicker(settings)
    picker.fleet.apply(settings.endpoints.static)
    times = []
    for i, body in enumerate(bodies):
        messages = _request_messages(body)
        exchange = Exchange(picker.picker)
        start = time.perf_counter()
        for message in messages:
            await exchange.on(message)
        elapsed = time.perf_counter() - start
        await exchange.on(_END)
        if i >= warm:
            times.append(elapsed * 1e6)
    times.sort()
    return {
        "decision_cpu_p50_us": percentile(times, 0.5),
        "decision_cpu_p99_us": percentile(times, 0.99),
        "decision_cpu_mean_us": statistics.fmean(times),
    }


def _spawn(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, *args])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer requests")
    parser.add_argument("--out", default="epp_speed.json", help="where to write the JSON result")
    args = parser.parse_args()
    warm, measured = (200, 300) if args.quick else (1_000, 3_000)
    load_before = os.getloadavg()[0]
    bodies = _bodies(warm + measured, random.Random(42))

    cpu = asyncio.run(_cpu_rows(bodies, warm=warm))
    engine_port, proxy_port, picker_port = (free_port() for _ in range(3))
    engine_url = f"http://127.0.0.1:{engine_port}"
    with tempfile.TemporaryDirectory() as tmp:
        picker_config = Path(tmp) / "picker.yaml"
        picker_config.write_text(
            json.dumps(
                {
                    "metrics_port": free_port(),
                    "scrape_interval_s": 3600,  # nothing listens there: one failed scrape, kept in rotation
                    "endpoints": {
                        "static": [
                            {"url": f"http://127.0.0.1:{free_port()}"} for _ in range(ENDPOINTS)
                        ]
                    },
                }
            )
        )
        proxy_config = Path(tmp) / "router.yaml"
        proxy_config.write_text(
            json.dumps(
                {"endpoints": {"static": [{"url": engine_url, "name": f"e{i}"} for i in range(ENDPOINTS)]}}
            )
        )
        quiet = ["--host", "127.0.0.1", "--log-level", "warning"]
        processes = [
            subprocess.Popen(stub_engine_command(engine_port)),
            _spawn(
                "-m",
                "autoscaler",
                "router",
                "--mode",
                "epp",
                "--config",
                str(picker_config),
                "--port",
                str(picker_port),
                *quiet,
            ),
            _spawn(
                "-m", "autoscaler", "router", "--config", str(proxy_config), "--port", str(proxy_port), *quiet
            ),
        ]
        try:
            picker, proxy = asyncio.run(_measure(picker_port, engine_url, proxy_port, bodies, warm=warm))
        finally:
            for process in processes:
                process.terminate()
                process.wait(timeout=60)
    result = {
        **picker,
        **cpu,
        "proxy": proxy,
        "epp_vs_proxy_added_p50": picker["decision_p50_us"] / proxy["added_p50_us"],
        "endpoints": ENDPOINTS,
        "prompt_tokens": PROMPT_TOKENS,
        "requests": len(bodies),
        "quick": args.quick,
        "load_average_1m": [load_before, os.getloadavg()[0]],  # the machine's other work, before and after
    }
    print(
        f"picker: {picker['decisions_per_second']:.0f} decisions/s with 32 streams; added p50 "
        f"{picker['decision_p50_us']:.0f} us, p99 {picker['decision_p99_us']:.0f} us "
        f"(own CPU p50 {cpu['decision_cpu_p50_us']:.0f} us)"
    )
    print(
        f"proxy:  {proxy['requests_per_second_at_32']:.0f} requests/s with 32 in flight; added p50 "
        f"{proxy['added_p50_us']:.0f} us, p99 {proxy['added_p99_us']:.0f} us"
    )
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

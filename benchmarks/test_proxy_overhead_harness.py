"""The streaming-overhead benchmark's own parts: its backend streams SSE over keep-alive connections, its
load generator measures a first byte per request, retries a kept-alive connection the server closed, and
its summary subtracts the direct connection's percentiles (missing routers reported as null)."""

from __future__ import annotations

import asyncio

import proxy_overhead as po


async def test_backend_streams_events_over_keep_alive_connections() -> None:
    server = await po.start_backend()
    port = server.sockets[0].getsockname()[1]
    connections = po.Connections(port)
    try:
        result = await po.open_loop(connections, rate=500, count=20)
        assert len(result.ttfb_ms) == 20 and all(t > 0 for t in result.ttfb_ms)
        ttfb, answer = await connections.stream(po.request_body(1))
        assert answer.count(b"data: {") == po.STREAM_EVENTS and answer.endswith(b"data: [DONE]\n\n")
        assert ttfb > 0
        assert len(connections._idle) <= 20  # reused, not one per request
    finally:
        connections.close()
        server.close()
        await server.wait_closed()


async def test_a_kept_alive_connection_the_server_closed_is_replaced() -> None:
    server = await po.start_backend()
    port = server.sockets[0].getsockname()[1]
    connections = po.Connections(port)
    try:
        await connections.stream(po.request_body(1))
        [(_, writer)] = connections._idle
        writer.transport.abort()  # as if the server had closed it after its keep-alive timeout
        await asyncio.sleep(0)
        _, answer = await connections.stream(po.request_body(2))
        assert answer.endswith(b"data: [DONE]\n\n")
    finally:
        connections.close()
        server.close()
        await server.wait_closed()


def test_summary_subtracts_the_direct_percentiles_and_reports_missing_routers() -> None:
    direct = {rate: [1.0] * 100 for rate in po.RATES}
    ours = {rate: [1.5] * 99 + [11.0] for rate in po.RATES}
    vllm = {rate: [1.25] * 100 for rate in po.RATES}
    result = po._summary(
        {"direct": direct, "autoscaler": ours, "vllm-router": vllm},
        late={"autoscaler": {50: 3}},
        cpu={"autoscaler": {50: 2.5}},
        behind={},
        missing={"sglang-router": "not installed"},
        rounds=1,
        seconds=1.0,
    )
    assert result["added_latency_p50_ms"] == {"sglang-router": None, "autoscaler": 0.5, "vllm-router": 0.25}
    assert result["added_latency_p99_ms"] == {"sglang-router": None, "autoscaler": 0.5, "vllm-router": 0.25}
    assert result["overhead_ratio_vs_vllm_router"] == 2.0
    by_rate = result["proxy_overhead_streaming"]["added_latency_by_rate"]  # type: ignore[index]
    assert by_rate["autoscaler"]["50"]["late_requests"] == 3
    assert by_rate["autoscaler"]["50"]["cpu_ms_per_request"] == 2.5
    assert by_rate["direct"]["50"] == {"ttfb_p50_ms": 1.0, "ttfb_p99_ms": 1.0, "late_requests": 0}

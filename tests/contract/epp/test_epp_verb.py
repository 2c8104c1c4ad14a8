"""`autoscaler router --mode epp` serves ext_proc, health and /metrics, and stops on SIGTERM; a bad config
exits 2 with one line."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import grpc
import grpc.aio
import httpx
import pytest
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.contract.epp.conftest import FULL_DUPLEX, Envoy, Routed, completion_body, idle_endpoints
from tests.contract.router.conftest import refused_url

pytestmark = pytest.mark.timeout(60)


def _free_port() -> int:
    return int(refused_url().rsplit(":", 1)[1])


async def test_epp_mode_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    grpc_port, metrics_port = _free_port(), _free_port()
    endpoint = idle_endpoints(1)[0]["url"]
    config = tmp_path / "picker.yaml"
    config.write_text(
        f"metrics_port: {metrics_port}\nscrape_interval_s: 3600\n"
        f"endpoints:\n  static:\n    - url: {endpoint}\n"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "autoscaler", "router", "--mode", "epp", "--config", str(config),
        "--host", "127.0.0.1", "--port", str(grpc_port), "--log-level", "warning",
    )  # fmt: skip
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            for _ in range(300):
                try:
                    answer = await health.Check(health_pb2.HealthCheckRequest(service="readiness"), timeout=1)
                    if answer.status == health_pb2.HealthCheckResponse.SERVING:
                        break
                except grpc.aio.AioRpcError:
                    pass
                await asyncio.sleep(0.05)
            call = external_processor_pb2_grpc.ExternalProcessorStub(channel).Process()
            routed = await Envoy(call, mode=FULL_DUPLEX).request(completion_body())
            assert isinstance(routed, Routed) and routed.endpoint == endpoint.split("://")[1]
            call.cancel()
        async with httpx.AsyncClient(timeout=10) as client:
            metrics = (await client.get(f"http://127.0.0.1:{metrics_port}/metrics")).text
        assert "autoscaler_router_requests_total" in metrics
    finally:
        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), 30)
    assert code == -signal.SIGTERM


async def test_a_bad_config_exits_2_with_one_line(tmp_path: Path) -> None:
    config = tmp_path / "picker.yaml"
    config.write_text("endpoints:\n  static: []\nfallbacks: 99\n")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "autoscaler", "router", "--mode", "epp", "--config", str(config),
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    lines = stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "fallbacks" in lines[0]

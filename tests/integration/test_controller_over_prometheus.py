"""The controller's signals from a real Prometheus: engines under load scraped every second, one cycle scales
the pool up through the fake API server; with Prometheus gone the next cycle holds and says why."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from kubernetes.aio import client

from autoscaler.adapters import prometheus
from autoscaler.adapters.prometheus_signals import PrometheusSignals
from autoscaler.adapters.publishing import DesiredReplicasBoard
from autoscaler.cli.controller import build_controller
from autoscaler.controller.loop import ControllerSettings
from autoscaler.core.phases import Phase
from tests.contract.controller.conftest import (
    POOL,
    add_autoscaler,
    add_pool,
    autoscaler,
    condition,
    replicas,
)
from tests.contract.kubernetes.conftest import AUTOSCALERS, LEADER_WORKER_SETS
from tests.fakes.kube_apiserver import FakeKubeApiServer, running_server
from tests.integration.prometheus_server import prometheus_server
from tests.integration.text_exporter import text_exporter


class LoadedEngine:
    """vLLM counters growing at ``rate`` requests/s of 1000 prompt and 200 output tokens."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.start = time.monotonic()

    def render(self) -> str:
        n = self.rate * (time.monotonic() - self.start)
        labels = 'model_name="m",engine="0"'
        lines = [
            "# TYPE vllm:num_requests_waiting gauge",
            f"vllm:num_requests_waiting{{{labels}}} 0",
            "# TYPE vllm:request_success_total counter",
            f'vllm:request_success_total{{{labels},finished_reason="stop"}} {n}',
        ]
        for name, mean in (("request_prompt_tokens", 1000.0), ("request_generation_tokens", 200.0)):
            lines += [
                f"# TYPE vllm:{name} histogram",
                f'vllm:{name}_bucket{{{labels},le="+Inf"}} {n}',
                f"vllm:{name}_sum{{{labels}}} {n * mean}",
                f"vllm:{name}_count{{{labels}}} {n}",
            ]
        return "\n".join(lines) + "\n"


async def _until_window_full(url: str, *, timeout_s: float = 40.0) -> None:
    """Wait until both phases' 5 s rate reads the full 100 req/s (a partly filled window reads low)."""
    reader = prometheus.PrometheusReader.connect(url, prometheus.ReaderSettings(window="5s"))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        values = await asyncio.to_thread(reader.read, now=time.time())
        rates = [
            values.get((POOL, phase), {}).get("arrival_rate", 0.0) for phase in (Phase.PREFILL, Phase.DECODE)
        ]
        if min(rates) >= 90.0:
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"Prometheus never showed the load: {rates}")


class WallClock:
    def now(self) -> float:
        return time.time()


@pytest.fixture
def kube() -> Iterator[FakeKubeApiServer]:
    yield from running_server(custom_types=[LEADER_WORKER_SETS, AUTOSCALERS])


@pytest.fixture
async def api_client(kube: FakeKubeApiServer) -> AsyncIterator[client.ApiClient]:
    async with client.ApiClient(client.Configuration(host=kube.url)) as api:
        yield api


async def test_a_cycle_reads_real_prometheus_scales_up_and_holds_when_it_is_gone(
    kube: FakeKubeApiServer, api_client: client.ApiClient, tmp_path: Path
) -> None:
    add_pool(kube)
    add_autoscaler(kube, autoscaler(metrics={"window": "5s"}))
    engines = {phase: LoadedEngine(rate=100.0) for phase in ("prefill", "decode")}
    with (
        text_exporter(engines["prefill"].render) as prefill,
        text_exporter(engines["decode"].render) as decode,
        prometheus_server(
            [(prefill, {"pool": POOL, "phase": "prefill"}), (decode, {"pool": POOL, "phase": "decode"})],
            tmp_path,
        ) as url,
    ):
        controller = build_controller(
            api_client,
            settings=ControllerSettings(identity="it", lease_namespace="default", namespace="default"),
            signals=PrometheusSignals(url),
            board=DesiredReplicasBoard(),
            clock=WallClock(),
        )
        assert await controller.elect()
        await _until_window_full(url)

        assert await controller.reconcile("default", POOL) == "decided"
        assert condition(kube, "SignalsHealthy")["status"] == "True"
        assert replicas(kube, "prefill") > 1 and replicas(kube, "decode") > 1
        grown = replicas(kube, "decode")

    assert await controller.reconcile("default", POOL) == "decided"  # Prometheus has stopped
    assert condition(kube, "SignalsHealthy")["reason"] == "PrometheusUnavailable"
    assert replicas(kube, "decode") == grown

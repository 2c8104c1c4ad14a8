"""The whole signal path on a laptop: load through the router to two emulated vLLM replicas, a real
Prometheus scraping all three, and the reader turning it into the Observation the policy sees.

Bounded: 2 emulators, 1 router, one Prometheus, 10 requests/s for about 25 s, everything on 127.0.0.1 and torn
down at the end. The Observation must match what was sent (arrival rate within 10 %, output length as
asked, KV use above zero under load); when Prometheus stops mid-run, the policy holds instead of scaling down.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
import yaml

from autoscaler.adapters import prometheus
from autoscaler.core.observation import PhaseSignals, ReplicaCounts
from autoscaler.core.phases import Phase, ServingMode
from autoscaler.policy.bounds import ReplicaBounds
from autoscaler.policy.state import PolicyState
from autoscaler.policy.step import step
from tests.integration.processes import autoscaler_process
from tests.integration.prometheus_server import free_port, prometheus_server
from tests.policy.builders import make_settings

POOL = "laptop"
RATE = 10.0
OUTPUT_TOKENS = 32
MODEL = "emulated-llama"
READER = prometheus.ReaderSettings(window="10s", queries=prometheus.ROUTER_QUERIES)


async def _load(router: str, *, seconds: float) -> int:
    """Open-loop, bounded: RATE requests per second for ``seconds``; returns how many succeeded."""
    prompt = " ".join(f"word{i % 97}" for i in range(200))
    async with httpx.AsyncClient(base_url=router, timeout=30.0) as client:

        async def one() -> bool:
            body = {"model": MODEL, "prompt": prompt, "max_tokens": OUTPUT_TOKENS, "ignore_eos": True}
            response = await client.post("/v1/completions", json=body)
            return response.status_code == 200

        tasks = []
        start = time.monotonic()
        for i in range(int(RATE * seconds)):
            await asyncio.sleep(max(0.0, start + i / RATE - time.monotonic()))
            tasks.append(asyncio.create_task(one()))
        return sum(await asyncio.gather(*tasks))


def test_observation_follows_the_load_and_prometheus_loss_holds(tmp_path: Path) -> None:
    profile = "llama-3.1-8b/h100-tp1"
    ports = [free_port() for _ in range(3)]
    engines = [f"http://127.0.0.1:{p}" for p in ports[:2]]
    router = f"http://127.0.0.1:{ports[2]}"
    config = {
        "pool": POOL,
        "host": "127.0.0.1",
        "port": ports[2],
        "endpoints": {"static": [{"url": url, "phase": "aggregated"} for url in engines]},
    }
    (tmp_path / "router.yaml").write_text(yaml.safe_dump(config))
    engine_labels = {"pool": POOL, "phase": Phase.AGGREGATED.value}
    counts = {Phase.AGGREGATED: ReplicaCounts(current=2, ready=2, starting=0)}
    with ExitStack() as stack:
        for url, port in zip(engines, ports, strict=False):
            emulate = ["emulate", "--profile", profile, "--port", str(port), "--model", MODEL]
            stack.enter_context(autoscaler_process(emulate, url, tmp_path / f"engine-{port}.log"))
        route = ["router", "--config", str(tmp_path / "router.yaml")]
        stack.enter_context(autoscaler_process(route, router, tmp_path / "router.log"))
        targets = [(url.removeprefix("http://"), engine_labels) for url in engines]
        targets.append((router.removeprefix("http://"), {}))  # the router labels its own series
        (tmp_path / "prometheus").mkdir()
        with prometheus_server(targets, tmp_path / "prometheus") as prom:
            reader = prometheus.PrometheusReader.connect(prom, READER)

            async def load_and_observe() -> tuple[int, PhaseSignals]:
                # Read while the load still runs: instant gauges (queue, KV use) fall back to zero as
                # soon as the last request ends, and a reading taken after it races the last scrape.
                load = asyncio.create_task(_load(router, seconds=25.0))
                await asyncio.sleep(20.0)
                now = time.time()
                seen = await asyncio.to_thread(reader.observe, pool=POOL, replicas=counts, now=now)
                return await load, seen.phases[Phase.AGGREGATED]

            succeeded, busy = asyncio.run(load_and_observe())
            time.sleep(12.0)  # the rate window empties after the load's end
            idle = reader.observe(pool=POOL, replicas=counts, now=time.time()).phases[Phase.AGGREGATED]

        assert succeeded == int(RATE * 25.0)  # nothing lost on the way
        assert busy.arrival_rate == pytest.approx(RATE, rel=0.10)
        assert busy.output_tokens_mean == pytest.approx(OUTPUT_TOKENS, rel=0.05)
        assert busy.prompt_tokens_mean is not None and busy.prompt_tokens_mean > 100
        assert busy.kv_usage is not None and busy.kv_usage > 0
        assert busy.kv_capacity_tokens is not None and busy.kv_capacity_tokens > 0  # cache_config_info
        assert busy.running_per_replica is not None and busy.kv_tokens_per_running is not None
        assert busy.kv_tokens_per_running > busy.output_tokens_mean  # a running sequence holds its context
        assert busy.queue_length is not None and busy.queue_length >= 0
        assert busy.ttft_observed_s is not None and busy.ttft_observed_s > 0
        assert busy.age_s < 5.0
        assert idle.arrival_rate == pytest.approx(0.0, abs=0.5)
        assert idle.kv_usage == 0.0 and idle.queue_length == 0.0

        # Prometheus is gone, the engines are not: no data is not zero demand
        with pytest.raises(prometheus.SignalsUnavailable):
            reader.read(now=time.time())
        stale = prometheus.observation(pool=POOL, values={}, replicas=counts, now=time.time())
        settings = make_settings(mode=ServingMode.AGGREGATED, bounds={Phase.AGGREGATED: ReplicaBounds(1, 8)})
        decision, _ = step(stale, PolicyState(), settings, now=stale.time)
        assert decision.phases[Phase.AGGREGATED].replicas == 2
        assert decision.phases[Phase.AGGREGATED].reason == "HoldMissingSignals"

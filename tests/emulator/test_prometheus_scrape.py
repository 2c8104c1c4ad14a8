"""A real Prometheus scraping the emulator stores vLLM's colon names, and PromQL over them sees the load."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from tests.emulator.conftest import Start
from tests.emulator.helpers import MODEL
from tests.integration.prometheus_server import prometheus_server

PROMPT = list(range(2000, 2400))  # 25 blocks: the repeat hits 24 of them and all but one token


async def _query(client: httpx.AsyncClient, promql: str) -> list[dict[str, object]]:
    reply = (await client.get("/api/v1/query", params={"query": promql})).json()
    assert reply["status"] == "success", reply
    result: list[dict[str, object]] = reply["data"]["result"]
    return result


async def test_prometheus_stores_colon_names_from_the_emulator(start: Start, tmp_path: Path) -> None:
    async with start(speed=20) as emu:
        for _ in range(2):
            await emu.client.post("/v1/completions", json={"model": MODEL, "prompt": PROMPT, "max_tokens": 4})
        target = emu.url.removeprefix("http://")
        with prometheus_server([(target, {"pool": "p"})], tmp_path) as url:
            async with httpx.AsyncClient(base_url=url, timeout=5) as prom:
                for _ in range(100):  # scrapes every second; wait (bounded) for the first one to land
                    hits = await _query(prom, f'vllm:prefix_cache_hits_total{{model_name="{MODEL}"}}')
                    if hits:
                        break
                    await asyncio.sleep(0.1)
                success = await _query(prom, 'vllm:request_success_total{finished_reason="length"}')
                ttft = await _query(prom, "histogram_quantile(0.5, vllm:time_to_first_token_seconds_bucket)")
                underscored = await _query(prom, '{__name__=~"vllm_.*"}')
    assert [float(s["value"][1]) for s in hits] == [len(PROMPT) - 1]  # type: ignore[index]
    assert [s["metric"]["engine"] for s in success] == ["0"]  # type: ignore[index]
    assert [float(s["value"][1]) for s in success] == [2.0]  # type: ignore[index]
    assert ttft and float(ttft[0]["value"][1]) > 0  # type: ignore[index]
    assert underscored == []

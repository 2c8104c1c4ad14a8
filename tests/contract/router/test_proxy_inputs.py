"""What the proxy reads: request bodies, engine /metrics, pods, endpoint files, its own settings."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import httpx
import pytest

from autoscaler.adapters.proxy import discovery, engine_metrics, prompts
from autoscaler.adapters.proxy.settings import Hashing, KubernetesDiscovery, ProxySettings
from autoscaler.core.phases import Phase
from autoscaler.routing import hashing
from autoscaler.routing.settings import IndexSource
from tests.contract.router.conftest import ProxyFactory, serve
from tests.contract.router.fake_engine import FakeEngine, completion

APPROX = Hashing(block_tokens=4, chars_per_token=2)


def test_prompt_forms() -> None:
    text = prompts.read(
        {"model": "m", "prompt": "x" * 21, "max_tokens": 7, "n": 2},
        chat=False,
        config=APPROX,
        default_max_tokens=9,
    )
    assert (text.prompt_tokens, text.output_tokens, text.token_ids) == (11, 14, None)
    ids = prompts.read(
        {"model": "m", "prompt": list(range(32))}, chat=False, config=APPROX, default_max_tokens=9
    )
    assert (ids.prompt_tokens, ids.output_tokens) == (32, 9)
    chat = prompts.read(
        {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]},
        chat=True,
        config=APPROX,
        default_max_tokens=9,
    )
    assert chat.text == "user\nhi\n"


def test_block_hashes_by_mode() -> None:
    ids = prompts.Prompt(text="", token_ids=list(range(100, 132)), prompt_tokens=32, output_tokens=1)
    precise = Hashing(mode="precise", block_tokens=16)
    assert prompts.block_hashes(ids, precise) == [15126711022707342677, 3356471519746799895]
    assert prompts.block_hashes(ids, APPROX) == hashing.approximate_token_hashes(
        range(100, 132), block_tokens=4
    )
    text = prompts.Prompt(text="y" * 40, token_ids=None, prompt_tokens=20, output_tokens=1)
    assert prompts.block_hashes(text, precise) == []  # vLLM's hashes need token ids
    assert len(prompts.block_hashes(text, APPROX)) == 5  # 8-byte chunks


@pytest.mark.parametrize(
    "body",
    [{"model": "m", "prompt": [1, "a"]}, {"model": "m", "messages": []}, {"model": "", "prompt": "x"}],
    ids=["mixed prompt list", "no messages", "empty model"],
)
def test_unusable_requests(body: dict[str, object]) -> None:
    with pytest.raises(prompts.BadRequest):
        prompts.read(body, chat="messages" in body, config=APPROX, default_max_tokens=1)


def test_engine_metrics_sum_dp_ranks_and_accept_both_spellings() -> None:
    text = "\n".join(
        [
            "# TYPE vllm_num_requests_waiting gauge",
            'vllm_num_requests_waiting{engine="0"} 2',
            'vllm_num_requests_waiting{engine="1"} 3',
            "# TYPE vllm:num_requests_running gauge",
            'vllm:num_requests_running{engine="0"} 4',
            "# TYPE vllm:kv_cache_usage_perc gauge",
            'vllm:kv_cache_usage_perc{engine="0"} 0.2',
            'vllm:kv_cache_usage_perc{engine="1"} 0.4',
            "# TYPE vllm:cache_config_info gauge",
            'vllm:cache_config_info{block_size="16",num_gpu_blocks="100",engine="0"} 1',
            'vllm:cache_config_info{block_size="16",num_gpu_blocks="100",engine="1"} 1',
            "",
        ]
    )
    scrape = engine_metrics.parse(text)
    assert scrape == engine_metrics.EngineScrape(
        waiting=5, running=4, kv_usage=pytest.approx(0.3), kv_capacity_tokens=3200
    )
    with pytest.raises(ValueError, match="lack"):
        engine_metrics.parse("# TYPE up gauge\nup 1\n")


def _pod(
    *,
    ready: str = "True",
    role: str | None = "decode",
    draining: str | None = None,
    ip: str | None = "10.1.2.3",
) -> dict[str, object]:
    return {
        "metadata": {
            "name": "vllm-0",
            "labels": {"llm-d.ai/role": role} if role else {},
            "annotations": {"inference-autoscaler.io/draining-since": draining} if draining else {},
        },
        "status": {"podIP": ip, "conditions": [{"type": "Ready", "status": ready}]},
    }


def test_pod_to_endpoint() -> None:
    config = KubernetesDiscovery(selector="app=vllm", port=8000, kv_events_port=5557)
    endpoint = discovery.pod_endpoint(_pod(), config)
    assert endpoint is not None
    assert (endpoint.key, endpoint.url, endpoint.phase, endpoint.kv_events, endpoint.draining) == (
        "vllm-0",
        "http://10.1.2.3:8000",
        Phase.DECODE,
        "tcp://10.1.2.3:5557",
        False,
    )
    assert (
        discovery.pod_endpoint(_pod(role="prefill-decode", draining="false"), config).phase
        is Phase.AGGREGATED
    )  # type: ignore[union-attr]
    assert discovery.pod_endpoint(_pod(draining="2026-11-25T10:00:00Z"), config).draining  # type: ignore[union-attr]
    assert discovery.pod_endpoint(_pod(ready="False"), config) is None
    assert discovery.pod_endpoint(_pod(ip=None), config) is None


def test_router_settings_follow_the_hashing() -> None:
    settings = ProxySettings.model_validate(
        {"endpoints": {"static": [{"url": "http://h:1"}]}, "hashing": {"mode": "precise", "block_tokens": 16}}
    )
    assert (settings.router_settings().block_tokens, settings.router_settings().index_source) == (
        16,
        IndexSource.KV_EVENTS,
    )
    with pytest.raises(ValueError, match="exactly one"):
        ProxySettings.model_validate({"endpoints": {}})


async def test_endpoint_file_is_followed(
    proxy_for: ProxyFactory, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    engine = FakeEngine("a")
    path = tmp_path / "endpoints.yaml"
    async with serve(engine.app) as engine_url:
        path.write_text(f"- {{url: '{engine_url}', name: a}}\n")
        async with proxy_for({"file": str(path), "file_poll_s": 0.02}) as (url, proxy):
            assert (
                await client.post(f"{url}/v1/completions", content=completion(), headers={})
            ).status_code == 200
            path.write_text(f"- {{url: '{engine_url}', name: a, draining: true}}\n")
            os.utime(path, (1, 1))  # a new modification time even within the clock's resolution
            for _ in range(200):
                if not proxy.fleet.ready():
                    break
                await asyncio.sleep(0.01)
            assert (
                await client.post(f"{url}/v1/completions", content=completion(), headers={})
            ).status_code == 503
            assert list(proxy.router.endpoints()) == ["a"]

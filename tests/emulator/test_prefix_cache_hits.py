"""Prefix caching: a repeated prompt skips its cached blocks, answers sooner and counts vLLM's hit tokens."""

from __future__ import annotations

import pytest

from autoscaler.profiles.schema import Profile
from tests.emulator.conftest import Start
from tests.emulator.helpers import MODEL, value

PROMPT = list(range(100, 100 + 4000))  # 250 blocks of 16


async def test_repeated_prompt_hits_the_cache(start: Start, profile: Profile) -> None:
    body = {"model": MODEL, "prompt": PROMPT, "max_tokens": 2}
    async with start(speed=10) as emu:
        await emu.client.post("/v1/completions", json=body)
        first = await emu.metrics()
        await emu.client.post("/v1/completions", json=body)
        second = await emu.metrics()

    assert value(first, "vllm:prefix_cache_queries_total") == len(PROMPT)
    assert value(first, "vllm:prefix_cache_hits_total") == 0
    assert value(second, "vllm:prefix_cache_queries_total") == 2 * len(PROMPT)
    # All 250 blocks are cached but the last prompt token is always computed. vLLM then counts 249 whole
    # blocks; the engine model counts every token but the last (a finer granularity, same order).
    hits = value(second, "vllm:prefix_cache_hits_total")
    assert len(PROMPT) - 16 <= hits == len(PROMPT) - 1
    assert value(second, "vllm:prompt_tokens_by_source_total", source="local_cache_hit") == hits

    ttft_first = value(first, "vllm:time_to_first_token_seconds_sum")
    ttft_second = value(second, "vllm:time_to_first_token_seconds_sum") - ttft_first
    assert ttft_first == pytest.approx(profile.prefill_time(len(PROMPT)))
    assert ttft_second == pytest.approx(profile.prefill_time(len(PROMPT) - hits, hits))
    assert ttft_second < ttft_first / 5

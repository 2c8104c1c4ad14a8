"""P/D as vLLM's NIXL connector does it: prefill returns kv_transfer_params, decode skips prefill."""

from __future__ import annotations

import pytest

from autoscaler.emulator.settings import Role
from autoscaler.profiles.schema import Profile
from tests.emulator.conftest import Start
from tests.emulator.helpers import MODEL, value

PROMPT = list(range(300, 300 + 2000))


async def test_two_step_prefill_then_remote_decode(start: Start, profile: Profile) -> None:
    async with start(speed=20, role=Role.PREFILL) as prefill, start(speed=20, role=Role.DECODE) as decode:
        first = await prefill.client.post(
            "/v1/completions",
            json={
                "model": MODEL,
                "prompt": PROMPT,
                "max_tokens": 1,
                "kv_transfer_params": {"do_remote_decode": True, "do_remote_prefill": False},
            },
        )
        params = first.json()["kv_transfer_params"]
        second = await decode.client.post(
            "/v1/completions",
            json={"model": MODEL, "prompt": PROMPT, "max_tokens": 6, "kv_transfer_params": params},
        )
        prefill_metrics = await prefill.metrics()
        decode_metrics = await decode.metrics()

    assert params["do_remote_prefill"] is True and params["do_remote_decode"] is False
    assert isinstance(params["remote_engine_id"], str) and params["remote_engine_id"]
    assert len(params["remote_block_ids"]) == len(PROMPT) // 16
    assert params["remote_host"] == "127.0.0.1" and isinstance(params["remote_port"], int)
    assert first.json()["usage"]["completion_tokens"] == 1
    assert second.json()["usage"]["completion_tokens"] == 6 and second.json()["kv_transfer_params"] is None

    assert value(prefill_metrics, "vllm:time_to_first_token_seconds_sum") == pytest.approx(
        profile.prefill_time(len(PROMPT))
    )
    # The decode replica computed no prompt: it waited for the KV, then decoded.
    assert value(decode_metrics, "vllm:prompt_tokens_by_source_total", source="local_compute") == 0
    assert value(decode_metrics, "vllm:prompt_tokens_by_source_total", source="external_kv_transfer") == len(
        PROMPT
    )
    expected_ttft = profile.kv_transfer_time(len(PROMPT)) + profile.decode_step_time(1, len(PROMPT))
    assert value(decode_metrics, "vllm:time_to_first_token_seconds_sum") == pytest.approx(expected_ttft)
    assert value(decode_metrics, "vllm:num_requests_kv_fetch_by_stage", stage="in_progress") == 0


async def test_roles_ignore_the_half_of_the_protocol_they_do_not_play(start: Start) -> None:
    async with start(speed=20, role=Role.DECODE) as decode, start(speed=20, role=Role.PREFILL) as prefill:
        handoff = await decode.client.post(
            "/v1/completions",
            json={
                "model": MODEL,
                "prompt": PROMPT,
                "max_tokens": 1,
                "kv_transfer_params": {"do_remote_decode": True},
            },
        )
        local = await prefill.client.post(
            "/v1/completions",
            json={
                "model": MODEL,
                "prompt": PROMPT,
                "max_tokens": 2,
                "kv_transfer_params": {"do_remote_prefill": True},
            },
        )
        prefill_metrics = await prefill.metrics()
    assert handoff.json()["kv_transfer_params"] is None
    assert local.status_code == 200
    assert value(prefill_metrics, "vllm:prefix_cache_queries_total") == len(PROMPT)  # prefilled here


async def test_decode_pulls_only_the_blocks_it_does_not_hold(start: Start, profile: Profile) -> None:
    params = {"do_remote_prefill": True, "remote_engine_id": "e", "remote_block_ids": [1, 2]}
    body = {"model": MODEL, "prompt": PROMPT, "max_tokens": 2, "kv_transfer_params": params}
    async with start(speed=20, role=Role.DECODE) as decode:
        await decode.client.post("/v1/completions", json=body)
        first = await decode.metrics()
        await decode.client.post("/v1/completions", json=body)
        second = await decode.metrics()
    ttft = "vllm:time_to_first_token_seconds_sum"
    step = profile.decode_step_time(1, len(PROMPT))
    assert value(first, ttft) == pytest.approx(profile.kv_transfer_time(len(PROMPT)) + step)
    assert value(second, ttft) - value(first, ttft) == pytest.approx(profile.kv_transfer_time(0) + step)
    assert value(second, "vllm:prompt_tokens_by_source_total", source="local_cache_hit") == len(PROMPT)

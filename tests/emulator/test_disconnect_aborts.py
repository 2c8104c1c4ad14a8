"""A client that goes away aborts its request in the engine, whether it was streaming or not."""

from __future__ import annotations

import asyncio

from tests.emulator.conftest import Start
from tests.emulator.helpers import MODEL, Emulated, until, value

LONG = {"model": MODEL, "prompt": "a prompt for a long answer", "max_tokens": 4000}


async def _aborted_and_idle(emu: Emulated) -> bool:
    samples = await emu.metrics()
    return (
        value(samples, "vllm:request_success_total", finished_reason="abort") == 1
        and value(samples, "vllm:num_requests_running") == 0
    )


async def test_closing_a_stream_aborts_the_request(start: Start) -> None:
    async with start() as emu:
        async with emu.client.stream("POST", "/v1/completions", json=LONG | {"stream": True}) as response:
            lines = response.aiter_lines()
            while not (await anext(lines)).startswith("data: "):
                pass
        # Leaving the block closed the connection after the first token.
        await until(lambda: _aborted_and_idle(emu))
        assert emu.engine.engine.kv_used_tokens == 0
        samples = await emu.metrics()
    assert value(samples, "vllm:request_success_total", finished_reason="length") == 0
    assert value(samples, "vllm:generation_tokens_total") < 4000


async def test_dropping_a_non_streaming_request_aborts_it(start: Start) -> None:
    async with start() as emu:
        pending = asyncio.create_task(emu.client.post("/v1/completions", json=LONG))
        await until(lambda: _running(emu))
        pending.cancel()  # httpx closes the connection
        await asyncio.gather(pending, return_exceptions=True)
        await until(lambda: _aborted_and_idle(emu))


async def _running(emu: Emulated) -> bool:
    return value(await emu.metrics(), "vllm:num_requests_running") == 1

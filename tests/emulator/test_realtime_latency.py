"""Real time: a client sees the engine model's TTFT and ITL (scaled by speed); /metrics has them exactly.

Wall-clock bounds are loose (the machine is shared): the exact check is on the histograms, which record the
model's times; the wall-clock check only shows that tokens are released when the model makes them, not
early and not in one burst at the end.
"""

from __future__ import annotations

import pytest

from autoscaler.profiles.schema import Profile
from tests.emulator.conftest import Start
from tests.emulator.helpers import MODEL, stream, value

PROMPT_TOKENS = 6000  # one prefill step of about 0.18 s on the H100 profile
OUTPUT_TOKENS = 8


async def test_idle_ttft_and_itl_follow_the_profile(start: Start, profile: Profile) -> None:
    speed = 2.0
    prefill = profile.prefill_time(PROMPT_TOKENS)
    async with start(speed=speed) as emu:
        body = {"model": MODEL, "prompt": list(range(10, 10 + PROMPT_TOKENS)), "max_tokens": OUTPUT_TOKENS}
        result = await stream(emu.client, "/v1/completions", body)
        samples = await emu.metrics()

    assert value(samples, "vllm:time_to_first_token_seconds_sum") == pytest.approx(prefill, rel=1e-9)
    # Each later token is one decode step of a batch of one, its context growing by a token per step.
    steps = [profile.decode_step_time(1, PROMPT_TOKENS + k) for k in range(1, OUTPUT_TOKENS)]
    assert value(samples, "vllm:inter_token_latency_seconds_count") == OUTPUT_TOKENS - 1
    assert value(samples, "vllm:inter_token_latency_seconds_sum") == pytest.approx(sum(steps), rel=1e-3)
    assert value(samples, "vllm:e2e_request_latency_seconds_sum") == pytest.approx(
        prefill + sum(steps), rel=1e-3
    )

    ttft_wall = result.times[0] - result.sent
    assert prefill / speed * 0.9 <= ttft_wall <= prefill / speed + 0.25
    spread = result.times[-1] - result.times[0]
    assert sum(steps) / speed * 0.5 <= spread <= sum(steps) / speed + 0.25

"""The stall watch: waits on an engine get a deadline once the engine falls out of rotation, bytes from it
move the deadline on, and its return lifts it."""

from __future__ import annotations

import asyncio

import pytest

from autoscaler.adapters.proxy.stalls import StallWatch

GRACE = 0.4  # with steps 0.1 s apart: slack for a busy machine


async def _wait(watch: StallWatch, engine: str, *, seconds: float, steps: list[str]) -> str:
    """Wait ``seconds`` on ``engine`` while ``steps`` happen 0.1 s apart; 'stalled' or 'answered'."""

    async def drive(deadline: asyncio.Timeout) -> None:
        for step in steps:
            await asyncio.sleep(0.1)
            if step == "down":
                watch.down(engine)
            elif step == "up":
                watch.up(engine)
            elif step == "bytes":
                watch.still_alive(deadline)

    try:
        async with asyncio.timeout(None) as deadline:
            with watch.watching(engine, deadline):
                driver = asyncio.create_task(drive(deadline))
                await asyncio.sleep(seconds)
    except TimeoutError:
        return "stalled"
    finally:
        driver.cancel()
    return "answered"


@pytest.mark.parametrize(
    ("steps", "outcome"),
    [
        ([], "answered"),
        (["down"], "stalled"),
        (["down"] + ["bytes"] * 10, "answered"),  # still streaming
        (["down", "up"], "answered"),
    ],
    ids=["healthy engine", "engine down and silent", "down but still sending", "down then back"],
)
async def test_waits_give_up_only_on_a_silent_engine_out_of_rotation(steps: list[str], outcome: str) -> None:
    assert await _wait(StallWatch(grace_s=GRACE), "a", seconds=1.0, steps=steps) == outcome


async def test_a_wait_begun_on_a_down_engine_is_armed_at_once_and_other_engines_are_untouched() -> None:
    watch = StallWatch(grace_s=GRACE)
    watch.down("a")
    assert await _wait(watch, "a", seconds=0.8, steps=[]) == "stalled"
    assert await _wait(watch, "b", seconds=0.8, steps=[]) == "answered"
    watch.up("a")
    assert await _wait(watch, "a", seconds=0.8, steps=[]) == "answered"

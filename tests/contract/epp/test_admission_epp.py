"""The admission queue behind the endpoint picker's front door: a request that finds every endpoint at its
limit gets no routing until one frees, then goes there; GIE's integer priority picks the class; a stream
Envoy closes while queued leaves the queue."""

from __future__ import annotations

import asyncio

import pytest

from tests.contract.epp.conftest import PickerFactory, Routed, completion_body, idle_endpoints, until

pytestmark = pytest.mark.timeout(30)
ONE_EACH = {"admission": {"max_requests_per_endpoint": 1}}


async def test_a_request_over_the_limit_waits_for_a_slot_then_is_routed(picker_for: PickerFactory) -> None:
    async with picker_for(idle_endpoints(1), **ONE_EACH) as running:
        gate = running.picker.picker.gate
        async with running.stream() as first, running.stream() as second:
            assert isinstance(await first.request(completion_body()), Routed)
            waiting = asyncio.create_task(second.request(completion_body()))
            await until(lambda: gate.waiting == 1)
            await asyncio.sleep(0.2)
            assert not waiting.done()  # no routing while the only endpoint is at its limit
            await first.response(chunks=[b"data: [DONE]\n\n"])
            routed = await asyncio.wait_for(waiting, 5)
            assert isinstance(routed, Routed) and routed.endpoint == running.addresses()[0]
            await second.response(chunks=[b"data: [DONE]\n\n"])
        await until(lambda: running.in_flight() == 0)


@pytest.mark.parametrize(
    ("priorities", "order"),
    [
        (["-1", "0", "1"], [2, 1, 0]),  # critical, then default, then sheddable
        ([None, None], [0, 1]),  # one class: first come first served
    ],
    ids=["integer priority picks the class", "same class in arrival order"],
)
async def test_waiting_requests_are_routed_by_class_then_arrival(
    picker_for: PickerFactory, priorities: list[str | None], order: list[int]
) -> None:
    async with picker_for(idle_endpoints(1), **ONE_EACH) as running:
        gate = running.picker.picker.gate
        routed: list[int] = []
        async with running.stream() as holder:
            assert isinstance(await holder.request(completion_body()), Routed)
            streams = [running.stream() for _ in priorities]
            envoys = [await s.__aenter__() for s in streams]

            async def ask(i: int, priority: str | None) -> None:
                headers = {"x-gateway-inference-priority": priority} if priority is not None else None
                assert isinstance(await envoys[i].request(completion_body(), headers=headers), Routed)
                routed.append(i)
                await envoys[i].response(chunks=[b"data: [DONE]\n\n"])

            tasks = []
            for i, priority in enumerate(priorities):
                tasks.append(asyncio.create_task(ask(i, priority)))
                await until(lambda n=i + 1: gate.waiting == n)
            await holder.response(chunks=[b"data: [DONE]\n\n"])
            await asyncio.wait_for(asyncio.gather(*tasks), 10)
            for s in streams:
                await s.__aexit__(None, None, None)
        assert routed == order
        await until(lambda: running.in_flight() == 0)


async def test_a_stream_closed_while_queued_leaves_the_queue(picker_for: PickerFactory) -> None:
    async with picker_for(idle_endpoints(1), **ONE_EACH) as running:
        gate = running.picker.picker.gate
        async with running.stream() as first:
            assert isinstance(await first.request(completion_body()), Routed)
            async with running.stream() as leaving:
                waiting = asyncio.create_task(leaving.request(completion_body()))
                await until(lambda: gate.waiting == 1)
            await until(lambda: gate.waiting == 0)  # Envoy cancelled the stream: the request is gone
            waiting.cancel()
            await first.response(chunks=[b"data: [DONE]\n\n"])
        await until(lambda: running.in_flight() == 0)

"""The ext_proc stream as Envoy drives it, over real gRPC on 127.0.0.1: where requests go, and that every
placement is released however the exchange ends."""

from __future__ import annotations

import asyncio
import json
import random

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from autoscaler.adapters.epp import messages
from autoscaler.adapters.epp.server import EXT_PROC_SERVICE
from tests.contract.epp.conftest import (
    BUFFERED,
    FULL_DUPLEX,
    NO_BODY,
    PickerFactory,
    Routed,
    Running,
    completion_body,
    http_body,
    http_headers,
    idle_endpoints,
    metrics_text,
    until,
)

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize(
    ("mode", "trailers"),
    [(FULL_DUPLEX, False), (FULL_DUPLEX, True), (BUFFERED, False)],
    ids=["full-duplex", "full-duplex-with-trailers", "buffered"],
)
async def test_header_and_metadata_carry_the_same_endpoint_and_the_body_comes_back_whole(
    picker_for: PickerFactory, mode: int, trailers: bool
) -> None:
    body = completion_body()
    async with picker_for(idle_endpoints(3), fallbacks=2) as running, running.stream(mode=mode) as envoy:
        routed = await envoy.request(body, chunks=5, trailers=trailers)
        assert isinstance(routed, Routed)
        assert routed.header == routed.metadata
        listed = routed.header.split(",")
        assert len(listed) == 3 and len(set(listed)) == 3 and set(listed) == set(running.addresses())
        if mode == FULL_DUPLEX:
            assert routed.body == body
            assert routed.headers["content-length"] == str(len(body))
        assert running.in_flight() == 2  # one in the router, one pick
        streamed = await envoy.response(chunks=[b"data: 1\n\n", b"data: [DONE]\n\n"], trailers=trailers)
        if mode == FULL_DUPLEX:
            assert streamed == b"data: 1\n\ndata: [DONE]\n\n"
        await envoy.end()
        assert running.in_flight() == 0


async def test_requests_sharing_a_prefix_go_where_it_is_cached(picker_for: PickerFactory) -> None:
    shared = "You are a helpful assistant. " * 80
    async with picker_for(idle_endpoints(4)) as running:
        chosen = set()
        for question in ("What is 2+2?", "Name a colour.", "Who wrote Hamlet?", "Say hi."):
            async with running.stream() as envoy:
                routed = await envoy.request(completion_body(prompt=shared + question))
                assert isinstance(routed, Routed)
                chosen.add(routed.endpoint)
                await envoy.response(chunks=[b"data: [DONE]\n\n"])
                await envoy.end()
        assert len(chosen) == 1
        async with running.stream() as envoy:  # an unrelated prompt goes to the least loaded, not there
            other = await envoy.request(completion_body(prompt="Completely different text. " * 80))
            assert isinstance(other, Routed) and other.endpoint not in chosen
        await until(lambda: running.in_flight() == 0)


async def test_the_subset_hint_limits_the_choice(picker_for: PickerFactory) -> None:
    async with picker_for(idle_endpoints(4), fallbacks=3) as running:
        allowed = running.addresses()[2:]
        for _ in range(4):
            async with running.stream() as envoy:
                routed = await envoy.request(completion_body(), subset=allowed)
                assert isinstance(routed, Routed)
                assert set(routed.header.split(",")) == set(allowed)  # fallbacks from the subset too
                await envoy.response()
                await envoy.end()
        async with running.stream() as envoy:
            refused = await envoy.request(completion_body(), subset=["192.0.2.1:8000"])
            assert not isinstance(refused, Routed) and refused.status.code == 503
        assert running.in_flight() == 0


@pytest.mark.parametrize(
    ("body", "path", "status"),
    [
        (b"{not json", "/v1/completions", 400),
        (json.dumps({"prompt": "no model"}).encode(), "/v1/completions", 400),
        (json.dumps({"model": "tiny", "messages": "not a list"}).encode(), "/v1/chat/completions", 400),
        (b"x" * 2048, "/v1/completions", 413),
        (completion_body(prompt="hello " * 100), "/v1/completions", 413),
        (json.dumps({"model": "tiny", "prompt": "hi", "max_tokens": -1}).encode(), "/v1/completions", 400),
    ],
    ids=[
        "malformed-json",
        "no-model",
        "bad-chat-messages",
        "body-too-large",
        "prompt-too-long",
        "bad-max-tokens",
    ],
)
async def test_a_bad_body_is_answered_at_once(
    picker_for: PickerFactory, body: bytes, path: str, status: int
) -> None:
    limits = {"max_body_bytes": 1024, "max_prompt_tokens": 100}
    async with picker_for(idle_endpoints(2), **limits) as running, running.stream() as envoy:
        answer = await envoy.request(body, path=path)
        assert not isinstance(answer, Routed)
        assert answer.status.code == status
        assert json.loads(answer.body)["error"]["code"] == status
        assert await envoy.call.read() == grpc.aio.EOF  # the picker ends the stream
        assert running.in_flight() == 0


@pytest.mark.parametrize(
    ("draining", "readiness"),
    [(True, health_pb2.HealthCheckResponse.NOT_SERVING), (False, health_pb2.HealthCheckResponse.SERVING)],
    ids=["no-ready-endpoint", "ready"],
)
async def test_readiness_says_whether_the_picker_has_endpoints(
    picker_for: PickerFactory, draining: bool, readiness: int
) -> None:
    async with picker_for(idle_endpoints(2, draining=draining)) as running:
        health = health_pb2_grpc.HealthStub(running.channel)
        for _ in range(100):  # readiness follows the fleet within a poll
            answer = await health.Check(health_pb2.HealthCheckRequest(service="readiness"))
            if answer.status == readiness:
                break
            await asyncio.sleep(0.02)
        for service in ("readiness", EXT_PROC_SERVICE, ""):
            assert (await health.Check(health_pb2.HealthCheckRequest(service=service))).status == readiness
        liveness = await health.Check(health_pb2.HealthCheckRequest(service="liveness"))
        assert liveness.status == health_pb2.HealthCheckResponse.SERVING
        async with running.stream() as envoy:
            answer = await envoy.request(completion_body())
            assert isinstance(answer, Routed) is (not draining)
            if draining:
                assert answer.status.code == 503


async def test_over_the_in_flight_bound_is_429(picker_for: PickerFactory) -> None:
    async with picker_for(idle_endpoints(2), max_in_flight_requests=1) as running:
        async with running.stream() as first:
            assert isinstance(await first.request(completion_body()), Routed)
            async with running.stream() as second:
                answer = await second.request(completion_body())
                assert not isinstance(answer, Routed) and answer.status.code == 429
                dropped = {h.header.key: h.header.raw_value for h in answer.headers.set_headers}
                assert dropped[messages.DROPPED_REASON] == b"rejected-saturated"
            await first.response(chunks=[b"data: [DONE]\n\n"])
        await until(lambda: running.in_flight() == 0)


async def test_a_sheddable_request_is_shed_when_every_endpoint_is_overloaded(
    picker_for: PickerFactory,
) -> None:
    overloaded = {"overload": {"max_in_flight_tokens": 100}}
    async with picker_for(idle_endpoints(1), router=overloaded) as running:
        async with running.stream() as holder:
            assert isinstance(await holder.request(completion_body()), Routed)  # now past the threshold
            async with running.stream() as sheddable:
                answer = await sheddable.request(
                    completion_body(), headers={"x-gateway-inference-priority": "-1"}
                )
                assert not isinstance(answer, Routed) and answer.status.code == 429
            async with running.stream() as critical:  # not sheddable: still placed
                assert isinstance(await critical.request(completion_body()), Routed)
        await until(lambda: running.in_flight() == 0)


@pytest.mark.parametrize(
    "when",
    ["mid-request-body", "after-routing", "mid-response-body", "stream-closed-after-routing"],
)
async def test_cancellation_releases_the_placement(picker_for: PickerFactory, when: str) -> None:
    async with picker_for(idle_endpoints(2)) as running:
        async with running.stream() as envoy:
            if when == "mid-request-body":
                await envoy.send(
                    request_headers=http_headers({":path": "/v1/completions"}),
                )
                await envoy.send(request_body=http_body(b'{"model": "tiny", "prompt": ', end=False))
            else:
                assert isinstance(await envoy.request(completion_body()), Routed)
                if when == "mid-response-body":
                    await envoy.send(response_headers=http_headers({":status": "200"}))
                    await envoy.call.read()
                    await envoy.send(response_body=http_body(b"data: 1\n\n", end=False))
                    await envoy.call.read()
                assert running.in_flight() == 2
            if when == "stream-closed-after-routing":  # Envoy ends its side without a response
                await envoy.end()
            else:
                envoy.call.cancel()
        await until(lambda: running.in_flight() == 0)
        metrics = await metrics_text(running.metrics_url)
        if when != "mid-request-body":
            assert 'autoscaler_router_responses_total{code="499",pool="default"} 1.0' in metrics


async def test_a_served_fallback_is_read_back(picker_for: PickerFactory) -> None:
    async with picker_for(idle_endpoints(3), fallbacks=2) as running, running.stream() as envoy:
        routed = await envoy.request(completion_body())
        assert isinstance(routed, Routed)
        fallback = routed.header.split(",")[1]
        await envoy.response(served=fallback, chunks=[b"data: [DONE]\n\n"])
        await envoy.end()
        assert running.in_flight() == 0
        metrics = await metrics_text(running.metrics_url)
        assert 'autoscaler_router_served_by_fallback_total{pool="default"} 1.0' in metrics


async def test_pd_names_the_prefill_endpoint_for_the_decode_sidecar(picker_for: PickerFactory) -> None:
    endpoints = idle_endpoints(1, phase="prefill") + idle_endpoints(1, phase="decode")
    prefill, decode = (e["url"].split("://")[1] for e in endpoints)
    async with picker_for(endpoints) as running, running.stream() as envoy:
        routed = await envoy.request(completion_body(prompt="a long uncached prompt " * 400))
        assert isinstance(routed, Routed)
        assert routed.endpoint == decode
        assert routed.headers[messages.PREFILLER] == prefill
        await envoy.response(chunks=[b"data: [DONE]\n\n"])
        await envoy.end()
        assert running.in_flight() == 0


async def test_a_request_without_a_body_goes_to_a_ready_endpoint(picker_for: PickerFactory) -> None:
    async with picker_for(idle_endpoints(2)) as running, running.stream() as envoy:
        await envoy.send(request_headers=http_headers({":method": "GET", ":path": "/v1/models"}, end=True))
        answer = await envoy.call.read()
        assert answer.WhichOneof("response") == "request_headers"
        header = {
            h.header.key: h.header.raw_value.decode()
            for h in answer.request_headers.response.header_mutation.set_headers
        }
        assert header[messages.DESTINATION].split(",")[0] in running.addresses()
        await envoy.response()
        await envoy.end()


async def test_a_large_body_is_routed_and_handed_back_whole(picker_for: PickerFactory) -> None:
    body = completion_body(prompt="a long document " * 20_000)  # 320 kB: parsed and hashed off the loop
    async with picker_for(idle_endpoints(2)) as running, running.stream() as envoy:
        routed = await envoy.request(body, chunks=8)
        assert isinstance(routed, Routed) and routed.header == routed.metadata
        assert routed.body == body
        await envoy.response(chunks=[b"data: [DONE]\n\n"])
        await envoy.end()
        assert running.in_flight() == 0


async def test_without_response_bodies_the_streams_end_is_the_responses(picker_for: PickerFactory) -> None:
    async with picker_for(idle_endpoints(2)) as running:
        async with running.stream(response_mode=NO_BODY) as envoy:
            assert isinstance(await envoy.request(completion_body()), Routed)
            await envoy.send(response_headers=http_headers({":status": "200"}))  # no body messages follow
            await envoy.call.read()
            await envoy.end()
        await until(lambda: running.in_flight() == 0)
        metrics = await metrics_text(running.metrics_url)
        assert 'autoscaler_router_responses_total{code="200",pool="default"} 1.0' in metrics


async def test_many_streams_ending_every_way_at_once_leave_nothing_in_flight(
    picker_for: PickerFactory,
) -> None:
    rng = random.Random(3)
    endings = ["complete", "trailers", "cancel-before-body-end", "cancel-after-routing",
               "cancel-mid-response", "close-after-routing", "bad-body"]  # fmt: skip

    async def one(running: Running, ending: str) -> None:
        async with running.stream() as envoy:
            if ending == "cancel-before-body-end":
                await envoy.send(request_headers=http_headers({":path": "/v1/completions"}))
                await envoy.send(request_body=http_body(b'{"model": ', end=False))
                envoy.call.cancel()
                return
            body = b"{oops" if ending == "bad-body" else completion_body(prompt=f"{rng.random()} " * 300)
            routed = await envoy.request(body)
            if ending == "bad-body":
                assert not isinstance(routed, Routed) and routed.status.code == 400
                return
            assert isinstance(routed, Routed)
            await asyncio.sleep(rng.random() * 0.02)  # streams interleave
            if ending == "cancel-after-routing":
                envoy.call.cancel()
            elif ending == "close-after-routing":
                await envoy.end()
            elif ending == "cancel-mid-response":
                await envoy.send(response_headers=http_headers({":status": "200"}))
                await envoy.call.read()
                envoy.call.cancel()
            else:
                await envoy.response(
                    chunks=[b"data: 1\n\n", b"data: [DONE]\n\n"], trailers=ending == "trailers"
                )
                await envoy.end()

    async with picker_for(idle_endpoints(4), fallbacks=1) as running:
        await asyncio.gather(*(one(running, rng.choice(endings)) for _ in range(60)))
        await until(lambda: running.in_flight() == 0)
        router = running.picker.router
        assert all(router.endpoint(n).in_flight_tokens == 0 for n in router.endpoints())

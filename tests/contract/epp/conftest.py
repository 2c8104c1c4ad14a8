"""The endpoint picker on 127.0.0.1, and a real gRPC client that drives its ext_proc streams as Envoy does.

``Envoy`` sends what Envoy's ext_proc filter sends for one HTTP request (request headers with the
protocol configuration, the body in chunks, trailers; then the response's headers with the served
endpoint in its metadata, body chunks and trailers) and reads the picker's answers in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

import grpc
import grpc.aio
import httpx
import pytest
from envoy.config.core.v3 import base_pb2
from envoy.extensions.filters.http.ext_proc.v3 import processing_mode_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as ext_proc
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc
from google.protobuf import struct_pb2

from autoscaler.adapters.epp import messages
from autoscaler.adapters.epp.server import EndpointPicker
from autoscaler.adapters.epp.settings import EppSettings
from tests.contract.router.conftest import refused_url

FULL_DUPLEX = processing_mode_pb2.ProcessingMode.FULL_DUPLEX_STREAMED
BUFFERED = processing_mode_pb2.ProcessingMode.BUFFERED
NO_BODY = processing_mode_pb2.ProcessingMode.NONE


def idle_endpoints(count: int, **fields: Any) -> list[dict[str, Any]]:
    """``count`` static endpoints on loopback ports where nothing listens (the picker never connects to
    an engine; its scrapes fail, which keeps an endpoint in rotation until the third failure)."""
    return [{"url": refused_url(), **fields} for _ in range(count)]


def completion_body(*, prompt: str = "hello " * 200, max_tokens: int = 8, stream: bool = True) -> bytes:
    return json.dumps(
        {"model": "tiny", "prompt": prompt, "max_tokens": max_tokens, "stream": stream}
    ).encode()


@dataclasses.dataclass
class Routed:
    header: str  # x-gateway-destination-endpoint
    metadata: str  # envoy.lb / x-gateway-destination-endpoint
    headers: dict[str, str]  # every header the picker set
    body: bytes  # the request body as the picker handed it back

    @property
    def endpoint(self) -> str:
        return self.header.split(",")[0]


class Envoy:
    """One ext_proc stream, driven as Envoy's filter drives it."""

    def __init__(self, call: Any, *, mode: int, response_mode: int | None = None) -> None:
        self.call = call
        self.mode = mode
        self.response_mode = mode if response_mode is None else response_mode
        self.first = True

    async def request(
        self,
        body: bytes,
        *,
        path: str = "/v1/completions",
        chunks: int = 3,
        headers: Mapping[str, str] | None = None,
        subset: Sequence[str] | None = None,
        trailers: bool = False,
    ) -> Routed | ext_proc.ImmediateResponse:
        """Send the request; the picker's routing (or its immediate response)."""
        request_headers = {
            ":method": "POST",
            ":path": path,
            "content-type": "application/json",
            **(headers or {}),
        }
        await self.send(
            request_headers=ext_proc.HttpHeaders(headers=header_map(request_headers), end_of_stream=False),
            metadata_context=_subset_metadata(subset),
        )
        if self.mode == BUFFERED:
            answer = await self.call.read()
            if answer.WhichOneof("response") == "immediate_response":
                return answer.immediate_response
            assert answer.WhichOneof("response") == "request_headers"
            await self.send(request_body=ext_proc.HttpBody(body=body, end_of_stream=True))
            answer = await self.call.read()
            if answer.WhichOneof("response") == "immediate_response":
                return answer.immediate_response
            assert answer.WhichOneof("response") == "request_body"
            set_headers = _set_headers(answer.request_body.response.header_mutation)
            return _routed(set_headers, answer.dynamic_metadata, body)
        size = -(-len(body) // chunks)
        pieces = [body[i : i + size] for i in range(0, len(body), size)]
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1 and not trailers
            await self.send(request_body=ext_proc.HttpBody(body=piece, end_of_stream=last))
        if trailers:
            await self.send(request_trailers=ext_proc.HttpTrailers(trailers=header_map({"x-trailer": "1"})))
        answer = await self.call.read()
        if answer.WhichOneof("response") == "immediate_response":
            return answer.immediate_response
        assert answer.WhichOneof("response") == "request_headers", answer
        set_headers = _set_headers(answer.request_headers.response.header_mutation)
        metadata = answer.dynamic_metadata
        returned = b""
        while True:
            answer = await self.call.read()
            assert answer.WhichOneof("response") == "request_body", answer
            streamed = answer.request_body.response.body_mutation.streamed_response
            returned += streamed.body
            if streamed.end_of_stream or (trailers and len(returned) == len(body)):
                break
        if trailers:
            answer = await self.call.read()
            assert answer.WhichOneof("response") == "request_trailers", answer
        return _routed(set_headers, metadata, returned)

    async def response(
        self,
        *,
        status: int = 200,
        served: str | None = None,
        chunks: Sequence[bytes] = (),
        trailers: bool = False,
    ) -> bytes:
        """Send the upstream's response through the picker; the body as the picker hands it back."""
        metadata = None
        if served is not None:
            metadata = base_pb2.Metadata()
            metadata.filter_metadata[messages.LB_NAMESPACE].update({messages.SERVED: served})
        no_body = not chunks and not trailers
        await self.send(
            response_headers=ext_proc.HttpHeaders(
                headers=header_map({":status": str(status), "content-type": "text/event-stream"}),
                end_of_stream=no_body,
            ),
            metadata_context=metadata,
        )
        answer = await self.call.read()
        assert answer.WhichOneof("response") == "response_headers", answer
        returned = b""
        for i, chunk in enumerate(chunks):
            last = i == len(chunks) - 1 and not trailers
            await self.send(response_body=ext_proc.HttpBody(body=chunk, end_of_stream=last))
            answer = await self.call.read()
            assert answer.WhichOneof("response") == "response_body", answer
            if self.response_mode == FULL_DUPLEX:
                returned += answer.response_body.response.body_mutation.streamed_response.body
        if trailers:
            await self.send(response_trailers=ext_proc.HttpTrailers(trailers=header_map({"x-done": "1"})))
            answer = await self.call.read()
            assert answer.WhichOneof("response") == "response_trailers", answer
        return returned

    async def end(self) -> None:
        """Envoy is done with the request: it closes its side, the picker's side ends."""
        await self.call.done_writing()
        assert await self.call.read() == grpc.aio.EOF

    async def send(self, **fields: Any) -> None:
        if self.first:
            fields["protocol_config"] = ext_proc.ProtocolConfiguration(
                request_body_mode=self.mode, response_body_mode=self.response_mode
            )
            self.first = False
        await self.call.write(
            ext_proc.ProcessingRequest(**{k: v for k, v in fields.items() if v is not None})
        )


@dataclasses.dataclass
class Running:
    picker: EndpointPicker
    stub: Any
    channel: grpc.aio.Channel
    metrics_url: str

    @contextlib.asynccontextmanager
    async def stream(
        self, *, mode: int = FULL_DUPLEX, response_mode: int | None = None
    ) -> AsyncIterator[Envoy]:
        call = self.stub.Process()
        try:
            yield Envoy(call, mode=mode, response_mode=response_mode)
        finally:
            call.cancel()

    def addresses(self) -> list[str]:
        return [self.picker.picker.address(n) for n in self.picker.router.endpoints()]

    def in_flight(self) -> int:
        """Requests the router still counts anywhere, and picks the picker has not released."""
        router = self.picker.router
        return sum(router.in_flight(n) for n in router.endpoints()) + self.picker.picker.in_flight


PickerFactory = Callable[..., contextlib.AbstractAsyncContextManager[Running]]


@pytest.fixture
def picker_for() -> PickerFactory:
    """``async with picker_for([{"url": ...}, ...], **settings) as running``: a serving picker."""

    @contextlib.asynccontextmanager
    async def start(
        endpoints: list[dict[str, Any]] | dict[str, Any], **overrides: Any
    ) -> AsyncIterator[Running]:
        discovery = {"static": endpoints} if isinstance(endpoints, list) else endpoints
        settings = EppSettings.model_validate(
            {"endpoints": discovery, "scrape_interval_s": 3600, "scrape_timeout_s": 0.5, **overrides}
        )
        picker = EndpointPicker(settings, seed=7)
        async with picker.serve(host="127.0.0.1", grpc_port=0, metrics_port=0) as ports:
            await picker.fleet.discovered.wait()
            async with grpc.aio.insecure_channel(f"127.0.0.1:{ports.grpc}") as channel:
                stub = external_processor_pb2_grpc.ExternalProcessorStub(channel)
                yield Running(picker, stub, channel, f"http://127.0.0.1:{ports.metrics}/metrics")

    return start


def http_headers(values: Mapping[str, str], *, end: bool = False) -> ext_proc.HttpHeaders:
    return ext_proc.HttpHeaders(headers=header_map(values), end_of_stream=end)


def http_body(body: bytes, *, end: bool) -> ext_proc.HttpBody:
    return ext_proc.HttpBody(body=body, end_of_stream=end)


async def until(condition: Callable[[], bool], *, within_s: float = 10.0) -> None:
    """Poll ``condition`` until it holds; fail after ``within_s`` (a bound, not a timing assertion)."""
    for _ in range(round(within_s / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached")


async def metrics_text(url: str) -> str:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(url)
        response.raise_for_status()
        return response.text


def header_map(values: Mapping[str, str]) -> base_pb2.HeaderMap:
    return base_pb2.HeaderMap(
        headers=[base_pb2.HeaderValue(key=k, raw_value=v.encode()) for k, v in values.items()]
    )


def _subset_metadata(subset: Sequence[str] | None) -> base_pb2.Metadata | None:
    if subset is None:
        return None
    metadata = base_pb2.Metadata()
    metadata.filter_metadata[messages.SUBSET_NAMESPACE].update({messages.SUBSET: list(subset)})
    return metadata


def _set_headers(mutation: Any) -> dict[str, str]:
    return {h.header.key: h.header.raw_value.decode() for h in mutation.set_headers}


def _routed(set_headers: dict[str, str], metadata: struct_pb2.Struct, body: bytes) -> Routed:
    lb = metadata.fields[messages.LB_NAMESPACE].struct_value.fields
    return Routed(
        header=set_headers[messages.DESTINATION],
        metadata=lb[messages.DESTINATION].string_value,
        headers=set_headers,
        body=body,
    )

"""A tiny HTTP forwarder in Envoy's role: it asks the picker over ext_proc where each request goes, sends it
there, and passes the response back through the picker, chunk by chunk (full-duplex streamed mode).

Only what the tests need: POST bodies, one endpoint (the first the picker lists), no retries.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp import web
from envoy.config.core.v3 import base_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as ext_proc

from autoscaler.adapters.epp import messages
from tests.contract.epp.conftest import FULL_DUPLEX, header_map, http_body, http_headers

_CHUNK = 256  # the body goes to the picker in several messages, as Envoy streams it


class Forwarder:
    def __init__(self, stub: Any) -> None:
        self._stub = stub
        self.app = web.Application()
        self.app.router.add_post("/{path:.*}", self._forward)

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        call = self._stub.Process()
        try:
            headers = {
                ":method": "POST",
                ":path": request.path,
                **{k.lower(): v for k, v in request.headers.items()},
            }
            await call.write(
                ext_proc.ProcessingRequest(
                    request_headers=ext_proc.HttpHeaders(headers=header_map(headers)),
                    protocol_config=ext_proc.ProtocolConfiguration(
                        request_body_mode=FULL_DUPLEX, response_body_mode=FULL_DUPLEX
                    ),
                )
            )
            pieces = [body[i : i + _CHUNK] for i in range(0, len(body), _CHUNK)]
            for i, piece in enumerate(pieces):
                await call.write(
                    ext_proc.ProcessingRequest(request_body=http_body(piece, end=i == len(pieces) - 1))
                )
            answer = await call.read()
            if answer.WhichOneof("response") == "immediate_response":
                immediate = answer.immediate_response
                return web.Response(status=immediate.status.code, body=immediate.body)
            set_headers = {
                h.header.key: h.header.raw_value.decode()
                for h in answer.request_headers.response.header_mutation.set_headers
            }
            endpoint = set_headers[messages.DESTINATION].split(",")[0]
            forwarded = b""
            async for piece in _request_body(call):
                forwarded += piece
            async with (
                aiohttp.ClientSession() as session,
                session.post(
                    f"http://{endpoint}{request.path}",
                    data=forwarded,
                    headers={"content-type": "application/json"},
                ) as upstream,
            ):
                served = base_pb2.Metadata()
                served.filter_metadata[messages.LB_NAMESPACE].update({messages.SERVED: endpoint})
                await call.write(
                    ext_proc.ProcessingRequest(
                        response_headers=http_headers({":status": str(upstream.status)}),
                        metadata_context=served,
                    )
                )
                await call.read()
                response = web.StreamResponse(status=upstream.status)
                response.content_type = upstream.content_type
                await response.prepare(request)
                async for chunk in upstream.content.iter_any():
                    await call.write(ext_proc.ProcessingRequest(response_body=http_body(chunk, end=False)))
                    passed = await call.read()
                    await response.write(passed.response_body.response.body_mutation.streamed_response.body)
                await call.write(ext_proc.ProcessingRequest(response_body=http_body(b"", end=True)))
                await call.read()
                await call.done_writing()
                await response.write_eof()
                return response
        finally:
            call.cancel()


async def _request_body(call: Any) -> AsyncIterator[bytes]:
    while True:
        answer = await call.read()
        streamed = answer.request_body.response.body_mutation.streamed_response
        yield streamed.body
        if streamed.end_of_stream:
            return

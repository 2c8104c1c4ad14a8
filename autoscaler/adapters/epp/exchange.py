"""One ext_proc stream: one HTTP request through the gateway, from its headers to its response's end.

Envoy opens a stream per request and sends, in order, the request headers, the body (whole, or in chunks
in full-duplex mode), maybe trailers, then the response headers, body and trailers; the picker answers
each phase in the same order. ``Exchange.on`` takes one message and returns the answers to send now:

- request headers: held (full duplex: the headers may only go upstream once the body has chosen where);
  in buffered mode answered at once, since Envoy waits for that answer before it sends the body. Headers
  that end the request (no body) are routed at once to the least loaded endpoint.
- request body: chunks are gathered (bounded by ``max_body_bytes``); at the end of the body (or at the
  request trailers) the picker decides, and the answers carry the destination, then the body back.
- response headers: the status is kept for the metrics, the served endpoint is read back, a remote
  prefill is over; passed on unchanged.
- response body: passed on (full duplex: handed back chunk by chunk, so a stream flows token by token);
  its end, or the response trailers, releases the placement.

``close`` releases whatever is still held; the server calls it when the stream ends for any reason
(Envoy's cancellation included), so no placement outlives its stream.
"""

from __future__ import annotations

import logging

from autoscaler.adapters.epp import messages
from autoscaler.adapters.epp.messages import BodyMode, ProcessingRequest, ProcessingResponse
from autoscaler.adapters.epp.picker import CLIENT_CLOSED, Pick, Picker, Refused

log = logging.getLogger(__name__)

_DEFAULT_MODES = {"full-duplex-streamed": BodyMode.FULL_DUPLEX_STREAMED, "buffered": BodyMode.BUFFERED}


class Exchange:
    def __init__(self, picker: Picker) -> None:
        self._picker = picker
        default = _DEFAULT_MODES[picker.settings.body_mode]
        self._request_mode = self._response_mode = default
        self._headers: dict[str, str] = {}
        self._subset: list[str] | None = None
        self._body: list[bytes] = []
        self._size = 0
        self._pick: Pick | None = None
        self._status = 0
        self.ended = False  # an immediate response was sent: the exchange is over

    async def on(self, request: ProcessingRequest) -> list[ProcessingResponse]:
        try:
            return await self._on(request)
        except Refused as refusal:
            self._picker.refused(refusal)
            self.ended = True
            dropped = {messages.DROPPED_REASON: refusal.dropped} if refusal.dropped else None
            return [
                messages.immediate(
                    refusal.status, str(refusal), kind=refusal.kind, param=refusal.param, headers=dropped
                )
            ]

    def close(self) -> None:
        """The stream is over: release the request if its response did not end. A gateway that sends
        no response body (mode NONE) ends the stream with the response: that is its end, not a cut."""
        if self._pick is not None:
            whole = self._status and self._response_mode is BodyMode.NONE
            self._picker.finish(self._pick, code=self._status if whole else CLIENT_CLOSED)
            self._pick = None

    async def _on(self, request: ProcessingRequest) -> list[ProcessingResponse]:
        modes = _modes(request)
        if modes is not None:
            self._request_mode, self._response_mode = modes
        kind = request.WhichOneof("request")
        if kind == "request_headers":
            return self._request_headers(request)
        if kind == "request_body":
            return await self._request_body(request.request_body.body, end=request.request_body.end_of_stream)
        if kind == "request_trailers":
            answers = await self._decide(body_ends_stream=False) if self._pick is None else []
            return [*answers, messages.passed("request_trailers")]
        if kind == "response_headers":
            return self._response_headers(request)
        if kind == "response_body":
            body = request.response_body
            if body.end_of_stream:
                self._finish()
            if self._response_mode is BodyMode.FULL_DUPLEX_STREAMED:
                return list(
                    messages.streamed_body(
                        body.body,
                        request=False,
                        end=body.end_of_stream,
                        chunk_bytes=self._picker.settings.stream_chunk_bytes,
                    )
                )
            return [messages.passed("response_body")]
        if kind == "response_trailers":
            self._finish()
            return [messages.passed("response_trailers")]
        return []

    def _request_headers(self, request: ProcessingRequest) -> list[ProcessingResponse]:
        self._headers = messages.headers(request.request_headers)
        self._subset = messages.subset_hint(request)
        if request.request_headers.end_of_stream:  # no body: GET /v1/models and the like
            self._pick = self._picker.pick_any(subset=self._subset)
            return messages.routed(
                self._pick.endpoints,
                {},
                body=b"",
                mode=BodyMode.NONE,
                chunk_bytes=self._picker.settings.stream_chunk_bytes,
                body_ends_stream=True,
            )
        if self._request_mode is BodyMode.BUFFERED:
            return [messages.passed("request_headers")]
        return []

    async def _request_body(self, chunk: bytes, *, end: bool) -> list[ProcessingResponse]:
        if self._pick is not None:  # already routed (a body after trailers cannot happen); pass it on
            return [messages.passed("request_body")]
        self._size += len(chunk)
        limit = self._picker.settings.max_body_bytes
        if self._size > limit:
            raise Refused(413, f"request body exceeds {limit} bytes", kind="invalid_request_error")
        self._body.append(chunk)
        if not end:
            return []
        return await self._decide(body_ends_stream=True)

    async def _decide(self, *, body_ends_stream: bool) -> list[ProcessingResponse]:
        raw = b"".join(self._body)
        self._body = []
        pick = self._pick = await self._picker.pick(raw, self._headers, subset=self._subset)
        extra = {messages.PREFILLER: pick.prefiller} if pick.prefiller else {}
        return messages.routed(
            pick.endpoints,
            extra,
            body=raw,
            mode=self._request_mode,
            chunk_bytes=self._picker.settings.stream_chunk_bytes,
            body_ends_stream=body_ends_stream,
        )

    def _response_headers(self, request: ProcessingRequest) -> list[ProcessingResponse]:
        status = messages.headers(request.response_headers).get(":status", "")
        self._status = int(status) if status.isdigit() else 0
        if self._pick is not None:
            self._picker.prefill_done(self._pick)
            served = messages.served_endpoint(request)
            if served is not None:
                self._picker.served(self._pick, served)
        if request.response_headers.end_of_stream:
            self._finish()
        return [messages.passed("response_headers")]

    def _finish(self) -> None:
        if self._pick is not None:
            self._picker.finish(self._pick, code=self._status or CLIENT_CLOSED)
            self._pick = None


def _modes(request: ProcessingRequest) -> tuple[BodyMode, BodyMode] | None:
    try:
        return messages.body_modes(request)
    except messages.UnsupportedMode as err:
        raise Refused(500, f"the gateway's ext_proc {err} is not supported", kind="server_error") from err

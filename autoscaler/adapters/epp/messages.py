"""Envoy ext_proc v3 messages as the endpoint picker protocol uses them (GIE proposal 004), read and built.

The messages are the generated ones from the ``xds-protos`` package; this module only knows which fields
the protocol puts where:

- the gateway may restrict the choice: filter metadata ``envoy.lb.subset_hint`` /
  ``x-gateway-destination-endpoint-subset``, a list of ``ip:port`` (a comma-separated string is read too);
- the picker answers the chosen ``ip:port`` (then the fallbacks, comma-separated, in order) in the request
  header ``x-gateway-destination-endpoint`` and, with the same value, in the dynamic metadata
  ``envoy.lb`` / ``x-gateway-destination-endpoint``;
- on the response path the gateway reports the endpoint that served the request in the metadata
  ``envoy.lb`` / ``x-gateway-destination-endpoint-served``;
- errors are immediate responses (an HTTP status, a body, headers) that end the exchange.

Header values arrive in ``raw_value`` (bytes) from Envoy >= 1.27, in ``value`` from older ones; both are
read. The picker writes ``raw_value``.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from envoy.config.core.v3 import base_pb2
from envoy.extensions.filters.http.ext_proc.v3 import processing_mode_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as ext_proc
from envoy.type.v3 import http_status_pb2
from google.protobuf import struct_pb2

from autoscaler.adapters.proxy import prompts

DESTINATION = "x-gateway-destination-endpoint"
SERVED = "x-gateway-destination-endpoint-served"
SUBSET = "x-gateway-destination-endpoint-subset"
LB_NAMESPACE = "envoy.lb"
SUBSET_NAMESPACE = "envoy.lb.subset_hint"
PREFILLER = "x-prefiller-host-port"  # llm-d's P/D sidecar on the decode pod prefills there first
DROPPED_REASON = "x-llm-d-request-dropped-reason"

ProcessingRequest = Any  # ext_proc.ProcessingRequest (the generated modules ship no type stubs)
ProcessingResponse = Any


class BodyMode(enum.Enum):
    """How Envoy sends a body: the two modes the picker supports, and none."""

    NONE = "none"
    BUFFERED = "buffered"  # one message, the whole body; Envoy waits for each answer
    FULL_DUPLEX_STREAMED = "full-duplex-streamed"  # chunks; the picker sends the body back itself


_MODES = {
    processing_mode_pb2.ProcessingMode.NONE: BodyMode.NONE,
    processing_mode_pb2.ProcessingMode.BUFFERED: BodyMode.BUFFERED,
    processing_mode_pb2.ProcessingMode.BUFFERED_PARTIAL: BodyMode.BUFFERED,
    processing_mode_pb2.ProcessingMode.FULL_DUPLEX_STREAMED: BodyMode.FULL_DUPLEX_STREAMED,
}


class UnsupportedMode(ValueError):
    """Envoy streams a body in a mode the picker cannot serve (STREAMED, GRPC): the headers would go
    upstream before the body that decides where they go."""


def body_modes(request: ProcessingRequest) -> tuple[BodyMode, BodyMode] | None:
    """(request, response) body modes if Envoy said them in this message (``protocol_config``)."""
    if not request.HasField("protocol_config"):
        return None
    config = request.protocol_config
    modes = []
    for mode in (config.request_body_mode, config.response_body_mode):
        if mode not in _MODES:
            raise UnsupportedMode(f"body mode {processing_mode_pb2.ProcessingMode.BodySendMode.Name(mode)}")
        modes.append(_MODES[mode])
    return modes[0], modes[1]


def headers(message: Any) -> dict[str, str]:
    """An ``HttpHeaders`` message's headers, keys lower-cased (pseudo-headers keep their colon)."""
    return {
        h.key.lower(): h.raw_value.decode("utf-8", "replace") if h.raw_value else h.value
        for h in message.headers.headers
    }


def subset_hint(request: ProcessingRequest) -> list[str] | None:
    """The endpoints the gateway allows, or None when it sets no subset (any pool member may serve)."""
    value = _metadata(request, SUBSET_NAMESPACE, SUBSET)
    if value is None:
        return None
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list):
        return [v.strip() for v in value if isinstance(v, str) and v.strip()]
    return []


def served_endpoint(request: ProcessingRequest) -> str | None:
    """The ``ip:port`` that served the request, as the gateway reports it on the response path."""
    value = _metadata(request, LB_NAMESPACE, SERVED)
    return value if isinstance(value, str) and value else None


def routed(
    endpoints: Sequence[str],
    extra: Mapping[str, str],
    *,
    body: bytes,
    mode: BodyMode,
    chunk_bytes: int,
    body_ends_stream: bool,
) -> list[ProcessingResponse]:
    """The answers that send the request to ``endpoints`` (first choice first), with ``extra`` headers.

    Full duplex: the request headers' answer carries the destination (and clears the route cache, so a
    route can match on it) and the body's length (Envoy cannot know it from a body handed back in
    pieces), then the body goes back in chunks. Buffered: the body's answer carries it (its header
    mutation applies to the request headers, still held by Envoy). Either way the dynamic metadata goes
    with the answer that carries the header.
    """
    destination = ",".join(endpoints)
    headers = {DESTINATION: destination, **extra}
    if mode is BodyMode.FULL_DUPLEX_STREAMED:
        headers["content-length"] = str(len(body))
    common = ext_proc.CommonResponse(header_mutation=_mutation(headers), clear_route_cache=True)
    metadata = _struct({LB_NAMESPACE: {DESTINATION: destination}})
    if mode is BodyMode.BUFFERED:
        return [
            ext_proc.ProcessingResponse(
                request_body=ext_proc.BodyResponse(response=common), dynamic_metadata=metadata
            )
        ]
    first = ext_proc.ProcessingResponse(
        request_headers=ext_proc.HeadersResponse(response=common), dynamic_metadata=metadata
    )
    if mode is BodyMode.NONE:  # a request without a body
        return [first]
    return [first, *streamed_body(body, request=True, end=body_ends_stream, chunk_bytes=chunk_bytes)]


def streamed_body(body: bytes, *, request: bool, end: bool, chunk_bytes: int) -> Iterable[ProcessingResponse]:
    """``body`` handed back in full-duplex mode, in chunks of at most ``chunk_bytes`` (gRPC messages
    have a size limit; an empty body is one empty chunk)."""
    pieces = [body[i : i + chunk_bytes] for i in range(0, len(body), chunk_bytes)] or [b""]
    for i, piece in enumerate(pieces):
        streamed = ext_proc.StreamedBodyResponse(body=piece, end_of_stream=end and i == len(pieces) - 1)
        answer = ext_proc.BodyResponse(
            response=ext_proc.CommonResponse(body_mutation=ext_proc.BodyMutation(streamed_response=streamed))
        )
        yield (
            ext_proc.ProcessingResponse(request_body=answer)
            if request
            else ext_proc.ProcessingResponse(response_body=answer)
        )


def passed(kind: str) -> ProcessingResponse:
    """Let a message through unchanged: ``kind`` is ``request_headers``, ``response_body``, ..."""
    if kind.endswith("headers"):
        return ext_proc.ProcessingResponse(**{kind: ext_proc.HeadersResponse()})
    if kind.endswith("body"):
        return ext_proc.ProcessingResponse(**{kind: ext_proc.BodyResponse()})
    return ext_proc.ProcessingResponse(**{kind: ext_proc.TrailersResponse()})


def immediate(
    status: int,
    message: str,
    *,
    kind: str,
    param: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> ProcessingResponse:
    """An immediate HTTP answer to the client, in OpenAI's error shape; ends the exchange."""
    body = prompts.error_body(status, message, kind=kind, param=param)
    return ext_proc.ProcessingResponse(
        immediate_response=ext_proc.ImmediateResponse(
            status=http_status_pb2.HttpStatus(code=status),
            headers=_mutation({"content-type": "application/json", **(headers or {})}),
            body=json.dumps(body).encode(),
            details=f"epp_{kind}",
        )
    )


def _mutation(values: Mapping[str, str]) -> Any:
    return ext_proc.HeaderMutation(
        set_headers=[
            base_pb2.HeaderValueOption(
                header=base_pb2.HeaderValue(key=k, raw_value=v.encode()),
                append_action=base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD,
            )
            for k, v in values.items()
        ]
    )


def _struct(values: Mapping[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(values)
    return struct


def _metadata(request: ProcessingRequest, namespace: str, key: str) -> object:
    if not request.HasField("metadata_context"):
        return None
    filters = request.metadata_context.filter_metadata
    if namespace not in filters:
        return None
    fields = filters[namespace].fields
    if key not in fields:
        return None
    value = fields[key]
    which = value.WhichOneof("kind")
    if which == "string_value":
        return value.string_value
    if which == "list_value":
        return [v.string_value for v in value.list_value.values if v.WhichOneof("kind") == "string_value"]
    return None

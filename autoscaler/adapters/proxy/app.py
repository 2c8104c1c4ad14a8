"""The OpenAI-compatible proxy: place each request with the router, forward it, relay the answer as is.

Routes: ``POST /v1/completions`` and ``/v1/chat/completions`` (streaming SSE or not: the engine's bytes
are relayed unchanged, status and headers included), ``GET /v1/models`` (from a ready engine),
``/health`` (200 while an engine is ready, else 503) and ``/metrics`` (``autoscaler.adapters.proxy.metrics``).

Guarantees, each covered by a contract test:

- bad input answers in OpenAI's error shape: malformed JSON or no ``model`` 400, a body over
  ``max_body_bytes`` 413, no ready engine 503 with ``Retry-After``;
- an engine that refuses the connection (or does not accept it in time) is taken out of rotation and the
  request placed again, up to ``connect_attempts`` engines, before any byte reaches the client;
- a client that goes away cancels the engine's request (the upstream connection is closed), whether it
  left while waiting for the engine or while the answer streamed;
- every placed request is released from the router exactly once, however it ends.

P/D uses vLLM's two-step ``kv_transfer_params`` protocol (NixlConnector): the prefill engine gets the
request with ``max_tokens: 1``, ``stream: false`` and ``kv_transfer_params.do_remote_decode``; its answer's
``kv_transfer_params`` go into the request the decode engine then serves. If the prefill engine fails,
the decode engine prefills itself (as llm-d's sidecar does).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from autoscaler.adapters.proxy import prompts
from autoscaler.adapters.proxy.fleet import Fleet
from autoscaler.adapters.proxy.metrics import RouterMetrics
from autoscaler.adapters.proxy.settings import ProxySettings
from autoscaler.profiles.schema import Profile
from autoscaler.routing.interface import NoEndpointError, RouteRequest
from autoscaler.routing.router import AffinityRouter, RoutedPlacement

log = logging.getLogger(__name__)

# Headers that describe one hop, not the message (RFC 9110 7.6.1), plus those httpx or uvicorn set.
_HOP_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
# httpx decodes a body it reads whole: these no longer describe the bytes passed on.
_DECODED_HEADERS = frozenset({"content-encoding", "content-length"})
_PREFILL_PARAMS = {
    "do_remote_decode": True,
    "do_remote_prefill": False,
    "remote_engine_id": None,
    "remote_block_ids": None,
    "remote_host": None,
    "remote_port": None,
}


class BodyTooLarge(Exception):
    pass


def error(
    status: int, message: str, *, kind: str, param: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    """An OpenAI-style error answer."""
    body = {"error": {"message": message, "type": kind, "param": param, "code": status}}
    return JSONResponse(body, status_code=status, headers=headers)


def make_client(settings: ProxySettings) -> httpx.AsyncClient:
    """The upstream client: no transport retries (the proxy retries on other engines), TCP_NODELAY set.

    (On the client side of the proxy, asyncio's transports set TCP_NODELAY on every socket uvicorn accepts.)
    """
    transport = httpx.AsyncHTTPTransport(
        retries=0,
        socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        limits=httpx.Limits(max_connections=4096, max_keepalive_connections=512),
    )
    timeout = httpx.Timeout(
        settings.read_timeout_s, connect=settings.connect_timeout_s, pool=settings.read_timeout_s
    )
    return httpx.AsyncClient(transport=transport, timeout=timeout)


class Proxy:
    def __init__(self, settings: ProxySettings, *, seed: int = 0, profile: Profile | None = None) -> None:
        self.settings = settings
        self.router = AffinityRouter(settings.router_settings(profile), seed=seed)
        self.client = make_client(settings)
        self.fleet = Fleet(settings, self.router, self.client)
        self.metrics = RouterMetrics(pool=settings.pool, router=self.router)
        self._ids = itertools.count()
        self._tokenizer_turn = itertools.count()  # engines take turns tokenizing

    async def completions(self, request: Request) -> Response:
        return await self._generate(request, chat=False)

    async def chat_completions(self, request: Request) -> Response:
        return await self._generate(request, chat=True)

    async def models(self, request: Request) -> Response:
        ready = self.fleet.ready()
        if not ready:
            return self._unavailable()
        try:
            upstream = await self.client.get(f"{self.fleet.url(ready[0])}/v1/models")
        except httpx.TransportError as err:
            return error(502, f"engine unreachable: {err}", kind="upstream_error")
        headers = {k: v for k, v in _relayed(upstream.headers).items() if k.lower() not in _DECODED_HEADERS}
        return Response(upstream.content, status_code=upstream.status_code, headers=headers)

    async def health(self, request: Request) -> Response:
        ready = len(self.fleet.ready())
        return JSONResponse(
            {"status": "ok" if ready else "no-ready-endpoint", "ready_endpoints": ready},
            status_code=200 if ready else 503,
        )

    async def prometheus(self, request: Request) -> Response:
        return Response(self.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    # --- the request path --------------------------------------------------------------------------

    async def _generate(self, request: Request, *, chat: bool) -> Response:
        settings = self.settings
        try:
            raw = await _read_body(request, settings.max_body_bytes)
        except BodyTooLarge:
            return self._count(
                error(
                    413, f"request body exceeds {settings.max_body_bytes} bytes", kind="invalid_request_error"
                )
            )
        try:
            body = json.loads(raw)
        except ValueError as err:
            return self._count(error(400, f"malformed JSON: {err}", kind="invalid_request_error"))
        try:
            prompt = prompts.read(
                body, chat=chat, config=settings.hashing, default_max_tokens=settings.default_max_tokens
            )
        except prompts.BadRequest as err:
            return self._count(error(400, str(err), kind="invalid_request_error", param=err.param))
        if (
            settings.hashing.tokenize_with_engine
            and settings.hashing.mode == "precise"
            and not prompt.token_ids
        ):
            prompt = await self._engine_tokens(prompt, body, chat=chat)
        start = time.perf_counter()
        route_request = RouteRequest(
            request_id=next(self._ids),
            prompt_tokens=prompt.prompt_tokens,
            output_tokens=prompt.output_tokens,
            block_hashes=prompts.block_hashes(prompt, settings.hashing),
            session_id=request.headers.get(settings.session_header),
        )
        forward_headers = _forwarded(request.headers)
        for _attempt in range(settings.connect_attempts):
            try:
                placement = self.router.place(route_request, now=time.monotonic())
            except NoEndpointError:
                return self._count(self._unavailable())
            self.metrics.timed(time.perf_counter() - start)
            phase = self.router.endpoint(
                placement.endpoint
            ).phase  # now: the endpoint may leave while we wait
            try:
                upstream = await _unless_disconnected(
                    request.receive,
                    self._open_upstream(placement, request.url.path, raw, body, forward_headers),
                )
            except (
                httpx.ConnectError,
                httpx.ConnectTimeout,
            ) as err:  # nothing reached the engine: place again
                self._release(placement)
                self._upstream_error(placement.endpoint, "refused")
                self.fleet.mark_unhealthy(placement.endpoint)
                log.warning("endpoint %s refused a connection (%s); placing again", placement.endpoint, err)
                start = time.perf_counter()
                continue
            except httpx.HTTPError as err:  # accepted, then failed before answering: nothing was sent yet
                self._release(placement)
                self.metrics.placed(placement, phase=phase)
                self._upstream_error(placement.endpoint, "failed")
                return self._count(error(502, f"engine failed: {err!r}", kind="upstream_error"))
            except BaseException:
                self._release(placement)
                raise
            self.metrics.placed(placement, phase=phase)
            if upstream is None:  # the client left while the engine was working: nothing to answer
                self._release(placement)
                return self._count(Response(status_code=499))
            self._count_code(upstream.status_code)
            return _Relay(
                upstream,
                on_close=functools.partial(self._release, placement),
                on_error=functools.partial(self._upstream_error, placement.endpoint, "stream"),
            )
        return self._count(error(502, "no engine accepted the connection", kind="upstream_error"))

    async def _engine_tokens(
        self, prompt: prompts.Prompt, body: dict[str, Any], *, chat: bool
    ) -> prompts.Prompt:
        """The prompt's token ids from a ready engine's ``/tokenize``; the prompt as it was if that fails."""
        ready = self.fleet.ready()
        if not ready:
            return prompt
        engine = ready[next(self._tokenizer_turn) % len(ready)]
        try:
            answer = await self.client.post(
                f"{self.fleet.url(engine)}/tokenize", json=prompts.tokenize_request(body, chat=chat)
            )
            answer.raise_for_status()
            tokens = answer.json()["tokens"]
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as err:
            self._upstream_error(engine, "tokenize")
            log.warning("tokenize on %s failed (%r); placing on load alone", engine, err)
            return prompt
        if not (isinstance(tokens, list) and all(isinstance(t, int) for t in tokens)):
            return prompt
        return prompts.with_tokens(prompt, tokens)

    async def _open_upstream(
        self, placement: RoutedPlacement, path: str, raw: bytes, body: dict[str, Any], headers: dict[str, str]
    ) -> httpx.Response:
        """Start the engine's answer (headers received, body not yet read); P/D prefills first."""
        if placement.prefill_endpoint is not None:
            raw = await self._remote_prefill(placement, path, body, headers)
        url = f"{self.fleet.url(placement.endpoint)}{path}"
        return await self.client.send(
            self.client.build_request("POST", url, content=raw, headers=headers), stream=True
        )

    async def _remote_prefill(
        self, placement: RoutedPlacement, path: str, body: dict[str, Any], headers: dict[str, str]
    ) -> bytes:
        """Step one of P/D; returns the body for the decode engine (the original one if prefill failed)."""
        assert placement.prefill_endpoint is not None
        prefill_body = {**body, "max_tokens": 1, "stream": False, "kv_transfer_params": dict(_PREFILL_PARAMS)}
        prefill_body.pop("stream_options", None)
        if "max_completion_tokens" in prefill_body:
            prefill_body["max_completion_tokens"] = 1
        url = f"{self.fleet.url(placement.prefill_endpoint)}{path}"
        try:
            answer = await self.client.post(url, content=json.dumps(prefill_body).encode(), headers=headers)
            answer.raise_for_status()
            params = answer.json().get("kv_transfer_params")
        except (httpx.HTTPError, ValueError) as err:
            kind = "refused" if isinstance(err, httpx.ConnectError | httpx.ConnectTimeout) else "prefill"
            self._upstream_error(placement.prefill_endpoint, kind)
            if kind == "refused":
                self.fleet.mark_unhealthy(placement.prefill_endpoint)
            log.warning("prefill on %s failed (%s); decode prefills locally", placement.prefill_endpoint, err)
            params = None
        finally:
            self.router.prefill_done(placement, now=time.monotonic())
        if params is None:
            return json.dumps(body).encode()
        return json.dumps({**body, "kv_transfer_params": params}).encode()

    def _upstream_error(self, endpoint: str, kind: str) -> None:
        self.metrics.upstream_errors.labels(self.settings.pool, endpoint, kind).inc()

    def _release(self, placement: RoutedPlacement) -> None:
        self.router.finished(placement, now=time.monotonic())

    def _unavailable(self) -> JSONResponse:
        return error(
            503,
            "no ready endpoint",
            kind="service_unavailable",
            headers={"Retry-After": str(self.settings.retry_after_s)},
        )

    def _count(self, response: Response) -> Response:
        self._count_code(response.status_code)
        return response

    def _count_code(self, code: int) -> None:
        self.metrics.responses.labels(self.settings.pool, str(code)).inc()


class _Relay(StreamingResponse):
    """Relays an engine's response byte for byte; closes it (cancelling the engine's work) and releases the
    placement exactly once, whether the stream ends, fails, or the client disconnects. An engine that fails
    mid-stream is counted and the failure propagates, so the client sees a cut connection, not a clean end."""

    def __init__(
        self, upstream: httpx.Response, *, on_close: Callable[[], None], on_error: Callable[[], None]
    ) -> None:
        super().__init__(
            _raw(upstream, on_error), status_code=upstream.status_code, headers=_relayed(upstream.headers)
        )
        self._upstream = upstream
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await self._upstream.aclose()
            self._on_close()


async def _raw(upstream: httpx.Response, on_error: Callable[[], None]) -> AsyncIterator[bytes]:
    try:
        async for chunk in upstream.aiter_raw():
            yield chunk
    except httpx.HTTPError as err:
        on_error()
        log.warning("engine stream failed: %r", err)
        raise


async def _unless_disconnected(receive: Receive, work: Awaitable[httpx.Response]) -> httpx.Response | None:
    """``work``'s result, or None (``work`` cancelled) if the client disconnects first."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnect(receive))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
        response = await task
        await response.aclose()
    return None


async def _disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _forwarded(headers: Any) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() not in _HOP_HEADERS}


def _relayed(headers: httpx.Headers) -> dict[str, str]:
    """The engine's headers minus hop-by-hop ones; Content-Length stays valid since bytes are relayed raw."""
    relayed = {k: v for k, v in headers.items() if k.lower() not in _HOP_HEADERS}
    if "content-length" in headers:
        relayed["content-length"] = headers["content-length"]
    return relayed


def build_app(settings: ProxySettings, *, seed: int = 0, profile: Profile | None = None) -> Starlette:
    """The proxy as an ASGI app; ``profile`` is the loaded ``settings.profile``, if any."""
    proxy = Proxy(settings, seed=seed, profile=profile)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await proxy.fleet.start()
        try:
            yield
        finally:
            await proxy.fleet.stop()
            await proxy.client.aclose()

    app = Starlette(
        routes=[
            Route("/v1/completions", proxy.completions, methods=["POST"]),
            Route("/v1/chat/completions", proxy.chat_completions, methods=["POST"]),
            Route("/v1/models", proxy.models, methods=["GET"]),
            Route("/health", proxy.health, methods=["GET"]),
            Route("/metrics", proxy.prometheus, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.proxy = proxy
    return app

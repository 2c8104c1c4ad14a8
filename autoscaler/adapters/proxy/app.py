"""The OpenAI-compatible proxy: place each request with the router, forward it, relay the answer as is.

Routes: ``POST /v1/completions`` and ``/v1/chat/completions`` (streaming SSE or not: the engine's bytes
are relayed unchanged, status and headers included), ``GET /v1/models`` (from a ready engine),
``/health`` (200 while an engine is ready, else 503) and ``/metrics`` (``autoscaler.adapters.proxy.metrics``).

Guarantees, each covered by a contract test (``tests/contract/router``; the fuzz suite throws generated
bodies, headers and framings at all of them):

- bad input answers in OpenAI's error shape, never with a traceback: malformed JSON (nesting too deep
  included), no ``model``, ``max_tokens`` / ``n`` that are not integers within bounds, lone surrogates
  400; a body over ``max_body_bytes`` or a prompt over ``max_prompt_tokens`` 413; a body slower than
  ``body_timeout_s`` 408; no ready engine 503 with ``Retry-After``; unknown paths 404, wrong methods 405
  and requests the HTTP parser rejects 400, all JSON; error bodies never name an engine's address;
- client connections with no request under way (idle, or headers still coming) close after
  ``idle_timeout_s``;
- a large body is parsed and hashed in a worker thread, so health checks and other requests go on;
- an engine that refuses the connection (or does not accept it in time) is taken out of rotation and the
  request placed again, up to ``connect_attempts`` engines, before any byte reaches the client; so is a
  request whose engine drops the connection before answering, or falls out of rotation (a stopped
  engine misses its scrapes) and stays silent for ``stall_timeout_s`` (``stalls``);
- once bytes went out, an engine that fails or stalls ends the client's connection (a client must see a
  broken stream, never a clean but truncated one), logged once, without a traceback;
- a client that goes away cancels the engine's request (the upstream connection is closed), whether it
  left while waiting for the engine or while the answer streamed: the server cancels the request's
  handler when its connection is lost;
- every placed request is released from the router exactly once, however it ends.

P/D uses vLLM's two-step ``kv_transfer_params`` protocol (NixlConnector): the prefill engine gets the
request with ``max_tokens: 1``, ``stream: false`` and ``kv_transfer_params.do_remote_decode``; its answer's
``kv_transfer_params`` go into the request the decode engine then serves. If the prefill engine fails,
the decode engine prefills itself (as llm-d's sidecar does).

Both sides of the proxy are aiohttp (its HTTP parsers are compiled) on uvloop where installed: the
per-request CPU is what sets the rate one proxy process sustains, and what it adds to time to first token
(``benchmarks/proxy_overhead.py``). Every TCP socket asyncio and uvloop open has TCP_NODELAY set, so a
small SSE event is written at once, never held back by Nagle's algorithm.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import logging
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from http import HTTPStatus
from typing import Any, TypeVar

import aiohttp
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from multidict import CIMultiDict
from prometheus_client import CONTENT_TYPE_LATEST

from autoscaler.adapters.admission_gate import AdmissionGate, Admitted, Refused
from autoscaler.adapters.proxy import prompts
from autoscaler.adapters.proxy.fleet import Fleet
from autoscaler.adapters.proxy.metrics import RouterMetrics
from autoscaler.adapters.proxy.settings import IDLE_TIMEOUT_S, ProxySettings
from autoscaler.adapters.proxy.stalls import EngineStalled
from autoscaler.adapters.until_signal import run_until_signal
from autoscaler.routing.admission import PriorityClass, UnknownClass
from autoscaler.routing.interface import NoEndpointError, RouteRequest
from autoscaler.routing.router import AffinityRouter, RoutedPlacement

log = logging.getLogger(__name__)

# Headers that describe one hop, not the message (RFC 9110 7.6.1), plus those each hop sets itself.
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
        "expect",  # 100-continue is between the client and this server
        "content-encoding",  # the body goes on as the server decoded it
    }
)
# Errors before the engine saw any of the request: it is out of rotation, the request goes elsewhere.
_NOT_CONNECTED = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)
# Errors before the engine answered anything: the request is placed again (refused, reset or dropped
# connections, a stale pooled one included, and engines that stopped answering).
_NO_ANSWER = (
    aiohttp.ClientOSError,
    aiohttp.ServerDisconnectedError,
    aiohttp.ConnectionTimeoutError,
    EngineStalled,
)
_LINGER_S = 1.0  # after refusing a body (408, 413), how long the server still reads it so the client hears
_MODELS_TIMEOUT = aiohttp.ClientTimeout(total=5.0)  # /v1/models is instant on a live engine
_PREFILL_PARAMS = {
    "do_remote_decode": True,
    "do_remote_prefill": False,
    "remote_engine_id": None,
    "remote_block_ids": None,
    "remote_host": None,
    "remote_port": None,
}
_CLIENT_CLOSED = 499  # nginx's code for "the client closed the connection", in the responses metric


class BodyTooLarge(Exception):
    pass


class _StreamCut(Exception):
    """Raised out of a handler whose answer already started, to have the connection closed (quietly)."""


class _Besides:
    """Every endpoint name but the given ones (a ``Container`` for the router's ``eligible``)."""

    __slots__ = ("_left_out",)

    def __init__(self, left_out: set[str]) -> None:
        self._left_out = left_out

    def __contains__(self, name: object) -> bool:
        return name not in self._left_out


T = TypeVar("T")


def error(
    status: int, message: str, *, kind: str, param: str | None = None, headers: dict[str, str] | None = None
) -> web.Response:
    """An OpenAI-style error answer."""
    body = prompts.error_body(status, message, kind=kind, param=param)
    return web.json_response(body, status=status, headers=headers)


def make_client(settings: ProxySettings) -> aiohttp.ClientSession:
    """The upstream client: pooled keep-alive connections, no retries of its own (the proxy places a refused
    request again), bodies relayed as they come (no decompression) and no headers the client did not send."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=4096, limit_per_host=0),
        timeout=aiohttp.ClientTimeout(
            total=None, sock_connect=settings.connect_timeout_s, sock_read=settings.read_timeout_s
        ),
        auto_decompress=False,
        skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
    )


class Proxy:
    """The request path over parts the composition root (``cli.router.build_proxy``) wires together: the
    router, the fleet that feeds it, its metrics and the admission gate in front of it. The upstream client
    exists between ``start`` and ``stop`` (it needs a loop)."""

    def __init__(
        self,
        settings: ProxySettings,
        *,
        router: AffinityRouter,
        fleet: Fleet,
        metrics: RouterMetrics,
        admission: AdmissionGate,
    ) -> None:
        self.settings = settings
        self.router = router
        self.fleet = fleet
        self.metrics = metrics
        self.admission = admission
        self._client: aiohttp.ClientSession | None = None
        self._ids = itertools.count()
        self._turn = itertools.count()  # engines take turns tokenizing and listing models

    @property
    def client(self) -> aiohttp.ClientSession:
        assert self._client is not None, "the proxy is not started"
        return self._client

    async def start(self) -> None:
        self._client = make_client(self.settings)
        await self.fleet.start(self._client)
        self.admission.start()

    async def stop(self) -> None:
        await self.admission.stop()
        await self.fleet.stop()
        if self._client is not None:
            await self._client.close()

    async def completions(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, chat=False)

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, chat=True)

    async def models(self, request: web.Request) -> web.Response:
        """One ready engine's model list; the next one's when it fails (up to ``connect_attempts``)."""
        ready = self.fleet.ready()
        if not ready:
            return self._unavailable()
        first = next(self._turn)
        for i in range(min(len(ready), self.settings.connect_attempts)):
            engine = ready[(first + i) % len(ready)]
            try:
                async with self.client.get(
                    f"{self.fleet.url(engine)}/v1/models", timeout=_MODELS_TIMEOUT
                ) as upstream:
                    body = await upstream.read()
                    return web.Response(body=body, status=upstream.status, headers=_relayed(upstream.headers))
            except (aiohttp.ClientError, TimeoutError) as err:
                self._upstream_error(engine, "models")
                if isinstance(err, _NOT_CONNECTED):
                    self.fleet.mark_unhealthy(engine)
                log.warning("GET /v1/models on %s failed (%s); trying another engine", engine, _describe(err))
        log.warning("GET /v1/models: no engine answered: 502")
        return error(502, "no engine answered", kind="upstream_error")

    async def health(self, request: web.Request) -> web.Response:
        ready = len(self.fleet.ready())
        return web.json_response(
            {"status": "ok" if ready else "no-ready-endpoint", "ready_endpoints": ready},
            status=200 if ready else 503,
        )

    async def prometheus(self, request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    # --- the request path --------------------------------------------------------------------------

    async def _generate(self, request: web.Request, *, chat: bool) -> web.StreamResponse:
        settings = self.settings
        try:
            async with asyncio.timeout(settings.body_timeout_s):
                raw = await _read_body(request, settings.max_body_bytes)
            forward_headers = _forwarded(request.headers)
            body, prompt = await prompts.off_loop_if_large(
                len(raw),
                prompts.parse,
                raw,
                chat=chat,
                config=settings.hashing,
                default_max_tokens=settings.default_max_tokens,
                max_prompt_tokens=settings.max_prompt_tokens,
            )
        except BodyTooLarge:
            return self._count(
                error(
                    413, f"request body exceeds {settings.max_body_bytes} bytes", kind="invalid_request_error"
                )
            )
        except TimeoutError:
            response = error(
                408, f"the request body took over {settings.body_timeout_s} s", kind="invalid_request_error"
            )
            response.force_close()
            return self._count(response)
        except prompts.BadRequest as err:
            return self._count(error(err.status, str(err), kind="invalid_request_error", param=err.param))
        if (
            settings.hashing.tokenize_with_engine
            and settings.hashing.mode == "precise"
            and not prompt.token_ids
        ):
            prompt = await self._engine_tokens(prompt, body, chat=chat)
        try:
            priority = self.admission.priority(request.headers.get(settings.admission.header))
        except UnknownClass as err:
            return self._count(error(400, str(err), kind="invalid_request_error"))
        start = time.perf_counter()
        route_request = RouteRequest(
            request_id=next(self._ids),
            prompt_tokens=prompt.prompt_tokens,
            output_tokens=prompt.output_tokens,
            block_hashes=await prompts.off_loop_if_large(
                len(raw), prompts.block_hashes, prompt, settings.hashing
            ),
            session_id=request.headers.get(settings.session_header),
        )
        failed: set[str] = set()  # engines that answered nothing to this request: placed elsewhere if any
        for _attempt in range(settings.connect_attempts):
            try:  # at once, or once the admission queue dispatches it (the client hears nothing till then)
                admitted = await self._place(route_request, priority, failed)
            except NoEndpointError:
                return self._count(self._unavailable())
            except Refused as refused:
                headers = {"Retry-After": str(refused.retry_after_s)}
                kind = "rate_limit_exceeded" if refused.status == 429 else "service_unavailable"
                return self._count(error(refused.status, str(refused), kind=kind, headers=headers))
            placement = admitted.placement
            with self._held(placement):
                self.metrics.timed(time.perf_counter() - start - admitted.waited_s)  # not the queue's wait
                answer = await self._forward(request, placement, raw, body, forward_headers)
            if answer is not None:
                return answer
            failed.add(placement.endpoint)
            start = time.perf_counter()
        log.warning("no engine answered after %d attempts: 502", settings.connect_attempts)
        return self._count(error(502, "no engine answered", kind="upstream_error"))

    async def _place(self, request: RouteRequest, priority: PriorityClass, failed: set[str]) -> Admitted:
        """Admit and place ``request`` away from the engines that already answered it nothing (a dead engine
        stays in rotation until its next scrape); on those only when no other engine could take it."""
        if failed:
            try:
                return await self.admission.place(request, priority, eligible=_Besides(failed))
            except NoEndpointError:
                pass
        return await self.admission.place(request, priority)

    async def _forward(
        self,
        request: web.Request,
        placement: RoutedPlacement,
        raw: bytes,
        body: dict[str, Any],
        headers: dict[str, str],
    ) -> web.StreamResponse | None:
        """The engine's answer to the placed request, relayed; None when the engine answered nothing (the
        request is to be placed again)."""
        endpoint = placement.endpoint
        phase = self.router.endpoint(endpoint).phase  # now: the endpoint may leave meanwhile
        try:
            upstream = await self._open_upstream(placement, request.path, raw, body, headers)
        except _NO_ANSWER as err:
            kind = _failure_kind(err)
            self._upstream_error(endpoint, kind)
            if kind == "refused":
                self.fleet.mark_unhealthy(endpoint)
            log.warning("endpoint %s %s (%s); placing the request again", endpoint, kind, _describe(err))
            return None
        except (aiohttp.ClientError, TimeoutError) as err:  # silent past read_timeout_s, or garbled
            self.metrics.placed(placement, phase=phase)
            self._upstream_error(endpoint, "failed")
            log.warning("endpoint %s failed before answering (%s): 502", endpoint, _describe(err))
            return self._count(error(502, "the engine failed before answering", kind="upstream_error"))
        except asyncio.CancelledError:  # the client left while the engine worked (its request is closed)
            self._count_code(_CLIENT_CLOSED)
            raise
        self.metrics.placed(placement, phase=phase)
        self._count_code(upstream.status)
        return await self._relay(request, upstream, placement)

    async def _relay(
        self, request: web.Request, upstream: aiohttp.ClientResponse, placement: RoutedPlacement
    ) -> web.StreamResponse:
        """Relay the engine's answer byte for byte.

        A client that leaves cancels this handler: the upstream connection is closed, which cancels the
        engine's work. An engine that fails mid-stream, or falls out of rotation and stays silent, is
        counted and the client's connection cut, so the client sees a broken stream, not a clean end.
        """
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        response.headers.extend(_relayed(upstream.headers))
        if upstream.content_length is not None:
            response.content_length = upstream.content_length
        stalls = self.fleet.stalls
        complete = False
        try:
            await response.prepare(request)
            async with asyncio.timeout(None) as deadline:
                with stalls.watching(placement.endpoint, deadline):
                    async for chunk in upstream.content.iter_any():
                        await response.write(chunk)
                        stalls.still_alive(deadline)
            complete = True
        except ConnectionResetError:  # the client's side (writing to a closed connection)
            raise
        except (aiohttp.ClientError, TimeoutError) as err:
            self._upstream_error(placement.endpoint, "stream")
            log.warning(
                "engine %s broke off its answer (%s); cutting the client's connection",
                placement.endpoint,
                "out of rotation and silent" if isinstance(err, TimeoutError) else _describe(err),
            )
            raise _StreamCut from None
        finally:
            if complete:
                upstream.release()  # back to the pool, kept alive
            else:
                upstream.close()
        await response.write_eof()
        return response

    async def _engine_tokens(
        self, prompt: prompts.Prompt, body: dict[str, Any], *, chat: bool
    ) -> prompts.Prompt:
        """The prompt's token ids from a ready engine's ``/tokenize``; the prompt as it was if that fails."""
        ready = self.fleet.ready()
        if not ready:
            return prompt
        engine = ready[next(self._turn) % len(ready)]
        try:
            tokens = await self._watched(engine, self._tokenize(engine, body, chat=chat))
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, TypeError) as err:
            self._upstream_error(engine, "tokenize")
            log.warning("tokenize on %s failed (%s); placing on load alone", engine, _describe(err))
            return prompt
        if not (isinstance(tokens, list) and all(isinstance(t, int) for t in tokens)):
            return prompt
        return prompts.with_tokens(prompt, tokens)

    async def _tokenize(self, engine: str, body: dict[str, Any], *, chat: bool) -> Any:
        async with self.client.post(
            f"{self.fleet.url(engine)}/tokenize", json=prompts.tokenize_request(body, chat=chat)
        ) as answer:
            answer.raise_for_status()
            return (await answer.json(content_type=None))["tokens"]

    async def _watched(self, engine: str, answer: Awaitable[T]) -> T:
        """``answer`` from ``engine``, given up (``EngineStalled``) once the engine is out of rotation
        and silent for ``stall_timeout_s`` (``stalls``)."""
        try:
            async with asyncio.timeout(None) as deadline:
                with self.fleet.stalls.watching(engine, deadline):
                    return await answer
        except TimeoutError:
            if deadline.expired():
                raise EngineStalled(engine) from None
            raise

    async def _open_upstream(
        self, placement: RoutedPlacement, path: str, raw: bytes, body: dict[str, Any], headers: dict[str, str]
    ) -> aiohttp.ClientResponse:
        """Start the engine's answer (headers received, body not yet read); P/D prefills first."""
        if placement.prefill_endpoint is not None:
            raw = await self._remote_prefill(placement, path, raw, body, headers)
        return await self._watched(
            placement.endpoint,
            self.client.post(f"{self.fleet.url(placement.endpoint)}{path}", data=raw, headers=headers),
        )

    async def _remote_prefill(
        self,
        placement: RoutedPlacement,
        path: str,
        raw: bytes,
        body: dict[str, Any],
        headers: dict[str, str],
    ) -> bytes:
        """Step one of P/D; returns the body for the decode engine (``raw`` if prefill failed)."""
        assert placement.prefill_endpoint is not None
        prefill_body = {**body, "max_tokens": 1, "stream": False, "kv_transfer_params": dict(_PREFILL_PARAMS)}
        prefill_body.pop("stream_options", None)
        if "max_completion_tokens" in prefill_body:
            prefill_body["max_completion_tokens"] = 1
        url = f"{self.fleet.url(placement.prefill_endpoint)}{path}"
        params = None
        try:
            result = await self._watched(
                placement.prefill_endpoint, self._prefill_answer(url, prefill_body, headers)
            )
            params = result.get("kv_transfer_params") if isinstance(result, dict) else None
        except (aiohttp.ClientError, TimeoutError, ValueError, RecursionError) as err:
            kind = "refused" if isinstance(err, _NOT_CONNECTED) else "prefill"
            self._upstream_error(placement.prefill_endpoint, kind)
            if kind == "refused":
                self.fleet.mark_unhealthy(placement.prefill_endpoint)
            log.warning(
                "prefill on %s failed (%s); decode prefills locally",
                placement.prefill_endpoint,
                _describe(err),
            )
        finally:
            self.router.prefill_done(placement, now=time.monotonic())
        if params is None:
            return raw
        return json.dumps({**body, "kv_transfer_params": params}).encode()

    async def _prefill_answer(self, url: str, body: dict[str, Any], headers: dict[str, str]) -> Any:
        async with self.client.post(url, data=json.dumps(body).encode(), headers=headers) as answer:
            answer.raise_for_status()
            return await answer.json(content_type=None)

    def _upstream_error(self, endpoint: str, kind: str) -> None:
        self.metrics.upstream_errors.labels(self.settings.pool, endpoint, kind).inc()

    @contextlib.contextmanager
    def _held(self, placement: RoutedPlacement) -> Iterator[RoutedPlacement]:
        """The placement, released from the router however the block ends (a second release is a
        no-op); its slot may let a waiting request go."""
        try:
            yield placement
        finally:
            self.router.finished(placement, now=time.monotonic())
            self.admission.pump()

    def _unavailable(self) -> web.Response:
        return error(
            503,
            "no ready endpoint",
            kind="service_unavailable",
            headers={"Retry-After": str(self.settings.retry_after_s)},
        )

    def _count(self, response: web.Response) -> web.Response:
        self._count_code(response.status)
        return response

    def _count_code(self, code: int) -> None:
        self.metrics.responses.labels(self.settings.pool, str(code)).inc()


async def _read_body(request: web.Request, limit: int) -> bytes:
    """The whole body; ``BodyTooLarge`` past ``limit`` bytes, ``BadRequest`` when its framing or its
    content encoding is broken."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise BodyTooLarge
    chunks = []
    size = 0
    try:
        async for chunk in request.content.iter_any():
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge
            chunks.append(chunk)
    except (HttpProcessingError, web.RequestPayloadError) as err:  # bad chunks, a body that does not decode
        raise prompts.BadRequest(f"unreadable request body ({type(err).__name__})") from None
    return b"".join(chunks)


def _forwarded(headers: Mapping[str, str]) -> dict[str, str]:
    """The client's headers for the engine; the body is JSON (it was parsed) whatever the client said.

    A header value that is not UTF-8 (the server hands it over with surrogate escapes) cannot be sent on:
    ``BadRequest``."""
    forwarded = {k: v for k, v in headers.items() if k.lower() not in _HOP_HEADERS}
    for name, value in forwarded.items():
        if not value.isascii():
            try:
                value.encode()
            except UnicodeEncodeError:
                raise prompts.BadRequest(f"header {name} is not valid UTF-8") from None
    if not any(k.lower() == "content-type" for k in forwarded):
        forwarded["Content-Type"] = "application/json"
    return forwarded


def _failure_kind(err: BaseException) -> str:
    """The upstream-errors metric's kind for a request the engine did not answer."""
    if isinstance(err, _NOT_CONNECTED):
        return "refused"
    if isinstance(err, EngineStalled):
        return "stalled"
    return "disconnected"


def _describe(err: BaseException) -> str:
    """An upstream error for the log: its type and message, on one line."""
    return f"{type(err).__name__}: {err}".split("\n", 1)[0]


def _relayed(headers: Mapping[str, str]) -> CIMultiDict[str]:
    """The engine's headers minus hop-by-hop ones (Content-Length is the response's own to set)."""
    return CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in _HOP_HEADERS)


PROXY = web.AppKey("proxy", Proxy)


async def _expect(request: web.Request) -> web.StreamResponse | None:
    """``Expect: 100-continue`` gets its interim answer (as aiohttp's own handler does); any other
    expectation a JSON 417 (aiohttp's answers in text, and fails on a value that is not UTF-8)."""
    if request.headers.get("Expect", "").lower() == "100-continue":
        if request.version == aiohttp.HttpVersion11:
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            request.writer.output_size = 0  # the answer proper has not started
        return None
    return error(417, "only Expect: 100-continue is supported", kind="invalid_request_error")


def _no_route(allowed: str | None) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The handler for a path the proxy does not serve (404), or a method it does not take there (405)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        if allowed is None:
            return error(404, f"no route {request.method} {request.path}", kind="invalid_request_error")
        message = f"{request.method} is not allowed on {request.path} (only {allowed})"
        return error(405, message, kind="invalid_request_error", headers={"Allow": allowed})

    return handler


class _Connection(web.RequestHandler):
    """The server's per-connection handler, which answers what aiohttp answers on its own (a request its
    parser rejects, a handler's unexpected error) in OpenAI's error shape too, and logs a malformed
    request in one debug line: clients can send garbage at any rate, and a traceback each floods the log."""

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        quiet = isinstance(exc, (_StreamCut, ConnectionError))
        if quiet or request.writer.output_size > 0:  # the answer started: all that is left is to hang up
            if not quiet:
                log.error("error after the answer started: %s %s", request.method, request.path, exc_info=exc)
            raise ConnectionError("closing a connection whose answer broke off")
        if status >= 500:
            log.error("unexpected error: %s %s", request.method, request.path, exc_info=exc)
            text = "internal error"
        else:
            reason = type(exc).__name__ if exc is not None else message
            log.debug("malformed HTTP request from %s: %s", request.remote, reason)
            text = f"malformed HTTP request ({reason})"
        kind = "server_error" if status >= 500 else "invalid_request_error"
        response = error(status, f"{HTTPStatus(status).phrase}: {text}", kind=kind)
        response.force_close()
        return response

    def log_exception(self, *args: Any, **kwargs: Any) -> None:
        """A broken request body met while discarding it after the answer is the client's, in one line."""
        exc = kwargs.get("exc_info")
        if isinstance(exc, (HttpProcessingError, web.RequestPayloadError)):
            self.logger.debug("malformed request body: %s", type(exc).__name__)
        else:
            super().log_exception(*args, **kwargs)


class _Server(web.Server):
    def __call__(self) -> web.RequestHandler:
        return _Connection(self, loop=self._loop, **self._kwargs)


class _Runner(web.AppRunner):
    """An ``AppRunner`` whose connections are ``_Connection``s (aiohttp takes no handler class)."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _Server
        return server


def build_app(proxy: Proxy) -> web.Application:
    """The proxy as an aiohttp app (``app[PROXY]`` is ``proxy``), started and stopped with it."""

    async def lifespan(app: web.Application) -> AsyncIterator[None]:
        await proxy.start()
        yield
        await proxy.stop()

    app = web.Application()
    app[PROXY] = proxy
    app.cleanup_ctx.append(lifespan)
    routes = [
        ("POST", "/v1/completions", proxy.completions),
        ("POST", "/v1/chat/completions", proxy.chat_completions),
        ("GET", "/v1/models", proxy.models),
        ("GET", "/health", proxy.health),
        ("GET", "/metrics", proxy.prometheus),
    ]
    # Every route, the catch-alls for other methods and paths included, so that what aiohttp would answer
    # itself (404, 405, 417) is answered in OpenAI's shape.
    for method, path, handler in routes:
        app.router.add_route(method, path, handler, expect_handler=_expect)
        if method == "GET":
            app.router.add_route("HEAD", path, handler, expect_handler=_expect)
        allowed = "GET, HEAD" if method == "GET" else method
        app.router.add_route("*", path, _no_route(allowed), expect_handler=_expect)
    app.router.add_route("*", "/{path:.*}", _no_route(None), expect_handler=_expect)
    return app


@contextlib.asynccontextmanager
async def serving(
    app: web.Application,
    *,
    host: str,
    port: int,
    shutdown_timeout_s: float,
    idle_timeout_s: float = IDLE_TIMEOUT_S,
) -> AsyncIterator[int]:
    """Serve ``app`` on ``host:port`` (0: a free port) and yield the port; on exit stop accepting, give
    in-flight requests up to ``shutdown_timeout_s`` to finish, then run the app's cleanup.

    A connection with no request under way is closed after ``idle_timeout_s``: aiohttp's keep-alive
    timer runs from the connection's start and from each answer's end until the next request's headers
    are all in, so it bounds slow headers as well as idle connections."""
    runner = _Runner(
        app,
        handler_cancellation=True,
        access_log=None,
        handle_signals=False,
        shutdown_timeout=shutdown_timeout_s,
        keepalive_timeout=idle_timeout_s,
        lingering_time=_LINGER_S,
    )
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


def run(proxy: Proxy) -> None:
    """Serve until SIGTERM or SIGINT, let in-flight requests finish, then end by that signal."""
    run_until_signal(functools.partial(_serve, proxy))


async def _serve(proxy: Proxy, stop: asyncio.Future[int]) -> None:
    settings = proxy.settings
    app = build_app(proxy)
    async with serving(
        app,
        host=settings.host,
        port=settings.port,
        shutdown_timeout_s=settings.shutdown_timeout_s,
        idle_timeout_s=settings.idle_timeout_s,
    ) as port:
        log.info("router listening on %s:%d", settings.host, port)
        signum = await stop
        log.info("signal %s: finishing in-flight requests", signal.Signals(signum).name)

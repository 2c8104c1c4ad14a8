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
import itertools
import json
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from prometheus_client import CONTENT_TYPE_LATEST

from autoscaler.adapters.proxy import prompts
from autoscaler.adapters.proxy.fleet import Fleet
from autoscaler.adapters.proxy.metrics import RouterMetrics
from autoscaler.adapters.proxy.settings import ProxySettings
from autoscaler.profiles.schema import Profile
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
    }
)
# Errors before the engine saw any of the request: safe to place it again elsewhere.
_NOT_CONNECTED = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)
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


def error(
    status: int, message: str, *, kind: str, param: str | None = None, headers: dict[str, str] | None = None
) -> web.Response:
    """An OpenAI-style error answer."""
    body = {"error": {"message": message, "type": kind, "param": param, "code": status}}
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
    """The request path. The upstream client exists between ``start`` and ``stop`` (it needs a loop)."""

    def __init__(self, settings: ProxySettings, *, seed: int = 0, profile: Profile | None = None) -> None:
        self.settings = settings
        self.router = AffinityRouter(settings.router_settings(profile), seed=seed)
        self.fleet = Fleet(settings, self.router)
        self.metrics = RouterMetrics(pool=settings.pool, router=self.router)
        self._client: aiohttp.ClientSession | None = None
        self._ids = itertools.count()
        self._tokenizer_turn = itertools.count()  # engines take turns tokenizing

    @property
    def client(self) -> aiohttp.ClientSession:
        assert self._client is not None, "the proxy is not started"
        return self._client

    async def start(self) -> None:
        self._client = make_client(self.settings)
        await self.fleet.start(self._client)

    async def stop(self) -> None:
        await self.fleet.stop()
        if self._client is not None:
            await self._client.close()

    async def completions(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, chat=False)

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, chat=True)

    async def models(self, request: web.Request) -> web.Response:
        ready = self.fleet.ready()
        if not ready:
            return self._unavailable()
        try:
            async with self.client.get(f"{self.fleet.url(ready[0])}/v1/models") as upstream:
                body = await upstream.read()
        except (aiohttp.ClientError, TimeoutError) as err:
            return error(502, f"engine unreachable: {err!r}", kind="upstream_error")
        return web.Response(body=body, status=upstream.status, headers=_relayed(upstream.headers))

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
            phase = self.router.endpoint(placement.endpoint).phase  # now: the endpoint may leave meanwhile
            try:
                upstream = await self._open_upstream(placement, request.path, raw, body, forward_headers)
            except _NOT_CONNECTED as err:  # nothing reached the engine: place again
                self._release(placement)
                self._upstream_error(placement.endpoint, "refused")
                self.fleet.mark_unhealthy(placement.endpoint)
                log.warning("endpoint %s refused a connection (%s); placing again", placement.endpoint, err)
                start = time.perf_counter()
                continue
            except (aiohttp.ClientError, TimeoutError) as err:  # accepted, then failed before answering
                self._release(placement)
                self.metrics.placed(placement, phase=phase)
                self._upstream_error(placement.endpoint, "failed")
                return self._count(error(502, f"engine failed: {err!r}", kind="upstream_error"))
            except asyncio.CancelledError:  # the client left while the engine worked (its request is closed)
                self._release(placement)
                self._count_code(_CLIENT_CLOSED)
                raise
            except BaseException:
                self._release(placement)
                raise
            self.metrics.placed(placement, phase=phase)
            self._count_code(upstream.status)
            return await self._relay(request, upstream, placement)
        return self._count(error(502, "no engine accepted the connection", kind="upstream_error"))

    async def _relay(
        self, request: web.Request, upstream: aiohttp.ClientResponse, placement: RoutedPlacement
    ) -> web.StreamResponse:
        """Relay the engine's answer byte for byte, then release the placement, exactly once.

        A client that leaves cancels this handler: the upstream connection is closed, which cancels the
        engine's work. An engine that fails mid-stream is counted and the failure propagates, so the
        client sees a cut connection, not a clean end.
        """
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        response.headers.extend(_relayed(upstream.headers))
        if upstream.content_length is not None:
            response.content_length = upstream.content_length
        complete = False
        try:
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            complete = True
        except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError, TimeoutError) as err:
            self._upstream_error(placement.endpoint, "stream")
            log.warning("engine %s stream failed: %r", placement.endpoint, err)
            raise
        finally:
            if complete:
                upstream.release()  # back to the pool, kept alive
            else:
                upstream.close()
            self._release(placement)
        await response.write_eof()
        return response

    async def _engine_tokens(
        self, prompt: prompts.Prompt, body: dict[str, Any], *, chat: bool
    ) -> prompts.Prompt:
        """The prompt's token ids from a ready engine's ``/tokenize``; the prompt as it was if that fails."""
        ready = self.fleet.ready()
        if not ready:
            return prompt
        engine = ready[next(self._tokenizer_turn) % len(ready)]
        try:
            async with self.client.post(
                f"{self.fleet.url(engine)}/tokenize", json=prompts.tokenize_request(body, chat=chat)
            ) as answer:
                answer.raise_for_status()
                tokens = (await answer.json(content_type=None))["tokens"]
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, TypeError) as err:
            self._upstream_error(engine, "tokenize")
            log.warning("tokenize on %s failed (%r); placing on load alone", engine, err)
            return prompt
        if not (isinstance(tokens, list) and all(isinstance(t, int) for t in tokens)):
            return prompt
        return prompts.with_tokens(prompt, tokens)

    async def _open_upstream(
        self, placement: RoutedPlacement, path: str, raw: bytes, body: dict[str, Any], headers: dict[str, str]
    ) -> aiohttp.ClientResponse:
        """Start the engine's answer (headers received, body not yet read); P/D prefills first."""
        if placement.prefill_endpoint is not None:
            raw = await self._remote_prefill(placement, path, body, headers)
        return await self.client.post(
            f"{self.fleet.url(placement.endpoint)}{path}", data=raw, headers=headers
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
        params = None
        try:
            async with self.client.post(
                url, data=json.dumps(prefill_body).encode(), headers=headers
            ) as answer:
                answer.raise_for_status()
                result = await answer.json(content_type=None)
            params = result.get("kv_transfer_params") if isinstance(result, dict) else None
        except (aiohttp.ClientError, TimeoutError, ValueError) as err:
            kind = "refused" if isinstance(err, _NOT_CONNECTED) else "prefill"
            self._upstream_error(placement.prefill_endpoint, kind)
            if kind == "refused":
                self.fleet.mark_unhealthy(placement.prefill_endpoint)
            log.warning("prefill on %s failed (%r); decode prefills locally", placement.prefill_endpoint, err)
        finally:
            self.router.prefill_done(placement, now=time.monotonic())
        if params is None:
            return json.dumps(body).encode()
        return json.dumps({**body, "kv_transfer_params": params}).encode()

    def _upstream_error(self, endpoint: str, kind: str) -> None:
        self.metrics.upstream_errors.labels(self.settings.pool, endpoint, kind).inc()

    def _release(self, placement: RoutedPlacement) -> None:
        self.router.finished(placement, now=time.monotonic())

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
    declared = request.content_length
    if declared is not None and declared > limit:
        raise BodyTooLarge
    chunks = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _forwarded(headers: Mapping[str, str]) -> dict[str, str]:
    """The client's headers for the engine; the body is JSON (it was parsed) whatever the client said."""
    forwarded = {k: v for k, v in headers.items() if k.lower() not in _HOP_HEADERS}
    if not any(k.lower() == "content-type" for k in forwarded):
        forwarded["Content-Type"] = "application/json"
    return forwarded


def _relayed(headers: Mapping[str, str]) -> CIMultiDict[str]:
    """The engine's headers minus hop-by-hop ones (Content-Length is the response's own to set)."""
    return CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in _HOP_HEADERS)


PROXY = web.AppKey("proxy", Proxy)


def build_app(settings: ProxySettings, *, seed: int = 0, profile: Profile | None = None) -> web.Application:
    """The proxy as an aiohttp app (``app[PROXY]`` is its ``Proxy``); ``profile`` is the loaded
    ``settings.profile``, if any."""
    proxy = Proxy(settings, seed=seed, profile=profile)

    async def lifespan(app: web.Application) -> AsyncIterator[None]:
        await proxy.start()
        yield
        await proxy.stop()

    app = web.Application()
    app[PROXY] = proxy
    app.cleanup_ctx.append(lifespan)
    app.router.add_post("/v1/completions", proxy.completions)
    app.router.add_post("/v1/chat/completions", proxy.chat_completions)
    app.router.add_get("/v1/models", proxy.models)
    app.router.add_get("/health", proxy.health)
    app.router.add_get("/metrics", proxy.prometheus)
    return app


@contextlib.asynccontextmanager
async def serving(
    app: web.Application, *, host: str, port: int, shutdown_timeout_s: float
) -> AsyncIterator[int]:
    """Serve ``app`` on ``host:port`` (0: a free port) and yield the port; on exit stop accepting, give
    in-flight requests up to ``shutdown_timeout_s`` to finish, then run the app's cleanup."""
    runner = web.AppRunner(
        app,
        handler_cancellation=True,
        access_log=None,
        handle_signals=False,
        shutdown_timeout=shutdown_timeout_s,
    )
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


def run(settings: ProxySettings, *, profile: Profile | None) -> None:
    """Serve until SIGTERM or SIGINT, let in-flight requests finish, then end by that signal (as uvicorn
    does, so a supervisor sees why the process ended)."""
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:  # uvloop is optional (it builds on Linux and macOS only)
        runner = asyncio.Runner()
    with runner:
        received = runner.run(_serve_until_signal(settings, profile))
    signal.signal(received, signal.SIG_DFL)
    os.kill(os.getpid(), received)


async def _serve_until_signal(settings: ProxySettings, profile: Profile | None) -> int:
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[int] = loop.create_future()

    def received(sig: int) -> None:
        if not stop.done():
            stop.set_result(sig)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, received, sig)
    app = build_app(settings, profile=profile)
    async with serving(
        app, host=settings.host, port=settings.port, shutdown_timeout_s=settings.shutdown_timeout_s
    ) as port:
        log.info("router listening on %s:%d", settings.host, port)
        signum = await stop
        log.info("signal %s: finishing in-flight requests", signal.Signals(signum).name)
    return signum

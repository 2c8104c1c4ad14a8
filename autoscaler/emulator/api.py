"""vLLM's OpenAI-compatible HTTP surface over a ``RealtimeEngine``.

Routes, as vLLM serves them: ``POST /v1/completions`` and ``/v1/chat/completions`` (streaming as
server-sent events ``data: {json}`` ending with ``data: [DONE]``, or one JSON body), ``GET /v1/models``,
``GET /health`` and ``GET /metrics`` (text format 0.0.4 whatever the ``Accept`` header, names with colons).

Request fields honoured: ``model`` (required; another name answers 404 as vLLM does), ``prompt`` as text or
token ids, ``messages``, ``max_tokens`` (completions default 16, chat default the rest of
``max_model_len``, as in vLLM), ``max_completion_tokens``, ``stream``, ``stream_options.include_usage``,
``ignore_eos`` and ``kv_transfer_params``. Other sampling fields are accepted and ignored: the output is
filler text and always runs to ``max_tokens`` (finish reason ``length``), since no EOS is ever sampled.
Not emulated (400): ``n`` > 1 and batches of prompts.

P/D follows vLLM's NIXL connector: a request with ``kv_transfer_params.do_remote_decode`` (on a prefill or
both-role replica) gets back ``kv_transfer_params`` naming this engine and the prompt's blocks; one with
``do_remote_prefill`` (decode or both) skips prefill and waits for its KV instead.

A client that disconnects aborts its request in the engine, streaming or not. Errors use OpenAI's body:
``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, TypeVar

import pydantic
from pydantic import BaseModel, ConfigDict, Field
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from autoscaler.emulator import metrics as vm
from autoscaler.emulator import tokens
from autoscaler.emulator.realtime import Generation, RealtimeEngine, RequestError

log = logging.getLogger(__name__)

COMPLETIONS_DEFAULT_MAX_TOKENS = 16  # vLLM's (and OpenAI's) CompletionRequest default


class _StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class _Body(BaseModel):
    model_config = ConfigDict(extra="allow")  # the many sampling fields are accepted, and ignored
    model: str
    stream: bool = False
    stream_options: _StreamOptions | None = None
    ignore_eos: bool = False
    n: Annotated[int, Field(ge=1, le=1)] = 1
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    kv_transfer_params: dict[str, Any] | None = None


class _CompletionBody(_Body):
    prompt: str | list[Annotated[int, Field(ge=0)]]


class _ChatBody(_Body):
    messages: Annotated[list[dict[str, Any]], Field(min_length=1)]
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None


_B = TypeVar("_B", bound=_Body)


def _error(status: int, message: str, *, kind: str = "BadRequestError", param: str | None = None) -> Response:
    body = {"error": {"message": message, "type": kind, "param": param, "code": status}}
    return JSONResponse(body, status_code=status)


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


class OpenAiApi:
    """The route handlers of one emulated replica."""

    def __init__(self, engine: RealtimeEngine) -> None:
        self.engine = engine
        self.model = engine.settings.model
        self.engine_id = str(uuid.uuid4())  # NIXL's ``remote_engine_id``: one per engine instance
        self.created = int(time.time())

    # --- small routes ----------------------------------------------------------------------------------

    async def health(self, request: Request) -> Response:
        return Response(status_code=200)

    async def models(self, request: Request) -> Response:
        card = {
            "id": self.model,
            "object": "model",
            "created": self.created,
            "owned_by": "vllm",
            "root": self.model,
            "parent": None,
            "max_model_len": self.engine.settings.max_model_len,
            "permission": [],
        }
        return JSONResponse({"object": "list", "data": [card]})

    async def metrics(self, request: Request) -> Response:
        text = self.engine.metrics.render(self.engine.gauges())
        return Response(text, media_type=vm.CONTENT_TYPE)

    # --- generation ------------------------------------------------------------------------------------

    async def completions(self, request: Request) -> Response:
        body = await self._parse(request, _CompletionBody)
        if isinstance(body, Response):
            return body
        prompt = tokens.encode(body.prompt) if isinstance(body.prompt, str) else body.prompt
        return await self._generate(request, body, prompt, body.max_tokens or COMPLETIONS_DEFAULT_MAX_TOKENS)

    async def chat(self, request: Request) -> Response:
        body = await self._parse(request, _ChatBody)
        if isinstance(body, Response):
            return body
        prompt = tokens.encode(tokens.render_chat(body.messages))
        limit = body.max_completion_tokens or body.max_tokens
        rest = max(1, self.engine.settings.max_model_len - len(prompt))  # too long: the context error
        return await self._generate(request, body, prompt, limit or rest)

    async def _parse(self, request: Request, model: type[_B]) -> _B | Response:
        try:
            data = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return _error(400, f"malformed JSON body: {exc}")
        if isinstance(data, dict) and "model" not in data:
            return _error(400, "the 'model' field is required", param="model")
        try:
            body = model.model_validate(data)
        except pydantic.ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}" for err in exc.errors()
            )
            return _error(400, problems)
        if body.model != self.model:
            return _error(
                404, f"The model `{body.model}` does not exist.", kind="NotFoundError", param="model"
            )
        return body

    async def _generate(self, request: Request, body: _Body, prompt: list[int], max_tokens: int) -> Response:
        params = body.kv_transfer_params or {}
        role = self.engine.settings.role
        remote_prefill = bool(params.get("do_remote_prefill")) and role.consumes_kv
        hand_off = bool(params.get("do_remote_decode")) and role.produces_kv
        try:
            gen = self.engine.submit(prompt, max_tokens=max_tokens, remote_prefill=remote_prefill)
        except RequestError as exc:
            return _error(400, str(exc))
        chat = isinstance(body, _ChatBody)
        reply = _Reply(
            rid=f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}",
            model=self.model,
            chat=chat,
            gen=gen,
        )
        if body.stream:
            include_usage = body.stream_options is not None and body.stream_options.include_usage
            return StreamingResponse(
                self._stream(reply, include_usage=include_usage), media_type="text/event-stream"
            )
        if not await self._finished_or_gone(request, gen):
            return Response(status_code=499)  # nobody is listening any more
        transfer = self._kv_transfer_params(gen, reply.rid) if hand_off else None
        return JSONResponse(reply.whole(kv_transfer_params=transfer))

    async def _stream(self, reply: _Reply, *, include_usage: bool) -> AsyncIterator[bytes]:
        gen = reply.gen
        try:
            if reply.chat:
                yield _sse(reply.chunk({"role": "assistant", "content": ""}, None, include_usage))
            async for index in gen.tokens():
                finish = "length" if index + 1 == gen.max_tokens else None
                text = tokens.filler(index)
                yield _sse(reply.chunk({"content": text} if reply.chat else text, finish, include_usage))
            if include_usage:
                yield _sse(reply.usage_chunk())
            yield b"data: [DONE]\n\n"
        finally:  # the client went away (the response task is cancelled) or the stream ended
            self.engine.abort(gen)

    async def _finished_or_gone(self, request: Request, gen: Generation) -> bool:
        """Wait for the whole output; False (and the request aborted) if the client disconnects first."""

        async def drain() -> None:
            async for _ in gen.tokens():
                pass

        async def disconnected() -> None:
            while (await request.receive())["type"] != "http.disconnect":
                pass

        done = asyncio.ensure_future(drain())
        gone = asyncio.ensure_future(disconnected())
        try:
            await asyncio.wait((done, gone), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (done, gone):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if gen.finish_reason is None:
            self.engine.abort(gen)
        return gen.finish_reason == "length"

    def _kv_transfer_params(self, gen: Generation, rid: str) -> dict[str, Any]:
        """What vLLM's NIXL connector returns for a prefill done on behalf of a decode replica."""
        blocks = self.engine.num_gpu_blocks
        settings = self.engine.settings
        return {
            "do_remote_prefill": True,
            "do_remote_decode": False,
            "remote_block_ids": [block % blocks for block in gen.seq.block_hashes],
            "remote_engine_id": self.engine_id,
            "remote_request_id": rid,
            "remote_host": settings.host,
            "remote_port": settings.side_channel_port,
            "tp_size": self.engine.profile.tensor_parallel,
        }


class _Reply:
    """The OpenAI response objects of one request, completion or chat."""

    __slots__ = ("chat", "created", "gen", "model", "rid")

    def __init__(self, *, rid: str, model: str, chat: bool, gen: Generation) -> None:
        self.rid = rid
        self.model = model
        self.chat = chat
        self.gen = gen
        self.created = int(time.time())

    def _envelope(self, *, chunk: bool) -> dict[str, Any]:
        kind = "text_completion"
        if self.chat:
            kind = "chat.completion.chunk" if chunk else "chat.completion"
        return {"id": self.rid, "object": kind, "created": self.created, "model": self.model}

    def usage(self) -> dict[str, Any]:
        prompt = self.gen.prompt_tokens
        completion = len(self.gen.token_times)
        return {
            "prompt_tokens": prompt,
            "total_tokens": prompt + completion,
            "completion_tokens": completion,
            "prompt_tokens_details": None,
        }

    def chunk(self, delta: dict[str, Any] | str, finish: str | None, include_usage: bool) -> dict[str, Any]:
        choice: dict[str, Any] = {"index": 0}
        if self.chat:
            choice["delta"] = delta
        else:
            choice["text"] = delta
        choice.update(logprobs=None, finish_reason=finish, stop_reason=None)
        payload = self._envelope(chunk=True) | {"choices": [choice]}
        if include_usage:
            payload["usage"] = None
        return payload

    def usage_chunk(self) -> dict[str, Any]:
        return self._envelope(chunk=True) | {"choices": [], "usage": self.usage()}

    def whole(self, *, kv_transfer_params: dict[str, Any] | None) -> dict[str, Any]:
        text = "".join(tokens.filler(i) for i in range(len(self.gen.token_times)))
        choice: dict[str, Any] = {"index": 0}
        if self.chat:
            choice["message"] = {"role": "assistant", "content": text, "refusal": None, "tool_calls": []}
        else:
            choice["text"] = text
        choice.update(logprobs=None, finish_reason=self.gen.finish_reason, stop_reason=None)
        return self._envelope(chunk=False) | {
            "choices": [choice],
            "usage": self.usage(),
            "prompt_logprobs": None,
            "kv_transfer_params": kv_transfer_params,
        }


def _report_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("the emulated engine stopped", exc_info=task.exception())


def build_app(engine: RealtimeEngine) -> Starlette:
    """The ASGI app; its lifespan runs the engine's clock task."""
    api = OpenAiApi(engine)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        clock = asyncio.create_task(engine.run(), name="emulator-engine")
        clock.add_done_callback(_report_crash)
        try:
            yield
        finally:
            clock.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await clock

    routes = [
        Route("/v1/completions", api.completions, methods=["POST"]),
        Route("/v1/chat/completions", api.chat, methods=["POST"]),
        Route("/v1/models", api.models, methods=["GET"]),
        Route("/health", api.health, methods=["GET"]),
        Route("/metrics", api.metrics, methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)

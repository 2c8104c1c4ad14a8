"""From an OpenAI request body to what the router needs: prompt size, expected output, block hashes.

The body itself is forwarded unchanged; this only reads it. A body the proxy cannot read is the client's
error (``BadRequest``, answered 400 in OpenAI's error shape, 413 for a prompt over the size limit), never a
crash: every number the router counts with is an integer within bounds (``MAX_TOKENS``, ``MAX_N``, token
ids below ``MAX_TOKEN_ID``), and text must be encodable (no lone surrogates such as ``"\ud800"``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from autoscaler.adapters.proxy.settings import Hashing
from autoscaler.routing import hashing

# Far past any model's context, and small enough that max_tokens x n stays well within the router's
# bounds (``routing.router.MAX_REQUEST_TOKENS``).
MAX_TOKENS = 1 << 24
MAX_N = 128  # OpenAI's documented maximum for ``n``
MAX_TOKEN_ID = 1 << 31  # no vocabulary comes near it; a larger id is not a token
OFF_LOOP_BYTES = 256 * 1024  # a body larger than this is parsed and hashed in a worker thread

P = ParamSpec("P")
T = TypeVar("T")


class BadRequest(ValueError):
    """The request body is not a usable OpenAI request; the message says why, ``param`` names the field,
    ``status`` is the answer's HTTP status (400, or 413 for a prompt over the size limit)."""

    def __init__(self, message: str, *, param: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.param = param
        self.status = status


@dataclasses.dataclass(frozen=True, slots=True)
class Prompt:
    text: str  # empty when the prompt is token ids
    token_ids: list[int] | None
    prompt_tokens: int  # exact for token ids, estimated from the text otherwise
    output_tokens: int  # max_tokens (x n), or the configured default


async def off_loop_if_large(size: int, work: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``work(...)``, in a worker thread when the body is over ``OFF_LOOP_BYTES``: parsing and hashing
    megabytes takes long enough to delay every other request and the health checks."""
    if size > OFF_LOOP_BYTES:
        return await asyncio.to_thread(work, *args, **kwargs)
    return work(*args, **kwargs)


def error_body(status: int, message: str, *, kind: str, param: str | None = None) -> dict[str, Any]:
    """OpenAI's error shape, as the proxy and the endpoint picker answer a request they refuse."""
    return {"error": {"message": message, "type": kind, "param": param, "code": status}}


def parse(
    raw: bytes, *, chat: bool, config: Hashing, default_max_tokens: int, max_prompt_tokens: int
) -> tuple[dict[str, Any], Prompt]:
    """The request body as JSON and what ``read`` finds in it; ``BadRequest`` for malformed JSON (nesting
    too deep for the parser included) or an unusable request."""
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as err:
        raise BadRequest(f"malformed JSON: {_first_line(err)}") from None
    prompt = read(body, chat=chat, config=config, default_max_tokens=default_max_tokens)
    if prompt.prompt_tokens > max_prompt_tokens:
        raise BadRequest(
            f"the prompt has {'about ' if prompt.token_ids is None else ''}{prompt.prompt_tokens} tokens,"
            f" over this router's limit of {max_prompt_tokens}",
            param="messages" if chat else "prompt",
            status=413,
        )
    return body, prompt


def read(body: object, *, chat: bool, config: Hashing, default_max_tokens: int) -> Prompt:
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("you must provide a model parameter", param="model")
    text, tokens = _chat_text(body) if chat else _completion_prompt(body)
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError:
            raise BadRequest(
                "the prompt is not valid Unicode (a lone surrogate)", param="messages" if chat else "prompt"
            ) from None
    prompt_tokens = len(tokens) if tokens is not None else math.ceil(len(text) / config.chars_per_token)
    return Prompt(
        text=text,
        token_ids=tokens,
        prompt_tokens=prompt_tokens,
        output_tokens=_output_tokens(body, default_max_tokens),
    )


def tokenize_request(body: dict[str, Any], *, chat: bool) -> dict[str, Any]:
    """The body of vLLM's ``POST /tokenize`` that yields the token ids the engine will prefill."""
    if chat:
        return {"model": body["model"], "messages": body["messages"], "add_generation_prompt": True}
    prompt = body["prompt"]
    return {"model": body["model"], "prompt": prompt if isinstance(prompt, str) else "\n".join(prompt)}


def with_tokens(prompt: Prompt, tokens: list[int]) -> Prompt:
    return dataclasses.replace(prompt, token_ids=tokens, prompt_tokens=len(tokens))


def block_hashes(prompt: Prompt, config: Hashing) -> list[int]:
    if config.mode == "precise":
        if prompt.token_ids is None:
            return []  # vLLM's hashes need token ids; a text prompt is placed on load alone
        return hashing.precise_block_hashes(
            prompt.token_ids, block_tokens=config.block_tokens, algo=config.algo, seed=config.seed
        )
    if prompt.token_ids is not None:
        return hashing.approximate_token_hashes(prompt.token_ids, block_tokens=config.block_tokens)
    chunk = max(1, round(config.block_tokens * config.chars_per_token))
    return hashing.approximate_text_hashes(prompt.text, block_chars=chunk)


def _completion_prompt(body: dict[str, Any]) -> tuple[str, list[int] | None]:
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        return prompt, None
    if isinstance(prompt, list) and prompt:
        if all(map(_is_token, prompt)):
            return "", prompt
        if all(isinstance(p, str) for p in prompt):  # a batch: its first prompt leads the shared prefix
            return "\n".join(prompt), None
        if all(isinstance(p, list) and all(map(_is_token, p)) for p in prompt):
            return "", [t for p in prompt for t in p]
    raise BadRequest(
        f"prompt must be a string, a list of strings or a list of token ids (integers 0..{MAX_TOKEN_ID - 1})",
        param="prompt",
    )


def _is_token(t: object) -> bool:
    return type(t) is int and 0 <= t < MAX_TOKEN_ID  # not a bool, not a float


def _chat_text(body: dict[str, Any]) -> tuple[str, None]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages must be a non-empty list", param="messages")
    parts = []
    for message in messages:
        if not isinstance(message, dict):
            raise BadRequest("each message must be an object", param="messages")
        content = message.get("content")
        if isinstance(content, list):  # content parts: only the text ones shape the prefix
            content = "".join(
                text for p in content if isinstance(p, dict) and isinstance(text := p.get("text"), str)
            )
        role = message.get("role")
        role = role if isinstance(role, str) else ""
        parts.append(f"{role}\n{content if isinstance(content, str) else ''}\n")
    return "".join(parts), None


def _output_tokens(body: dict[str, Any], default: int) -> int:
    """max_tokens (else max_completion_tokens, else ``default``) times n, each an integer within bounds."""
    limit = _bounded_int(body, "max_tokens", low=0, high=MAX_TOKENS)
    completion_limit = _bounded_int(body, "max_completion_tokens", low=0, high=MAX_TOKENS)
    n = _bounded_int(body, "n", low=1, high=MAX_N)
    tokens = limit if limit is not None else completion_limit if completion_limit is not None else default
    return tokens * (n if n is not None else 1)


def _bounded_int(body: dict[str, Any], name: str, *, low: int, high: int) -> int | None:
    """``body[name]`` when an integer in ``low..high``; None when absent or null; else ``BadRequest``."""
    value = body.get(name)
    if value is None:
        return None
    if type(value) is not int or not low <= value <= high:  # a bool or 5.0 is not an integer here
        raise BadRequest(f"{name} must be an integer from {low} to {high}", param=name)
    return value


def _first_line(err: BaseException) -> str:
    return str(err).split("\n", 1)[0][:200]

"""From an OpenAI request body to what the router needs: prompt size, expected output, block hashes.

The body itself is forwarded unchanged; this only reads it. A body the proxy cannot read is the client's
error (``BadRequest``, answered 400 in OpenAI's error shape), never a crash.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from autoscaler.adapters.proxy.settings import Hashing
from autoscaler.routing import hashing


class BadRequest(ValueError):
    """The request body is not a usable OpenAI request; the message says why, ``param`` names the field."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


@dataclasses.dataclass(frozen=True, slots=True)
class Prompt:
    text: str  # empty when the prompt is token ids
    token_ids: list[int] | None
    prompt_tokens: int  # exact for token ids, estimated from the text otherwise
    output_tokens: int  # max_tokens (x n), or the configured default


def read(body: object, *, chat: bool, config: Hashing, default_max_tokens: int) -> Prompt:
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("you must provide a model parameter", param="model")
    text, tokens = _chat_text(body) if chat else _completion_prompt(body)
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
        if all(isinstance(t, int) for t in prompt):
            return "", prompt
        if all(isinstance(p, str) for p in prompt):  # a batch: its first prompt leads the shared prefix
            return "\n".join(prompt), None
        if all(isinstance(p, list) and all(isinstance(t, int) for t in p) for p in prompt):
            return "", [t for p in prompt for t in p]
    raise BadRequest("prompt must be a string, a list of strings or a list of token ids", param="prompt")


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
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        parts.append(f"{message.get('role', '')}\n{content if isinstance(content, str) else ''}\n")
    return "".join(parts), None


def _output_tokens(body: dict[str, Any], default: int) -> int:
    limit = body.get("max_tokens", body.get("max_completion_tokens"))
    n = body.get("n", 1)
    tokens = limit if isinstance(limit, int) and limit > 0 else default
    return tokens * (n if isinstance(n, int) and n > 0 else 1)

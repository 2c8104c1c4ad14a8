"""The OpenAI surface: SSE chunk format, usage, non-streaming bodies, token-id prompts and errors."""

from __future__ import annotations

from autoscaler.emulator import tokens
from tests.emulator.conftest import Start
from tests.emulator.helpers import MODEL, stream

PROMPT = "The quick brown fox jumps over the lazy dog, again and again."


async def test_streamed_completion_is_one_chunk_per_token_then_usage_then_done(start: Start) -> None:
    async with start(speed=20) as emu:
        body = {"model": MODEL, "prompt": PROMPT, "max_tokens": 5, "stream_options": {"include_usage": True}}
        result = await stream(emu.client, "/v1/completions", body)
    assert result.done
    *token_chunks, usage_chunk = result.chunks
    assert len(token_chunks) == 5
    assert {c["object"] for c in result.chunks} == {"text_completion"}
    assert len({c["id"] for c in result.chunks}) == 1 and result.chunks[0]["id"].startswith("cmpl-")
    assert [c["choices"][0]["finish_reason"] for c in token_chunks] == [None] * 4 + ["length"]
    assert "".join(c["choices"][0]["text"] for c in token_chunks) == "".join(
        tokens.filler(i) for i in range(5)
    )
    assert all(c["usage"] is None for c in token_chunks)
    prompt_tokens = len(tokens.encode(PROMPT))
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"] == {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": 5,
        "total_tokens": prompt_tokens + 5,
        "prompt_tokens_details": None,
    }


async def test_streamed_chat_opens_with_the_assistant_role_and_omits_usage_unless_asked(start: Start) -> None:
    async with start(speed=20) as emu:
        body = {"model": MODEL, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 3}
        result = await stream(emu.client, "/v1/chat/completions", body)
    assert result.done
    assert {c["object"] for c in result.chunks} == {"chat.completion.chunk"}
    deltas = [c["choices"][0]["delta"] for c in result.chunks]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert [d["content"] for d in deltas[1:]] == [tokens.filler(i) for i in range(3)]
    assert result.chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert all("usage" not in c for c in result.chunks)


async def test_non_streaming_bodies_carry_the_text_and_usage(start: Start) -> None:
    async with start(speed=20) as emu:
        completion = (
            await emu.client.post(
                "/v1/completions", json={"model": MODEL, "prompt": [5, 6, 7], "max_tokens": 4}
            )
        ).json()
        chat = (
            await emu.client.post(
                "/v1/chat/completions",
                json={
                    "model": MODEL,
                    "messages": [{"role": "user", "content": "hi"}],
                    "max_completion_tokens": 2,
                },
            )
        ).json()
    assert completion["object"] == "text_completion"
    assert completion["choices"][0]["text"] == "".join(tokens.filler(i) for i in range(4))
    assert completion["choices"][0]["finish_reason"] == "length"
    assert completion["usage"]["prompt_tokens"] == 3 and completion["usage"]["completion_tokens"] == 4
    assert completion["kv_transfer_params"] is None
    assert chat["object"] == "chat.completion"
    assert chat["choices"][0]["message"]["role"] == "assistant"
    assert chat["usage"]["completion_tokens"] == 2


async def test_completions_default_to_16_tokens_as_vllm_does(start: Start) -> None:
    async with start(speed=50) as emu:
        reply = (await emu.client.post("/v1/completions", json={"model": MODEL, "prompt": "x"})).json()
    assert reply["usage"]["completion_tokens"] == 16


async def test_models_and_health(start: Start) -> None:
    async with start(max_model_len=4096) as emu:
        models = (await emu.client.get("/v1/models")).json()
        health = await emu.client.get("/health")
    assert models["object"] == "list"
    assert [(m["id"], m["max_model_len"]) for m in models["data"]] == [(MODEL, 4096)]
    assert health.status_code == 200


async def test_bad_requests_answer_openai_style_errors(start: Start) -> None:
    async with start() as emu:
        malformed = await emu.client.post(
            "/v1/completions", content=b"{not json", headers={"content-type": "application/json"}
        )
        no_model = await emu.client.post("/v1/completions", json={"prompt": "hi"})
        wrong_model = await emu.client.post("/v1/completions", json={"model": "other", "prompt": "hi"})
        no_prompt = await emu.client.post("/v1/completions", json={"model": MODEL})
        too_long = await emu.client.post(
            "/v1/completions", json={"model": MODEL, "prompt": [1] * 8000, "max_tokens": 500}
        )
    for response, status in (
        (malformed, 400),
        (no_model, 400),
        (wrong_model, 404),
        (no_prompt, 400),
        (too_long, 400),
    ):
        assert response.status_code == status
        error = response.json()["error"]
        assert error["code"] == status and error["message"] and error["type"]
    assert "maximum context length" in too_long.json()["error"]["message"]


def test_tokenizer_is_deterministic_and_prefix_stable() -> None:
    text = "alpha beta gamma delta"
    assert tokens.encode(text) == tokens.encode(text)
    assert tokens.encode(text + " epsilon")[: len(tokens.encode(text))] == tokens.encode(text)
    assert all(tokens.RESERVED_IDS <= t < tokens.VOCAB_SIZE for t in tokens.encode(text))

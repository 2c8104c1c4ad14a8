"""Measuring a live OpenAI-compatible engine for ``autoscaler profile`` (and the fidelity benchmark).

What is measured, and how (the fit is ``autoscaler.profiles.fitting``):

- **the engine**: ``GET /v1/models`` gives the served model and ``max_model_len``; ``GET /metrics`` gives
  ``vllm:cache_config_info``, whose labels hold ``block_size`` and ``num_gpu_blocks`` (KV capacity =
  their product, summed over the engine's DP ranks);
- **prefill**: single streaming requests, one at a time, at several prompt lengths, ``max_tokens: 1``; the
  time from being scheduled to the first token is the prefill step. Prompts are random token ids,
  different per request, so the prefix cache never hits;
- **decode**: ``batch`` concurrent streaming requests, started together, at several batch sizes and prompt
  lengths; their mean inter-token time is one decode step with ``batch`` sequences and their context.

Timings come from the engine itself when it reports them (vLLM ``--enable-per-request-metrics``: the last
stream chunk carries queue time, scheduled-to-first-token time and mean ITL from engine-core timestamps).
Otherwise the client's clock is used: TTFT as seen over HTTP, and the median gap between stream chunks
while every stream of the batch decodes. The client's view is a fallback: a frontend that cannot keep up
with millisecond steps (vLLM's Python API server on a busy CPU) delivers tokens in bursts.

Requests ask for ``ignore_eos`` (vLLM) so every request runs for exactly ``max_tokens``, and
``skip_special_tokens: false`` so that no token detokenizes to an empty delta (vLLM sends no chunk for an
empty delta, which would merge two gaps). Every request has a timeout; counts are bounded by the plan.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import statistics
import time
from collections.abc import Callable, Sequence

import httpx
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from autoscaler.profiles.fitting import DecodeSample, PrefillSample

__all__ = [
    "CacheConfig",
    "EngineInfo",
    "MeasurePlan",
    "Measurements",
    "ProfilingError",
    "StreamTiming",
    "engine_info",
    "measure",
    "random_prompt",
    "stream_completion",
]

Report = Callable[[str], None]


class ProfilingError(RuntimeError):
    """The endpoint cannot be profiled: unreachable, not vLLM-like, or a request failed."""


@dataclasses.dataclass(frozen=True, slots=True)
class CacheConfig:
    block_size: int
    num_blocks: int  # summed over the engine's DP ranks
    labels: dict[str, str]  # of the first rank, for the provenance text

    @property
    def capacity_tokens(self) -> int:
        return self.block_size * self.num_blocks


@dataclasses.dataclass(frozen=True, slots=True)
class EngineInfo:
    model: str
    max_model_len: int
    cache: CacheConfig


@dataclasses.dataclass(frozen=True, slots=True)
class EngineTiming:
    """vLLM's own per-request timings (``--enable-per-request-metrics``), from engine-core timestamps."""

    queue_s: float  # queued to first scheduled
    prefill_s: float  # first scheduled to first token
    mean_itl_s: float  # (last token - first token) / (tokens - 1); NaN for one token

    @property
    def ttft_s(self) -> float:
        return self.queue_s + self.prefill_s


@dataclasses.dataclass(frozen=True, slots=True)
class StreamTiming:
    """One streamed completion, in ``time.perf_counter`` seconds, as the client saw it."""

    sent_s: float
    token_s: tuple[float, ...]  # arrival of each chunk that carried text
    completion_tokens: int  # from the usage chunk
    engine: EngineTiming | None  # when the server reports per-request metrics

    @property
    def ttft_s(self) -> float:
        return self.token_s[0] - self.sent_s

    @property
    def mean_itl_s(self) -> float:
        """(last token - first token) / (tokens - 1): robust to chunks that carry several tokens."""
        if self.completion_tokens < 2 or len(self.token_s) < 2:
            return float("nan")
        return (self.token_s[-1] - self.token_s[0]) / (self.completion_tokens - 1)


def parse_cache_config(metrics_text: str) -> CacheConfig:
    """``vllm:cache_config_info`` (or ``vllm_``) from a ``/metrics`` text; ``ProfilingError`` if absent."""
    ranks: list[dict[str, str]] = []
    for family in text_string_to_metric_families(metrics_text):
        if family.name in ("vllm:cache_config_info", "vllm_cache_config_info"):
            ranks.extend(dict(sample.labels) for sample in family.samples if sample.name.endswith("_info"))
    usable = [r for r in ranks if r.get("block_size", "").isdigit() and r.get("num_gpu_blocks", "").isdigit()]
    if not usable:
        raise ProfilingError("/metrics has no vllm:cache_config_info with block_size and num_gpu_blocks")
    sizes = {int(r["block_size"]) for r in usable}
    if len(sizes) != 1:
        raise ProfilingError(f"DP ranks disagree on block_size: {sorted(sizes)}")
    return CacheConfig(
        block_size=sizes.pop(), num_blocks=sum(int(r["num_gpu_blocks"]) for r in usable), labels=usable[0]
    )


async def engine_info(client: httpx.AsyncClient, base_url: str) -> EngineInfo:
    try:
        models = (await client.get(f"{base_url}/v1/models")).raise_for_status().json()
        metrics = (await client.get(f"{base_url}/metrics")).raise_for_status().text
    except (httpx.HTTPError, ValueError) as exc:
        raise ProfilingError(f"{base_url}: cannot read /v1/models and /metrics: {exc}") from exc
    data = models.get("data") if isinstance(models, dict) else None
    if not data:
        raise ProfilingError(f"{base_url}/v1/models lists no model")
    first = data[0]
    return EngineInfo(
        model=str(first["id"]),
        max_model_len=int(first.get("max_model_len") or 0),
        cache=parse_cache_config(metrics),
    )


def random_prompt(rng: np.random.Generator, length: int, *, vocab: int) -> list[int]:
    """Token ids drawn uniformly from [10, vocab): fresh prompts, so the prefix cache never hits."""
    return [int(t) for t in rng.integers(10, vocab, size=length)]


async def stream_completion(
    client: httpx.AsyncClient,
    base_url: str,
    *,
    model: str,
    prompt: Sequence[int],
    max_tokens: int,
    timeout_s: float,
) -> StreamTiming:
    """One ``/v1/completions`` request, streamed; when each token arrived. Raises ``ProfilingError``."""
    body = {
        "model": model,
        "prompt": list(prompt),
        "max_tokens": max_tokens,
        "temperature": 0.0,
        "stream": True,
        "stream_options": {"include_usage": True},
        "ignore_eos": True,
        "skip_special_tokens": False,
    }
    tokens: list[float] = []
    completion_tokens = 0
    engine = None
    sent = time.perf_counter()
    try:
        async with (
            asyncio.timeout(timeout_s),
            client.stream("POST", f"{base_url}/v1/completions", json=body) as response,
        ):
            if response.status_code != 200:
                detail = (await response.aread()).decode(errors="replace")[:300]
                raise ProfilingError(f"{base_url}: HTTP {response.status_code}: {detail}")
            async for line in response.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                if any(choice.get("text") for choice in chunk.get("choices") or ()):
                    tokens.append(time.perf_counter())
                usage = chunk.get("usage")
                if usage:
                    completion_tokens = int(usage.get("completion_tokens") or 0)
                    engine = _engine_timing(chunk.get("metrics"))
    except TimeoutError as exc:
        raise ProfilingError(f"{base_url}: no complete answer within {timeout_s:g} s") from exc
    except (httpx.HTTPError, ValueError) as exc:
        raise ProfilingError(f"{base_url}: streaming request failed: {exc}") from exc
    if not tokens:
        raise ProfilingError(f"{base_url}: the answer streamed no token")
    return StreamTiming(
        sent_s=sent, token_s=tuple(tokens), completion_tokens=completion_tokens or len(tokens), engine=engine
    )


def _engine_timing(metrics: object) -> EngineTiming | None:
    if not isinstance(metrics, dict):
        return None
    queue, prefill = metrics.get("queue_time_ms"), metrics.get("time_to_first_token_ms")
    if not isinstance(queue, int | float) or not isinstance(prefill, int | float):
        return None
    itl = metrics.get("mean_itl_ms")
    return EngineTiming(
        queue_s=queue / 1e3,
        prefill_s=prefill / 1e3,
        mean_itl_s=itl / 1e3 if isinstance(itl, int | float) else float("nan"),
    )


@dataclasses.dataclass(frozen=True, slots=True)
class MeasurePlan:
    """How much to measure; every count is bounded, so a profile run takes a known number of requests."""

    prompt_lengths: tuple[int, ...]  # prefill samples
    repeats: int  # requests per prompt length (the median is kept)
    batch_sizes: tuple[int, ...]  # decode samples, each at every decode prompt length
    decode_prompt_lengths: tuple[int, ...]
    decode_tokens: int  # max_tokens of each decode request
    vocab: int  # token ids are drawn below this
    timeout_s: float  # per request
    seed: int = 0

    @property
    def requests(self) -> int:
        prefill = len(self.prompt_lengths) * self.repeats
        return _WARMUP + prefill + sum(self.batch_sizes) * len(self.decode_prompt_lengths)


@dataclasses.dataclass(frozen=True, slots=True)
class Measurements:
    prefill: tuple[PrefillSample, ...]
    decode: tuple[DecodeSample, ...]


# The first and last gaps of a decode run overlap other requests' prefills and finishes; skip them.
_EDGE_GAPS = 2
_WARMUP = 2  # requests before measuring: the first ones pay one-off costs (connections, lazy set-up)


async def measure(
    client: httpx.AsyncClient, base_url: str, *, model: str, plan: MeasurePlan, report: Report
) -> Measurements:
    """Run ``plan`` against the engine, one measurement at a time (see the module docstring)."""
    rng = np.random.default_rng(plan.seed)

    async def one(length: int, max_tokens: int) -> StreamTiming:
        prompt = random_prompt(rng, length, vocab=plan.vocab)
        return await stream_completion(
            client, base_url, model=model, prompt=prompt, max_tokens=max_tokens, timeout_s=plan.timeout_s
        )

    report(f"warming up ({_WARMUP} requests)")
    for _ in range(_WARMUP):
        warm = await one(plan.prompt_lengths[0], 4)
    report(f"timings from the {timing_source(warm)}")

    prefill = []
    for length in plan.prompt_lengths:
        ttfts = [_prefill_seconds(await one(length, 1)) for _ in range(plan.repeats)]
        prefill.append(PrefillSample(new_tokens=length, seconds=statistics.median(ttfts)))
        report(f"prefill  {length:>6} tokens: TTFT median {statistics.median(ttfts) * 1e3:8.2f} ms")

    decode = []
    for length in plan.decode_prompt_lengths:
        for batch in plan.batch_sizes:
            runs = await asyncio.gather(*(one(length, plan.decode_tokens) for _ in range(batch)))
            sample = _decode_sample(runs, batch=batch, prompt=length, tokens=plan.decode_tokens)
            decode.append(sample)
            report(
                f"decode   batch {batch:>3}, prompt {length:>5}: step median {sample.seconds * 1e3:8.2f} ms "
                f"(context {sample.context:.0f} tokens)"
            )
    return Measurements(prefill=tuple(prefill), decode=tuple(decode))


def timing_source(run: StreamTiming) -> str:
    return "engine (vLLM per-request metrics)" if run.engine is not None else "client (stream arrival times)"


def _prefill_seconds(run: StreamTiming) -> float:
    """The engine's own scheduled-to-first-token time when it reports one, else the client's TTFT."""
    return run.engine.prefill_s if run.engine is not None else run.ttft_s


def _decode_sample(runs: Sequence[StreamTiming], *, batch: int, prompt: int, tokens: int) -> DecodeSample:
    """One step with ``batch`` sequences: the engine's mean ITL per request, else the client's gaps.

    Client-side gaps are a fallback only: a frontend that cannot keep up with fast steps delivers tokens
    in bursts, and only the gaps while every stream decodes (``_steady_gaps``) say anything about a step.
    """
    itls = [run.engine.mean_itl_s for run in runs if run.engine is not None]
    if len(itls) == len(runs) and all(itl == itl for itl in itls):  # no NaN: each run had >= 2 tokens
        return DecodeSample(
            batch=batch, context=batch * (prompt + tokens / 2), seconds=statistics.median(itls)
        )
    gaps, contexts = _steady_gaps(runs, batch=batch, prompt=prompt)
    if not gaps:
        raise ProfilingError(f"batch {batch} x {prompt} tokens: the streams never decoded together")
    return DecodeSample(batch=batch, context=statistics.median(contexts), seconds=statistics.median(gaps))


def _steady_gaps(runs: Sequence[StreamTiming], *, batch: int, prompt: int) -> tuple[list[float], list[float]]:
    """Inter-token gaps while every run of the batch decodes, and the batch's context at each gap."""
    start = max(run.token_s[0] for run in runs)  # all prefilled
    end = min(run.token_s[-1] for run in runs)  # none finished
    gaps: list[float] = []
    contexts: list[float] = []
    for run in runs:
        times = run.token_s
        for k in range(_EDGE_GAPS, len(times) - _EDGE_GAPS):
            if times[k - 1] >= start and times[k] <= end:
                gaps.append(times[k] - times[k - 1])
                contexts.append(batch * (prompt + k))
    return gaps, contexts

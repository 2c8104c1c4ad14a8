"""The measuring half of ``autoscaler profile``: drive a live engine over HTTP and fit its time model.

Apart from ``cli/profile.py`` so that ``autoscaler profile derive`` (no engine, no HTTP) runs on the base
install; this half needs the ``router`` extra (httpx).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime
import json
import sys

import httpx
import yaml

from autoscaler.adapters import profiling
from autoscaler.config.profiles import models_dir
from autoscaler.profiles.fitting import EngineFacts, fit_time_model, measured_profile
from autoscaler.profiles.schema import Profile


def _fail(code: int, message: str) -> int:
    print(f"autoscaler profile: error: {message}", file=sys.stderr)
    return code


def _say(message: str) -> None:
    print(f"  {message}", flush=True)


def _plan(args: argparse.Namespace, max_model_len: int) -> profiling.MeasurePlan:
    """The requested plan, defaults filled in from the engine's context length and limits."""
    room = max(8, max_model_len - 2) if max_model_len else 2048
    budget = min(room, args.max_num_batched_tokens)  # one prefill chunk per sample
    prompt_lengths = args.prompt_lengths or tuple(
        sorted({max(1, round(budget * f)) for f in (0.03, 0.06, 0.125, 0.25, 0.4, 0.55, 0.75, 0.97)})
    )
    batches = args.batch_sizes or tuple(sorted({min(2**i, args.max_num_seqs) for i in range(8)}))
    decode_room = max(8, room - args.decode_tokens)
    decode_lengths = args.decode_prompt_lengths or tuple(sorted({max(1, decode_room // 8), decode_room}))
    if max_model_len and max(max(prompt_lengths), max(decode_lengths) + args.decode_tokens) > max_model_len:
        raise ValueError(f"prompt plus output lengths exceed the engine's max_model_len {max_model_len}")
    if max(batches) > args.max_num_seqs:
        raise ValueError(f"batch sizes above --max-num-seqs {args.max_num_seqs} would queue, not batch")
    return profiling.MeasurePlan(
        prompt_lengths=prompt_lengths,
        repeats=args.repeats,
        batch_sizes=batches,
        decode_prompt_lengths=decode_lengths,
        decode_tokens=args.decode_tokens,
        vocab=args.vocab,
        timeout_s=args.timeout,
        seed=args.seed,
    )


async def _profile(args: argparse.Namespace) -> tuple[Profile, profiling.Measurements]:
    endpoint = args.endpoint.rstrip("/")
    limits = httpx.Limits(max_connections=args.max_num_seqs + 4)
    async with httpx.AsyncClient(timeout=httpx.Timeout(args.timeout), limits=limits) as client:
        info = await profiling.engine_info(client, endpoint)
        today = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
        source = f"autoscaler profile {endpoint} on {today}"
        kv_bytes, kv_source = _kv_bytes_per_token(args, info.cache, source)
        plan = _plan(args, info.max_model_len)
        print(
            f"profiling {info.model} at {endpoint}: max_model_len {info.max_model_len}, KV "
            f"{info.cache.capacity_tokens} tokens in blocks of {info.cache.block_size}; "
            f"{plan.requests} requests",
            flush=True,
        )
        measurements = await profiling.measure(client, endpoint, model=info.model, plan=plan, report=_say)
    fit = fit_time_model(measurements.prefill, measurements.decode)
    facts = EngineFacts(
        model=args.model_name or info.model,
        accelerator=args.accelerator,
        tensor_parallel=args.tensor_parallel,
        kv_capacity_tokens=info.cache.capacity_tokens,
        block_size=info.cache.block_size,
        kv_bytes_per_token=kv_bytes,
        kv_bytes_source=kv_source,
        max_num_seqs=args.max_num_seqs,
        max_num_batched_tokens=args.max_num_batched_tokens,
        limits_source="engine flag passed to autoscaler profile (not reported on /metrics)",
    )
    notes = (
        f"Measured by autoscaler profile: {len(measurements.prefill)} prefill lengths x {plan.repeats} "
        f"requests (median TTFT), {len(measurements.decode)} decode batches (median inter-token gap). "
        f"Fit rms relative error: prefill {fit.prefill_rms_relative_error:.1%}, "
        f"decode {fit.decode_rms_relative_error:.1%}."
    )
    profile = measured_profile(fit, facts, source=source, startup_s=args.startup_s, notes=notes)
    return profile, measurements


def _kv_bytes_per_token(
    args: argparse.Namespace, cache: profiling.CacheConfig, source: str
) -> tuple[float, str]:
    """Bytes of KV per token: given, or the first DP rank's ``kv_cache_memory_bytes`` over its tokens."""
    if args.kv_bytes_per_token is not None:
        return args.kv_bytes_per_token, "given to autoscaler profile (--kv-bytes-per-token)"
    memory, blocks = cache.labels.get("kv_cache_memory_bytes", ""), cache.labels["num_gpu_blocks"]
    if not memory.isdigit() or int(blocks) == 0:
        raise ValueError("/metrics has no kv_cache_memory_bytes label: pass --kv-bytes-per-token")
    per_token = int(memory) / (int(blocks) * cache.block_size)
    return (
        per_token,
        f"{source}; vllm:cache_config_info kv_cache_memory_bytes / (num_gpu_blocks x block_size)",
    )


def measure(args: argparse.Namespace) -> int:
    """Measure the engine at ``args.endpoint`` (its arguments already checked) and write its profile."""
    try:
        profile, measurements = asyncio.run(_profile(args))
    except ValueError as exc:
        return _fail(2, str(exc))
    except profiling.ProfilingError as exc:
        return _fail(1, str(exc))
    out = args.out or models_dir() / profile.model / f"{profile.accelerator}-tp{profile.tensor_parallel}.yaml"
    out.parent.mkdir(parents=True, exist_ok=True)
    header = f"# {profile.name}, measured by `autoscaler profile --endpoint {args.endpoint}`\n"
    out.write_text(header + yaml.safe_dump(profile.model_dump(mode="json"), sort_keys=False))
    step, prefill, decode = profile.step, profile.prefill, profile.decode
    fitted = (
        f"step {step.base_s.value * 1e3:.3f} ms, prefill +{prefill.per_step_s.value * 1e3:.3f} ms/step + "
        f"{prefill.per_token_s.value * 1e6:.3f} us/token + "
        f"{prefill.per_attention_pair_s.value * 1e9:.4f} ns/pair, "
        f"decode {decode.per_sequence_s.value * 1e6:.2f} us/seq + "
        f"{decode.per_context_token_s.value * 1e9:.3f} ns/context token"
    )
    print(f"fitted: {fitted}\n{profile.notes}\nwrote {out}")
    if args.samples is not None:
        samples = {
            "prefill": [dataclasses.asdict(s) for s in measurements.prefill],
            "decode": [dataclasses.asdict(s) for s in measurements.decode],
        }
        args.samples.write_text(json.dumps(samples, indent=2) + "\n")
        print(f"wrote {args.samples}")
    return 0

"""Measure a live OpenAI-compatible engine (vLLM) and write a performance profile with provenance "measured".

Example:
  autoscaler profile --endpoint http://127.0.0.1:8000 --accelerator cpu --max-num-seqs 4 \\
      --max-num-batched-tokens 1024 --out models/tiny/cpu-tp1.yaml

Measures, one request or one batch at a time (the engine should serve nothing else meanwhile):
  prefill   time to first token of single requests at several prompt lengths;
  decode    inter-token time of concurrent streams at several batch sizes and prompt lengths;
  KV cache  capacity and block size from the vllm:cache_config_info labels on /metrics.
Then fits the shared time model (step.base_s, prefill.per_step_s, prefill.per_token_s,
prefill.per_attention_pair_s, decode.per_sequence_s, decode.per_context_token_s) by non-negative least
squares and writes the profile.
The engine's limits (--max-num-seqs, --max-num-batched-tokens) are not on /metrics: pass the flags the
engine runs with. Exit codes: 0 written, 1 the engine failed or could not be measured, 2 bad input.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime
import json
import sys
from pathlib import Path

import httpx
import yaml

from autoscaler.adapters import profiling
from autoscaler.cli import profile_derive
from autoscaler.config.profiles import models_dir
from autoscaler.profiles.fitting import EngineFacts, fit_time_model, measured_profile
from autoscaler.profiles.schema import Profile


def _lengths(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from exc
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


_MEASURE_REQUIRED = ("endpoint", "accelerator", "max_num_seqs", "max_num_batched_tokens")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    # `autoscaler profile derive ...`: a profile from config.json and a datasheet (no engine to measure).
    actions = parser.add_subparsers(dest="action", metavar="derive")
    derive = actions.add_parser(
        "derive", help="derive a profile from a model's config.json and an accelerator's datasheet"
    )
    derive.description = profile_derive.__doc__
    profile_derive.add_arguments(derive)
    # Measuring a live engine (no action): these four are required then (checked in run).
    parser.add_argument("--endpoint", help="engine base URL, e.g. http://127.0.0.1:8000 (required)")
    parser.add_argument("--accelerator", help="what the engine runs on, e.g. H100-SXM-80GB, cpu (required)")
    parser.add_argument("--tensor-parallel", type=int, default=1, help="TP degree (GPUs per replica)")
    parser.add_argument("--max-num-seqs", type=int, help="the engine's --max-num-seqs (required)")
    parser.add_argument(
        "--max-num-batched-tokens", type=int, help="the engine's token budget per step (required)"
    )
    parser.add_argument(
        "--prompt-lengths", type=_lengths, help="prefill lengths (default: 8 points up to max_model_len)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="requests per prefill length (median kept)")
    parser.add_argument(
        "--batch-sizes", type=_lengths, help="decode batch sizes (default: 1, 2, 4, ... up to --max-num-seqs)"
    )
    parser.add_argument(
        "--decode-prompt-lengths", type=_lengths, help="decode prompt lengths (default: short and long)"
    )
    parser.add_argument("--decode-tokens", type=int, default=32, help="tokens per decode request")
    parser.add_argument("--vocab", type=int, default=500, help="random prompt token ids are drawn below this")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    parser.add_argument(
        "--kv-bytes-per-token", type=float, help="KV bytes per token (default: from vllm:cache_config_info)"
    )
    parser.add_argument("--startup-s", type=float, default=60.0, help="replica start-up time to record")
    parser.add_argument("--model-name", help="model name in the profile (default: the served name)")
    parser.add_argument(
        "--out", type=Path, help="profile file (default: models/<model>/<accelerator>-tp<N>.yaml)"
    )
    parser.add_argument(
        "--samples", type=Path, help="also write the measured samples the fit used (JSON), for diagnosis"
    )
    parser.add_argument("--seed", type=int, default=0)


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


def run(args: argparse.Namespace) -> int:
    if args.action == "derive":
        return profile_derive.run(args)
    missing = [f"--{name.replace('_', '-')}" for name in _MEASURE_REQUIRED if getattr(args, name) is None]
    if missing:
        return _fail(2, f"the following arguments are required: {', '.join(missing)}")
    for name in ("max_num_seqs", "max_num_batched_tokens", "repeats", "decode_tokens", "tensor_parallel"):
        if getattr(args, name) < 1:
            return _fail(2, f"--{name.replace('_', '-')} must be >= 1")
    if args.timeout <= 0 or args.startup_s <= 0:
        return _fail(2, "--timeout and --startup-s must be positive")
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

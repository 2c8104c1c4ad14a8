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
import sys
from pathlib import Path

from autoscaler.cli import profile_derive


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
        from autoscaler.cli import profile_measure  # httpx: the router extra
    except ModuleNotFoundError as exc:
        return _fail(2, f"no module {exc.name!r}; measuring needs pip install 'inference-autoscaler[router]'")
    return profile_measure.measure(args)

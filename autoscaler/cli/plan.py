"""Size prefill and decode replicas for a steady load and latency targets, in one shot.

Example:
  autoscaler plan --profile llama-3.1-8b/h100-tp1 --rate 120 --prompt-tokens 1200 --output-tokens 250 \\
      --ttft-p90 1.0 --itl-p90 0.05 --prefix-hit-rate 0.3

Prints replicas per phase, the predicted TTFT and ITL at the target percentiles, utilisation and the
constraint that set each count. In aggregated mode, "prefill" and "decode" describe the same replica set.
Exit codes: 0 sized, 2 bad input (including an SLO no replica count can meet).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from autoscaler.capacity import plan as planning
from autoscaler.capacity.load import LIMITS, Load
from autoscaler.config.profiles import ProfileError, load_profile
from autoscaler.core.phases import ServingMode
from autoscaler.core.slo import LatencyTarget, Slo

PERCENTILES = (50, 90, 95, 99)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--profile", required=True, help="profile file, or a name under models/ (e.g. llama-3.1-8b/h100-tp1)"
    )
    parser.add_argument("--rate", type=float, required=True, help="arrival rate, requests per second")
    parser.add_argument("--prompt-tokens", type=float, required=True, help="mean prompt length, tokens")
    parser.add_argument("--output-tokens", type=float, required=True, help="mean output length, tokens")
    parser.add_argument(
        "--prefix-hit-rate", type=float, default=0.0, help="fraction of prompt tokens cached (0-1)"
    )
    parser.add_argument(
        "--prompt-cv", type=float, default=1.0, help="coefficient of variation of prompt lengths"
    )
    parser.add_argument(
        "--arrival-cv", type=float, default=1.0, help="CV of inter-arrival times (1 = Poisson)"
    )
    for name in ("ttft", "itl"):
        group = parser.add_mutually_exclusive_group(required=True)
        for p in PERCENTILES:
            group.add_argument(
                f"--{name}-p{p}", type=float, metavar="SECONDS", help=f"{name.upper()} p{p} target in seconds"
            )
    parser.add_argument(
        "--mode", choices=[m.value for m in ServingMode], default=ServingMode.DISAGGREGATED.value
    )
    parser.add_argument("--min-replicas", type=int, default=1, help="floor per phase (default 1)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def _target(args: argparse.Namespace, name: str) -> LatencyTarget:
    for p in PERCENTILES:
        seconds = getattr(args, f"{name}_p{p}")
        if seconds is not None:
            return LatencyTarget(seconds=seconds, percentile=float(p))
    raise AssertionError("argparse requires one percentile per target")


def _fail(message: str) -> int:
    print(f"autoscaler plan: error: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    try:
        profile = load_profile(args.profile)
        slo = Slo(ttft=_target(args, "ttft"), itl=_target(args, "itl"))
        if not 0.0 <= args.prefix_hit_rate < 1.0:
            raise ValueError(f"--prefix-hit-rate must lie in [0, 1), got {args.prefix_hit_rate}")
        if args.min_replicas < 0:
            raise ValueError(f"--min-replicas must be >= 0, got {args.min_replicas}")
        too_large = LIMITS.problems(
            rate=args.rate, prompt_tokens=args.prompt_tokens, output_tokens=args.output_tokens
        )
        if too_large:
            raise ValueError("; ".join(too_large))
        for flag, cv in (("--prompt-cv", args.prompt_cv), ("--arrival-cv", args.arrival_cv)):
            if not 0.0 <= cv <= LIMITS.max_cv:
                raise ValueError(f"{flag} must lie in [0, {LIMITS.max_cv:g}], got {cv:g}")
        load = Load.of(
            rate=args.rate,
            prompt_tokens=args.prompt_tokens,
            output_tokens=args.output_tokens,
            prefix_hit_rate=args.prefix_hit_rate,
            prompt_cv=args.prompt_cv,
            arrival_cv=args.arrival_cv,
        )
        result = planning.plan(profile, load, slo, ServingMode(args.mode), min_replicas=args.min_replicas)
    except (ProfileError, ValueError) as exc:  # UnattainableSlo is a ValueError
        return _fail(str(exc))
    if args.json:
        print(json.dumps(_as_json(result, slo, profile_name=profile.name), sort_keys=True))
    else:
        print(_as_table(result, slo, header=_header(args, profile.name)))
    return 0


def _header(args: argparse.Namespace, profile_name: str) -> str:
    return (
        f"{profile_name}, {args.mode}: {args.rate:g} req/s, {args.prompt_tokens:g} prompt / "
        f"{args.output_tokens:g} output tokens, {args.prefix_hit_rate:.0%} prefix hits"
    )


def _as_json(result: planning.Plan, slo: Slo, *, profile_name: str) -> dict[str, Any]:
    ttft_key = f"ttft_p{slo.ttft.percentile:g}_s"
    itl_key = f"itl_p{slo.itl.percentile:g}_s"

    def phase(p: planning.PhasePlan) -> dict[str, Any]:
        return {
            "replicas": p.replicas,
            "gpus": p.gpus,
            ttft_key: round(p.ttft_s, 6) if p.ttft_s else None,  # null where the table prints "-"
            itl_key: round(p.itl_s, 6) if p.itl_s else None,
            "utilisation": round(p.utilisation, 4),
            "binding": p.binding,
        }

    return {
        "profile": profile_name,
        "mode": result.mode.value,
        "prefill": phase(result.prefill),
        "decode": phase(result.decode),
        "gpus": result.gpus,
    }


def _as_table(result: planning.Plan, slo: Slo, *, header: str) -> str:
    ttft_col = f"TTFT p{slo.ttft.percentile:g}"
    itl_col = f"ITL p{slo.itl.percentile:g}"
    rows = [("phase", "replicas", "GPUs", ttft_col, itl_col, "utilisation", "binding")]
    for phase, p in result.phases.items():
        rows.append(
            (
                phase.value,
                str(p.replicas),
                str(p.gpus),
                f"{p.ttft_s:.3f} s" if p.ttft_s else "-",
                f"{p.itl_s * 1000:.1f} ms" if p.itl_s else "-",
                f"{p.utilisation:.0%}",
                p.binding,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    targets = (
        f"targets: TTFT p{slo.ttft.percentile:g} <= {slo.ttft.seconds:g} s, "
        f"ITL p{slo.itl.percentile:g} <= {slo.itl.seconds:g} s"
    )
    return "\n".join([header, targets, "", *lines, "", f"total GPUs: {result.gpus}"])

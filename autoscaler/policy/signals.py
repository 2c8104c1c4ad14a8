"""Fail static: decide whether a phase's signals can be acted on, and say why not.

Missing, stale, NaN or contradictory signals hold the current replicas: scaling down on missing data is
how autoscalers take a service down. Zero traffic is not missing data: a rate of 0 is a real signal.
"""

from __future__ import annotations

import math

from autoscaler.capacity.load import LIMITS
from autoscaler.core.decision import Reason
from autoscaler.core.observation import PhaseSignals


def _bad(value: float | None) -> bool:
    return value is not None and not math.isfinite(value)


def problem(signals: PhaseSignals, *, max_age_s: float) -> tuple[Reason, str] | None:
    """``(reason, message)`` when the signals must not drive a change, else None."""
    missing = signals.missing()
    if missing:
        return Reason.HOLD_MISSING_SIGNALS, f"holding: no usable {', '.join(missing)}"
    if not math.isfinite(signals.age_s) or signals.age_s > max_age_s:
        return (
            Reason.HOLD_STALE_SIGNALS,
            f"holding: newest signal is {signals.age_s:.0f}s old (limit {max_age_s:.0f}s)",
        )
    optional = {
        "prefix_hit_rate": signals.prefix_hit_rate,
        "queue_length": signals.queue_length,
        "kv_usage": signals.kv_usage,
        "ttft_observed_s": signals.ttft_observed_s,
        "itl_observed_s": signals.itl_observed_s,
        "prompt_tokens_cv": signals.prompt_tokens_cv,
        "arrival_cv": signals.arrival_cv,
    }
    nan = [name for name, value in optional.items() if _bad(value)]
    if nan:
        return Reason.HOLD_MISSING_SIGNALS, f"holding: {', '.join(nan)} not a number"
    contradictions = _contradictions(signals)
    if contradictions:
        return Reason.HOLD_CONTRADICTORY_SIGNALS, f"holding: {'; '.join(contradictions)}"
    return None


def _contradictions(s: PhaseSignals) -> list[str]:
    found = []
    assert s.arrival_rate is not None
    if s.arrival_rate < 0:
        found.append(f"negative arrival rate {s.arrival_rate:g}")
    means = (s.prompt_tokens_mean, s.output_tokens_mean)
    if s.arrival_rate > 0 and any(m is not None and m < 1 for m in means):
        found.append("requests arrive but token means are below one")
    if s.prefix_hit_rate is not None and not 0.0 <= s.prefix_hit_rate <= 1.0:
        found.append(f"prefix hit rate {s.prefix_hit_rate:g} outside [0, 1]")
    if s.kv_usage is not None and not 0.0 <= s.kv_usage <= 1.05:
        found.append(f"KV use {s.kv_usage:g} outside [0, 1]")
    if s.queue_length is not None and s.queue_length < 0:
        found.append(f"negative queue length {s.queue_length:g}")
    # beyond any real pool: a broken exporter or query, not a load to size for (a mean that is not a number
    # is missing, not too large: ``missing`` already holds on it when the load needs it, and zero traffic
    # does not)
    prompt, output = (m if m is not None and math.isfinite(m) else None for m in means)
    found.extend(LIMITS.problems(rate=s.arrival_rate, prompt_tokens=prompt, output_tokens=output))
    r = s.replicas
    if r.ready > r.current + r.starting:
        found.append(f"{r.ready} ready replicas exceed {r.current} asked for")
    return found

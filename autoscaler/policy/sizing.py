"""What a phase is sized for: the requests that can meet the SLO, with the context the engines report.

- **Infeasible requests.** A prompt whose prefill alone, on an idle replica, takes longer than the TTFT
  target cannot meet it whatever the replica count. Sizing for the SLO's percentile over all requests would
  then ask for replicas without end (up to ``max_replicas``, for nothing); instead the policy sizes for the
  same percentile over the requests that can meet it, and states the share that cannot.
- **Decode context.** The KV a running sequence holds is read from the engines (KV in use over sequences
  running, summed over the snapshots of the last minutes: one snapshot swings with the few long sequences
  in the batch) where they report it over enough sequences to average and it exceeds the model's figure,
  which assumes prompt and output lengths independent (production client mixes are not). A figure below
  the model's is a batch still filling with young sequences, not a smaller steady state.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from autoscaler.capacity import decode, prefill
from autoscaler.capacity.load import Load
from autoscaler.core.observation import PhaseSignals
from autoscaler.core.slo import LatencyTarget, Slo
from autoscaler.profiles.schema import Profile

MIN_RUNNING_FOR_CONTEXT = 4.0
"""Sequences running in the pool, per snapshot on average, below which the engines' KV per running sequence
rests on too few to average over."""

_BISECTION_STEPS = 30


@dataclasses.dataclass(frozen=True, slots=True)
class Feasibility:
    slo: Slo  # the SLO to size prefill for: the TTFT percentile taken over the feasible requests
    infeasible: float  # share of requests whose prefill alone on an idle replica exceeds the TTFT target


def _idle_ttft(profile: Profile, idle: Load, target: LatencyTarget) -> float:
    one = np.asarray(1.0)
    return float(prefill.ttft(profile, idle, one, target, disaggregated=True).ravel()[0])


def feasibility(profile: Profile, load: Load, slo: Slo) -> Feasibility | None:
    """The SLO to size prefill for, or None when even the median request cannot meet the target alone.

    The feasible share ``F`` is the largest prompt-length quantile whose unqueued TTFT meets the target
    (bisection over the quantile; the model's unqueued TTFT grows with it). When ``F`` is below the
    target's quantile ``q``, the ``q``-quantile over the feasible requests is the ``q·F`` quantile overall.
    """
    target = slo.ttft
    idle = load.with_rate(np.zeros_like(load.rate))
    if _idle_ttft(profile, idle, target) <= target.seconds:
        return Feasibility(slo, 0.0)
    if _idle_ttft(profile, idle, dataclasses.replace(target, percentile=50.0)) > target.seconds:
        return None
    low, high = 50.0, target.percentile
    for _ in range(_BISECTION_STEPS):
        middle = (low + high) / 2.0
        if _idle_ttft(profile, idle, dataclasses.replace(target, percentile=middle)) <= target.seconds:
            low = middle
        else:
            high = middle
    feasible = low / 100.0
    sized = dataclasses.replace(target, percentile=target.percentile * feasible)
    return Feasibility(dataclasses.replace(slo, ttft=sized), 1.0 - feasible)


def kv_held(
    signals: PhaseSignals, history: tuple[tuple[float, float, float], ...], *, now: float, window_s: float
) -> tuple[tuple[float, float, float], ...]:
    """The history of ``(time, KV tokens in use, sequences running)`` with the engines' report now, kept
    over ``window_s``."""
    kept = tuple(sample for sample in history if now - sample[0] < window_s and sample[0] < now)
    context, running = signals.kv_tokens_per_running, signals.running_per_replica
    if context is None or running is None or not (math.isfinite(context) and math.isfinite(running)):
        return kept
    sequences = running * signals.replicas.ready
    return (*kept, (now, context * sequences, sequences))


def observed_context(history: tuple[tuple[float, float, float], ...], load: Load) -> float | None:
    """KV tokens per running sequence as the engines reported it over ``history`` (KV summed over running
    sequences summed: each snapshot weighs by its batch), when the batches held enough sequences and it
    exceeds the model's figure. A figure below the model is not trusted: a batch still filling up (after a
    start or a scale-up) holds young sequences whose context has not grown yet."""
    sequences = sum(running for _, _, running in history)
    if sequences < MIN_RUNNING_FOR_CONTEXT * len(history) or sequences <= 0:
        return None
    context = sum(held for _, held, _ in history) / sequences
    if context <= float(decode.context_per_sequence(load)):
        return None
    return context

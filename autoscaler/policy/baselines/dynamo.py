"""Baseline: NVIDIA Dynamo SLA planner, throughput mode (the legacy, published formulas).

Source: peers.md A.2-A.5 (``planner_core.py`` ``_compute_replica_requirements``, ``perf_interpolation.py``,
``defaults.py``) and A.6 for the aggregated mode. Every ``adjustment_interval`` (180 s; the steps between
hold) the planner reads the frontend's mean request rate, ISL, OSL, TTFT and ITL and computes:

- correction factors ``p_cf = TTFT observed / TTFT profiled(ISL)`` and
  ``d_cf = ITL observed / ITL profiled(concurrency per decode engine, ISL + OSL / 2)``, where the
  concurrency is Little's law, ``rate x request duration / decode engines`` (duration ~ TTFT + (OSL - 1) x
  ITL);
- prefill engines ``ceil(rate x ISL x min(1, p_cf) / prefill throughput per GPU(ISL) / GPUs per engine)``;
- decode engines ``ceil(rate x OSL / decode throughput per GPU(ITL target / d_cf, ISL + OSL / 2) / GPUs)``,
  the throughput being the best one the profile offers at that ITL;
- at least ``min_endpoint`` (1) each; over the GPU budget, both are scaled down proportionally
  (``num_p = max(1, round(num_p x budget / total))``, decode takes the remaining GPUs).

"Profiled" throughput is what a Dynamo user gets from the pre-deployment profiler, which sweeps the engine
and stores interpolation tables. Here the tables are read off the shared engine time model
(``autoscaler/profiles/schema.py``), so the planner's beliefs match the engines the simulator runs:

- prefill is profiled one request at a time: ``TTFT(ISL) = Profile.prefill_time(ISL)`` and throughput per
  GPU ``ISL / TTFT(ISL) / GPUs per engine``;
- decode is profiled on a 100-point KV-use grid per context length: at KV use ``x`` the batch is
  ``x x KV capacity / context`` (at least 1, at most ``max_num_seqs``: the profiler's sweep cannot go past
  the engine's batch limit and the interpolator fills beyond it from the nearest point), ITL is
  ``Profile.decode_step_time(batch, context)`` and throughput per GPU ``batch / ITL / GPUs``; the best
  throughput is found scanning from the highest KV use down to the first point whose ITL meets the target
  (as ``find_best_throughput_per_gpu`` does), else the lowest point.

Predictor: ``constant`` (the next interval's load is the last one); the legacy default was ARIMA, whose
forecast on a flat history is the same value and which needs an external library.

Signals: rate, ISL and TTFT come from the prefill phase (or the aggregated one), OSL and ITL from the decode
phase (or the aggregated one). The observation carries TTFT and ITL at the SLO percentile where Dynamo reads
means; that raises both correction factors, which can only add decode replicas (``min(1, p_cf)`` caps
prefill), so it does not handicap the baseline.

Missing data: if any of the five metrics is missing or not finite, or no request arrived (Prometheus then
returns NaN means), the planner skips the adjustment and keeps the replicas; the interval still restarts.
That is the published behaviour behind Dynamo issue #6985 (no scale-down when traffic stops). With no ready
decode engine the decode correction is 1 (the division-by-zero fix of PR #3113).

Aggregated mode (A.6, ``find_best_engine_agg_rps``): one engine does both phases, and its request rate is the
lower of what its prefill and its decode side sustain, so the engine count is the larger of the prefill and
the decode counts computed with the aggregated engine's GPUs.

Known weaknesses kept on purpose: mean-load sizing with no queueing (``min(1, p_cf)`` means TTFT inflation
from queueing never adds prefill engines, issue #10528), a 180 s interval that ignores start-up time, and
no scale-down when traffic stops.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import numpy as np

from autoscaler.core.decision import Decision, PhaseDecision, Reason, direction
from autoscaler.core.observation import Observation, PhaseSignals
from autoscaler.core.phases import Phase
from autoscaler.core.slo import Slo
from autoscaler.policy.baselines.common import bounds_for, finite, hold
from autoscaler.policy.bounds import ReplicaBounds
from autoscaler.profiles.schema import Profile

LEGACY_MAX_GPU_BUDGET = 8  # defaults.py of the legacy planner


@dataclasses.dataclass(frozen=True, slots=True)
class DynamoSettings:
    bounds: Mapping[Phase, ReplicaBounds]  # minimum: min_endpoint (1); maximum: our addition, Dynamo has none
    adjustment_interval_s: float = 180.0
    max_gpu_budget: int | None = LEGACY_MAX_GPU_BUDGET  # None: no budget
    correction: bool = True  # False is ``--no-correction``
    decode_grid_points: int = 100  # the interpolator's resolution

    def __post_init__(self) -> None:
        if any(b.minimum < 1 for b in self.bounds.values()):
            raise ValueError("Dynamo keeps at least min_endpoint = 1 engine per phase")


@dataclasses.dataclass(frozen=True, slots=True)
class DynamoState:
    last_adjustment: float | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class FrontendMetrics:
    """The five means the planner reads from the frontend over one interval."""

    rate: float
    isl: float
    osl: float
    ttft_s: float
    itl_s: float


@dataclasses.dataclass(frozen=True, slots=True)
class Sizing:
    targets: dict[Phase, int]
    message: str
    notes: tuple[str, ...] = ()  # how the GPU budget cut the counts


class DynamoPolicy:
    def __init__(self, *, profile: Profile, slo: Slo, settings: DynamoSettings) -> None:
        self._profile = profile
        self._slo = slo
        self._settings = settings

    @property
    def name(self) -> str:
        return "dynamo"

    def initial_state(self) -> DynamoState:
        return DynamoState()

    def step(
        self, observation: Observation, state: DynamoState, *, now: float
    ) -> tuple[Decision, DynamoState]:
        settings = self._settings
        currents = {phase: s.replicas.current for phase, s in observation.phases.items()}
        if state.last_adjustment is not None and now - state.last_adjustment < settings.adjustment_interval_s:
            wait = settings.adjustment_interval_s - (now - state.last_adjustment)
            return _hold_all(
                observation,
                now,
                currents,
                Reason.HOLD_ADJUSTMENT_INTERVAL,
                f"next adjustment in {wait:.0f} s",
            ), state
        state = DynamoState(last_adjustment=now)
        metrics = _frontend_metrics(observation.phases)
        if metrics is None:
            return _hold_all(
                observation,
                now,
                currents,
                Reason.HOLD_MISSING_SIGNALS,
                "a frontend metric is missing or NaN (no requests): adjustment skipped",
            ), state
        sizing = self._size(observation.phases, metrics)
        decisions = {
            phase: PhaseDecision(
                sizing.targets[phase], current, direction(sizing.targets[phase], current), sizing.message
            )
            for phase, current in currents.items()
        }
        return Decision(observation.pool, now, decisions, sizing.notes), state

    def _size(self, phases: Mapping[Phase, PhaseSignals], m: FrontendMetrics) -> Sizing:
        profile, settings = self._profile, self._settings
        gpus = profile.gpus_per_replica
        context = m.isl + m.osl / 2
        back = Phase.AGGREGATED if Phase.AGGREGATED in phases else Phase.DECODE
        p_cf = m.ttft_s / profile.prefill_time(m.isl) if settings.correction else 1.0
        d_cf = self._decode_correction(m, context, phases[back].replicas.ready)
        prefill_thpt = m.isl / profile.prefill_time(m.isl) / gpus
        num_p = math.ceil(m.rate * m.isl * min(1.0, p_cf) / prefill_thpt / gpus)
        target_itl = self._slo.itl.seconds / d_cf if d_cf > 0 else self._slo.itl.seconds
        num_d = math.ceil(m.rate * m.osl / self._best_decode_throughput_per_gpu(target_itl, context) / gpus)
        message = (
            f"prefill needs {num_p}, decode needs {num_d} (p_cf {p_cf:.2f}, d_cf {d_cf:.2f}, "
            f"rate {m.rate:.2f}/s, ISL {m.isl:.0f}, OSL {m.osl:.0f})"
        )
        budget = settings.max_gpu_budget
        if Phase.AGGREGATED in phases:
            bounds = bounds_for(settings.bounds, Phase.AGGREGATED)
            engines = max(num_p, num_d, bounds.minimum)
            if budget is None or engines * gpus <= budget:
                return Sizing({Phase.AGGREGATED: min(engines, bounds.maximum)}, message)
            engines = max(bounds.minimum, budget // gpus)
            note = f"GPU budget {budget} caps aggregated engines at {engines}"
            return Sizing({Phase.AGGREGATED: min(engines, bounds.maximum)}, message, (note,))
        p_bounds = bounds_for(settings.bounds, Phase.PREFILL)
        d_bounds = bounds_for(settings.bounds, Phase.DECODE)
        num_p, num_d = max(num_p, p_bounds.minimum), max(num_d, d_bounds.minimum)
        notes: tuple[str, ...] = ()
        if budget is not None and (num_p + num_d) * gpus > budget:
            scale = budget / ((num_p + num_d) * gpus)
            num_p = max(p_bounds.minimum, round(num_p * scale))
            num_d = max(d_bounds.minimum, round((budget - num_p * gpus) / gpus))
            notes = (f"GPU budget {budget} scales both phases by {scale:.2f}",)
        targets = {Phase.PREFILL: min(num_p, p_bounds.maximum), Phase.DECODE: min(num_d, d_bounds.maximum)}
        return Sizing(targets, message, notes)

    def _decode_correction(self, m: FrontendMetrics, context: float, decode_engines: int) -> float:
        if not self._settings.correction or decode_engines == 0:
            return 1.0
        duration = m.ttft_s + max(0.0, m.osl - 1) * m.itl_s
        concurrency = m.rate * duration / decode_engines
        return m.itl_s / self._profiled_itl(concurrency, context)

    def _profiled_itl(self, batch: float, context: float) -> float:
        return self._profile.decode_step_time(min(max(batch, 1.0), self._profile.max_num_seqs), context)

    def _best_decode_throughput_per_gpu(self, target_itl: float, context: float) -> float:
        profile = self._profile
        kv_use = np.linspace(0.0, 1.0, self._settings.decode_grid_points)
        batch = np.clip(kv_use * profile.kv_capacity_tokens / context, 1.0, profile.max_num_seqs)
        itl = np.array([profile.decode_step_time(float(b), context) for b in batch])
        throughput = batch / itl / profile.gpus_per_replica
        meets = np.flatnonzero(itl <= target_itl)
        return float(throughput[meets[-1]] if meets.size else throughput[0])


def _frontend_metrics(phases: Mapping[Phase, PhaseSignals]) -> FrontendMetrics | None:
    front = phases.get(Phase.AGGREGATED) or phases.get(Phase.PREFILL)
    back = phases.get(Phase.AGGREGATED) or phases.get(Phase.DECODE)
    if front is None or back is None:
        return None
    values = (
        finite(front.arrival_rate),
        finite(front.prompt_tokens_mean),
        finite(back.output_tokens_mean),
        finite(front.ttft_observed_s),
        finite(back.itl_observed_s),
    )
    rate, isl, osl, ttft, itl = values
    if rate is None or isl is None or osl is None or ttft is None or itl is None:
        return None
    if rate <= 0 or isl <= 0 or osl <= 0:
        return None
    return FrontendMetrics(rate=rate, isl=isl, osl=osl, ttft_s=ttft, itl_s=itl)


def _hold_all(
    observation: Observation, now: float, currents: Mapping[Phase, int], reason: Reason, message: str
) -> Decision:
    phases = {phase: hold(current, reason=reason, message=message) for phase, current in currents.items()}
    return Decision(observation.pool, now, phases)

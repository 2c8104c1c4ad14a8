"""Sizing a pool for a load and an SLO, per phase: the scalar entry point over the vectorised solvers."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from autoscaler.capacity import aggregated, decode, prefill, search
from autoscaler.capacity.load import FloatArray, Load
from autoscaler.capacity.result import PhaseSizing
from autoscaler.core.phases import Phase, ServingMode
from autoscaler.core.slo import Slo
from autoscaler.profiles.schema import Profile


class UnattainableSlo(ValueError):
    """No replica count up to the search's cap meets the SLO (below what an unloaded replica can do, or a
    load beyond the cap)."""


OVERFLOW_IS_INFINITE = np.errstate(over="ignore")
"""The entry points' floating-point rule: a product that overflows is infinite demand, which the solvers
answer as unattainable; it is the answer, not a fault worth a warning."""


@OVERFLOW_IS_INFINITE
def size_pool(profile: Profile, load: Load, slo: Slo, mode: ServingMode) -> dict[Phase, PhaseSizing]:
    """Vectorised sizing of every phase of a pool over a load grid."""
    return {phase: size_phase(profile, load, slo, phase) for phase in mode.phases}


@dataclasses.dataclass(frozen=True, slots=True)
class PhasePlan:
    replicas: int
    gpus: int
    ttft_s: float  # predicted at the SLO percentile (prefill / aggregated)
    itl_s: float  # predicted at the SLO percentile (decode / aggregated)
    utilisation: float
    binding: str  # the constraint that set the replica count


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    mode: ServingMode
    phases: dict[Phase, PhasePlan]

    @property
    def gpus(self) -> int:
        return sum(p.gpus for p in self.phases.values())

    @property
    def prefill(self) -> PhasePlan:
        return self.phases[Phase.AGGREGATED if self.mode is ServingMode.AGGREGATED else Phase.PREFILL]

    @property
    def decode(self) -> PhasePlan:
        return self.phases[Phase.AGGREGATED if self.mode is ServingMode.AGGREGATED else Phase.DECODE]


@OVERFLOW_IS_INFINITE
def plan(profile: Profile, load: Load, slo: Slo, mode: ServingMode, *, min_replicas: int = 1) -> Plan:
    """Replicas per phase for one (scalar) load; raises ``UnattainableSlo`` naming the phase and why."""
    phases: dict[Phase, PhasePlan] = {}
    for phase, sizing in size_pool(profile, load, slo, mode).items():
        needed = float(np.ravel(sizing.replicas)[0])
        if not math.isfinite(needed):
            binding = str(np.ravel(sizing.binding)[0])
            raise UnattainableSlo(_unattainable_message(profile, load, slo, phase, binding))
        replicas = max(min_replicas, int(needed))
        if replicas != needed:  # the minimum, not the load, decides: predict at the replicas we report
            sizing = predict_phase(profile, load, slo, phase, np.full_like(load.rate, float(replicas)))
        phases[phase] = PhasePlan(
            replicas=replicas,
            gpus=replicas * profile.gpus_per_replica,
            ttft_s=float(np.ravel(sizing.ttft_s)[0]),
            itl_s=float(np.ravel(sizing.itl_s)[0]),
            utilisation=float(np.ravel(sizing.utilisation)[0]),
            binding=str(np.ravel(sizing.binding)[0]) if replicas == needed else "min-replicas",
        )
    return Plan(mode=mode, phases=phases)


def _unattainable_message(profile: Profile, load: Load, slo: Slo, phase: Phase, binding: str) -> str:
    if binding == "replica-cap":
        return f"{phase.value}: this load needs more than {search.MAX_REPLICAS:g} replicas"
    idle = load.with_rate(np.zeros_like(load.rate))
    if phase is Phase.DECODE or (
        phase is Phase.AGGREGATED and decode.max_batches(profile, idle, slo.itl)["itl"][()] < 1
    ):
        floor = float(decode.itl(profile, idle, np.ones_like(idle.rate), slo.itl).ravel()[0])
        return (
            f"{phase.value}: ITL target {slo.itl.seconds:g}s (p{slo.itl.percentile:g}) is below the unloaded "
            f"decode step of {profile.name}, {floor:.4f}s"
        )
    floor = float(
        prefill.ttft(
            profile, idle, np.ones_like(idle.rate), slo.ttft, disaggregated=phase is Phase.PREFILL
        ).ravel()[0]
    )
    return (
        f"{phase.value}: TTFT target {slo.ttft.seconds:g}s (p{slo.ttft.percentile:g}) is below the unloaded "
        f"TTFT of {profile.name} for these prompts, {floor:.3f}s"
    )


@OVERFLOW_IS_INFINITE
def size_phase(
    profile: Profile,
    load: Load,
    slo: Slo,
    phase: Phase,
    *,
    max_utilisation: float = 1.0,
    decode_context: float | None = None,
) -> PhaseSizing:
    """Vectorised sizing of one phase on that phase's own signals (the policy sizes phases separately,
    so a phase whose signals are unusable can hold while the other acts). ``decode_context``: KV tokens per
    running sequence as the engines report it, in place of the model's (decode only)."""
    if phase is Phase.PREFILL:
        return prefill.size(profile, load, slo.ttft, disaggregated=True, max_utilisation=max_utilisation)
    if phase is Phase.DECODE:
        context = None if decode_context is None else np.asarray(decode_context, dtype=np.float64)
        return decode.size(profile, load, slo.itl, max_utilisation=max_utilisation, context=context)
    return aggregated.size(profile, load, slo, max_utilisation=max_utilisation)


@OVERFLOW_IS_INFINITE
def predict_phase(
    profile: Profile,
    load: Load,
    slo: Slo,
    phase: Phase,
    replicas: FloatArray,
    *,
    decode_context: float | None = None,
) -> PhaseSizing:
    """The model's TTFT / ITL predictions for one phase at a given replica count (for calibration)."""
    if phase is Phase.PREFILL:
        ttft = prefill.ttft(profile, load, replicas, slo.ttft, disaggregated=True)
        util = load.rate * prefill.work(profile, load)[0] / np.maximum(replicas, 1.0)
        return PhaseSizing(replicas, ttft, np.zeros_like(ttft), util, np.full(np.shape(ttft), "fixed"))
    if phase is Phase.DECODE:
        context = None if decode_context is None else np.asarray(decode_context, dtype=np.float64)
        itl = decode.itl(profile, load, replicas, slo.itl, context=context)
        cap = np.stack(list(decode.max_batches(profile, load, slo.itl, context=context).values())).min(axis=0)
        util = decode.mean_batch(profile, load, replicas, context=context) / cap
        return PhaseSizing(replicas, np.zeros_like(itl), itl, util, np.full(np.shape(itl), "fixed"))
    return aggregated.predict(profile, load, slo, replicas)

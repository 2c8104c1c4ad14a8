"""Does the simulator agree with the capacity model? The fewest fixed replicas that meet the SLO, both ways.

For a load (Poisson arrivals, a length preset, synthetic prefix hashes) and one phase, the simulator runs
the phase at 1, 2, ... fixed replicas (the other phase generously provisioned, so it never binds) until the
SLO holds over the run after a warm-up: the TTFT percentile for prefill; for decode and aggregated, the ITL
percentile (of per-request mean ITL) and the TTFT one too, since a saturated decode pool keeps its ITL at
``max_num_seqs`` but queues admissions, which shows in TTFT. The capacity model's answer (``plan``) for the
same load, at the prefix hit rate the simulator realised, is compared with it. They agree when within one.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from autoscaler.capacity import plan as planning
from autoscaler.capacity.load import Load
from autoscaler.core.phases import Phase, ServingMode
from autoscaler.core.slo import Slo
from autoscaler.policy.baselines.static import StaticPolicy, StaticSettings
from autoscaler.profiles.schema import Profile
from autoscaler.routing.least_loaded import LeastLoadedPlacer
from autoscaler.sim.driver import RunResult, SimSettings, simulate
from autoscaler.sim.workloads.spec import WorkloadSpec, build_workload
from autoscaler.sim.workloads.trace import Trace

__all__ = ["AgreementPoint", "compare"]

WARM_UP_FRACTION = 0.2


@dataclasses.dataclass(frozen=True, slots=True)
class AgreementPoint:
    mode: ServingMode
    phase: Phase
    rate: float
    model_replicas: int
    sim_replicas: int | None  # None: not met up to the search cap

    @property
    def agrees(self) -> bool:
        return self.sim_replicas is not None and abs(self.sim_replicas - self.model_replicas) <= 1


def _run(
    trace: Trace, profile: Profile, slo: Slo, mode: ServingMode, replicas: dict[Phase, int]
) -> RunResult:
    settings = SimSettings(mode=mode, slo=slo, initial_replicas=replicas, pool="agreement")
    policy = StaticPolicy(StaticSettings(replicas=replicas))
    return simulate(
        trace, profile=profile, policy=policy, placer=LeastLoadedPlacer(), settings=settings, seed=0
    )


def _meets(run: RunResult, slo: Slo, phase: Phase) -> bool:
    """The percentile holds when at least that fraction of requests is within the target."""
    measured = run.arrival_s >= WARM_UP_FRACTION * run.arrival_s[-1]
    ttft_ok = bool(np.mean(run.ttft_s[measured] <= slo.ttft.seconds) >= slo.ttft.quantile)
    itl = run.itl_s[measured]
    itl = itl[~np.isnan(itl) | ~np.isfinite(run.e2e_s[measured])]  # one-token outputs have no ITL
    itl_ok = bool(np.mean(itl <= slo.itl.seconds) >= slo.itl.quantile)
    if phase is Phase.PREFILL:
        return ttft_ok
    return ttft_ok and itl_ok  # a saturated decode pool keeps its ITL but queues admissions: TTFT


def compare(
    profile: Profile,
    slo: Slo,
    *,
    mode: ServingMode,
    rates: list[float],
    duration_s: float,
    lengths: str = "azure-conversation",
    seed: int = 0,
) -> list[AgreementPoint]:
    """One point per (rate, phase of ``mode``)."""
    points = []
    for rate in rates:
        spec = WorkloadSpec.model_validate(
            {
                "kind": "synthetic",
                "name": f"poisson-{rate:g}",
                "duration_s": duration_s,
                "lengths": lengths,
                "arrivals": {"kind": "poisson", "rate": rate},
            }
        )
        trace = build_workload(spec, rng=np.random.default_rng(seed))
        for phase in mode.phases:
            points.append(_point(trace, profile, slo, mode=mode, phase=phase, rate=rate))
    return points


def _point(
    trace: Trace, profile: Profile, slo: Slo, *, mode: ServingMode, phase: Phase, rate: float
) -> AgreementPoint:
    prompt, output = trace.prompt_tokens.astype(float), trace.output_tokens.astype(float)
    model = None
    cap = 0
    found = None
    replicas = 1
    while found is None:
        generous = max(cap, 2 * (model or replicas) + 2)
        counts = {p: (replicas if p is phase else generous) for p in mode.phases}
        run = _run(trace, profile, slo, mode, counts)
        if model is None:
            hit = run.prefix_hit_tokens / run.prefix_query_tokens if run.prefix_query_tokens else 0.0
            load = Load.of(
                rate=rate,
                prompt_tokens=prompt.mean(),
                output_tokens=output.mean(),
                prefix_hit_rate=hit,
                prompt_cv=prompt.std() / prompt.mean(),
                output_cv=output.std() / output.mean(),
            )
            model = planning.plan(profile, load, slo, mode).phases[phase].replicas
            cap = model + 3
        if _meets(run, slo, phase):
            found = replicas
        elif replicas >= cap:
            break
        else:
            replicas += 1
    assert model is not None
    return AgreementPoint(mode=mode, phase=phase, rate=rate, model_replicas=model, sim_replicas=found)

"""A scenario run end to end: build the workload, simulate every policy on it, and compute the oracle.

This is the composition root of the simulator: it turns the parsed ``Scenario`` into a profile, a trace, a
placer and a policy per run, each run with the same seed, so policies differ only by what they decide.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np

from autoscaler.config.profiles import load_profile
from autoscaler.profiles.schema import Profile
from autoscaler.routing.interface import Placer
from autoscaler.routing.least_loaded import LeastLoadedPlacer
from autoscaler.sim import policies
from autoscaler.sim.driver import RunResult, SimSettings, simulate
from autoscaler.sim.oracle import OracleResult, oracle
from autoscaler.sim.scenario import Scenario
from autoscaler.sim.signals import ScrapeSettings
from autoscaler.sim.workloads.spec import build_workload
from autoscaler.sim.workloads.trace import Trace

__all__ = ["Experiment", "build_trace", "run_experiment"]


@dataclasses.dataclass(frozen=True)
class Experiment:
    scenario: Scenario
    profile: Profile
    trace: Trace
    runs: dict[str, RunResult]  # in the order the policies were asked for
    oracle: OracleResult
    oracle_prefix_hit_rate: float


def build_trace(scenario: Scenario, *, base_dir: Path | None, trace_path: Path | None = None) -> Trace:
    """The scenario's workload, or the trace file at ``trace_path`` (then the scenario's transforms apply)."""
    if trace_path is not None:
        spec = scenario.workload.model_copy(
            update={
                "kind": "trace",
                "name": None,
                "path": trace_path,
                "arrivals": None,
                "duration_s": None,
                "format": "auto",
            }
        )
        return build_workload(spec, rng=np.random.default_rng(scenario.seed), base_dir=None)
    return build_workload(scenario.workload, rng=np.random.default_rng(scenario.seed), base_dir=base_dir)


def _placer(scenario: Scenario) -> Placer:
    if scenario.router == "affinity":
        from autoscaler.routing.router import AffinityRouter

        router: Placer = AffinityRouter(seed=scenario.seed)
        return router
    return LeastLoadedPlacer()


def run_experiment(
    scenario: Scenario,
    *,
    trace: Trace,
    progress: Callable[[str, float], None] | None = None,
) -> Experiment:
    """Simulate each of ``scenario.policies`` on ``trace``; ``progress(policy, fraction)`` as they go."""
    profile = load_profile(scenario.profile)
    slo = scenario.slo.build()
    cluster = scenario.cluster
    phases = scenario.mode.phases
    context = policies.PolicyContext(
        profile=profile,
        slo=slo,
        mode=scenario.mode,
        min_replicas={p: cluster.minimum(p) for p in phases},
        max_replicas={p: cluster.maximum(p) for p in phases},
        initial_replicas=dict(cluster.initial_replicas),
        control_interval_s=scenario.control.interval_s,
        gpu_budget=cluster.gpu_budget,
    )
    control = scenario.control
    settings = SimSettings(
        mode=scenario.mode,
        slo=slo,
        initial_replicas=dict(cluster.initial_replicas),
        control_interval_s=control.interval_s,
        scrape=ScrapeSettings(
            scrape_interval_s=control.scrape_interval_s,
            rate_window_s=control.rate_window_s,
            delay_s=control.delay_s,
        ),
        pending_delay_s=cluster.pending_delay_s,
        router_metrics_interval_s=control.router_metrics_interval_s,
        drain_s=scenario.drain_s,
        pool=scenario.name,
    )
    runs: dict[str, RunResult] = {}
    for name in scenario.policies:
        policy = policies.build_policy(name, context)
        report = None if progress is None else _bound(progress, name)
        runs[name] = simulate(
            trace,
            profile=profile,
            policy=policy,
            placer=_placer(scenario),
            settings=settings,
            seed=scenario.seed,
            progress=report,
        )
        if report is not None:
            report(1.0)
    hit_rates = [r.prefix_hit_tokens / r.prefix_query_tokens for r in runs.values() if r.prefix_query_tokens]
    hit_rate = float(np.mean(hit_rates)) if hit_rates else 0.0
    bound = oracle(
        trace,
        profile=profile,
        slo=slo,
        mode=scenario.mode,
        prefix_hit_rate=hit_rate,
        window_s=scenario.oracle_window_s,
        min_replicas=min(cluster.minimum(p) for p in phases),
    )
    return Experiment(
        scenario=scenario,
        profile=profile,
        trace=trace,
        runs=runs,
        oracle=bound,
        oracle_prefix_hit_rate=hit_rate,
    )


def _bound(progress: Callable[[str, float], None], name: str) -> Callable[[float], None]:
    return lambda fraction: progress(name, fraction)

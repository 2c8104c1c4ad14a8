"""A scenario run end to end: build the workload, simulate every policy on it, and compute the oracle.

This is the composition root of the simulator: it turns the parsed ``Scenario`` into a profile, a trace, a
placer and a policy per run, each run with the same seed, so policies differ only by what they decide.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
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

__all__ = ["Experiment", "build_trace", "run_experiment", "run_policy"]


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


def _placer(scenario: Scenario, *, trace: Trace, profile: Profile) -> Placer:
    """The scenario's placer; the affinity router hashes at the trace's block size and reads the profile."""
    if scenario.router == "affinity":
        from autoscaler.routing.router import AffinityRouter
        from autoscaler.routing.settings import RouterSettings, calibrated

        settings = calibrated(RouterSettings(block_tokens=trace.block_tokens), profile)
        router: Placer = AffinityRouter(settings, seed=scenario.seed)
        return router
    return LeastLoadedPlacer()


def run_policy(
    scenario: Scenario, *, trace: Trace, name: str, progress: Callable[[float], None] | None = None
) -> RunResult:
    """One policy's run of the scenario (a module-level function, so a worker process can run it)."""
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
    return simulate(
        trace,
        profile=profile,
        policy=policies.build_policy(name, context),
        placer=_placer(scenario, trace=trace, profile=profile),
        settings=settings,
        seed=scenario.seed,
        progress=progress,
    )


def run_experiment(
    scenario: Scenario,
    *,
    trace: Trace,
    progress: Callable[[str, float], None] | None = None,
    jobs: int = 1,
) -> Experiment:
    """Simulate each of ``scenario.policies`` on ``trace``, in ``jobs`` processes; then the oracle.

    ``progress(policy, fraction)`` follows each run (with ``jobs > 1``, only as each run ends). Runs are
    independent and seeded alike, so the results do not depend on ``jobs``.
    """
    names = scenario.policies
    runs: dict[str, RunResult] = {}
    if jobs <= 1 or len(names) <= 1:
        for name in names:
            report = None if progress is None else _bound(progress, name)
            runs[name] = run_policy(scenario, trace=trace, name=name, progress=report)
            if report is not None:
                report(1.0)
    else:
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else None)
        with ProcessPoolExecutor(max_workers=min(jobs, len(names)), mp_context=context) as pool:
            futures = {pool.submit(run_policy, scenario, trace=trace, name=name): name for name in names}
            for future in as_completed(futures):
                runs[futures[future]] = future.result()
                if progress is not None:
                    progress(futures[future], 1.0)
        runs = {name: runs[name] for name in names}
    profile = load_profile(scenario.profile)
    slo = scenario.slo.build()
    cluster = scenario.cluster
    phases = scenario.mode.phases
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

"""A scenario run end to end: build the workload, simulate every policy on it, and the references.

This is the composition root of the simulator: it turns the parsed ``Scenario`` into a profile, a trace, a
placer and a policy per run, each run with the same seed, so policies differ only by what they decide.

The references every policy is reported against (``References``):
- ``feasibility``: which requests no autoscaler can bring within the SLO, and why;
- ``lower_bound``: the physical floor of replicas per window (the profile's work at full utilisation);
- ``clairvoyant``: a run in the simulator that knows each window's load and starts replicas at once, its
  counts found by simulation (``clairvoyant.py``); it runs beside the policies, in its own process;
- ``clairvoyant_real_startup``: the clairvoyant's counts asked for at the same moments, on the scenario's
  own cluster, where replicas take their real start-up time. It knows each window's load as the window
  begins, no sooner, so it is what a policy that read the load perfectly and at once, and asked for no more
  than needed, would reach: the clairvoyant's attainment less what it owes to starting replicas at once;
- ``model_oracle``: the capacity model's count per window of the true load (feasible requests only), kept
  to show where the model and the simulator part: its ratio to the clairvoyant is the model's error.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import queue
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

import numpy as np

from autoscaler.config.profiles import load_profile
from autoscaler.core.phases import Phase
from autoscaler.policy.interface import ScalingPolicy
from autoscaler.profiles.schema import Profile
from autoscaler.routing.interface import Placer
from autoscaler.routing.least_loaded import LeastLoadedPlacer
from autoscaler.sim import clairvoyant, policies
from autoscaler.sim.driver import RunResult, SimSettings, simulate
from autoscaler.sim.feasibility import Feasibility, feasibility, perfect_cache_tokens
from autoscaler.sim.lower_bound import LowerBound, lower_bound
from autoscaler.sim.oracle import OracleResult, oracle
from autoscaler.sim.scenario import Scenario
from autoscaler.sim.signals import ScrapeSettings
from autoscaler.sim.workloads.spec import build_workload
from autoscaler.sim.workloads.trace import Trace

__all__ = [
    "Experiment",
    "References",
    "build_trace",
    "instant_start",
    "run_clairvoyant_real_startup",
    "run_experiment",
    "run_policy",
]

PROGRESS_POLL_S = 0.2  # how often the parent passes on the workers' progress


@dataclasses.dataclass(frozen=True)
class References:
    """What the policies are judged against (see the module docstring)."""

    feasibility: Feasibility
    lower_bound: LowerBound
    clairvoyant: clairvoyant.ClairvoyantResult
    clairvoyant_real_startup: RunResult
    model_oracle: OracleResult
    model_oracle_prefix_hit_rate: float  # the policies' realised rate, which the model oracle assumes


@dataclasses.dataclass(frozen=True)
class Experiment:
    scenario: Scenario
    profile: Profile
    trace: Trace
    runs: dict[str, RunResult]  # in the order the policies were asked for
    references: References


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


def _run(
    scenario: Scenario,
    *,
    trace: Trace,
    profile: Profile,
    policy: ScalingPolicy[Any],
    initial: dict[Phase, int],
    control_interval_s: float,
    pending_delay_s: float,
    progress: Callable[[float], None] | None = None,
) -> RunResult:
    control = scenario.control
    settings = SimSettings(
        mode=scenario.mode,
        slo=scenario.slo.build(),
        initial_replicas=initial,
        control_interval_s=control_interval_s,
        scrape=ScrapeSettings(
            scrape_interval_s=control.scrape_interval_s,
            rate_window_s=control.rate_window_s,
            delay_s=control.delay_s,
            source=control.signal_source,
        ),
        pending_delay_s=pending_delay_s,
        router_metrics_interval_s=control.router_metrics_interval_s,
        drain_s=scenario.drain_s,
        drain_timeout_s=scenario.cluster.drain_timeout_s,
        client_timeout_s=scenario.client_timeout_s,
        max_model_len=scenario.cluster.max_model_len or profile.limits.max_model_len,
        pool=scenario.name,
        router_queue=scenario.router_queue,
        router_queue_ttl_s=scenario.router_queue_ttl_s,
    )
    return simulate(
        trace,
        profile=profile,
        policy=policy,
        placer=_placer(scenario, trace=trace, profile=profile),
        settings=settings,
        seed=scenario.seed,
        progress=progress,
    )


def run_policy(
    scenario: Scenario, *, trace: Trace, name: str, progress: Callable[[float], None] | None = None
) -> RunResult:
    """One policy's run of the scenario (a module-level function, so a worker process can run it)."""
    profile = load_profile(scenario.profile)
    cluster = scenario.cluster
    phases = scenario.mode.phases
    context = policies.PolicyContext(
        profile=profile,
        slo=scenario.slo.build(),
        mode=scenario.mode,
        min_replicas={p: cluster.minimum(p) for p in phases},
        max_replicas={p: cluster.maximum(p) for p in phases},
        initial_replicas=dict(cluster.initial_replicas),
        control_interval_s=scenario.control.interval_s,
        rate_window_s=scenario.control.rate_window_s,
        counter_source=scenario.control.signal_source,
        gpu_budget=cluster.gpu_budget,
    )
    return _run(
        scenario,
        trace=trace,
        profile=profile,
        policy=policies.build_policy(name, context),
        initial=dict(cluster.initial_replicas),
        control_interval_s=scenario.control.interval_s,
        pending_delay_s=cluster.pending_delay_s,
        progress=progress,
    )


def instant_start(profile: Profile) -> Profile:
    """``profile`` with replicas ready the moment they are asked for (the clairvoyant's cluster)."""
    startup = profile.startup
    zero = startup.mean_s.model_copy(update={"value": 0.0})  # model_copy skips the "positive" check
    return profile.model_copy(
        update={"startup": startup.model_copy(update={"mean_s": zero, "spread_s": zero})}
    )


def run_clairvoyant(
    scenario: Scenario, *, trace: Trace, floor: LowerBound, feasible: Feasibility
) -> clairvoyant.ClairvoyantResult:
    """The clairvoyant's search (clairvoyant.py); its runs share the scenario's seed and router."""
    profile = instant_start(load_profile(scenario.profile))
    windows = floor.windows

    def simulate_schedule(policy: clairvoyant.ScheduledPolicy) -> RunResult:
        return _run(
            scenario,
            trace=trace,
            profile=profile,
            policy=policy,
            initial=policy.initial(),
            control_interval_s=windows.window_s,
            pending_delay_s=0.0,
        )

    return clairvoyant.search(
        windows=windows,
        floor=floor.replicas,
        maximum={p: scenario.cluster.maximum(p) for p in scenario.mode.phases},
        mode=scenario.mode,
        slo=scenario.slo.build(),
        feasible=feasible.feasible,
        simulate=simulate_schedule,
    )


def run_clairvoyant_real_startup(
    scenario: Scenario, *, trace: Trace, schedule: clairvoyant.ScheduledPolicy, window_s: float
) -> RunResult:
    """The clairvoyant's ``schedule`` on the scenario's own cluster: same counts, real start-up times."""
    return _run(
        scenario,
        trace=trace,
        profile=load_profile(scenario.profile),
        policy=schedule,
        initial=schedule.initial(),
        control_interval_s=window_s,
        pending_delay_s=scenario.cluster.pending_delay_s,
    )


def _clairvoyant_references(
    scenario: Scenario, *, trace: Trace, floor: LowerBound, feasible: Feasibility
) -> tuple[clairvoyant.ClairvoyantResult, RunResult]:
    """The clairvoyant's search, then its counts replayed at real start-up (one chain: one worker)."""
    best = run_clairvoyant(scenario, trace=trace, floor=floor, feasible=feasible)
    replay = run_clairvoyant_real_startup(
        scenario, trace=trace, schedule=best.policy, window_s=floor.windows.window_s
    )
    return best, replay


def run_experiment(
    scenario: Scenario,
    *,
    trace: Trace,
    progress: Callable[[str, float], None] | None = None,
    jobs: int = 1,
) -> Experiment:
    """Simulate each of ``scenario.policies`` and the clairvoyant on ``trace``, in ``jobs`` processes.

    ``progress(label, fraction)`` follows each run as it goes (from worker processes too; the clairvoyant's
    search reports only its end). Runs are independent and seeded alike, so the results do not depend on
    ``jobs``.
    """
    profile = load_profile(scenario.profile)
    slo = scenario.slo.build()
    cluster = scenario.cluster
    phases = scenario.mode.phases
    minimum = {p: cluster.minimum(p) for p in phases}
    maximum = {p: cluster.maximum(p) for p in phases}
    cached = perfect_cache_tokens(trace)
    feasible = feasibility(
        trace,
        profile=profile,
        slo=slo,
        mode=scenario.mode,
        cached_tokens=cached,
        max_model_len=scenario.cluster.max_model_len or profile.limits.max_model_len,
    )
    floor = lower_bound(
        trace,
        profile=profile,
        slo=slo,
        mode=scenario.mode,
        cached_tokens=cached,
        min_replicas=minimum,
        max_replicas=maximum,
        window_s=scenario.oracle_window_s,
    )
    names = scenario.policies
    runs: dict[str, RunResult] = {}
    if jobs <= 1:
        for name in names:
            report = None if progress is None else _bound(progress, name)
            runs[name] = run_policy(scenario, trace=trace, name=name, progress=report)
            if report is not None:
                report(1.0)
        best, replay = _clairvoyant_references(scenario, trace=trace, floor=floor, feasible=feasible)
        if progress is not None:
            progress(clairvoyant.NAME, 1.0)
    else:
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else None)
        with (
            context.Manager() as manager,
            ProcessPoolExecutor(max_workers=min(jobs, len(names) + 1), mp_context=context) as pool,
        ):
            reports: queue.Queue[tuple[str, float]] = manager.Queue()
            # The clairvoyant's search is the longest chain of runs: it starts first.
            searching = pool.submit(
                _clairvoyant_references, scenario, trace=trace, floor=floor, feasible=feasible
            )
            futures: dict[Future[Any], str] = {searching: clairvoyant.NAME}
            for name in names:
                futures[pool.submit(_run_reporting, scenario, trace=trace, name=name, reports=reports)] = name
            pending: set[Future[Any]] = set(futures)
            while pending:
                done, pending = wait(pending, timeout=PROGRESS_POLL_S, return_when=FIRST_COMPLETED)
                _relay(reports, progress)
                for future in done:
                    if future is not searching:
                        runs[futures[future]] = future.result()
                    if progress is not None:
                        progress(futures[future], 1.0)
            best, replay = searching.result()
        runs = {name: runs[name] for name in names}
    hit_rates = [r.prefix_hit_tokens / r.prefix_query_tokens for r in runs.values() if r.prefix_query_tokens]
    hit_rate = float(np.mean(hit_rates)) if hit_rates else 0.0
    model = oracle(
        trace,
        profile=profile,
        slo=slo,
        mode=scenario.mode,
        prefix_hit_rate=hit_rate,
        min_replicas=minimum,
        max_replicas=maximum,
        window_s=scenario.oracle_window_s,
        feasible=feasible.feasible,
    )
    references = References(
        feasibility=feasible,
        lower_bound=floor,
        clairvoyant=best,
        clairvoyant_real_startup=replay,
        model_oracle=model,
        model_oracle_prefix_hit_rate=hit_rate,
    )
    return Experiment(scenario=scenario, profile=profile, trace=trace, runs=runs, references=references)


def _bound(progress: Callable[[str, float], None], name: str) -> Callable[[float], None]:
    return lambda fraction: progress(name, fraction)


def _run_reporting(
    scenario: Scenario, *, trace: Trace, name: str, reports: queue.Queue[tuple[str, float]]
) -> RunResult:
    """``run_policy`` in a worker process, its progress sent to the parent in whole percents."""
    sent = -1

    def report(fraction: float) -> None:
        nonlocal sent
        percent = int(100 * fraction)
        if percent != sent:
            sent = percent
            reports.put((name, fraction))

    return run_policy(scenario, trace=trace, name=name, progress=report)


def _relay(reports: queue.Queue[tuple[str, float]], progress: Callable[[str, float], None] | None) -> None:
    """Pass on what the workers reported since the last call."""
    while True:
        try:
            name, fraction = reports.get_nowait()
        except queue.Empty:
            return
        if progress is not None:
            progress(name, fraction)

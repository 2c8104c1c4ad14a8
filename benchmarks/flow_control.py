"""The router's admission queue and scale from zero, measured in the simulator (issue #16's targets).

- ``flash-crowd-10x``: our policy with and without the router queue (``router_queue`` true / false), same
  requests and start-up delays: SLO attainment, GPU-hours, requests abandoned, and the longest time any
  served request took (none may be served after its client's time-out).
- ``idle-then-burst``: GPU-hours while idle (before the first request), requests lost (abandoned or never
  served), the first request's TTFT against the wake (within a poll of the controller's wake watch, 2 s)
  plus the start-up time, and the replicas at the end (back to zero).

``python benchmarks/flow_control.py [--quick] [--seeds N] [--out benchmarks/results/flow_control.json]``;
``--quick`` shortens both workloads (a smoke run; the figures to report come from the full run), ``--seeds``
runs each at its seed and the next ones (workload draws and start-up delays).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from autoscaler.config.profiles import load_profile
from autoscaler.core.phases import Phase
from autoscaler.sim.driver import RunResult
from autoscaler.sim.experiment import build_trace, run_policy
from autoscaler.sim.scenario import Scenario, load_scenario, with_overrides

SIMULATIONS = Path(__file__).resolve().parents[1] / "simulations"


def _quick(scenario: Scenario, duration_s: float, points: list[list[float]]) -> Scenario:
    workload = scenario.workload.model_copy(
        update={
            "duration_s": duration_s,
            "arrivals": scenario.workload.arrivals.model_copy(update={"points": points}),  # type: ignore[union-attr]
        }
    )
    return scenario.model_copy(update={"workload": workload})


def _served_metrics(run: RunResult, scenario: Scenario) -> dict[str, Any]:
    slo = scenario.slo.build()
    served = run.finished
    ok = (
        served
        & (run.ttft_s <= slo.ttft.seconds)
        & ((run.output_tokens <= 1) | (run.itl_s <= slo.itl.seconds))
    )
    return {
        "requests": int(run.ttft_s.size),
        "served": int(served.sum()),
        "slo_attainment": float(ok.mean()),
        "gpu_hours": run.gpu_seconds / 3600.0,
        "abandoned": run.abandoned,
        "rejected": run.rejected,
        "longest_served_e2e_s": float(np.nanmax(run.e2e_s)) if served.any() else math.nan,
        "client_timeout_s": scenario.client_timeout_s,
        "ttft_p90_s": float(np.nanpercentile(run.ttft_s, 90)) if served.any() else math.nan,
    }


def flash_crowd(scenario: Scenario) -> dict[str, Any]:
    trace = build_trace(scenario, base_dir=SIMULATIONS)
    results = {}
    for queued in (True, False):
        variant = scenario.model_copy(update={"router_queue": queued})
        started = time.perf_counter()
        run = run_policy(variant, trace=trace, name="ours")
        results["with_router_queue" if queued else "without_router_queue"] = {
            **_served_metrics(run, variant),
            "wall_s": round(time.perf_counter() - started, 1),
        }
    return results


def idle_then_burst(scenario: Scenario) -> dict[str, Any]:
    trace = build_trace(scenario, base_dir=SIMULATIONS)
    run = run_policy(scenario, trace=trace, name="ours")
    profile = load_profile(scenario.profile)
    first = int(np.argmin(run.arrival_s))
    first_arrival = float(run.arrival_s[first])
    idle_gpu_s = sum(life.seconds(first_arrival) for life in run.lifetimes) * profile.gpus_per_replica
    woken = [life for life in run.lifetimes if life.created >= first_arrival]
    woke_at = min(life.created for life in woken)
    wake_delay = woke_at - first_arrival
    # The first request is served once a serving (decode) replica is ready: without a prefill replica yet,
    # the decode replica prefills it itself.
    ready = min(life.ready_at for life in woken if life.phase is not Phase.PREFILL)
    startup = ready - woke_at
    ttft = float(run.ttft_s[first])
    wake = next(d for d in run.decisions if d.time >= first_arrival)
    return {
        **_served_metrics(run, scenario),
        "lost": int(run.ttft_s.size - run.finished.sum()),
        "gpu_hours_while_idle": idle_gpu_s / 3600.0,
        "first_arrival_s": first_arrival,
        "first_request_ttft_s": ttft,
        # From the first arrival to the controller's wake (within a poll of its wake watch), then the first
        # serving replica's start-up (drawn per replica: 120 +/- 30 s for this profile), then the request.
        "wake_delay_s": wake_delay,
        "startup_of_first_replicas_s": startup,
        "ttft_beyond_wake_and_startup_s": ttft - wake_delay - startup,
        "control_interval_s": scenario.control.interval_s,
        "wake_decision": {
            p.value: f"{pd.replicas} {pd.reason.value}: {pd.message}" for p, pd in wake.phases.items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter workloads (a smoke run)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/flow_control.json"))
    parser.add_argument("--seeds", type=int, default=1, help="each scenario at its seed and the next ones")
    args = parser.parse_args()
    if not 1 <= args.seeds <= 20:
        parser.error("--seeds must be within 1..20")
    crowd = load_scenario(SIMULATIONS / "flash-crowd-10x.yaml")
    idle = load_scenario(SIMULATIONS / "idle-then-burst.yaml")
    if args.quick:
        crowd = _quick(crowd, 600, [[0, 3], [120, 3], [130, 30], [280, 30], [290, 3], [600, 3]])
        idle = _quick(idle, 780, [[0, 0], [599, 0], [600, 2], [780, 2]])
    result = {
        "quick": args.quick,
        "flash_crowd_10x": {
            f"seed {seed}": flash_crowd(with_overrides(crowd, seed=seed))
            for seed in range(crowd.seed, crowd.seed + args.seeds)
        },
        "idle_then_burst": {
            f"seed {seed}": idle_then_burst(with_overrides(idle, seed=seed))
            for seed in range(idle.seed, idle.seed + args.seeds)
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

"""What-if simulation: replay a workload through a simulated cluster with scaling policies in the loop.

Examples:
  autoscaler simulate                                   # the default scenario, every policy side by side
  autoscaler simulate simulations/default.yaml --policy ours,static --out results/
  autoscaler simulate --trace ../traces/conversation_trace.jsonl --seed 7

With no scenario it runs simulations/default.yaml. Beside the policies it prints the references: the
clairvoyant (a simulated run that knows the future load and starts replicas at once), the same counts with
the cluster's real start-up times, the physical lower bound and the model oracle, and how many requests
cannot meet the SLO even alone, and why.
``--trace`` replaces the scenario's workload source by a trace file (Azure CSV or Mooncake JSONL; the
scenario's transforms still apply). Writes DIR/summary.json, DIR/requests/<policy>.csv.gz,
DIR/timeline/<policy>.csv, DIR/decisions/<policy>.jsonl, DIR/replicas.png, DIR/latency_cdf.png and
DIR/report.md.
Exit codes: 0 done, 1 failed while running, 2 bad input.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from autoscaler.config.profiles import ProfileError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "scenario", nargs="?", type=Path, help="scenario YAML (default: simulations/default.yaml)"
    )
    parser.add_argument(
        "--policy",
        help="comma-separated policies to compare (default: the scenario's): ours,static,keda,wva,dynamo",
    )
    parser.add_argument("--trace", type=Path, help="trace file to replay instead of the scenario's workload")
    parser.add_argument("--out", type=Path, default=Path("results"), help="output folder (default: results)")
    parser.add_argument(
        "--seed", type=int, help="seed for the workload and the start-up delays (default: scenario's)"
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=min(
            2, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        ),
        help="policies simulated in parallel processes (default: 2, or 1 on one core); results do not change",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _fail(message: str, status: int = 2) -> int:
    print(f"autoscaler simulate: error: {message}", file=sys.stderr)
    return status


def run(args: argparse.Namespace) -> int:
    from autoscaler.sim.clairvoyant import NAME as CLAIRVOYANT
    from autoscaler.sim.experiment import build_trace, run_experiment
    from autoscaler.sim.outputs import write_outputs
    from autoscaler.sim.policies import UnknownPolicy
    from autoscaler.sim.progress import ProgressBar
    from autoscaler.sim.report import feasibility_note, results_table
    from autoscaler.sim.scenario import ScenarioError, default_scenario_path, load_scenario, with_overrides
    from autoscaler.sim.workloads.loaders import TraceError

    path = args.scenario or default_scenario_path()
    if args.jobs < 1:
        return _fail(f"--jobs must be at least 1, got {args.jobs}")
    try:
        chosen = (
            tuple(name.strip() for name in args.policy.split(",") if name.strip()) if args.policy else None
        )
        scenario = with_overrides(load_scenario(path), policies=chosen, seed=args.seed)
        trace = build_trace(scenario, base_dir=path.parent, trace_path=args.trace)
    except (ScenarioError, TraceError, ProfileError, ValueError, OSError) as exc:
        return _fail(str(exc))
    bar = None if args.quiet else ProgressBar(sys.stderr, labels=(*scenario.policies, CLAIRVOYANT))
    try:
        experiment = run_experiment(scenario, trace=trace, progress=bar, jobs=args.jobs)
    except (UnknownPolicy, ProfileError) as exc:
        return _fail(str(exc))
    finally:
        if bar is not None:
            bar.close()
    try:
        data, messages = write_outputs(experiment, args.out)
    except OSError as exc:
        return _fail(f"cannot write results to {args.out}: {exc}", status=1)
    print(f"{scenario.name}: {len(trace)} requests over {trace.duration_s:.0f} s, {data['profile']}")
    print(results_table(data))
    note = feasibility_note(data)
    if note is not None:
        print(note)
    for message in messages:
        print(message, file=sys.stderr)
    _where(args.out, plotted=(args.out / "replicas.png").is_file())
    return 0


def _where(out: Path, *, plotted: bool) -> None:
    """Where each output went, so nobody has to read the code to find the plots or the decision log."""
    print(f"results in {out}/:")
    print(f"  report     {out / 'report.md'} (the table, what each policy is, the plots)")
    if plotted:
        print(f"  plots      {out / 'replicas.png'}, {out / 'latency_cdf.png'}")
    print(f"  numbers    {out / 'summary.json'}")
    print(f"  decisions  {out / 'decisions'}/<policy>.jsonl (every decision with its reason)")
    print(f"  timeline   {out / 'timeline'}/<policy>.csv (replicas per phase by state, at every scrape)")
    print(f"  requests   {out / 'requests'}/<policy>.csv.gz (one row per request)")

"""Every policy, the clairvoyant and the lower bound across a suite of workloads and seeds.

Scenarios (all in ``simulations/``): the shipped ones (default, aggregated, day-burst, azure-scaled,
mooncake), the three ServeGen hours (production-derived Alibaba client mixes), and synthetic shapes from
the generators (a step, a short spike, a slow ramp, a flash crowd with long prompts, a diurnal day
compressed, heavy-tailed outputs correlated with prompts). Each runs at its own seed and the next ones
(``--seeds N``), every policy and the clairvoyant's search, in ``--jobs`` processes (one scenario-seed each).
``--seed-offset K`` starts K seeds later: a held-out run, at seeds no one has looked at while changing the
policy (the committed results use the scenarios' own seeds; ``--seed-offset 3`` follows on from them).

Trace files are read from ``$AUTOSCALER_TRACES_DIR`` or ``../shared/traces`` beside the checkout (a
scenario's ``traces/...`` path is taken relative to that folder); a scenario whose trace is absent is
skipped, loudly, and listed under ``skipped``.

JSON (sorted keys, 6 significant digits, no timings, so the same code gives the same bytes whatever
``--jobs``): per scenario, ``autoscaler.sim.suite.scenario_entry``: per policy ``slo_attainment``,
``gpu_hours``, ``vs_clairvoyant``, ``vs_lower_bound``, ``dominated_by``; the clairvoyant's attainment,
``clairvoyant_real_startup`` (its counts when replicas take the cluster's start-up time) and the feasible
fraction. The table prints, per scenario and policy, attainment and GPU-hours over the
clairvoyant's, ``*`` where a baseline dominates.

    python benchmarks/policy_suite.py [--quick] [--out FILE] [--seeds N] [--seed-offset K] [--jobs N]
                                      [--only a,b] [--cache DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from autoscaler.sim.experiment import build_trace, run_experiment
from autoscaler.sim.policies import NAMES
from autoscaler.sim.scenario import Scenario, load_scenario, with_overrides
from autoscaler.sim.suite import scenario_entry
from autoscaler.sim.summary import clean, summary

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS_DIR = ROOT / "simulations"
SCENARIOS = (
    "default",
    "aggregated",
    "day-burst",
    "azure-scaled",
    "mooncake",
    "servegen-m-mid",
    "servegen-m-small",
    "servegen-deepseek-r1",
    "step",
    "spike",
    "ramp",
    "flash-crowd-long-prompts",
    "diurnal-day",
    "heavy-tail-correlated",
    "flash-crowd-10x",  # the router's admission queue (issue #16)
    "idle-then-burst",  # scale from zero (issue #16): WVA and Dynamo refuse min_replicas 0, so absent
)
# One of each kind (shipped synthetic, real trace, ServeGen, three shapes), one seed: within 10 minutes.
QUICK = ("day-burst", "mooncake", "servegen-deepseek-r1", "step", "spike", "heavy-tail-correlated")


def traces_dir() -> Path:
    return Path(os.environ.get("AUTOSCALER_TRACES_DIR", ROOT.parent / "shared" / "traces"))


def _with_traces(scenario: Scenario, folder: Path) -> tuple[Scenario, str | None]:
    """The scenario with its ``traces/...`` path under ``folder``; a reason when the file is absent."""
    workload = scenario.workload
    if workload.kind != "trace" or workload.path is None:
        return scenario, None
    parts = workload.path.parts
    relative = Path(*parts[1:]) if parts and parts[0] == "traces" else workload.path
    path = folder / relative
    if not path.is_file():
        return scenario, f"trace {path} absent (set $AUTOSCALER_TRACES_DIR or fetch the public traces)"
    return scenario.model_copy(update={"workload": workload.model_copy(update={"path": path})}), None


def run_unit(name: str, seed: int, folder: str, cache: str | None) -> dict[str, Any]:
    """One scenario at one seed: every policy and the references, as ``summary.json`` holds them (rounded
    alike whether computed or read back from ``cache``, so a resumed suite gives the same bytes)."""
    kept = None if cache is None else Path(cache) / f"{name}-{seed}.json"
    if kept is not None and kept.is_file():
        loaded: dict[str, Any] = json.loads(kept.read_text(encoding="utf-8"))
        return loaded
    scenario, _ = _with_traces(load_scenario(SCENARIOS_DIR / f"{name}.yaml"), Path(folder))
    scenario = with_overrides(scenario, seed=seed)
    trace = build_trace(scenario, base_dir=SCENARIOS_DIR)
    data = summary(run_experiment(scenario, trace=trace, jobs=1))
    data["description"] = scenario.description
    data = clean(data)
    if kept is not None:
        kept.parent.mkdir(parents=True, exist_ok=True)
        kept.write_text(json.dumps(data, sort_keys=True), encoding="utf-8")
    return data


def _cell(policy: dict[str, Any]) -> str:
    ratio = policy["vs_clairvoyant"]
    shown = "-" if ratio is None or not math.isfinite(ratio) else f"{ratio:.2f}x"
    mark = "*" if policy["dominated_by"] else ""
    return f"{100 * policy['slo_attainment']:.1f}% {shown}{mark}"


def table(result: dict[str, Any]) -> str:
    entries = result["scenarios"]
    present = next(iter(entries.values()))["policies"] if entries else {}
    names = [name for name in NAMES if name in present]  # ours first, then the baselines
    header = ["scenario", "feasible", "clairvoyant", "C at start-up", "GPU-h C/floor", *names]
    rows = [header]
    for scenario, entry in entries.items():
        c = entry["clairvoyant"]
        rows.append(
            [
                scenario,
                f"{100 * entry['feasible_fraction']:.1f}%",
                f"{100 * c['slo_attainment']:.1f}%",
                f"{100 * entry['clairvoyant_real_startup']['slo_attainment']:.1f}%",
                f"{c['gpu_hours']:.2f}/{entry['lower_bound']['gpu_hours']:.2f}",
                *(_cell(entry["policies"][n]) if n in entry["policies"] else "-" for n in names),
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append(
        "C at start-up: the clairvoyant's counts when its replicas take the cluster's start-up time; "
        "cells: SLO attainment (mean over seeds), GPU-hours over the clairvoyant's; "
        "* a baseline has attainment >= and GPU-hours <= (dominated_by in the JSON)"
    )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help=f"{len(QUICK)} scenarios, one seed")
    parser.add_argument("--out", default="policy_suite.json")
    parser.add_argument(
        "--seeds", type=int, help="seeds per scenario: its own and the next ones (3; quick 1)"
    )
    parser.add_argument(
        "--seed-offset",
        type=int,
        default=0,
        help="start this many seeds after each scenario's own: held-out seeds (0)",
    )
    parser.add_argument(
        "--jobs", type=int, default=2, help="scenario-seeds simulated in parallel (default 2)"
    )
    parser.add_argument("--only", help="comma-separated scenario names (a subset of the suite's)")
    parser.add_argument(
        "--cache",
        help="folder keeping each scenario-seed's summary: a rerun (same code!) skips the ones there",
    )
    args = parser.parse_args()
    seeds = args.seeds if args.seeds is not None else (1 if args.quick else 3)
    if not 1 <= seeds <= 20 or not 0 <= args.seed_offset <= 1000 or not 1 <= args.jobs <= 64:
        parser.error("--seeds must be in 1..20, --seed-offset in 0..1000 and --jobs in 1..64")
    names = QUICK if args.quick else SCENARIOS
    if args.only:
        wanted = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in SCENARIOS]
        if unknown:
            parser.error(f"unknown scenarios {unknown}; known: {', '.join(SCENARIOS)}")
        names = tuple(n for n in SCENARIOS if n in wanted)
    folder = traces_dir()
    skipped: dict[str, str] = {}
    first_seed: dict[str, int] = {}
    for name in names:
        scenario, absent = _with_traces(load_scenario(SCENARIOS_DIR / f"{name}.yaml"), folder)
        if absent is not None:
            print(f"SKIPPED {name}: {absent}", file=sys.stderr)
            skipped[name] = absent
            continue
        first_seed[name] = scenario.seed + args.seed_offset
    # Every scenario's first seed before any second one: a suite cut short (--cache keeps what finished)
    # has covered every scenario at least once.
    units = [(name, seed + i) for i in range(seeds) for name, seed in first_seed.items()]
    start = time.perf_counter()
    done: dict[tuple[str, int], dict[str, Any]] = {}
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=context) as pool:
        futures = {
            pool.submit(run_unit, name, seed, str(folder), args.cache): (name, seed) for name, seed in units
        }
        for future in as_completed(futures):
            done[futures[future]] = future.result()
            name, seed = futures[future]
            print(f"{name} seed {seed}: done ({len(done)}/{len(units)}, {time.perf_counter() - start:.0f} s)")
    scenarios = {
        name: scenario_entry([done[(n, s)] for n, s in units if n == name])
        for name in names
        if name not in skipped
    }
    result = {
        "quick": args.quick,
        "seed_offset": args.seed_offset,
        "seeds_per_scenario": seeds,
        "scenarios": scenarios,
        "skipped": skipped,
    }
    result = clean(result)
    Path(args.out).write_text(json.dumps(result, sort_keys=True, indent=2) + "\n", encoding="utf-8")
    print(table(result))
    print(f"{len(units)} scenario-seeds in {time.perf_counter() - start:.0f} s; JSON in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

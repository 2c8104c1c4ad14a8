"""How fast the simulator replays requests, with the scaling policy and the placer in the loop.

Workload: the Azure LLM inference conversation trace (19,366 requests over 3,502 s) with synthetic prefix
hashes (so the prefix cache does real work), compressed to 20x its rate (110 req/s): Llama-3.1-8B on H100,
disaggregated, our policy every 30 s, the least-loaded placer (``--router affinity`` for the cache-affinity
router). Without the trace file, a synthetic workload with its length statistics and rate stands in (the
JSON says which).

- ``requests_per_wall_second``: simulated requests per second of wall time (target >= 20,000);
- ``speedup_vs_real_time``: simulated seconds per wall second;
- ``million_requests_seconds`` (not with ``--quick``): wall seconds for 1,000,000 requests, the 20x trace
  tiled in time (target <= 60 s);
- ``peak_rss_mb``: the process's peak resident memory (target: within 2 GB);
- ``affinity_requests_per_wall_second`` (not with ``--quick``, unless ``--router affinity`` already): the
  20x trace with the cache-affinity router placing requests, whose own cost is about half of the total;
- ``requests_per_cpu_second``: the same run per second of this process's CPU time, which other work on a
  shared machine disturbs far less than wall time;
- ``against`` (with ``--against REF``, or ``REF..NEW`` to time revision NEW instead of the working tree):
  the 20x trace timed alternately at this tree and at the git revision REF (each run a fresh process, the
  order swapped every round, ``--rounds`` rounds), so that a change's speed-up is measured on the machine as
  it is at that moment rather than against a figure from another day. ``speedup`` is REF's median wall time
  over this tree's, ``cpu_speedup`` the same in CPU time, and ``same_result`` whether both trees' runs
  ended identically (the same digest of everything a run returns; served count and end time for a
  revision whose benchmark has no digest). ``--against pure`` times this tree with and without
  the compiled build alternately instead (run under ``build_compiled.py --run``, below);
- ``compiled``: whether the hot modules ran compiled: an opt-in mypyc build of the same sources
  (``benchmarks/build_compiled.py``; the package itself always imports its pure-Python modules).

    python benchmarks/sim_speed.py [--quick] [--out FILE] [--trace PATH] [--router least-loaded|affinity]
                                   [--against REF|pure [--rounds N]]
    python benchmarks/build_compiled.py --run benchmarks/sim_speed.py [...]   # after building it once
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from autoscaler.config.profiles import load_profile
from autoscaler.core.phases import Phase, ServingMode
from autoscaler.core.slo import LatencyTarget, Slo
from autoscaler.routing.interface import Placer
from autoscaler.routing.least_loaded import LeastLoadedPlacer
from autoscaler.sim import policies
from autoscaler.sim.driver import RunResult, SimSettings, simulate
from autoscaler.sim.workloads import hashing, transforms
from autoscaler.sim.workloads.curves import Steps
from autoscaler.sim.workloads.generators import curve_arrivals, synthetic_trace
from autoscaler.sim.workloads.lengths import PRESETS
from autoscaler.sim.workloads.loaders import load_trace
from autoscaler.sim.workloads.trace import Trace

REPO = Path(__file__).resolve().parents[1]
AZURE = REPO.parent / "shared" / "traces" / "AzureLLMInferenceTrace_conv.csv"
RATE_SCALE = 20.0
MILLION = 1_000_000
PHASES = (Phase.PREFILL, Phase.DECODE)
PURE = "pure"  # --against pure: this tree without the compiled build


def workload(path: Path, rng: np.random.Generator) -> Trace:
    if path.is_file():
        trace = load_trace(path)
    else:
        arrivals = curve_arrivals(Steps(5.53), duration_s=3502.0, rng=rng)
        trace = synthetic_trace(
            name="synthetic-azure-conversation",
            arrival_s=arrivals,
            preset=PRESETS["azure-conversation"],
            rng=rng,
        )
    trace = hashing.synthesize_hashes(trace, rng=rng)
    return transforms.compress(trace, RATE_SCALE)


def tile(trace: Trace, requests: int) -> Trace:
    """``trace`` repeated back to back until it holds ``requests``; each copy's prefix blocks are its own."""
    copies = -(-requests // len(trace))
    span = trace.duration_s + 1.0
    assert trace.block_offsets is not None and trace.block_hashes is not None
    stride = int(trace.block_hashes.max()) + 1
    blocks = trace.block_hashes.size
    offsets = np.concatenate(
        [trace.block_offsets[:-1] + k * blocks for k in range(copies)] + [[copies * blocks]]
    )
    return Trace(
        name=f"{trace.name}-x{copies}",
        arrival_s=np.concatenate([trace.arrival_s + k * span for k in range(copies)])[:requests],
        prompt_tokens=np.tile(trace.prompt_tokens, copies)[:requests],
        output_tokens=np.tile(trace.output_tokens, copies)[:requests],
        block_offsets=offsets[: requests + 1],
        block_hashes=np.concatenate([trace.block_hashes + k * stride for k in range(copies)])[
            : offsets[requests]
        ],
        block_tokens=trace.block_tokens,
    )


def placer(kind: str, seed: int) -> Placer:
    if kind == "affinity":
        from autoscaler.routing.router import AffinityRouter

        router: Placer = AffinityRouter(seed=seed)
        return router
    return LeastLoadedPlacer()


def run(trace: Trace, *, policy_name: str, router: str) -> dict[str, Any]:
    profile = load_profile("llama-3.1-8b/h100-tp1")
    slo = Slo(ttft=LatencyTarget(1.0), itl=LatencyTarget(0.05))
    mode = ServingMode.DISAGGREGATED
    initial = {Phase.PREFILL: 4, Phase.DECODE: 4}
    context = policies.PolicyContext(
        profile=profile,
        slo=slo,
        mode=mode,
        min_replicas=dict.fromkeys(PHASES, 1),
        max_replicas=dict.fromkeys(PHASES, 64),
        initial_replicas=initial,
        control_interval_s=30.0,
        rate_window_s=60.0,
        counter_source="vllm",
        gpu_budget=None,
    )
    settings = SimSettings(mode=mode, slo=slo, initial_replicas=initial)
    policy = policies.build_policy(policy_name, context)
    gc.collect()
    start, cpu_start = time.perf_counter(), time.process_time()
    result = simulate(
        trace, profile=profile, policy=policy, placer=placer(router, 0), settings=settings, seed=0
    )
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return {
        "requests": len(trace),
        "simulated_s": result.end_s,
        "wall_s": wall,
        "cpu_s": cpu,
        "served": int(result.finished.sum()),
        "digest": _digest(result),
    }


def _digest(result: RunResult) -> str:
    """SHA-256 of what a run returns (per-request latencies, cache hits, decisions, the timeline), so that
    two builds or revisions are compared by their bytes, not only by their end time."""
    digest = hashlib.sha256()
    for array in (result.ttft_s, result.itl_s, result.e2e_s, result.cached_tokens, result.preemptions):
        digest.update(array.tobytes())
    digest.update(result.timeline.time_s.tobytes())
    digest.update(repr((result.end_s, result.gpu_seconds, result.scale_events, result.decisions)).encode())
    return digest.hexdigest()


def against(refs: str, *, rounds: int, trace: Path, router: str) -> dict[str, Any]:
    """Time the 20x trace alternately at two trees (see the docstring)."""
    ref, _, new = refs.partition("..")
    compiled = _compiled()  # "this" runs as this process does, compiled or not
    with tempfile.TemporaryDirectory(prefix="sim-speed-") as tmp:
        this = _archive(new, Path(tmp) / "new") if new else REPO
        trees = {
            "this": (this, compiled),
            ref: (REPO, False) if ref == PURE else (_archive(ref, Path(tmp) / "ref"), False),
        }
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
        for k in range(rounds):
            for name in list(trees) if k % 2 == 0 else list(reversed(trees)):
                tree, with_build = trees[name]
                runs[name].append(_run_tree(tree, trace=trace, router=router, compiled=with_build))
    walls = {name: statistics.median(r["wall_s"] for r in found) for name, found in runs.items()}
    cpus = {name: statistics.median(r["cpu_s"] for r in found) for name, found in runs.items()}
    # Revisions from before ``run`` returned a digest are compared by served count and end time alone.
    ends = {(r["served"], r["simulated_s"], r.get("digest")) for found in runs.values() for r in found}
    if any("digest" not in r for found in runs.values() for r in found):
        ends = {end[:2] for end in ends}
    return {
        "ref": ref,
        "this": (new or "working tree") + (" compiled" if compiled else ""),
        "rounds": rounds,
        "this_wall_s": [round(r["wall_s"], 3) for r in runs["this"]],
        "ref_wall_s": [round(r["wall_s"], 3) for r in runs[ref]],
        "this_cpu_s": [round(r["cpu_s"], 3) for r in runs["this"]],
        "ref_cpu_s": [round(r["cpu_s"], 3) for r in runs[ref]],
        "speedup": round(walls[ref] / walls["this"], 3),
        "cpu_speedup": round(cpus[ref] / cpus["this"], 3),
        "same_result": len(ends) == 1,
    }


def _archive(ref: str, into: Path) -> Path:
    """The tree of git revision ``ref`` of this repository, extracted under ``into``."""
    tar = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", ref], check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        archive.extractall(into, filter="data")
    return into


def _run_tree(tree: Path, *, trace: Path, router: str, compiled: bool) -> dict[str, Any]:
    """One run of the 20x trace by the package and this benchmark as they are in ``tree`` (its hot modules
    from the compiled build if ``compiled``), in a fresh process; the wall and CPU times it measured around
    the simulation alone."""
    code = (  # CPU time taken here, around ``run``, so that revisions whose ``run`` has none compare too
        "import json, sys, time, numpy as np; from pathlib import Path; sys.path.insert(0, 'benchmarks'); "
        + ("import build_compiled; build_compiled.activate(); " if compiled else "")
        + "import sim_speed as b; t = b.workload(Path(sys.argv[1]), np.random.default_rng(0)); "
        "c = time.process_time(); r = b.run(t, policy_name='ours', router=sys.argv[2]); "
        "r['cpu_s'] = time.process_time() - c; print(json.dumps(r))"
    )
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(
        [sys.executable, "-c", code, str(trace), router],
        cwd=tree,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def _compiled() -> bool:
    """Whether this process runs the compiled build's modules (``build_compiled.activate``)."""
    from autoscaler.routing import router

    return not router.__file__.endswith(".py")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="only the 20x trace (under a minute)")
    parser.add_argument("--out", type=Path, help="write the JSON result here")
    parser.add_argument("--trace", type=Path, default=AZURE, help="Azure conversation trace CSV")
    parser.add_argument("--policy", default="ours", choices=policies.NAMES)
    parser.add_argument("--router", default="least-loaded", choices=("least-loaded", "affinity"))
    parser.add_argument(
        "--against",
        metavar="REF[..NEW]",
        help=f"also time revision REF alternately with this tree (or NEW); {PURE!r}: without the build",
    )
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds with --against (1..50)")
    args = parser.parse_args()
    if not 1 <= args.rounds <= 50:
        parser.error("--rounds must be within 1..50")

    trace = workload(args.trace, np.random.default_rng(0))
    runs = [run(trace, policy_name=args.policy, router=args.router) for _ in range(1 if args.quick else 3)]
    best = min(runs, key=lambda r: r["wall_s"])
    result: dict[str, Any] = {
        "workload": f"{trace.name} at {RATE_SCALE:g}x its rate",
        "compiled": _compiled(),
        "policy": args.policy,
        "router": args.router,
        "requests": best["requests"],
        "simulated_s": round(best["simulated_s"], 1),
        "wall_s": round(best["wall_s"], 3),
        "requests_per_wall_second": round(best["requests"] / best["wall_s"]),
        "requests_per_cpu_second": round(best["requests"] / min(r["cpu_s"] for r in runs)),
        "speedup_vs_real_time": round(best["simulated_s"] / best["wall_s"], 1),
    }
    rows = [("20x trace", best)]
    if not args.quick and args.router != "affinity":
        affinity = run(trace, policy_name=args.policy, router="affinity")
        result["affinity_requests_per_wall_second"] = round(affinity["requests"] / affinity["wall_s"])
        rows.append(("  affinity", affinity))
    if not args.quick:
        million = run(tile(trace, MILLION), policy_name=args.policy, router=args.router)
        result["million_requests_seconds"] = round(million["wall_s"], 2)
        result["million_requests_per_wall_second"] = round(MILLION / million["wall_s"])
        rows.append(("1M requests", million))
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    if args.against:
        result["against"] = against(args.against, rounds=args.rounds, trace=args.trace, router=args.router)

    header = ("run", "requests", "simulated s", "wall s", "req/wall s", "x real time")
    print(f"{header[0]:<12} {header[1]:>9} {header[2]:>12} {header[3]:>8} {header[4]:>11} {header[5]:>12}")
    for label, r in rows:
        print(
            f"{label:<12} {r['requests']:>9} {r['simulated_s']:>12.0f} {r['wall_s']:>8.2f} "
            f"{r['requests'] / r['wall_s']:>11.0f} {r['simulated_s'] / r['wall_s']:>12.0f}"
        )
    print(f"peak RSS {result['peak_rss_mb']} MB")
    text = json.dumps(result, sort_keys=True)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()

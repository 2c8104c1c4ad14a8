"""How fast the capacity model sizes (load, SLO) points.

Sizes a grid of random loads and SLOs on Llama-3.1-8B/H100 in both serving modes, vectorised (one call per
mode) and one point at a time through ``plan`` (the path the policy takes each control step), and reports
sizings per second. Target (issue 2): >= 10,000 sizings per second.

    python benchmarks/capacity_speed.py [--quick] [--out FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time

import numpy as np

from autoscaler.capacity import plan as planning
from autoscaler.capacity.load import Load
from autoscaler.config.profiles import load_profile
from autoscaler.core.phases import ServingMode
from autoscaler.core.slo import LatencyTarget, Slo


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer scalar repetitions")
    parser.add_argument("--out", default="capacity_speed.json", help="where to write the JSON result")
    args = parser.parse_args()

    profile = load_profile("llama-3.1-8b/h100-tp1")
    points = 10_000
    rng = np.random.default_rng(0)
    load = Load.of(
        rate=rng.uniform(0.1, 200.0, points),
        prompt_tokens=rng.uniform(200.0, 8_000.0, points),
        output_tokens=rng.uniform(50.0, 800.0, points),
        prefix_hit_rate=rng.uniform(0.0, 0.6, points),
        prompt_cv=rng.uniform(0.3, 1.5, points),
    )
    ttft = rng.uniform(0.5, 5.0)
    itl = rng.uniform(0.03, 0.1)
    slo = Slo(LatencyTarget(ttft), LatencyTarget(itl))

    rows = []
    for mode in ServingMode:
        start = time.perf_counter()
        planning.size_pool(profile, load, slo, mode)
        elapsed = time.perf_counter() - start
        rows.append({"path": f"vectorised {mode.value}", "points": points, "seconds": elapsed})
    scalar_points = 200 if args.quick else 2_000
    for mode in ServingMode:
        start = time.perf_counter()
        for i in range(scalar_points):
            one = Load.of(
                rate=load.rate[i],
                prompt_tokens=load.prompt_tokens[i],
                output_tokens=load.output_tokens[i],
                prefix_hit_rate=load.prefix_hit_rate[i],
                prompt_cv=load.prompt_cv[i],
            )
            with contextlib.suppress(planning.UnattainableSlo):
                planning.plan(profile, one, slo, mode)
        elapsed = time.perf_counter() - start
        rows.append({"path": f"scalar plan() {mode.value}", "points": scalar_points, "seconds": elapsed})
    for row in rows:
        row["sizings_per_second"] = row["points"] / row["seconds"]

    vectorised = [r for r in rows if r["path"].startswith("vectorised")]
    total_points = sum(r["points"] for r in vectorised)
    total_seconds = sum(r["seconds"] for r in vectorised)
    result = {
        "sizings_per_second": total_points / total_seconds,
        "target_sizings_per_second": 10_000,
        "profile": profile.name,
        "rows": rows,
    }
    print(f"{'path':<34}{'points':>8}{'seconds':>10}{'sizings/s':>12}")
    for row in rows:
        print(
            f"{row['path']:<34}{row['points']:>8}{row['seconds']:>10.3f}{row['sizings_per_second']:>12,.0f}"
        )
    print(f"\nsizings_per_second (vectorised): {result['sizings_per_second']:,.0f} (target >= 10,000)")
    with open(args.out, "w") as fh:
        json.dump(result, fh, indent=2, sort_keys=True)


if __name__ == "__main__":
    main()

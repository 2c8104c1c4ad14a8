"""Agreement of the capacity model with the simulator on a grid of loads.

For each (serving mode, arrival rate, phase) the simulator finds the fewest fixed replicas meeting the SLO
(TTFT p90 <= 1 s, ITL p90 <= 30 ms, Llama-3.1-8B on H100, Azure-conversation lengths) and ``autoscaler plan``
gives its answer for the same load; they agree when within one replica. Reports ``agreement_rate`` and the
exact-match rate, with every point in the JSON.

    python benchmarks/model_vs_sim.py [--quick] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import time

from autoscaler.config.profiles import load_profile
from autoscaler.core.phases import ServingMode
from autoscaler.core.slo import LatencyTarget, Slo
from autoscaler.sim.agreement import compare


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a smaller grid and shorter runs")
    parser.add_argument("--out", default="model_vs_sim.json")
    args = parser.parse_args()
    profile = load_profile("llama-3.1-8b/h100-tp1")
    slos = [Slo(LatencyTarget(1.0), LatencyTarget(0.03))]
    if args.quick:
        rates, duration = [20.0, 80.0, 160.0], 90.0
    else:
        rates, duration = [10.0, 30.0, 60.0, 100.0, 150.0, 220.0, 300.0], 240.0
        slos.append(Slo(LatencyTarget(0.5), LatencyTarget(0.05)))
    start = time.perf_counter()
    points = []
    print(f"{'mode':<14}{'SLO ttft/itl':>14}{'rate':>7}  {'phase':<11}{'model':>6}{'sim':>5}  agrees")
    for slo in slos:
        for mode in ServingMode:
            for p in compare(profile, slo, mode=mode, rates=rates, duration_s=duration):
                sim = "-" if p.sim_replicas is None else str(p.sim_replicas)
                label = f"{slo.ttft.seconds:g}s/{slo.itl.seconds * 1000:g}ms"
                row = f"{mode.value:<14}{label:>14}{p.rate:>7g}  {p.phase.value:<11}"
                print(f"{row}{p.model_replicas:>6}{sim:>5}  {p.agrees}")
                points.append(
                    {
                        "mode": mode.value,
                        "ttft_s": slo.ttft.seconds,
                        "itl_s": slo.itl.seconds,
                        "rate": p.rate,
                        "phase": p.phase.value,
                        "model_replicas": p.model_replicas,
                        "sim_replicas": p.sim_replicas,
                        "agrees": p.agrees,
                    }
                )
    agreement = sum(p["agrees"] for p in points) / len(points)
    exact = sum(p["model_replicas"] == p["sim_replicas"] for p in points) / len(points)
    result = {
        "agreement_rate": agreement,
        "exact_rate": exact,
        "points": points,
        "profile": profile.name,
        "seconds": time.perf_counter() - start,
    }
    print(f"\nagreement_rate (within one replica): {agreement:.1%}; exact: {exact:.1%}; {len(points)} points")
    with open(args.out, "w") as fh:
        json.dump(result, fh, indent=2, sort_keys=True)


if __name__ == "__main__":
    main()

"""The workload suite's arithmetic: one scenario's summaries over seeds, reduced to what the suite reports.

Per scenario (means over its seeds): each policy's SLO attainment (over all requests and over the feasible
ones), GPU-hours, their ratio to the clairvoyant's and to the lower bound's mean GPU-hours, and
``dominated_by``: the baselines whose mean attainment is at least the policy's at no more mean GPU-hours
(a policy so dominated is worse on both axes, or no better on either). Beside them the clairvoyant's
measured attainment, the same counts' attainment at the cluster's real start-up times, and the fraction of
requests that can meet the SLO at all.

``benchmarks/policy_suite.py`` runs the scenarios and seeds; this module only reduces their summaries,
so the comparison is tested apart from any run.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["OURS", "Point", "dominated_by", "scenario_entry"]

OURS = "ours"


@dataclasses.dataclass(frozen=True, slots=True)
class Point:
    slo_attainment: float
    gpu_hours: float


def dominated_by(points: Mapping[str, Point], *, baselines: Iterable[str]) -> dict[str, list[str]]:
    """Per policy, the baselines (other than itself) with attainment >= and GPU-hours <= its own, sorted."""
    candidates = sorted(name for name in baselines if name in points)
    return {
        name: [
            other
            for other in candidates
            if other != name
            and points[other].slo_attainment >= point.slo_attainment
            and points[other].gpu_hours <= point.gpu_hours
        ]
        for name, point in points.items()
    }


def _mean(values: Iterable[float | None]) -> float:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan


def _ratio(value: float, reference: float) -> float:
    return value / reference if reference > 0 else math.nan


def scenario_entry(summaries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One scenario's entry from its per-seed ``summary.json`` dicts (same scenario, different seeds)."""
    if not summaries:
        raise ValueError("a scenario entry needs at least one seed's summary")
    refs = [s["references"] for s in summaries]
    clairvoyant_hours = _mean(r["clairvoyant"]["gpu_hours"] for r in refs)
    floor_hours = _mean(r["lower_bound"]["gpu_hours"] for r in refs)
    model_hours = _mean(r["model_oracle"]["gpu_hours"] for r in refs)
    names = list(summaries[0]["policies"])
    policies: dict[str, dict[str, Any]] = {}
    for name in names:
        runs = [s["policies"][name] for s in summaries]
        hours = _mean(m["gpu_hours"] for m in runs)
        policies[name] = {
            "slo_attainment": _mean(m["slo_attainment"] for m in runs),
            "slo_attainment_feasible": _mean(m["slo_attainment_feasible"] for m in runs),
            "gpu_hours": hours,
            "vs_clairvoyant": _ratio(hours, clairvoyant_hours),
            "vs_lower_bound": _ratio(hours, floor_hours),
            "per_seed": {
                str(s["seed"]): {"slo_attainment": m["slo_attainment"], "gpu_hours": m["gpu_hours"]}
                for s, m in zip(summaries, runs, strict=True)
            },
        }
    points = {n: Point(p["slo_attainment"], p["gpu_hours"]) for n, p in policies.items()}
    for name, dominating in dominated_by(points, baselines=[n for n in names if n != OURS]).items():
        policies[name]["dominated_by"] = dominating
    first = summaries[0]
    return {
        "description": first.get("description", ""),
        "mode": first["mode"],
        "slo": first["slo"],
        "seeds": [s["seed"] for s in summaries],
        "requests": _mean(s["trace"]["requests"] for s in summaries),
        "feasible_fraction": _mean(s["feasibility"]["feasible_fraction"] for s in summaries),
        "clairvoyant": {
            "slo_attainment": _mean(r["clairvoyant"]["slo_attainment"] for r in refs),
            "slo_attainment_feasible": _mean(r["clairvoyant"]["slo_attainment_feasible"] for r in refs),
            "gpu_hours": clairvoyant_hours,
            "vs_lower_bound": _ratio(clairvoyant_hours, floor_hours),
            "windows_met": sum(r["clairvoyant"]["windows_met"] for r in refs),
            "windows_judged": sum(r["clairvoyant"]["windows_judged"] for r in refs),
        },
        "clairvoyant_real_startup": {
            "slo_attainment": _mean(r["clairvoyant_real_startup"]["slo_attainment"] for r in refs),
            "slo_attainment_feasible": _mean(
                r["clairvoyant_real_startup"]["slo_attainment_feasible"] for r in refs
            ),
            "gpu_hours": _mean(r["clairvoyant_real_startup"]["gpu_hours"] for r in refs),
        },
        "lower_bound": {"gpu_hours": floor_hours},
        "model_oracle": {
            "gpu_hours": model_hours,
            "vs_clairvoyant": _ratio(model_hours, clairvoyant_hours),
        },
        "policies": policies,
    }

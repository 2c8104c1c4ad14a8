"""The numbers a run is judged by, and ``summary.json``, written so the same seed gives the same bytes.

Per policy: SLO attainment (the fraction of *all* requests that met the TTFT target, the ITL target, both;
a request never served misses both) and ``slo_attainment_feasible`` over the requests that could meet the
SLO at all (``feasibility``), TTFT and ITL percentiles over the served requests, GPU-hours (every replica
until it is gone) and their ratios to the references, scale events.

``references``: the clairvoyant (a measured run: the same metrics as a policy, plus how its search went),
its counts replayed at the cluster's real start-up times (the same metrics), the physical lower bound and
the model oracle (GPU-hours each); ``feasibility``: how many requests no policy can serve within the SLO,
by reason. Floats are rounded to 6 significant digits, NaN becomes ``null``, keys are sorted.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from autoscaler.core.slo import Slo
from autoscaler.sim.driver import RunResult
from autoscaler.sim.experiment import Experiment
from autoscaler.sim.feasibility import Feasibility

__all__ = ["clean", "policy_metrics", "summary", "write_summary"]

_PERCENTILES = (50, 90, 99)


def _percentiles(values: np.ndarray[Any, np.dtype[np.float64]], prefix: str) -> dict[str, float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return {f"{prefix}_p{p}_s": math.nan for p in _PERCENTILES}
    points = np.percentile(finite, _PERCENTILES)
    return {f"{prefix}_p{p}_s": float(v) for p, v in zip(_PERCENTILES, points, strict=True)}


def _ratio(value: float, reference: float) -> float:
    return value / reference if reference > 0 else math.nan


def policy_metrics(
    run: RunResult, *, slo: Slo, feasible: Feasibility, references: dict[str, float]
) -> dict[str, Any]:
    """A run's metrics; ``references`` maps a reference's name to its GPU-hours (``gpu_hours_vs_<name>``)."""
    n = run.ttft_s.size
    served = run.finished
    ttft_ok = served & (run.ttft_s <= slo.ttft.seconds)
    # One-token outputs have no inter-token latency: they meet any ITL target once served.
    itl_ok = served & ((run.output_tokens <= 1) | (run.itl_s <= slo.itl.seconds))
    both = ttft_ok & itl_ok
    mask = feasible.feasible
    gpu_hours = run.gpu_seconds / 3600.0
    query = run.prefix_query_tokens
    metrics: dict[str, Any] = {
        "requests": n,
        "served": int(served.sum()),
        "slo_attainment": float(both.mean()) if n else math.nan,
        "slo_attainment_feasible": float(both[mask].mean()) if mask.any() else math.nan,
        "ttft_attainment": float(ttft_ok.mean()) if n else math.nan,
        "itl_attainment": float(itl_ok.mean()) if n else math.nan,
        "gpu_hours": gpu_hours,
        "scale_events": run.scale_events,
        "preemptions": int(run.preemptions.sum()),
        "rejected": run.rejected,  # refused at arrival: beyond the max model length
        "abandoned": run.abandoned,  # given up by their clients after the client time-out
        "shed": run.shed,  # dropped by the router's queue past its time-to-live (429)
        "prefix_hit_rate": run.prefix_hit_tokens / query if query else 0.0,
    }
    metrics.update({f"gpu_hours_vs_{name}": _ratio(gpu_hours, ref) for name, ref in references.items()})
    metrics.update(_percentiles(run.ttft_s, "ttft"))
    metrics.update(_percentiles(run.itl_s, "itl"))
    return metrics


def summary(experiment: Experiment) -> dict[str, Any]:
    scenario = experiment.scenario
    slo = scenario.slo.build()
    trace = experiment.trace
    refs = experiment.references
    feasible = refs.feasibility
    best = refs.clairvoyant
    best_gpu_hours = best.run.gpu_seconds / 3600.0
    window_s = refs.lower_bound.windows.window_s
    against = {
        "clairvoyant": best_gpu_hours,
        "lower_bound": refs.lower_bound.gpu_hours,
        "model_oracle": refs.model_oracle.gpu_hours,
    }
    clairvoyant = policy_metrics(
        best.run, slo=slo, feasible=feasible, references={"lower_bound": refs.lower_bound.gpu_hours}
    )
    clairvoyant.update(
        {
            "window_s": window_s,
            "search_runs": best.runs,
            "windows_met": best.windows_met,
            "windows_judged": best.windows_judged,
        }
    )
    real_startup = policy_metrics(
        refs.clairvoyant_real_startup,
        slo=slo,
        feasible=feasible,
        references={"clairvoyant": best_gpu_hours, "lower_bound": refs.lower_bound.gpu_hours},
    )
    return {
        "scenario": scenario.name,
        "seed": scenario.seed,
        "profile": experiment.profile.name,
        "mode": scenario.mode.value,
        "router": scenario.router,
        "slo": {"ttft_s": slo.ttft.seconds, "itl_s": slo.itl.seconds, "percentile": slo.ttft.percentile},
        "trace": {
            "name": trace.name,
            "requests": len(trace),
            "duration_s": trace.duration_s,
            "mean_rate": trace.mean_rate,
        },
        "feasibility": {
            "requests": len(trace),
            "feasible": int(feasible.feasible.sum()),
            "feasible_fraction": feasible.fraction,
            "infeasible": feasible.counts,
        },
        "references": {
            "clairvoyant": clairvoyant,
            "clairvoyant_real_startup": real_startup,
            "lower_bound": {
                "gpu_hours": refs.lower_bound.gpu_hours,
                "window_s": window_s,
                "gpu_hours_vs_clairvoyant": _ratio(refs.lower_bound.gpu_hours, best_gpu_hours),
            },
            "model_oracle": {
                "gpu_hours": refs.model_oracle.gpu_hours,
                "window_s": window_s,
                "prefix_hit_rate": refs.model_oracle_prefix_hit_rate,
                "gpu_hours_vs_clairvoyant": _ratio(refs.model_oracle.gpu_hours, best_gpu_hours),
            },
        },
        "policies": {
            name: policy_metrics(run, slo=slo, feasible=feasible, references=against)
            for name, run in experiment.runs.items()
        },
    }


def clean(value: Any) -> Any:
    """JSON-ready: 6 significant digits, NaN and inf as None, keys as strings."""
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return float(f"{value:.6g}")
    return value


def write_summary(data: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(clean(data), sort_keys=True, indent=2) + "\n", encoding="utf-8")

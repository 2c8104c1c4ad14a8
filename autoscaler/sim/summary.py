"""The numbers a run is judged by, and ``summary.json``, written so the same seed gives the same bytes.

Per policy: SLO attainment (the fraction of *all* requests that met the TTFT target, the ITL target, both;
a request never served misses both), TTFT and ITL percentiles over the served requests, GPU-hours over the
trace's span and their ratio to the oracle, scale events. Floats are rounded to 6 significant digits,
NaN becomes ``null``, keys are sorted.
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

__all__ = ["policy_metrics", "summary", "write_summary"]

_PERCENTILES = (50, 90, 99)


def _percentiles(values: np.ndarray[Any, np.dtype[np.float64]], prefix: str) -> dict[str, float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return {f"{prefix}_p{p}_s": math.nan for p in _PERCENTILES}
    points = np.percentile(finite, _PERCENTILES)
    return {f"{prefix}_p{p}_s": float(v) for p, v in zip(_PERCENTILES, points, strict=True)}


def policy_metrics(run: RunResult, *, slo: Slo, oracle_gpu_hours: float) -> dict[str, Any]:
    n = run.ttft_s.size
    served = run.finished
    ttft_ok = served & (run.ttft_s <= slo.ttft.seconds)
    # One-token outputs have no inter-token latency: they meet any ITL target once served.
    itl_ok = served & ((run.output_tokens <= 1) | (run.itl_s <= slo.itl.seconds))
    gpu_hours = run.gpu_seconds / 3600.0
    query = run.prefix_query_tokens
    metrics: dict[str, Any] = {
        "requests": n,
        "served": int(served.sum()),
        "slo_attainment": float((ttft_ok & itl_ok).mean()) if n else math.nan,
        "ttft_attainment": float(ttft_ok.mean()) if n else math.nan,
        "itl_attainment": float(itl_ok.mean()) if n else math.nan,
        "gpu_hours": gpu_hours,
        "gpu_hours_vs_oracle": gpu_hours / oracle_gpu_hours if oracle_gpu_hours > 0 else math.nan,
        "scale_events": run.scale_events,
        "preemptions": int(run.preemptions.sum()),
        "prefix_hit_rate": run.prefix_hit_tokens / query if query else 0.0,
    }
    metrics.update(_percentiles(run.ttft_s, "ttft"))
    metrics.update(_percentiles(run.itl_s, "itl"))
    return metrics


def summary(experiment: Experiment) -> dict[str, Any]:
    scenario = experiment.scenario
    slo = scenario.slo.build()
    trace = experiment.trace
    bound = experiment.oracle
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
        "oracle": {
            "gpu_hours": bound.gpu_hours,
            "window_s": bound.window_s,
            "prefix_hit_rate": experiment.oracle_prefix_hit_rate,
        },
        "policies": {
            name: policy_metrics(run, slo=slo, oracle_gpu_hours=bound.gpu_hours)
            for name, run in experiment.runs.items()
        },
    }


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return float(f"{value:.6g}")
    return value


def write_summary(data: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(_clean(data), sort_keys=True, indent=2) + "\n", encoding="utf-8")

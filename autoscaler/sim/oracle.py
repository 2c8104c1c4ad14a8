"""The model oracle: the capacity model's own replica count for each window of the true load.

Per window of the trace (``Windows``), the capacity model sizes each phase for the rate, mean prompt and
output lengths and prompt-length spread of the *feasible* requests arriving in it (those that could meet the
SLO at all, ``feasibility``), within the phase's minimum and maximum, and the oracle runs exactly that many
replicas during the window, with no start-up delay and no forecast error.

It is not a reference of what is achievable: it is the model's account, and it shares the model's errors
(where the model under-sizes, so does it). It is kept beside the references that do not share them (the
clairvoyant and the physical lower bound) because the gap between it and the clairvoyant, which sizes by
simulation, *is* the capacity model's error on that load, seen from the outside.

``prefix_hit_rate`` is taken as given (the runs' realised rate under the same router).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from autoscaler.capacity.load import Load
from autoscaler.capacity.plan import size_pool
from autoscaler.core.phases import Phase, ServingMode
from autoscaler.core.slo import Slo
from autoscaler.profiles.schema import Profile
from autoscaler.sim.windows import Windows
from autoscaler.sim.workloads.trace import Trace

__all__ = ["OracleResult", "oracle"]

FloatArray = npt.NDArray[np.float64]


@dataclasses.dataclass(frozen=True)
class OracleResult:
    windows: Windows
    replicas: dict[Phase, FloatArray]  # per window, within the phase's minimum and maximum
    gpu_hours: float


def oracle(
    trace: Trace,
    *,
    profile: Profile,
    slo: Slo,
    mode: ServingMode,
    prefix_hit_rate: float,
    min_replicas: Mapping[Phase, int],
    max_replicas: Mapping[Phase, int],
    window_s: float = 60.0,
    feasible: npt.NDArray[np.bool_] | None = None,
) -> OracleResult:
    """Replicas per window and phase for ``trace``'s feasible load, and their GPU-hours over its span."""
    windows = Windows.of(trace, window_s)
    weight = np.ones(len(trace)) if feasible is None else np.asarray(feasible, dtype=np.float64)
    count = windows.sums(weight)
    prompt = trace.prompt_tokens.astype(np.float64)
    output = trace.output_tokens.astype(np.float64)
    overall_prompt = float(np.average(prompt, weights=weight)) if weight.sum() else 1.0
    overall_output = float(np.average(output, weights=weight)) if weight.sum() else 1.0
    with np.errstate(invalid="ignore", divide="ignore"):
        prompt_mean = windows.sums(prompt * weight) / count
        output_mean = windows.sums(output * weight) / count
        prompt_sq = windows.sums(prompt * prompt * weight) / count
        prompt_cv = np.sqrt(np.maximum(0.0, prompt_sq - prompt_mean**2)) / prompt_mean
    empty = count == 0
    load = Load.of(
        rate=count / windows.length_s,
        prompt_tokens=np.maximum(1.0, np.where(empty, overall_prompt, prompt_mean)),
        output_tokens=np.maximum(1.0, np.where(empty, overall_output, output_mean)),
        prefix_hit_rate=prefix_hit_rate,
        arrival_cv=1.0,
        prompt_cv=np.where(empty, 1.0, np.nan_to_num(prompt_cv, nan=1.0)),
    )
    sizing = size_pool(profile, load, slo, mode)
    # Where the model finds no count that meets the SLO (inf), the oracle runs the maximum.
    replicas = {
        phase: np.clip(
            np.nan_to_num(np.ceil(s.replicas), nan=np.inf), min_replicas[phase], max_replicas[phase]
        )
        for phase, s in sizing.items()
    }
    seconds = sum(float((r * windows.length_s).sum()) for r in replicas.values())
    return OracleResult(
        windows=windows, replicas=replicas, gpu_hours=seconds * profile.gpus_per_replica / 3600.0
    )

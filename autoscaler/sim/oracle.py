"""The oracle bound: the fewest GPU-hours that meet the SLO with perfect knowledge of the load.

Per window of the true load (requests by arrival time), the capacity model sizes each phase for that
window's rate, mean prompt and output lengths and prompt-length spread; the oracle runs exactly that many
replicas during the window, with no start-up delay and no forecast error. Summed, that is what a perfect
autoscaler would pay; every policy is reported as a ratio to it. It is a bound of the capacity model, not of
the simulator: where the model is optimistic the ratio can dip below 1.

``prefix_hit_rate`` is taken as given (the runs' realised rate under the same router), since perfect
knowledge of the load includes what the cache serves.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import numpy.typing as npt

from autoscaler.capacity.load import Load
from autoscaler.capacity.plan import size_pool
from autoscaler.core.phases import Phase, ServingMode
from autoscaler.core.slo import Slo
from autoscaler.profiles.schema import Profile
from autoscaler.sim.workloads.trace import Trace

__all__ = ["OracleResult", "oracle"]

FloatArray = npt.NDArray[np.float64]


@dataclasses.dataclass(frozen=True)
class OracleResult:
    window_s: float
    start_s: FloatArray  # each window's start
    replicas: dict[Phase, FloatArray]  # per window; inf where the SLO cannot be met
    gpu_hours: float  # NaN when some window's SLO cannot be met

    @property
    def feasible(self) -> bool:
        return math.isfinite(self.gpu_hours)


def oracle(
    trace: Trace,
    *,
    profile: Profile,
    slo: Slo,
    mode: ServingMode,
    prefix_hit_rate: float,
    window_s: float = 60.0,
    min_replicas: int = 1,
) -> OracleResult:
    """Replicas per window and phase for ``trace``'s true load, and their GPU-hours over its span."""
    n_windows = max(1, math.ceil(trace.duration_s / window_s))
    index = np.minimum((trace.arrival_s // window_s).astype(np.int64), n_windows - 1)
    count = np.bincount(index, minlength=n_windows).astype(np.float64)
    prompt = trace.prompt_tokens.astype(np.float64)
    output = trace.output_tokens.astype(np.float64)
    overall_prompt = float(prompt.mean()) if prompt.size else 1.0
    overall_output = float(output.mean()) if output.size else 1.0
    with np.errstate(invalid="ignore", divide="ignore"):
        prompt_mean = np.bincount(index, prompt, n_windows) / count
        output_mean = np.bincount(index, output, n_windows) / count
        prompt_sq = np.bincount(index, prompt * prompt, n_windows) / count
        prompt_cv = np.sqrt(np.maximum(0.0, prompt_sq - prompt_mean**2)) / prompt_mean
    empty = count == 0
    load = Load.of(
        rate=count / window_s,
        prompt_tokens=np.maximum(1.0, np.where(empty, overall_prompt, prompt_mean)),
        output_tokens=np.maximum(1.0, np.where(empty, overall_output, output_mean)),
        prefix_hit_rate=prefix_hit_rate,
        arrival_cv=1.0,
        prompt_cv=np.where(empty, 1.0, np.nan_to_num(prompt_cv, nan=1.0)),
    )
    sizing = size_pool(profile, load, slo, mode)
    replicas = {phase: np.maximum(float(min_replicas), np.ceil(s.replicas)) for phase, s in sizing.items()}
    total = sum(float(r.sum()) for r in replicas.values())
    span = n_windows * window_s
    # The last window is partial: scale the sum so the oracle covers exactly the trace's span.
    scale = trace.duration_s / span if trace.duration_s > 0 else 0.0
    gpu_hours = total * window_s * scale * profile.gpus_per_replica / 3600.0
    return OracleResult(
        window_s=window_s,
        start_s=np.arange(n_windows, dtype=np.float64) * window_s,
        replicas=replicas,
        gpu_hours=gpu_hours if math.isfinite(gpu_hours) else math.nan,
    )

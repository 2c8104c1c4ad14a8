"""The clairvoyant: a run in the simulator by an autoscaler that knows the future and starts replicas at once.

It holds a fixed replica count per window and phase (the ``Windows`` of the trace), set at the window's
start, with no start-up delay. Its SLO attainment is *measured* by the simulator like any policy's, and it
never asks for more than ``max_replicas``. What it pays is the reference a policy's GPU-hours are judged by.

How the counts are found, and why this way. The obvious source, the capacity model's sizing per window, is
what the old oracle did, and it shares the model's errors: where the model under-sizes a phase, so does the
reference, and a policy far below the SLO can look cheap against it. Here the simulator itself is the judge:

1. start every window at the physical floor (``lower_bound``: work at full utilisation, no queueing model);
2. simulate the whole trace with those counts;
3. in each window whose feasible requests (``feasibility``) meet the SLO less often than its percentile
   asks (TTFT and ITL both, e.g. 90 % for p90), grow the phase to blame by a quarter (at least one replica,
   at most the maximum): prefill (or the aggregated pool) for TTFT misses, decode for ITL misses, and in P/D
   decode too when a window's TTFT misses persist after its prefill grew (a full decode pool delays
   admission, which shows as TTFT);
4. repeat from 2 until every window meets the SLO, no window can grow, or the run budget is spent.

Windows only ever grow, from a count no autoscaler can go below, so the result is the fewest replicas this
search finds that the simulator says meet the SLO: an upper estimate of the true fewest, within a quarter
of a phase's count per window, and an honest one: it never takes the capacity model's word for anything.
When the budget runs out first, the windows still missing are reported, not hidden.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping

import numpy as np
import numpy.typing as npt

from autoscaler.core.decision import Decision, PhaseDecision, direction
from autoscaler.core.observation import Observation
from autoscaler.core.phases import Phase, ServingMode
from autoscaler.core.slo import Slo
from autoscaler.sim.driver import RunResult
from autoscaler.sim.windows import Windows

__all__ = ["ClairvoyantResult", "ScheduledPolicy", "WindowAttainment", "search", "window_attainment"]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

NAME = "clairvoyant"


@dataclasses.dataclass(frozen=True)
class ScheduledPolicy:
    """Asks, at each control step, for the counts of the window the step falls in."""

    start_s: tuple[float, ...]  # each window's start
    replicas: Mapping[Phase, tuple[int, ...]]  # per phase, per window
    name: str = NAME

    def initial(self) -> dict[Phase, int]:
        return {phase: counts[0] for phase, counts in self.replicas.items()}

    def initial_state(self) -> None:
        return None

    def step(self, observation: Observation, state: None, *, now: float) -> tuple[Decision, None]:
        window = max(0, int(np.searchsorted(self.start_s, now, side="right")) - 1)
        phases = {}
        for phase, counts in self.replicas.items():
            wanted, before = counts[window], counts[max(0, window - 1)]
            phases[phase] = PhaseDecision(
                replicas=wanted,
                previous=before,
                reason=direction(wanted, before),
                message="the clairvoyant's count for this window, found by simulation",
            )
        return Decision(pool=observation.pool, time=now, phases=phases), None


@dataclasses.dataclass(frozen=True)
class WindowAttainment:
    """Per window, over the feasible requests arriving in it: the fractions meeting each target (NaN when
    none arrive)."""

    ttft: FloatArray
    itl: FloatArray
    both: FloatArray


def window_attainment(run: RunResult, *, windows: Windows, feasible: BoolArray, slo: Slo) -> WindowAttainment:
    served = run.finished
    ttft_ok = served & (run.ttft_s <= slo.ttft.seconds)
    itl_ok = served & ((run.output_tokens <= 1) | (run.itl_s <= slo.itl.seconds))
    counts = windows.sums(feasible)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = {
            name: np.where(counts > 0, windows.sums(ok & feasible) / counts, math.nan)
            for name, ok in (("ttft", ttft_ok), ("itl", itl_ok), ("both", ttft_ok & itl_ok))
        }
    return WindowAttainment(ttft=ratio["ttft"], itl=ratio["itl"], both=ratio["both"])


@dataclasses.dataclass(frozen=True)
class ClairvoyantResult:
    run: RunResult  # the last run, with the final counts
    policy: ScheduledPolicy
    runs: int  # simulations the search took
    windows_met: int  # windows with feasible requests that met the SLO in the last run
    windows_judged: int  # windows with feasible requests


def _grown(count: int, maximum: int) -> int:
    return min(maximum, max(count + 1, math.ceil(count * 1.25)))


def search(
    *,
    windows: Windows,
    floor: Mapping[Phase, FloatArray],
    maximum: Mapping[Phase, int],
    mode: ServingMode,
    slo: Slo,
    feasible: BoolArray,
    simulate: Callable[[ScheduledPolicy], RunResult],
    max_runs: int = 6,
) -> ClairvoyantResult:
    """Grows the per-window counts from ``floor`` until the simulator says each window meets the SLO."""
    if max_runs < 1:
        raise ValueError(f"max_runs must be at least 1, got {max_runs}")
    counts = {phase: [min(int(c), maximum[phase]) for c in floor[phase].tolist()] for phase in mode.phases}
    target = slo.ttft.quantile
    first = Phase.PREFILL if mode is ServingMode.DISAGGREGATED else Phase.AGGREGATED
    missed_ttft = np.zeros(len(windows), dtype=bool)
    runs = 0
    while True:
        policy = ScheduledPolicy(
            start_s=tuple(windows.start_s.tolist()), replicas={p: tuple(c) for p, c in counts.items()}
        )
        run = simulate(policy)
        runs += 1
        got = window_attainment(run, windows=windows, feasible=feasible, slo=slo)
        judged = ~np.isnan(got.both)
        short = judged & (np.nan_to_num(got.both, nan=1.0) < target)
        if runs >= max_runs or not short.any():
            break
        ttft_short = short & (got.ttft < target)
        itl_short = short & (got.itl < target)
        # Neither target alone is short but both together are: blame the worse one.
        neither = short & ~ttft_short & ~itl_short
        ttft_short |= neither & (got.ttft <= got.itl)
        itl_short |= neither & (got.ttft > got.itl)
        blame: dict[Phase, BoolArray] = {first: ttft_short}
        if mode is ServingMode.DISAGGREGATED:
            blame[Phase.DECODE] = itl_short | (ttft_short & missed_ttft)
        else:
            blame[first] = ttft_short | itl_short
        missed_ttft = ttft_short
        grew = False
        for phase, windows_short in blame.items():
            for w in np.flatnonzero(windows_short).tolist():
                new = _grown(counts[phase][w], maximum[phase])
                grew |= new != counts[phase][w]
                counts[phase][w] = new
        if not grew:
            break
    return ClairvoyantResult(
        run=run,
        policy=policy,
        runs=runs,
        windows_met=int((judged & ~short).sum()),
        windows_judged=int(judged.sum()),
    )

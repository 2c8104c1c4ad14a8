"""Sharing a GPU budget between the phases of a pool.

When the phases together want more GPUs than the budget, every allocation that fits is scored by the SLO
attainment it buys: a phase with ``n`` replicas serves within its SLO the fraction ``f(n)`` of its load
(from the capacity model), a request meets the SLO only if both of its phases do, so an allocation is worth
``min(f_prefill, f_decode)``; ties go to the larger sum, then to fewer GPUs. Aggregated pools are simply
capped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

from autoscaler.core.phases import Phase
from autoscaler.policy.bounds import ReplicaBounds


@dataclasses.dataclass(frozen=True, slots=True)
class Split:
    replicas: dict[Phase, int]
    note: str


def split(
    *,
    wanted: Mapping[Phase, int],
    budget_gpus: int,
    gpus_per_replica: int,
    bounds: Mapping[Phase, ReplicaBounds],
    served_fraction: Callable[[Phase, int], float],
) -> Split | None:
    """The allocation within the budget that maximises SLO attainment; None if ``wanted`` already fits."""
    wanted_gpus = sum(wanted.values()) * gpus_per_replica
    if wanted_gpus <= budget_gpus:
        return None
    slots = budget_gpus // gpus_per_replica
    phases = list(wanted)
    if len(phases) == 1:
        (phase,) = phases
        capped = max(bounds[phase].minimum, min(wanted[phase], slots))
        return Split(
            {phase: capped},
            f"GPU budget {budget_gpus} caps {phase.value} at {capped} replicas (wanted {wanted[phase]})",
        )
    first, second = phases
    best: tuple[tuple[float, float, int], dict[Phase, int]] | None = None
    for a in range(bounds[first].minimum, min(wanted[first], slots - bounds[second].minimum) + 1):
        b = min(wanted[second], slots - a)
        if b < bounds[second].minimum:
            continue
        fa, fb = served_fraction(first, a), served_fraction(second, b)
        score = (min(fa, fb), fa + fb, -(a + b))
        if best is None or score > best[0]:
            best = (score, {first: a, second: b})
    if best is None:  # the minimums alone exceed the budget; settings validation prevents this
        return Split({p: bounds[p].minimum for p in phases}, "GPU budget below the minimum replicas")
    (attainment, _, _), allocation = best
    parts = ", ".join(f"{p.value} {allocation[p]} of {wanted[p]} wanted" for p in phases)
    return Split(
        allocation,
        f"GPU budget {budget_gpus} < {wanted_gpus} wanted: split {parts}; "
        f"predicted to serve {attainment:.0%} of the load within SLO",
    )

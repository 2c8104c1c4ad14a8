"""Vectorised search for the fewest replicas that satisfy a monotone predicate."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

MAX_REPLICAS = 4096.0


def fewest_replicas(
    satisfied: Callable[[FloatArray], BoolArray], *, start: FloatArray, active: BoolArray
) -> FloatArray:
    """Smallest integer ``r >= start`` with ``satisfied(r)``, per point; inf where none up to the cap.

    ``satisfied`` must be monotone in ``r`` (more replicas never hurt latency), which lets every point be
    searched at once: grow the upper bound geometrically, then bisect. Inactive points return ``start``.
    A start beyond the cap is inf without a search, and ``satisfied`` is never asked about more than the cap
    (an absurd rate must not make the model evaluate a queue of 1e300 servers).
    """
    beyond = active & (start > MAX_REPLICAS)
    active = active & ~beyond
    lo = np.clip(start, 1.0, MAX_REPLICAS)
    ok_at_lo = ~active | satisfied(lo)
    hi = lo.copy()
    need = active & ~ok_at_lo
    while need.any():
        hi = np.where(need, np.minimum(hi * 2.0, MAX_REPLICAS), hi)
        need = need & ~satisfied(hi) & (hi < MAX_REPLICAS)
    reachable = ok_at_lo | satisfied(hi)
    # invariant for searching points: satisfied(hi), not satisfied(lo)
    searching = active & ~ok_at_lo & reachable
    while True:
        open_gap = searching & (hi - lo > 1.0)
        if not open_gap.any():
            break
        mid = np.floor((lo + hi) / 2.0)
        good = satisfied(mid)
        hi = np.where(open_gap & good, mid, hi)
        lo = np.where(open_gap & ~good, mid, lo)
    answer = np.where(ok_at_lo, np.where(active, np.maximum(start, 1.0), start), hi)
    return np.where(beyond | (active & ~reachable), np.inf, answer)

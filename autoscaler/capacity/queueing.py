"""Queueing formulas: Erlang C with the Allen-Cunneen correction for G/G/c waits.

Erlang C (M/M/c) gives the probability that an arrival waits, ``C(c, a)`` with offered load ``a = λ·E[S]``.
For general arrivals and service (coefficients of variation ``ca``, ``cs``) the Allen-Cunneen approximation
scales the M/M/c wait by ``(ca² + cs²) / 2``. The waiting-time tail of M/M/c is exponential,
``P(W > t) = C·exp(-(cμ - λ)t)``; applying the same scale to its rate gives the percentile used here.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def erlang_c(servers: FloatArray, offered_load: FloatArray) -> FloatArray:
    """P(wait) for ``servers`` servers (integers >= 1, as floats) and offered load ``a`` (Erlangs).

    Computed through the Erlang B recursion ``B(k) = a·B(k-1) / (k + a·B(k-1))``, which is numerically stable
    for large ``c``; ``C = c·B / (c - a·(1 - B))``. Unstable systems (``a >= c``) return 1.
    """
    c = np.asarray(servers, dtype=np.float64)
    a = np.asarray(offered_load, dtype=np.float64)
    c, a = np.broadcast_arrays(c, a)
    finite_a = np.where(np.isfinite(a), a, 0.0)
    blocking = np.ones_like(a)
    top = int(c.max()) if c.size else 0
    for k in range(1, top + 1):
        step = finite_a * blocking / (k + finite_a * blocking)
        blocking = np.where(k <= c, step, blocking)
    with np.errstate(divide="ignore", invalid="ignore"):
        wait = c * blocking / (c - finite_a * (1.0 - blocking))
    return np.where(a >= c, 1.0, np.clip(wait, 0.0, 1.0))


def wait_quantile(
    *,
    servers: FloatArray,
    arrival_rate: FloatArray,
    mean_service_s: FloatArray,
    arrival_cv: FloatArray,
    service_cv: FloatArray,
    quantile: float,
) -> FloatArray:
    """The ``quantile`` of the queueing wait (seconds) in a G/G/c queue; inf where the queue is unstable."""
    with np.errstate(invalid="ignore"):
        a = arrival_rate * mean_service_s
    p_wait = erlang_c(servers, a)
    variability = (arrival_cv**2 + service_cv**2) / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        drain_rate = (servers - a) / mean_service_s  # cμ - λ
        tail = np.log(np.maximum(p_wait, 1e-300) / (1.0 - quantile))
        wait = np.where(tail > 0, tail * variability / drain_rate, 0.0)
    return np.where(a >= servers, np.inf, np.where(arrival_rate > 0, wait, 0.0))

"""Queueing formulas: Erlang C with the Allen-Cunneen correction for G/G/c waits.

Erlang C (M/M/c) gives the probability that an arrival waits, ``C(c, a)`` with offered load ``a = λ·E[S]``.
For general arrivals and service (coefficients of variation ``ca``, ``cs``) the Allen-Cunneen approximation
scales the M/M/c wait by ``(ca² + cs²) / 2``. The waiting-time tail of M/M/c is exponential,
``P(W > t) = C·exp(-(cμ - λ)t)``; applying the same scale to its rate gives the percentile used here.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import special

FloatArray = npt.NDArray[np.float64]


def erlang_c(servers: FloatArray, offered_load: FloatArray) -> FloatArray:
    """P(wait) for ``servers`` servers (integers >= 1, as floats) and offered load ``a`` (Erlangs).

    Erlang B in closed form, ``B = P(N = c) / P(N <= c)`` for ``N ~ Poisson(a)`` (the Poisson pmf in log
    space, the cdf as the regularised upper incomplete gamma ``Q(c + 1, a)``), then
    ``C = c·B / (c - a·(1 - B))``. The cost does not grow with ``c``: the recursion over ``1..c`` it replaces
    ran for minutes when an absurd rate asked about 1e12 servers. Unstable systems (``a >= c``) return 1.
    """
    c = np.asarray(servers, dtype=np.float64)
    a = np.asarray(offered_load, dtype=np.float64)
    c, a = np.broadcast_arrays(c, a)
    finite_a = np.where(np.isfinite(a), a, 0.0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        log_pmf = special.xlogy(c, finite_a) - finite_a - special.gammaln(c + 1.0)
        blocking = np.exp(log_pmf) / special.gammaincc(c + 1.0, finite_a)
        wait = c * blocking / (c - finite_a * (1.0 - blocking))
    # NaN only where the log terms overflow (c beyond ~1e305): count it as waiting, the conservative side
    return np.asarray(np.where(a >= c, 1.0, np.clip(np.nan_to_num(wait, nan=1.0), 0.0, 1.0)))


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

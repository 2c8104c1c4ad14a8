"""Erlang C and the G/G/c wait percentile against closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest

from autoscaler.capacity import queueing


@pytest.mark.parametrize(
    ("servers", "load", "expected"),
    [
        (1, 0.5, 0.5),  # M/M/1: P(wait) = rho
        (2, 1.0, 1 / 3),  # textbook value
        (3, 0.0, 0.0),
        (2, 2.0, 1.0),  # unstable
        (4, 5.0, 1.0),
    ],
    ids=["one server is rho", "two servers one erlang", "no load never waits", "at capacity", "overloaded"],
)
def test_erlang_c(servers: int, load: float, expected: float) -> None:
    got = queueing.erlang_c(np.array([float(servers)]), np.array([load]))
    assert got[0] == pytest.approx(expected, abs=1e-12)


def test_mm1_wait_quantile_is_exponential_tail() -> None:
    lam, mu, q = 0.8, 1.0, 0.9
    # P(W > t) = rho * exp(-(mu - lam) t)  =>  t_q = ln(rho / (1 - q)) / (mu - lam)
    expected = math.log(0.8 / 0.1) / (mu - lam)
    got = queueing.wait_quantile(
        servers=np.array([1.0]),
        arrival_rate=np.array([lam]),
        mean_service_s=np.array([1 / mu]),
        arrival_cv=np.array([1.0]),
        service_cv=np.array([1.0]),
        quantile=q,
    )
    assert got[0] == pytest.approx(expected)


def test_allen_cunneen_scales_with_variability() -> None:
    def wait(cv: float) -> float:
        return float(
            queueing.wait_quantile(
                servers=np.array([2.0]),
                arrival_rate=np.array([1.5]),
                mean_service_s=np.array([1.0]),
                arrival_cv=np.array([cv]),
                service_cv=np.array([cv]),
                quantile=0.9,
            )[0]
        )

    assert wait(0.0) == 0.0  # deterministic arrivals and service never queue
    assert wait(2.0) == pytest.approx(4 * wait(1.0))


def test_unstable_queue_waits_forever() -> None:
    got = queueing.wait_quantile(
        servers=np.array([1.0]),
        arrival_rate=np.array([2.0]),
        mean_service_s=np.array([1.0]),
        arrival_cv=np.array([1.0]),
        service_cv=np.array([1.0]),
        quantile=0.9,
    )
    assert np.isinf(got[0])

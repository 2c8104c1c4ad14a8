"""The forecast's reading of load shapes, as the policy sees them: rates over a 1-minute window, 30 s apart.

A step seen through a rate window is no single jump between two samples: the window spreads it over the
samples of one window (40, 80, 120 for a 40 -> 120 step read every 30 s). Extrapolating that as a trend
sized prefill on the step scenario for 200 req/s where 114 arrived. A rise is a trend only when no one
rate window carries most of it; the jump itself is read out of the window at its height (120 at the 80).
"""

from __future__ import annotations

import dataclasses

import pytest

from autoscaler.policy import forecast
from autoscaler.policy.settings import Forecast
from autoscaler.policy.state import ForecastState

SETTINGS = Forecast()
INTERVAL = 30.0
HORIZON = 190.0


def outlook(
    rates: list[float], settings: Forecast = SETTINGS, *, rate_now: float | None = None
) -> forecast.Outlook:
    """The outlook after samples ``rates`` taken ``INTERVAL`` apart (the rate now: the last one unless
    given)."""
    samples = tuple((i * INTERVAL, rate) for i, rate in enumerate(rates))
    now = rates[-1] if rate_now is None else rate_now
    return forecast.outlook(
        ForecastState(samples=samples), rate_now=now, horizon_s=HORIZON, settings=settings
    )


@pytest.mark.parametrize(
    ("rates", "extrapolated"),
    [
        ([40.0, 45.0, 50.0, 55.0, 60.0, 65.0, 70.0], True),
        ([40.0, 40.0, 40.0, 80.0, 120.0, 120.0, 120.0], False),
        ([40.0, 40.0, 40.0, 40.0, 80.0, 120.0, 120.0], False),
        ([60.0, 61.0, 59.0, 60.0, 62.0, 58.0, 60.0], False),
    ],
    ids=[
        "a ramp of 10 req/s a minute: a trend, extrapolated",
        "a step read through the rate window (40, 80, 120): a jump, not extrapolated",
        "the same step one sample earlier: a jump",
        "noise around a level: no trend",
    ],
)
def test_a_rise_is_extrapolated_only_when_no_rate_window_carries_most_of_it(
    rates: list[float], extrapolated: bool
) -> None:
    got = outlook(rates)
    assert (got.trend > 0) is extrapolated
    if not extrapolated:
        assert got.rate <= max(rates[-1], got.level) + SETTINGS.band_sigmas * got.sigma + 1e-9


@pytest.mark.parametrize(
    ("rates", "rate_window_s", "newest"),
    [
        ([40.0] * 5 + [80.0], 60.0, 120.0),
        ([40.0] * 5 + [80.0, 120.0], 60.0, 120.0),
        ([40.0] * 5 + [60.0], 60.0, 80.0),
        ([40.0] * 5 + [80.0], 30.0, 80.0),
        ([60.0, 61.0, 59.0, 60.0, 62.0, 58.0, 60.0], 60.0, 60.0),
    ],
    ids=[
        "a 40 -> 120 step's first reading through a 1-minute window (80): its newest 30 s ran at 120",
        "its second reading (120 after 80): still 120, not more",
        "a step to 80 read 15 s into it (60): the newest 30 s averaged 80",
        "a window no longer than the interval shows the newest interval itself: nothing to read out",
        "noise around a level is no jump: the rate now",
    ],
)
def test_a_jump_is_served_at_the_height_the_rate_window_hides(
    rates: list[float], rate_window_s: float, newest: float
) -> None:
    got = outlook(rates, dataclasses.replace(SETTINGS, rate_window_s=rate_window_s))
    assert got.newest == pytest.approx(newest)
    assert got.rate >= newest
    assert got.trend == 0.0


def test_load_served_now_but_not_sampled_stays_off_the_line() -> None:
    """A caller serves more than it samples where load arriving now will not last (decode while
    prefill's backlog flushes through it): it is sized for as it is, not read out of the rate window as a
    jump of the samples, and the line stays at the samples' level."""
    got = outlook([60.0] * 7, rate_now=160.0)
    assert got.rate >= 160.0
    assert got.newest == 160.0
    assert got.level == pytest.approx(60.0)
    assert got.spike

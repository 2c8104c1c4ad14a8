"""Load forecast over the replica start-up horizon.

A replica asked for now serves only after its start-up time, so the policy sizes for the load expected
then, and for the upper edge of that expectation: Holt's linear trend (level and slope, updated at each
step with the elapsed time) plus ``band_sigmas`` times the spread of recent one-step under-forecasts (a
load that falls faster than expected is no risk, so it does not widen the band). Never below
the rate observed now: a forecast that expects a fall does not take capacity away before it happens.
"""

from __future__ import annotations

import math

from autoscaler.policy.settings import Forecast
from autoscaler.policy.state import ForecastState


def update(previous: ForecastState | None, *, rate: float, now: float, settings: Forecast) -> ForecastState:
    if previous is None or now <= previous.time:
        return ForecastState(level=rate, trend=0.0, error_variance=0.0, time=now)
    dt = now - previous.time
    predicted = previous.level + previous.trend * dt
    error = rate - predicted
    level = predicted + settings.level_smoothing * error
    trend = previous.trend + settings.trend_smoothing * (level - previous.level - previous.trend * dt) / dt
    surprise = max(error, 0.0)  # only load above the forecast is a risk to the SLO
    variance = (
        1 - settings.error_smoothing
    ) * previous.error_variance + settings.error_smoothing * surprise**2
    return ForecastState(level=level, trend=trend, error_variance=variance, time=now)


def upper_band(state: ForecastState, *, rate_now: float, horizon_s: float, settings: Forecast) -> float:
    expected = state.level + max(state.trend, 0.0) * horizon_s
    band = expected + settings.band_sigmas * math.sqrt(state.error_variance)
    return max(rate_now, band, 0.0)

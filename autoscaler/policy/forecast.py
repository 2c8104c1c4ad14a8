"""Load forecast over the replica start-up horizon.

A replica asked for now serves only after its start-up time, and the rate the policy reads is already
old (a Prometheus rate over a window, read some seconds late, describes the middle of that window). So the
policy sizes for the load expected ``horizon + lag`` after the sample's time, and for the upper edge of that
expectation: a least-squares line through the samples of the last ``window_s`` seconds, extrapolated, plus
``band_sigmas`` times the spread of the samples around the line. The slope counts only when rising (a
forecast fall takes no capacity away before it happens), and the result is never below the rate now.
"""

from __future__ import annotations

import math

from autoscaler.policy.settings import Forecast
from autoscaler.policy.state import ForecastState


def update(previous: ForecastState | None, *, rate: float, now: float, settings: Forecast) -> ForecastState:
    """Add the sample ``(now, rate)``, keeping those of the last ``window_s`` seconds."""
    samples = () if previous is None else previous.samples
    kept = tuple((t, r) for t, r in samples if now - t < settings.window_s and t < now)
    return ForecastState(samples=(*kept, (now, rate)))


def upper_band(state: ForecastState, *, rate_now: float, horizon_s: float, settings: Forecast) -> float:
    """The rate to size for: the line at ``now + lag + horizon`` plus the band; at least ``rate_now``."""
    samples = state.samples
    now = samples[-1][0]
    n = len(samples)
    if n < 3:
        return max(rate_now, 0.0)
    mean_t = sum(t for t, _ in samples) / n
    mean_r = sum(r for _, r in samples) / n
    var_t = sum((t - mean_t) ** 2 for t, _ in samples)
    slope = sum((t - mean_t) * (r - mean_r) for t, r in samples) / var_t
    residual = math.sqrt(sum((r - mean_r - slope * (t - mean_t)) ** 2 for t, r in samples) / (n - 2))
    ahead = now + settings.signal_lag_s + horizon_s
    expected = mean_r + max(slope, 0.0) * (ahead - mean_t)
    return max(rate_now, expected + settings.band_sigmas * residual, 0.0)

"""Load forecast over the replica start-up horizon, robust to outliers, short spikes and bursty traffic.

A replica asked for now serves only after its start-up time, and the rate the policy reads is already
old (a Prometheus rate over a window, read some seconds late, describes the middle of that window). So the
policy sizes for the load expected ``horizon + lag`` after the sample's time. How that expectation is
formed decides whether the policy chases noise:

- **Robust line.** The trend is the Theil-Sen slope (the median of the slopes between every pair of samples
  in the window) and the level the median of the samples brought to now along it: one burst or one spike
  moves neither much, where a least-squares line through a spike points at several times the real load.
- **Damped, sustained, significant trend.** Only a rising trend is extrapolated (a forecast fall takes no
  capacity away before it happens), only when the rise over the window stands out of the samples' noise,
  and only when it is sustained: no single interval carries more than ``max_jump_share`` of it, and no span
  of one rate window more than ``max_window_share`` (a step or a spike is one jump, which says nothing about
  the next minutes, and a rate window spreads it over the samples of its span: 40, 80, 120 for a 40 -> 120
  step read every 30 s through a 1-minute rate); its
  extrapolation is damped (a trend seen over three minutes says little about the fourth and fifth) and
  capped at ``max_growth`` times the level (the demand read already counts what piles up in the queues).
- **Spikes are served, not extrapolated.** A newest sample far above the line (``spike_sigmas`` robust
  sigmas) is an excursion: the policy sizes for it as it is (a step starts the same way, and its next sample
  confirms it), never for a line through it. The rate now is always served: it is load that is here. As it
  is means at the height the rate window hides: two readings of a window one interval apart differ by what
  entered it (the newest interval) less what left it (taken at the line, from before the excursion), so a
  jump that began within the last interval is served at its height one interval before the window shows it.
- **The line takes the samples; the rate now is served.** A caller may serve more than it samples: load
  arriving now that will not last (at decode, prefill's backlog flushing through it) is sized for as the
  rate now, but kept off the line, so that it is not read as the level once it has passed.
- **Band.** The forecast is widened by ``band_sigmas`` robust sigmas of the samples around the line (at
  least ``noise_floor`` of the level): the minute-scale bursts a replica started now will meet, which the
  rate of one window does not show. A robust sigma (the median absolute residual) is not inflated by a
  spike or a misfit in fewer than half the samples; a level shift that splits the window (the minutes
  after a crowd ends) does inflate it, and widens the band until the window has passed.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import statistics

from autoscaler.policy.settings import Forecast
from autoscaler.policy.state import ForecastState

_MAD_TO_SIGMA = 1.4826  # a normal sample's sigma over its median absolute deviation


@dataclasses.dataclass(frozen=True, slots=True)
class Outlook:
    """The rate to size for and how it was formed (the decision reports it)."""

    rate: float
    level: float  # the robust line at the newest sample
    trend: float  # req/s per second, as extrapolated (0 when not)
    sigma: float  # robust spread of the samples around the line (at least the noise floor)
    spread: float  # the same without the floor: what the samples themselves show
    spike: bool  # the newest sample is an excursion above the line
    newest: float  # the rate served now: on a spike, its newest interval's (``_newest_interval``)
    capped: bool  # the trend's extrapolation hit ``max_growth``


def update(previous: ForecastState | None, *, rate: float, now: float, settings: Forecast) -> ForecastState:
    """Add the sample ``(now, rate)``, keeping those of the last ``window_s`` seconds."""
    samples = () if previous is None else previous.samples
    kept = tuple((t, r) for t, r in samples if now - t < settings.window_s and t < now)
    return ForecastState(samples=(*kept, (now, rate)))


def outlook(state: ForecastState, *, rate_now: float, horizon_s: float, settings: Forecast) -> Outlook:
    """The rate to size for over ``horizon_s``: the robust line's through the samples, and never below
    ``rate_now``, the rate arriving now (at least the newest sample).

    The noise (sigma) and the spike threshold come from the samples before the newest, which enters the
    line clipped at that threshold: so the result never falls when the rate now rises (a spike neither
    inflates the noise nor tilts the line), and a spike is sized for as it is.
    """
    rate_now = max(rate_now, 0.0)
    history, (now, sampled) = state.samples[:-1], state.samples[-1]
    if len(history) < 3:
        return Outlook(rate_now, sampled, 0.0, 0.0, 0.0, spike=False, newest=rate_now, capped=False)
    slope, level = _line(history, now)
    residuals = [r - level - slope * (t - now) for t, r in history]
    spread = _MAD_TO_SIGMA * statistics.median(abs(e) for e in residuals)
    sigma = max(spread, settings.noise_floor * max(level, 0.0))
    threshold = level + settings.spike_sigmas * sigma
    spike = rate_now > threshold
    served = rate_now
    if sampled > threshold:
        jump = _newest_interval(history[-1], now, rate_now=sampled, left=level, settings=settings)
        served = max(served, jump)
    slope, level = _line((*history, (now, min(sampled, threshold))), now)
    rise = slope * (now - history[0][0])
    # judged on the samples before the newest, so that a higher rate now never switches the trend off
    total = history[-1][1] - history[0][1]
    jump = max(b - a for (_, a), (_, b) in itertools.pairwise(history))
    smeared = max(
        b - a
        for i, (ta, a) in enumerate(history)
        for tb, b in history[i + 1 :]
        if tb - ta <= settings.rate_window_s + 1e-9
    )
    sustained = jump <= settings.max_jump_share * total and smeared <= settings.max_window_share * total
    trend = slope if slope > 0 and rise > settings.trend_sigmas * sigma and sustained else 0.0
    ahead = settings.signal_lag_s + horizon_s
    growth = trend * settings.damping_s * (1.0 - math.exp(-ahead / settings.damping_s))
    ceiling = settings.max_growth * max(level, 0.0)
    capped = growth > ceiling
    if capped:
        growth = ceiling
    expected = max(level, 0.0) + growth + settings.band_sigmas * sigma
    return Outlook(
        max(served, expected), level, trend, sigma, spread, spike=spike, newest=served, capped=capped
    )


def _newest_interval(
    previous: tuple[float, float], now: float, *, rate_now: float, left: float, settings: Forecast
) -> float:
    """The rate over the interval since the ``previous`` sample, read out of the rate window (never below
    the rate now). Two readings of a ``rate_window_s`` window ``gap`` seconds apart differ by the arrivals
    of the newest ``gap`` seconds less those of the window's oldest ``gap`` seconds, which arrived at the
    ``left`` rate (the line, from before the excursion): so the newest interval ran at
    ``left + (rate_now - previous) * window / gap``. Windows that do not overlap have nothing to read."""
    then, rate_then = previous
    gap = now - then
    if not 0.0 < gap < settings.rate_window_s:
        return rate_now
    return max(rate_now, left + (rate_now - rate_then) * settings.rate_window_s / gap)


def _line(samples: tuple[tuple[float, float], ...], now: float) -> tuple[float, float]:
    """Theil-Sen: the median pairwise slope, and the median sample brought to ``now`` along it."""
    slope = statistics.median(
        (r2 - r1) / (t2 - t1) for i, (t1, r1) in enumerate(samples) for t2, r2 in samples[i + 1 :]
    )
    return slope, statistics.median(r - slope * (t - now) for t, r in samples)

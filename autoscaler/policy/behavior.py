"""Stabilization windows and rate limits, HPA ``behavior`` style, as pure functions of the state.

Pipeline (one place, in order): the raw recommendation is stabilized (scale-up: the lowest recommendation
within the up window; scale-down: the highest within the down window), then rate-limited against the
replica count at the start of the limit's period (rebuilt from recorded scale events). Each step that
changes the count returns the reason it did.
"""

from __future__ import annotations

import math

from autoscaler.core.decision import Reason
from autoscaler.policy.settings import Behavior, RateLimit


def record(
    history: tuple[tuple[float, int], ...], *, now: float, value: int, keep_s: float
) -> tuple[tuple[float, int], ...]:
    """Append ``(now, value)`` and drop entries older than ``keep_s``."""
    return (*(entry for entry in history if now - entry[0] <= keep_s), (now, value))


def stabilize(
    *, current: int, recommendations: tuple[tuple[float, int], ...], now: float, behavior: Behavior
) -> tuple[int, Reason | None]:
    """HPA stabilization: keep the current count within [lowest recent, highest recent] recommendation.

    The up window's minimum is how far up every recent recommendation agrees to go; the down window's
    maximum is how far down. ``recommendations`` includes the newest one.
    """
    newest = recommendations[-1][1]
    up_floor = min(r for t, r in recommendations if now - t <= behavior.up_window_s or t == now)
    down_ceiling = max(r for t, r in recommendations if now - t <= behavior.down_window_s or t == now)
    stabilized = min(max(current, up_floor), down_ceiling)
    if stabilized == newest:
        return stabilized, None
    return stabilized, Reason.SCALE_UP_STABILIZED if newest > current else Reason.SCALE_DOWN_STABILIZED


def _allowance(limit: RateLimit, base: int) -> int:
    return max(limit.pods, math.ceil(base * limit.percent / 100.0))


def rate_limit(
    *,
    current: int,
    desired: int,
    events: tuple[tuple[float, int], ...],
    now: float,
    behavior: Behavior,
) -> tuple[int, Reason | None]:
    """Clamp the change to the rate limits; ``events`` are (time, replicas before that change)."""
    if desired > current:
        limit = behavior.up_limit
        start = min((r for t, r in events if now - t < limit.period_s), default=current)
        ceiling = start + _allowance(limit, start)
        if desired > ceiling:
            return max(current, ceiling), Reason.SCALE_UP_LIMITED
    elif desired < current:
        limit = behavior.down_limit
        start = max((r for t, r in events if now - t < limit.period_s), default=current)
        floor = start - _allowance(limit, start)
        if desired < floor:
            return min(current, floor), Reason.SCALE_DOWN_LIMITED
    return desired, None

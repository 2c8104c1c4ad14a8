"""What the controller publishes beside each decision for an operator's dashboard (``adapters.publishing``).

A decision's reason ("ScaleUp", "ScaleDownStabilized") is only believable next to the evidence it was made
on: the replicas ready at the time, the arrival rate the policy read, the rate it foresaw over the start-up
horizon, the calibration it applied and the SLO it sized for. All of it is already in the cycle's values;
this module only gathers it. The forecast is the policy's own ``forecast.outlook`` on the state the step
returned (the same samples, horizon and settings), so the dashboard cannot disagree with what was sized for.
"""

from __future__ import annotations

from collections.abc import Mapping

from autoscaler.adapters.publishing import Telemetry
from autoscaler.core.observation import Observation
from autoscaler.core.phases import Phase
from autoscaler.policy import forecast
from autoscaler.policy.settings import PolicySettings
from autoscaler.policy.state import PhaseState, PolicyState


def telemetry(
    *,
    pool: str,
    observation: Observation,
    ready: Mapping[Phase, int],
    state: PolicyState,
    settings: PolicySettings,
) -> dict[Phase, Telemetry]:
    """Per phase the controller decided for (``ready``'s keys)."""
    found: dict[Phase, Telemetry] = {}
    for phase, count in ready.items():
        signals = observation.phases.get(phase)
        found[phase] = Telemetry(
            pool=pool,
            ready=count,
            arrival_rate=signals.arrival_rate if signals is not None else None,
            forecast_rate=_forecast(state.phase(phase), settings),
            calibration=state.phase(phase).correction,
            slo=settings.slo,
        )
    return found


def _forecast(state: PhaseState, settings: PolicySettings) -> float | None:
    """The rate the policy foresees for the phase's demand (its newest sample) over the start-up horizon."""
    if state.forecast is None or not state.forecast.samples:
        return None
    outlook = forecast.outlook(
        state.forecast,
        rate_now=state.forecast.samples[-1][1],
        horizon_s=settings.horizon_s,
        settings=settings.forecast,
    )
    return outlook.rate

"""Our scaling policy: one pure step from an Observation to a Decision, per pool.

For each phase, in order (each stage that changes the count says so in the phase's reason):

1. **Fail static.** Unusable signals (missing, stale, NaN, contradictory) hold the current replicas.
2. **Forecast.** The arrival rate is forecast over the start-up horizon and sized for the upper band;
   queued requests add the rate needed to drain them. Zero traffic with an empty queue is real: the
   recommendation is the minimum.
3. **Calibrate.** The profile's times for the phase are corrected by the bounded observed/predicted ratio,
   learned only from latencies all observed on the supply the phase has now (see ``_settled``).
4. **Size.** The capacity model gives the fewest replicas meeting the phase's SLO at the forecast load.
5. **Budget.** If the phases want more GPUs than the pool's budget, split it where it buys the most SLO
   attainment (a note on the decision says how).
6. **Behaviour.** Stabilization windows, then rate limits, against the replicas asked for so far
   (starting replicas count as supply: they are part of the current count), then min/max.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from autoscaler.capacity import plan as planning
from autoscaler.capacity.load import Load
from autoscaler.core.decision import Decision, PhaseDecision, Reason, direction
from autoscaler.core.observation import Observation, PhaseSignals
from autoscaler.core.phases import Phase
from autoscaler.policy import behavior, budget, calibration, forecast, signals
from autoscaler.policy.settings import PolicySettings
from autoscaler.policy.state import PhaseState, PolicyState
from autoscaler.profiles.schema import Profile

SERVED_FRACTION_GRID = 40


@dataclasses.dataclass(frozen=True, slots=True)
class _Proposal:
    """A phase's sizing before budget and behaviour."""

    phase: Phase
    current: int
    replicas: int
    reason: Reason | None  # None: sized by the load (the decision says which way it went)
    message: str
    state: PhaseState
    profile: Profile | None = None  # calibrated, for the budget split
    load: Load | None = None


class Autoscaler:
    """``ScalingPolicy`` implementation: our policy with fixed settings."""

    def __init__(self, settings: PolicySettings) -> None:
        self.settings = settings

    @property
    def name(self) -> str:
        return "ours"

    def initial_state(self) -> PolicyState:
        return PolicyState()

    def step(
        self, observation: Observation, state: PolicyState, *, now: float
    ) -> tuple[Decision, PolicyState]:
        return step(observation, state, self.settings, now=now)


def step(
    observation: Observation, state: PolicyState, settings: PolicySettings, *, now: float
) -> tuple[Decision, PolicyState]:
    backlogged = _backlogged(observation)
    proposals = {
        phase: _propose(
            phase, observation.phases.get(phase), state.phase(phase), settings, now=now, backlogged=backlogged
        )
        for phase in settings.mode.phases
    }
    notes: list[str] = []
    budget_caps: dict[Phase, int] = {}
    if settings.gpu_budget is not None:
        outcome = budget.split(
            wanted={p: proposal.replicas for p, proposal in proposals.items()},
            budget_gpus=settings.gpu_budget,
            gpus_per_replica=settings.profile.gpus_per_replica,
            bounds=settings.bounds,
            served_fraction=lambda phase, n: _served_fraction(proposals[phase], n, settings),
        )
        if outcome is not None:
            budget_caps = outcome.replicas
            notes.append(outcome.note)
    decisions: dict[Phase, PhaseDecision] = {}
    phase_states: dict[Phase, PhaseState] = {}
    for phase, proposal in proposals.items():
        decisions[phase], phase_states[phase] = _behave(
            phase, proposal, budget_caps.get(phase), settings, now=now
        )
    return (
        Decision(pool=observation.pool, time=now, phases=decisions, notes=tuple(notes)),
        PolicyState(phases=phase_states),
    )


def _backlogged(observation: Observation) -> bool:
    """Whether any phase has more requests waiting than ready replicas: latencies then measure the backlog
    (in P/D a saturated decode pool shows up in TTFT), not the engine's speed, so nothing is calibrated
    until the latencies observed during it have aged out (see ``_settled``)."""
    return any((sig.queue_length or 0.0) > max(1, sig.replicas.ready) for sig in observation.phases.values())


def _propose(
    phase: Phase,
    sig: PhaseSignals | None,
    state: PhaseState,
    settings: PolicySettings,
    *,
    now: float,
    backlogged: bool,
) -> _Proposal:
    if sig is None:
        last = state.recommendations[-1][1] if state.recommendations else settings.bounds[phase].minimum
        return _Proposal(
            phase, last, last, Reason.HOLD_MISSING_SIGNALS, f"holding: no signals for {phase.value}", state
        )
    current = sig.replicas.current
    trouble = signals.problem(sig, max_age_s=settings.max_signal_age_s)
    if trouble is not None:
        return _Proposal(phase, current, current, trouble[0], trouble[1], state)
    assert sig.arrival_rate is not None
    queue = sig.queue_length or 0.0
    fc = forecast.update(state.forecast, rate=sig.arrival_rate, now=now, settings=settings.forecast)
    settled = _settled(state.settled, ready=sig.replicas.ready, now=now, backlogged=backlogged)
    if sig.arrival_rate == 0 and queue == 0:
        state = dataclasses.replace(state, forecast=fc, settled=settled)
        message = "no requests and an empty queue: the minimum is enough"
        return _Proposal(phase, current, 0, Reason.NO_TRAFFIC, message, state)
    rate = forecast.upper_band(
        fc, rate_now=sig.arrival_rate, horizon_s=settings.horizon_s, settings=settings.forecast
    )
    rate += queue / settings.forecast.backlog_drain_s
    load = _load(sig, rate)
    elapsed = now - state.forecast.samples[-1][0] if state.forecast else 0.0
    correction = calibration.relax(state.correction, elapsed_s=elapsed, settings=settings.calibration)
    if settled is not None and now - settled[1] >= settings.calibration.evidence_window_s:
        correction = _calibrate(phase, sig, correction, settings)
    profile = calibration.corrected(settings.profile, factor=correction, phase=phase)
    sizing = planning.size_phase(profile, load, settings.slo, phase, max_utilisation=settings.max_utilisation)
    needed = float(sizing.replicas[()])
    state = dataclasses.replace(state, forecast=fc, correction=correction, settled=settled)
    basis = (
        f"forecast {rate:.2f} req/s (now {sig.arrival_rate:.2f}, queue {queue:.0f})"
        f"{f', profile x{correction:.2f}' if correction != 1.0 else ''}"
    )
    if not math.isfinite(needed):
        top = settings.bounds[phase].maximum
        return _Proposal(
            phase, current, top, Reason.SLO_UNATTAINABLE, f"{basis}: no replica count meets the SLO", state
        )
    replicas = int(needed)
    latency = (
        f"TTFT p{settings.slo.ttft.percentile:g} {float(sizing.ttft_s[()]):.3f}s"
        if phase is Phase.PREFILL
        else f"ITL p{settings.slo.itl.percentile:g} {float(sizing.itl_s[()]) * 1000:.1f}ms"
    )
    message = f"{basis} needs {replicas} ({latency} predicted, bound by {sizing.binding[()]})"
    return _Proposal(phase, current, replicas, None, message, state, profile, load)


def _settled(
    previous: tuple[int, float] | None, *, ready: int, now: float, backlogged: bool
) -> tuple[int, float] | None:
    """``(ready, since)``: the phase has had ``ready`` replicas and the pool no backlog since ``since``;
    None while backlogged.

    Observed latencies are percentiles over a past window: right after a replica became ready (or left),
    or after a backlog drained, they still describe the old supply or the backlog, and comparing them with
    a prediction for the supply now would read an under-provisioned moment as a slow engine.
    """
    if backlogged:
        return None
    if previous is None or previous[0] != ready:
        return (ready, now)
    return previous


def _load(sig: PhaseSignals, rate: float) -> Load:
    assert sig.prompt_tokens_mean is not None and sig.output_tokens_mean is not None
    return Load.of(
        rate=rate,
        prompt_tokens=max(sig.prompt_tokens_mean, 1.0),
        output_tokens=max(sig.output_tokens_mean, 1.0),
        prefix_hit_rate=sig.prefix_hit_rate or 0.0,
        arrival_cv=1.0 if sig.arrival_cv is None else sig.arrival_cv,
        prompt_cv=1.0 if sig.prompt_tokens_cv is None else sig.prompt_tokens_cv,
        output_cv=1.0 if sig.output_tokens_cv is None else sig.output_tokens_cv,
    )


def _calibrate(phase: Phase, sig: PhaseSignals, previous: float, settings: PolicySettings) -> float:
    """Update the correction where the observation is informative (see policy.calibration)."""
    observed = sig.ttft_observed_s if phase is Phase.PREFILL else sig.itl_observed_s
    if observed is None or sig.replicas.ready == 0 or not sig.arrival_rate:
        return previous
    now_load = _load(sig, sig.arrival_rate)
    predicted = planning.predict_phase(
        settings.profile, now_load, settings.slo, phase, np.asarray(float(sig.replicas.ready))
    )
    rules = settings.calibration
    if not rules.min_utilisation <= float(predicted.utilisation[()]) < rules.max_utilisation:
        return previous
    expected = float((predicted.ttft_s if phase is Phase.PREFILL else predicted.itl_s)[()])
    target = settings.slo.ttft.seconds if phase is Phase.PREFILL else settings.slo.itl.seconds
    if max(observed, expected) < rules.min_latency_fraction * target:
        return previous  # far from the SLO the latency is fixed costs, which say nothing about capacity
    return calibration.update(previous, observed=observed, predicted=expected, settings=rules)


def _served_fraction(proposal: _Proposal, replicas: int, settings: PolicySettings) -> float:
    """Fraction of the phase's forecast load that ``replicas`` replicas serve within the SLO."""
    if proposal.load is None or proposal.profile is None:
        return 1.0 if replicas >= proposal.replicas else 0.0
    fractions = np.arange(1, SERVED_FRACTION_GRID + 1) / SERVED_FRACTION_GRID
    grid = proposal.load.with_rate(proposal.load.rate * fractions)
    needed = planning.size_phase(
        proposal.profile, grid, settings.slo, proposal.phase, max_utilisation=settings.max_utilisation
    ).replicas
    served = fractions[needed <= replicas]
    return float(served.max()) if served.size else 0.0


def _behave(
    phase: Phase, proposal: _Proposal, budget_cap: int | None, settings: PolicySettings, *, now: float
) -> tuple[PhaseDecision, PhaseState]:
    """Min/max and budget on the recommendation, then stabilization and rate limits (HPA order).

    The decision's reason is the last stage that changed the count, else the proposal's own reason
    (none: sized by the load, ``ScaleUp``, ``ScaleDown`` or ``Steady``).
    """
    current, state = proposal.current, proposal.state
    if proposal.reason is not None and proposal.reason.fail_static:  # nothing recorded, nothing changes
        return PhaseDecision(current, current, proposal.reason, proposal.message), state
    bounds, rules = settings.bounds[phase], settings.behavior
    limiter: Reason | None = None
    notes = [proposal.message]
    wanted = min(max(proposal.replicas, bounds.minimum), bounds.maximum)
    if wanted != proposal.replicas and proposal.reason is not Reason.NO_TRAFFIC:
        limiter = Reason.TOO_FEW_REPLICAS if wanted > proposal.replicas else Reason.TOO_MANY_REPLICAS
        notes.append(f"clamped to [{bounds.minimum}, {bounds.maximum}]")
    if budget_cap is not None and wanted > budget_cap:
        wanted, limiter = budget_cap, Reason.BUDGET_LIMITED
        notes.append(f"GPU budget allows {budget_cap}")
    keep = max(rules.up_window_s, rules.down_window_s, rules.up_limit.period_s, rules.down_limit.period_s)
    # A policy that has just started trusts the current count as the previous step's recommendation (as HPA
    # does), so it cannot scale down before a full window of its own evidence.
    history = state.recommendations or ((now - settings.control_interval_s, current),)
    recommendations = behavior.record(history, now=now, value=wanted, keep_s=keep)
    desired, why = behavior.stabilize(
        current=current, recommendations=recommendations, now=now, behavior=rules
    )
    if why is not None:
        limiter = why
        window = rules.up_window_s if why is Reason.SCALE_UP_STABILIZED else rules.down_window_s
        notes.append(f"held at {desired} by the {window:g}s stabilization window")
    desired, why = behavior.rate_limit(
        current=current, desired=desired, events=state.scale_events, now=now, behavior=rules
    )
    if why is not None:
        limiter = why
        notes.append(f"rate limit allows {desired} now")
    if budget_cap is not None and desired > budget_cap:  # the budget is hard, whatever the windows hold
        desired, limiter = budget_cap, Reason.BUDGET_LIMITED
        notes.append(f"GPU budget allows {budget_cap}")
    events = state.scale_events
    if desired != current:
        events = behavior.record(events, now=now, value=current, keep_s=keep)
    new_state = dataclasses.replace(state, recommendations=recommendations, scale_events=events)
    return PhaseDecision(
        desired, current, limiter or proposal.reason or direction(desired, current), "; ".join(notes)
    ), new_state

"""Our scaling policy: one pure step from an Observation to a Decision, per pool.

For each phase, in order (each stage that changes the count says so in the phase's reason, and every
mechanism that moved the sizing is listed in the decision's ``adjustments``):

1. **Fail static.** Unusable signals (missing, stale, NaN, contradictory) hold the current replicas.
2. **Forecast.** A robust, damped trend over the start-up horizon; a spike is served as it is, never
   extrapolated, at its newest interval's rate read out of the rate window (``policy.forecast``). Zero
   traffic with an empty queue is real: the minimum.
3. **Backlog.** Prefill's queue sits inside busy engines, where replicas started now cannot take it: it
   adds nothing to prefill, and reaches decode within the drain time, so decode is sized for it if it
   lasts past the start-up horizon (before that, decode replicas started for it would serve none of it).
   While it drains, decode's forecast line takes prefill's demand: the flush is served as the rate now,
   never read as decode's level once it has passed.
   A decode queue still growing with no replica on its way is sized for as it will be when replicas asked
   for now are ready.
4. **Feasibility and context.** Prefill is sized for the requests that can meet the TTFT target at all
   (the share that cannot is stated); decode for the KV per running sequence the engines report
   (``policy.sizing``).
5. **Calibrate.** The profile's times for the phase are corrected by the bounded observed/predicted ratio,
   learned only from latencies all observed on the supply the phase has now (see ``_settled``).
6. **Size.** The capacity model gives the fewest replicas meeting the phase's SLO at the forecast load;
   fewer than now only if they would still do with ``down_tolerance`` more load (hysteresis).
7. **Budget.** If the phases want more GPUs than the pool's budget, split it where it buys the most SLO
   attainment (a note on the decision says how).
8. **Behaviour.** Stabilization windows, then rate limits, against the replicas asked for so far
   (starting replicas count as supply: they are part of the current count), then min/max. What a spike
   or a backlog's drain asked for is served but not held by the down window once it is over (for a
   drain: no backlog left in the pool and no replica of the phase starting; for decode, arrivals beyond
   prefill's forecast while prefill's backlog drains are that backlog flushing through, a drain too).
   Replicas still starting are released at once where even the ready ones hold the load with the
   tolerance: the down window keeps capacity against a quick return of the load, and a replica not yet
   ready is none (a ReplicaSet removes its not-ready pods first).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from autoscaler.capacity import plan as planning
from autoscaler.capacity import prefill
from autoscaler.capacity.load import Load
from autoscaler.capacity.result import PhaseSizing
from autoscaler.core.decision import Adjustment, Decision, PhaseDecision, Reason, direction
from autoscaler.core.observation import CounterSource, Observation, PhaseSignals
from autoscaler.core.phases import Phase
from autoscaler.core.slo import Slo
from autoscaler.policy import behavior, budget, calibration, forecast, signals, sizing, wake
from autoscaler.policy.settings import PolicySettings
from autoscaler.policy.state import PhaseState, PolicyState
from autoscaler.profiles.schema import Profile

SERVED_FRACTION_GRID = 40
_COUNTED: dict[CounterSource, str] = {"vllm": "finished", "router": "entering"}  # what each counter counts
INFLIGHT_MATERIAL = 0.05  # in-flight growth above this share of the rate is reported as an adjustment


@dataclasses.dataclass(frozen=True, slots=True)
class _Sizer:
    """The capacity model for one phase as this step calibrated it: the fewest replicas for a load."""

    profile: Profile
    slo: Slo  # as sized for (the TTFT percentile over the feasible requests)
    phase: Phase
    context: float | None  # decode KV per running sequence as reported, if used
    max_utilisation: float

    def size(self, load: Load) -> PhaseSizing:
        return planning.size_phase(
            self.profile,
            load,
            self.slo,
            self.phase,
            max_utilisation=self.max_utilisation,
            decode_context=self.context,
        )

    def holds(self, load: Load, *, current: int, tolerance: float) -> bool:
        """Hysteresis: fewer than ``current`` only if they would still do with ``tolerance`` more load."""
        if tolerance <= 0:
            return False
        return float(self.size(load.with_rate(load.rate * (1.0 + tolerance))).replicas[()]) >= current


@dataclasses.dataclass(frozen=True, slots=True)
class _Proposal:
    """A phase's sizing before budget and behaviour."""

    phase: Phase
    current: int
    replicas: int
    reason: Reason | None  # None: sized by the load (the decision says which way it went)
    message: str
    state: PhaseState
    sizer: _Sizer | None = None  # calibrated, for the budget split
    load: Load | None = None
    adjustments: tuple[Adjustment, ...] = ()
    lasting: int | None = None  # the count the load alone asks for, where a backlog's drain added to it
    calm: bool = False  # no backlog in the pool or reaching the phase, and no replica of the phase starting
    # the ready replicas, where replicas are starting and even the ready ones hold the load with the
    # tolerance: the starting ones are not needed
    ready_enough: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class _Upstream:
    """What prefill tells decode (P/D; the defaults: nothing, as for every other phase)."""

    demand: float = 0.0  # prefill's demand: every request reaches decode next
    incoming: float = 0.0  # the rate at which prefill's backlog will reach decode (``_incoming``)
    # While prefill's backlog drains, its forecast: decode's arrivals beyond it are that backlog flushing
    # through (every request passes prefill first), so the load that lasts at decode is at most this.
    lasting_cap: float = math.inf
    # Whether prefill's backlog drains: decode's forecast line then takes prefill's demand, not decode's
    # own arrivals, so that the flush is served as the rate now but never read as the level afterwards.
    draining: bool = False


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
    observation = wake.with_router_queue(observation, settings)  # scale from zero: the router's queue
    backlogged = _backlogged(observation, settings)
    incoming = _incoming(observation, settings)
    demand, draining = _upstream(observation, state, settings, now=now)
    proposals: dict[Phase, _Proposal] = {}
    for phase in settings.mode.phases:  # prefill first: decode reads its forecast
        upstream = _Upstream()
        if phase is Phase.DECODE:
            prefill_load = proposals[Phase.PREFILL].load if Phase.PREFILL in proposals else None
            cap = float(prefill_load.rate) if draining and prefill_load is not None else math.inf
            upstream = _Upstream(demand=demand, incoming=incoming, lasting_cap=cap, draining=draining)
        proposals[phase] = _propose(
            phase,
            observation.phases.get(phase),
            state.phase(phase),
            settings,
            now=now,
            backlogged=backlogged,
            upstream=upstream,
        )
    notes: list[str] = []
    budget_caps: dict[Phase, int] = {}
    if settings.gpu_budget is not None:
        outcome = budget.split(
            wanted={p: proposal.replicas for p, proposal in proposals.items()},
            budget_gpus=settings.gpu_budget,
            gpus_per_replica=settings.profile.gpus_per_replica,
            bounds=settings.bounds,
            served_fraction=lambda phase, n: _served_fraction(proposals[phase], n),
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
    decision = Decision(pool=observation.pool, time=now, phases=decisions, notes=tuple(notes))
    return wake.together(decision, observation, settings), PolicyState(phases=phase_states)


def _past_target(sig: PhaseSignals, settings: PolicySettings) -> bool:
    """Whether the phase's queue holds at least the TTFT target's worth of its own throughput: a backlog,
    where a shorter queue is the load's own burstiness."""
    return (sig.queue_length or 0.0) >= (sig.arrival_rate or 0.0) * settings.slo.ttft.seconds


def _backlogged(observation: Observation, settings: PolicySettings) -> bool:
    """Whether any phase has a backlog (``_past_target``): latencies then measure it (in P/D a saturated
    decode pool shows up in TTFT), not the engine's speed, so nothing is calibrated until the latencies
    observed during it have aged out (see ``_settled``). Burstiness the latencies rightly show."""
    return any(sig.queue_length and _past_target(sig, settings) for sig in observation.phases.values())


def _upstream(
    observation: Observation, state: PolicyState, settings: PolicySettings, *, now: float
) -> tuple[float, bool]:
    """Prefill's demand (P/D; 0 without usable prefill signals): every request reaches decode next, so
    decode sees a rise there before its own completions show it; and whether prefill's backlog is
    draining (what it holds shrinks materially: it completes more than arrives)."""
    sig = observation.phases.get(Phase.PREFILL)
    if sig is None or signals.problem(sig, max_age_s=settings.max_signal_age_s) is not None:
        return 0.0, False
    assert sig.arrival_rate is not None
    window = settings.forecast.rate_window_s
    _, growth = _inflight(sig, state.phase(Phase.PREFILL).inflight, now=now, window_s=window)
    draining = growth < -INFLIGHT_MATERIAL * max(sig.arrival_rate, 1.0)
    return _arriving(sig, growth, settings), draining


def _arriving(sig: PhaseSignals, growth: float, settings: PolicySettings) -> float:
    """What arrives at the phase (req/s over the rate window): vLLM counts a request where it finishes, so
    arrivals are those completions plus the growth of what is in flight (``_inflight``); the router counts
    a request as it enters, so its rate is the arrivals already and adding the growth would count a
    piling backlog twice (and a draining one as lost load)."""
    assert sig.arrival_rate is not None
    if settings.counter_source == "router":
        return sig.arrival_rate
    return max(0.0, sig.arrival_rate + growth)


def _incoming(observation: Observation, settings: PolicySettings) -> float:
    """Rate at which the prefill backlog will reach decode (P/D), on top of what prefill completes now:
    queued prompts drain within the drain time, but no faster than the prefill replicas asked for can
    prefill beyond their completions. A backlog the ready prefill replicas clear within the start-up
    horizon is gone before a decode replica started for it is ready: decode is not sized for it (its
    replicas started now would serve nobody). Prefill replicas still starting do not count there: they
    become ready when decode's would, and the backlog they then clear reaches decode at once."""
    sig = observation.phases.get(Phase.PREFILL)
    if sig is None or signals.problem(sig, max_age_s=settings.max_signal_age_s) is not None:
        return 0.0
    if not sig.queue_length or not sig.arrival_rate:
        return 0.0
    mean_work = float(prefill.work(settings.profile, _load(sig, sig.arrival_rate))[0])
    if sig.queue_length <= max(0.0, sig.replicas.ready / mean_work - sig.arrival_rate) * settings.horizon_s:
        return 0.0
    spare = max(0.0, sig.replicas.current / mean_work - sig.arrival_rate)
    return min(sig.queue_length / settings.forecast.backlog_drain_s, spare)


def _propose(
    phase: Phase,
    sig: PhaseSignals | None,
    state: PhaseState,
    settings: PolicySettings,
    *,
    now: float,
    backlogged: bool,
    upstream: _Upstream,
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
    inflight, growth = _inflight(sig, state.inflight, now=now, window_s=settings.forecast.rate_window_s)
    upstream_demand, incoming = upstream.demand, upstream.incoming
    arriving = _arriving(sig, growth, settings)
    demand = max(arriving, upstream_demand)
    elapsed = now - state.forecast.samples[-1][0] if state.forecast else 0.0
    sampled = upstream_demand if upstream.draining else demand
    fc = forecast.update(state.forecast, rate=sampled, now=now, settings=settings.forecast)
    settled = _settled(state.settled, ready=sig.replicas.ready, now=now, backlogged=backlogged)
    state = dataclasses.replace(state, forecast=fc, settled=settled, inflight=inflight)
    if sig.arrival_rate == 0 and queue == 0 and incoming == 0:
        message = "no requests and an empty queue: the minimum is enough"
        return _Proposal(phase, current, 0, Reason.NO_TRAFFIC, message, state)
    view = forecast.outlook(
        fc,
        rate_now=demand,
        horizon_s=settings.horizon_s,
        settings=settings.forecast,
    )
    adjustments = _forecast_adjustments(view)
    if settings.counter_source == "vllm" and abs(growth) > INFLIGHT_MATERIAL * max(sig.arrival_rate, 1.0):
        adjustments.insert(0, Adjustment.INFLIGHT_GROWTH)
    if upstream_demand > arriving:
        adjustments.insert(0, Adjustment.UPSTREAM_DEMAND)
    # A backlog still growing with no replica on its way is larger when replicas asked for now are ready.
    growing = _past_target(sig, settings) and sig.replicas.starting == 0
    queue_then = queue + (max(0.0, growth) * settings.horizon_s if growing else 0.0)
    rate, backlog_note = _with_backlog(
        phase, view.rate, queue=queue, queue_then=queue_then, incoming=incoming, settings=settings
    )
    if phase is Phase.PREFILL and queue > 0:
        adjustments.append(Adjustment.BACKLOG_ON_REPLICAS)
    elif queue > 0:
        adjustments.append(Adjustment.BACKLOG_DRAIN)
    if incoming > 0:
        adjustments.append(Adjustment.BACKLOG_INCOMING)
    load = _load(sig, rate, arrival_cv=_arrival_cv(sig, view, settings))
    context = None
    if phase is Phase.DECODE:
        held = sizing.kv_held(sig, state.kv_held, now=now, window_s=settings.forecast.window_s)
        state = dataclasses.replace(state, kv_held=held)
        context = sizing.observed_context(held, load)
    if context is not None:
        adjustments.append(Adjustment.KV_OBSERVED)
    slo, infeasible = settings.slo, 0.0
    if phase is Phase.PREFILL:
        feasible = sizing.feasibility(settings.profile, load, settings.slo)
        if feasible is None:
            message = (
                f"holding: even a median prompt ({sig.prompt_tokens_mean:.0f} tokens mean) takes longer than "
                f"the TTFT target on an idle replica; no replica count helps"
            )
            return _Proposal(phase, current, current, Reason.SLO_UNATTAINABLE, message, state)
        slo, infeasible = feasible.slo, feasible.infeasible
        if infeasible > 0:
            adjustments.append(Adjustment.INFEASIBLE_EXCLUDED)
    correction = calibration.relax(state.correction, elapsed_s=elapsed, settings=settings.calibration)
    if infeasible == 0 and settled is not None and now - settled[1] >= settings.calibration.evidence_window_s:
        correction = _calibrate(phase, sig, correction, settings, context=context)
    if correction != 1.0:
        adjustments.append(Adjustment.CALIBRATED)
    profile = calibration.corrected(settings.profile, factor=correction, phase=phase)
    sizer = _Sizer(
        profile=profile, slo=slo, phase=phase, context=context, max_utilisation=settings.max_utilisation
    )
    sized = sizer.size(load)
    needed = float(sized.replicas[()])
    state = dataclasses.replace(state, correction=correction)
    basis = _basis(sig, view, rate, demand, backlog_note, correction, context, infeasible, slo, settings)
    if not math.isfinite(needed):
        message = f"{basis}: no replica count meets the SLO; holding"
        return _Proposal(phase, current, current, Reason.SLO_UNATTAINABLE, message, state)
    replicas, reason = int(needed), None
    latency = (
        f"TTFT p{slo.ttft.percentile:g} {float(sized.ttft_s[()]):.3f}s"
        if phase is Phase.PREFILL
        else f"ITL p{slo.itl.percentile:g} {float(sized.itl_s[()]) * 1000:.1f}ms"
    )
    message = f"{basis} needs {replicas} ({latency} predicted, bound by {sized.binding[()]})"
    tolerance = settings.behavior.down_tolerance
    if replicas < current and sizer.holds(load, current=current, tolerance=tolerance):
        replicas, reason = current, Reason.WITHIN_TOLERANCE
        message += f"; {tolerance:.0%} more load would need {current}: held within the tolerance band"
    lasting = None
    lasting_rate = min(view.rate, upstream.lasting_cap)
    if rate != lasting_rate:  # a backlog's drain added to the load: what the load alone asks for
        alone = load.with_rate(np.asarray(lasting_rate, dtype=np.float64))
        lasting = int(sizer.size(alone).replicas[()])
        if lasting < current and sizer.holds(alone, current=current, tolerance=tolerance):
            lasting = current
    calm = not backlogged and incoming == 0 and sig.replicas.starting == 0
    ready = sig.replicas.ready
    spare_starting = (
        sig.replicas.starting > 0
        and replicas < ready
        and not sizer.holds(load, current=ready, tolerance=tolerance)
    )
    return _Proposal(
        phase,
        current,
        replicas,
        reason,
        message,
        state,
        sizer,
        load,
        tuple(adjustments),
        lasting=lasting,
        calm=calm,
        ready_enough=ready if spare_starting else None,
    )


def _inflight(
    sig: PhaseSignals, history: tuple[tuple[float, float], ...], *, now: float, window_s: float
) -> tuple[tuple[tuple[float, float], ...], float]:
    """The in-flight history with the count now, and its growth (req/s) over the rate window.

    Engines count a request when it finishes, so while requests pile up in them the rate read is what
    they complete, not what arrives (capped at their throughput), and while a pile drains it is more:
    arrivals are completions plus the growth of what is in flight, over the same window.
    """
    count = (sig.queue_length or 0.0) + (sig.running_per_replica or 0.0) * sig.replicas.ready
    kept = tuple((t, n) for t, n in history if now - t <= window_s + 1e-9 and t < now)
    growth = (count - kept[0][1]) / (now - kept[0][0]) if kept else 0.0
    return (*kept, (now, count)), growth


def _forecast_adjustments(view: forecast.Outlook) -> list[Adjustment]:
    found = []
    if view.trend > 0:
        found.append(Adjustment.TREND)
    if view.capped:
        found.append(Adjustment.TREND_CAPPED)
    if view.spike:
        found.append(Adjustment.SPIKE_SERVED)
    return found


def _with_backlog(
    phase: Phase, rate: float, *, queue: float, queue_then: float, incoming: float, settings: PolicySettings
) -> tuple[float, str]:
    """The rate to size for with the backlog: prefill's own queue sits inside busy engines, where replicas
    started now cannot take it, so it adds nothing; a decode (or aggregated) queue adds the rate that drains
    it as it will be when replicas asked for now are ready (``queue_then``), and decode also gets the
    prefill backlog about to reach it."""
    drain = settings.forecast.backlog_drain_s
    if phase is Phase.PREFILL:
        return rate, f"queue {queue:.0f} on the replicas"
    note = f"queue {queue:.0f}"
    if queue_then > queue:
        note += f", {queue_then:.0f} by the time replicas asked for now are ready"
    if incoming:
        note += f", prefill backlog {incoming * drain:.0f} incoming"
    return rate + queue_then / drain + incoming, note


def _basis(
    sig: PhaseSignals,
    view: forecast.Outlook,
    rate: float,
    demand: float,
    backlog_note: str,
    correction: float,
    context: float | None,
    infeasible: float,
    slo: Slo,
    settings: PolicySettings,
) -> str:
    """What the sizing rests on, in one clause per mechanism that acted."""
    assert sig.arrival_rate is not None
    shape = f"trend {view.trend * 60:+.1f} req/s/min"
    if view.spike:
        shape = "spike served as it is"
        if view.newest > demand:
            shape += f", {view.newest:.2f} req/s in the newest interval, read out of the rate window"
    parts = [
        f"sized for {rate:.2f} req/s (demand {demand:.2f} from {sig.arrival_rate:.2f} "
        f"{_COUNTED[settings.counter_source]}, level {view.level:.2f}, {shape}"
        f"{', capped' if view.capped else ''}; {backlog_note})"
    ]
    rules = settings.calibration
    if correction != 1.0:
        parts.append(f"profile x{correction:.2f} (bounds {rules.minimum:g}-{rules.maximum:g})")
    if context is not None:
        parts.append(f"KV {context:.0f} tokens per running sequence as reported")
    if infeasible > 0:
        parts.append(
            f"{infeasible:.1%} of prompts cannot meet the TTFT target even alone on an idle replica: "
            f"sized for TTFT p{slo.ttft.percentile:.1f} overall "
            f"(p{settings.slo.ttft.percentile:g} of the rest)"
        )
    return ", ".join(parts)


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


def _arrival_cv(sig: PhaseSignals, view: forecast.Outlook, settings: PolicySettings) -> float:
    """The arrivals' coefficient of variation: as read where a driver reads it, else from how much the
    windowed rate disperses around its line. A renewal process with CV ``c`` counts ``λT`` arrivals in a
    window ``T`` with variance about ``λT·c²``, so ``c² ≈ σ²·T/λ`` for rate samples of spread ``σ``: bursts
    that the Erlang model must price, where Poisson (1) would be assumed. Bounded to
    ``[1, max_arrival_cv]``: slow swings of the load also disperse the samples and are not bursts."""
    if sig.arrival_cv is not None:
        return sig.arrival_cv
    if view.level <= 0:
        return 1.0
    dispersion = view.spread**2 * settings.forecast.rate_window_s / view.level
    return min(max(1.0, math.sqrt(dispersion)), settings.forecast.max_arrival_cv)


def _load(sig: PhaseSignals, rate: float, *, arrival_cv: float | None = None) -> Load:
    assert sig.prompt_tokens_mean is not None and sig.output_tokens_mean is not None
    if arrival_cv is None:
        arrival_cv = 1.0 if sig.arrival_cv is None else sig.arrival_cv
    return Load.of(
        rate=rate,
        prompt_tokens=max(sig.prompt_tokens_mean, 1.0),
        output_tokens=max(sig.output_tokens_mean, 1.0),
        prefix_hit_rate=sig.prefix_hit_rate or 0.0,
        arrival_cv=arrival_cv,
        prompt_cv=1.0 if sig.prompt_tokens_cv is None else sig.prompt_tokens_cv,
        output_cv=1.0 if sig.output_tokens_cv is None else sig.output_tokens_cv,
    )


def _calibrate(
    phase: Phase, sig: PhaseSignals, previous: float, settings: PolicySettings, *, context: float | None
) -> float:
    """Update the correction where the observation is informative (see policy.calibration)."""
    observed = sig.ttft_observed_s if phase is Phase.PREFILL else sig.itl_observed_s
    if observed is None or sig.replicas.ready == 0 or not sig.arrival_rate:
        return previous
    now_load = _load(sig, sig.arrival_rate)
    predicted = planning.predict_phase(
        settings.profile,
        now_load,
        settings.slo,
        phase,
        np.asarray(float(sig.replicas.ready)),
        decode_context=context,
    )
    rules = settings.calibration
    if not rules.min_utilisation <= float(predicted.utilisation[()]) < rules.max_utilisation:
        return previous
    expected = float((predicted.ttft_s if phase is Phase.PREFILL else predicted.itl_s)[()])
    target = settings.slo.ttft.seconds if phase is Phase.PREFILL else settings.slo.itl.seconds
    if max(observed, expected) < rules.min_latency_fraction * target:
        return previous  # far from the SLO the latency is fixed costs, which say nothing about capacity
    return calibration.update(previous, observed=observed, predicted=expected, settings=rules)


def _served_fraction(proposal: _Proposal, replicas: int) -> float:
    """Fraction of the phase's forecast load that ``replicas`` replicas serve within the SLO."""
    if proposal.load is None or proposal.sizer is None:
        return 1.0 if replicas >= proposal.replicas else 0.0
    fractions = np.arange(1, SERVED_FRACTION_GRID + 1) / SERVED_FRACTION_GRID
    needed = proposal.sizer.size(proposal.load.with_rate(proposal.load.rate * fractions)).replicas
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
    # A spike is served now but not remembered: the down window must not hold its replicas once it is over.
    spike = Adjustment.SPIKE_SERVED in proposal.adjustments
    remembered = min(wanted, current) if spike else wanted
    recommendations = behavior.record(history, now=now, value=remembered, keep_s=keep)
    # A backlog's drain is served but, once the backlog is gone and no replica is on its way, not held: the
    # down window then keeps what the load alone asked for (the replicas a drain needed are idle after it).
    without_drain = (
        remembered if proposal.lasting is None else min(remembered, max(proposal.lasting, bounds.minimum))
    )
    lasting = behavior.record(state.lasting or history, now=now, value=without_drain, keep_s=keep)
    desired, why = behavior.stabilize(
        current=current, recommendations=recommendations, now=now, behavior=rules
    )
    if proposal.calm:
        held_without_drain, why_without_drain = behavior.stabilize(
            current=current, recommendations=lasting, now=now, behavior=rules
        )
        if held_without_drain < desired:
            desired, why = held_without_drain, why_without_drain
            notes.append(
                "the backlog is gone: the replicas its drain asked for are not held by the down window"
            )
    if spike and wanted > desired:
        desired, why = wanted, None
        notes.append("a spike: served now, not held by the stabilization window afterwards")
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
    adjustments = proposal.adjustments
    released_to = None if proposal.ready_enough is None else max(proposal.ready_enough, wanted)
    if released_to is not None and released_to < desired <= current:
        desired, limiter = released_to, None
        adjustments += (Adjustment.STARTING_RELEASED,)
        notes.append(
            f"the {proposal.ready_enough} ready replicas hold the load with {rules.down_tolerance:.0%} more: "
            f"replicas still starting are released, not held by the windows"
        )
    events = state.scale_events
    if desired != current:
        events = behavior.record(events, now=now, value=current, keep_s=keep)
    new_state = dataclasses.replace(
        state, recommendations=recommendations, lasting=lasting, scale_events=events
    )
    reason = limiter or proposal.reason or direction(desired, current)
    return PhaseDecision(desired, current, reason, "; ".join(notes), adjustments), new_state

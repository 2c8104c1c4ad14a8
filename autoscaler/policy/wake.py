"""Scale from zero and back to it, every phase of the pool together.

At zero replicas no engine reports anything and the router places nothing, so the only sign of demand is
the router's admission queue (``Observation.router_queue``). Two pure steps around ``policy.step``:

- ``with_router_queue`` (before sizing): the queued requests become load, at the rate that serves them
  within ``backlog_drain_s``, on top of what arrives, with their own prompt and output means; so do the
  requests the queue shed lately (at their rate): no engine counted them, yet they were demand. The capacity
  model then sizes every phase for the queued and arriving load, and the step records that as any other
  recommendation, so its scale-down window keeps the pool awake after the queue has drained.
- ``together`` (after sizing): with any demand, no phase of the pool stays at zero (in P/D a decode pool
  serves nothing without its prefill pool, a prefill pool nothing without decode); a phase the step held
  at zero (its signals missing, as they are with no replica) gets the capacity model's size for the queued
  demand. With no demand at all, once one phase has gone down to zero the others follow where their
  minimum allows, so an idle pool costs nothing. Either way the phase's message says so.

After the step, ``watched`` says whether the pool is left to the controller's wake watch (every phase at
zero, nothing held): its router is then asked for held requests between steps, which run the next step at
once instead of at the next interval. The controller and the simulator both follow it.

Idle means the step itself chose zero: no request arriving over the rate window, none queued, and the
step's scale-down window (``Behavior.down_window_s``) passed since it last wanted more.
"""

from __future__ import annotations

import dataclasses
import math

from autoscaler.capacity import plan as planning
from autoscaler.capacity.load import Load
from autoscaler.core.decision import Decision, PhaseDecision, Reason
from autoscaler.core.observation import Observation, PhaseSignals, RouterQueue
from autoscaler.core.phases import Phase
from autoscaler.policy.settings import PolicySettings


def watched(decision: Decision, queue: RouterQueue | None) -> bool:
    """Whether the pool's router is to be watched for held requests until the next step (the controller's
    wake watch): every phase left at zero, and nothing held that this step saw (a held request the step
    slept on, no phase being able to grow, would not wake the pool if the step ran again sooner)."""
    asleep = all(d.replicas == 0 for d in decision.phases.values())
    return asleep and (queue is None or queue.requests < 1)


def with_router_queue(observation: Observation, settings: PolicySettings) -> Observation:
    """``observation`` with the router's queued requests, and those it shed, added to every phase's
    arrivals."""
    queue = observation.router_queue
    if queue is None or (queue.requests < 1 and queue.shed_per_s <= 0):
        return observation
    rate = queue.requests / settings.forecast.backlog_drain_s + queue.shed_per_s
    phases = {phase: _plus(sig, queue, rate) for phase, sig in observation.phases.items()}
    return dataclasses.replace(observation, phases=phases)


def together(decision: Decision, observation: Observation, settings: PolicySettings) -> Decision:
    """``decision`` with the phases woken, or put to sleep, together."""
    phases = decision.phases
    asleep = [p for p, d in phases.items() if d.replicas == 0]
    queue = observation.router_queue
    queued = queue.requests if queue is not None else 0.0
    if queued >= 1 or _arriving(observation):
        changed = {p: _woken(p, phases[p], queue, settings) for p in asleep if settings.bounds[p].maximum > 0}
        changed.update(
            {p: _labelled(d, queue) for p, d in phases.items() if d.previous == 0 and d.replicas > 0}
        )
    elif not asleep:
        return decision
    else:
        changed = {
            p: _asleep(d, asleep)
            for p, d in phases.items()
            if d.replicas > 0 and settings.bounds[p].minimum == 0
        }
    if not changed:
        return decision
    return dataclasses.replace(decision, phases={**phases, **changed})


def _plus(sig: PhaseSignals, queue: RouterQueue, rate: float) -> PhaseSignals:
    """A phase's signals with ``rate`` more arrivals of the queue's mean lengths.

    A serving phase whose own rate is unreadable stays so (fail static); one with no ready replica has no
    rate of its own to read, and the queue is all its demand."""
    own = sig.arrival_rate
    if own is None or not math.isfinite(own):
        if sig.replicas.ready > 0:
            return sig
        own = 0.0
    if queue.requests < 1:  # only shed requests: they were like the rest, as far as anyone knows
        if sig.prompt_tokens_mean is None or sig.output_tokens_mean is None:
            return sig
        return dataclasses.replace(sig, arrival_rate=own + rate)
    return dataclasses.replace(
        sig,
        arrival_rate=own + rate,
        prompt_tokens_mean=_mixed(sig.prompt_tokens_mean, own, queue.prompt_tokens / queue.requests, rate),
        output_tokens_mean=_mixed(sig.output_tokens_mean, own, queue.output_tokens / queue.requests, rate),
    )


def _mixed(mean: float | None, weight: float, other: float, other_weight: float) -> float:
    if mean is None or not math.isfinite(mean) or weight <= 0:
        return other
    return (mean * weight + other * other_weight) / (weight + other_weight)


def _arriving(observation: Observation) -> bool:
    return any((s.arrival_rate or 0.0) > 0 for s in observation.phases.values())


def _woken(
    phase: Phase, held: PhaseDecision, queue: RouterQueue | None, settings: PolicySettings
) -> PhaseDecision:
    replicas = min(max(1, _size_for(phase, queue, settings)), settings.bounds[phase].maximum)
    waiting = (
        f"requests waiting in the router: {queue.requests:g}" if queue and queue.requests else "requests"
    )
    return PhaseDecision(
        replicas=replicas,
        previous=held.previous,
        reason=Reason.ACTIVATED,
        message=(
            f"woken from zero with every phase of the pool: {waiting}; {replicas} sized by the capacity "
            f"model for the queued and arriving load (the step alone said {held.replicas}: {held.message})"
        ),
        adjustments=held.adjustments,
    )


def _labelled(sized: PhaseDecision, queue: RouterQueue | None) -> PhaseDecision:
    """A phase the step itself woke (sized above zero from zero): the reason says it woke, and by what."""
    waiting = f"requests waiting in the router: {queue.requests:g}; " if queue and queue.requests else ""
    return dataclasses.replace(
        sized, reason=Reason.ACTIVATED, message=f"woken from zero: {waiting}{sized.message}"
    )


def _asleep(held: PhaseDecision, asleep: list[Phase]) -> PhaseDecision:
    down = ", ".join(p.value for p in asleep)
    return PhaseDecision(
        replicas=0,
        previous=held.previous,
        reason=Reason.DEACTIVATED,
        message=(
            f"idle (no request arriving or queued) and {down} already at zero: the pool scales to zero "
            f"together (the step alone said {held.replicas})"
        ),
        adjustments=held.adjustments,
    )


def _size_for(phase: Phase, queue: RouterQueue | None, settings: PolicySettings) -> int:
    """Replicas of ``phase`` that serve the queue within the drain time (1 without a queue to size for)."""
    if queue is None or queue.requests < 1:
        return 1
    load = Load.of(
        rate=queue.requests / settings.forecast.backlog_drain_s,
        prompt_tokens=max(1.0, queue.prompt_tokens / queue.requests),
        output_tokens=max(1.0, queue.output_tokens / queue.requests),
    )
    try:
        sized = planning.plan(settings.profile, load, settings.slo, settings.mode)
    except planning.UnattainableSlo:
        return 1
    return sized.phases[phase].replicas

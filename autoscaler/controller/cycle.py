"""One control cycle for one InferenceAutoscaler: read, decide (the pure policy), act, report.

1. Read the resource (gone: forget it) and parse its spec (invalid: say so in ``Ready`` and an Event, hold).
2. Read each phase's Scale and pods; in ``direct`` mode look for an HPA or ScaledObject on the same target
   (found: refuse to actuate, say so, keep publishing).
3. Read the signals (Prometheus down: the policy sees missing signals and holds), step the policy.
4. Publish the decision on the desired-replicas board (HPA/KEDA read it), then in ``direct`` mode move each
   phase (``actuation``); a 409 means someone changed the workload: re-read and decide again, up to
   ``MAX_ATTEMPTS`` times, from the policy state as it was before the cycle.
5. Write the status and emit Events: every scale and drain, and each warning when it first appears.

Every failure of one resource ends its cycle with a condition and an Event, never an exception: the loop
goes on with the other resources and tries again next interval. Policy state lives in memory (``Memory``);
a new leader starts fresh, and the policy then trusts the current counts, so it cannot scale down before a
full stabilization window of its own evidence.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from typing import Any

from autoscaler.adapters import prometheus
from autoscaler.adapters.kubernetes import errors
from autoscaler.adapters.kubernetes.events import EventRecorder
from autoscaler.adapters.kubernetes.foreign import ForeignAutoscalerFinder
from autoscaler.adapters.kubernetes.pods import PodClient, PodState
from autoscaler.adapters.kubernetes.resources import CustomResources
from autoscaler.adapters.kubernetes.scale import ScaleClient, ScaleState
from autoscaler.adapters.kubernetes.workload import WorkloadRef
from autoscaler.adapters.publishing import DesiredReplicasBoard
from autoscaler.config.autoscaler_resource import (
    API_VERSION,
    KIND,
    PLURAL,
    AutoscalerResource,
    Mode,
    ResourceError,
)
from autoscaler.config.profiles import ProfileError
from autoscaler.controller import status
from autoscaler.controller.actuation import Actuator, Conflicted, Draining, Outcome, Scaled
from autoscaler.controller.router_load import RouterLoadReader
from autoscaler.controller.signals import SignalReader, Values
from autoscaler.core.decision import Decision
from autoscaler.core.observation import ReplicaCounts
from autoscaler.core.phases import Phase
from autoscaler.policy.settings import PolicySettings
from autoscaler.policy.state import PolicyState
from autoscaler.policy.step import Autoscaler

MAX_ATTEMPTS = 3
log = logging.getLogger(__name__)


@dataclasses.dataclass
class Memory:
    """What the controller keeps per resource between cycles (in memory only)."""

    state: PolicyState = dataclasses.field(default_factory=PolicyState)
    warnings: frozenset[str] = frozenset()  # warning reasons already announced by an Event


@dataclasses.dataclass(frozen=True, slots=True)
class Cluster:
    """The I/O a cycle uses."""

    resources: CustomResources
    scales: ScaleClient
    pods: PodClient
    events: EventRecorder
    foreign: ForeignAutoscalerFinder
    signals: SignalReader
    router: RouterLoadReader
    board: DesiredReplicasBoard


@dataclasses.dataclass(frozen=True, slots=True)
class PhaseView:
    scale: ScaleState
    pods: tuple[PodState, ...]

    def counts(self) -> ReplicaCounts:
        current = self.scale.replicas
        ready = min(current, sum(1 for p in self.pods if p.ready and not p.deleting))
        return ReplicaCounts(current=current, ready=ready, starting=current - ready)


class Hold(Exception):
    """End the cycle without a decision: the conditions and the warning say why."""

    def __init__(self, reason: str, message: str, *, ready: bool) -> None:
        super().__init__(message)
        self.reason, self.message, self.ready = reason, message, ready


class Reconciler:
    def __init__(
        self,
        cluster: Cluster,
        *,
        leading: Callable[[], bool],
        on_scale: Callable[[AutoscalerResource, Phase, Scaled], None] = lambda *_: None,
    ) -> None:
        self._cluster = cluster
        self._actuator = Actuator(cluster.scales, cluster.pods)
        self._leading = leading
        self._on_scale = on_scale
        self.memory: dict[tuple[str, str], Memory] = {}

    def forget(self, namespace: str, name: str) -> None:
        self.memory.pop((namespace, name), None)
        self._cluster.board.remove(namespace=namespace, autoscaler=name)

    def abdicate(self) -> None:
        for key in list(self.memory):
            self.forget(*key)

    async def reconcile(self, namespace: str, name: str, *, now: float) -> str:
        """One cycle; returns its outcome (``decided``, ``held``, ``gone``, ``follower``, ``unreachable``)."""
        if not self._leading():
            return "follower"
        try:
            obj = await self._cluster.resources.get(namespace, name)
        except errors.NotFound:
            self.forget(namespace, name)
            return "gone"
        except errors.KubernetesError as error:
            log.warning("cannot read resource", extra=_fields(namespace, name, error=str(error)))
            return "unreachable"
        memory = self.memory.setdefault((namespace, name), Memory())
        meta = obj.get("metadata") or {}
        generation = int(meta.get("generation") or 0)
        previous = (obj.get("status") or {}).get("conditions") or []
        try:
            return await self._cycle(obj, memory, generation=generation, previous=previous, now=now)
        except Hold as hold:
            await self._report_hold(namespace, name, hold, memory, generation, previous, now)
            return "held"
        except errors.NotFound:  # deleted mid-cycle: its status write found nothing
            self.forget(namespace, name)
            return "gone"
        except errors.KubernetesError as error:
            unavailable = Hold("ApiUnavailable", f"holding: {error}", ready=True)
            await self._report_hold(namespace, name, unavailable, memory, generation, previous, now)
            return "held"

    async def _cycle(
        self,
        obj: Mapping[str, Any],
        memory: Memory,
        *,
        generation: int,
        previous: list[Any],
        now: float,
    ) -> str:
        try:
            resource = AutoscalerResource.parse(obj)
            settings = resource.policy_settings(resource.spec.profile.load())
        except (ResourceError, ProfileError) as error:
            raise Hold("InvalidSpec", str(error), ready=False) from error
        direct = resource.spec.mode is Mode.DIRECT
        foreign = await self._foreign(resource) if direct else ()
        policy = Autoscaler(settings)
        for _ in range(MAX_ATTEMPTS):
            views = await self._views(resource)
            values, signal_error = await self._signals(resource, now)
            observation = prometheus.observation(
                pool=resource.pool,
                values=values,
                replicas={phase: view.counts() for phase, view in views.items()},
                now=now,
            )
            decision, state = policy.step(observation, memory.state, now=now)
            self._cluster.board.publish_decision(
                namespace=resource.namespace, autoscaler=resource.name, decision=decision
            )
            outcomes: dict[Phase, Outcome] = {}
            if direct and not foreign:
                if not self._leading():
                    return "follower"
                outcomes = await self._act(resource, views, decision, now=now)
                if any(isinstance(o, Conflicted) for o in outcomes.values()):
                    continue
            break
        else:
            raise Hold(
                "ConflictRetriesExhausted",
                f"the targets kept changing over {MAX_ATTEMPTS} attempts",
                ready=True,
            )
        memory.state = state
        await self._report(
            resource, settings, views, decision, outcomes, foreign, signal_error, memory, previous, now
        )
        return "decided"

    async def _foreign(self, resource: AutoscalerResource) -> tuple[str, ...]:
        found: list[str] = []
        for target in resource.targets().values():
            found.extend(str(f) for f in await self._cluster.foreign.targeting(target))
        return tuple(found)

    async def _views(self, resource: AutoscalerResource) -> dict[Phase, PhaseView]:
        views = {}
        for phase, target in resource.targets().items():
            try:
                scale = await self._cluster.scales.read(target)
            except errors.NotFound as error:
                raise Hold("TargetNotFound", f"{phase.value}: {target} not found", ready=False) from error
            selector = resource.spec.phases.of(phase).pod_selector or scale.selector
            pods = (await self._cluster.pods.list(target.namespace, selector)).pods if selector else ()
            views[phase] = PhaseView(scale=scale, pods=pods)
        return views

    async def _signals(self, resource: AutoscalerResource, now: float) -> tuple[Values, str | None]:
        try:
            return await self._cluster.signals.read(resource.reader_settings(), now=now), None
        except prometheus.SignalsUnavailable as error:
            return {}, str(error)

    async def _act(
        self,
        resource: AutoscalerResource,
        views: Mapping[Phase, PhaseView],
        decision: Decision,
        *,
        now: float,
    ) -> dict[Phase, Outcome]:
        load = await self._cluster.router.read(resource.spec.router.metrics_url)
        outcomes: dict[Phase, Outcome] = {}
        for phase, view in views.items():
            outcome = await self._actuator.apply(
                view.scale,
                view.pods,
                desired=decision.phases[phase].replicas,
                load=load,
                now=now,
                drain_timeout_s=float(resource.spec.behavior.drain_timeout_seconds),
            )
            outcomes[phase] = outcome
            if isinstance(outcome, Scaled):
                self._on_scale(resource, phase, outcome)
        return outcomes

    # -- reporting ---------------------------------------------------------------------------------------

    async def _report(
        self,
        resource: AutoscalerResource,
        settings: PolicySettings,
        views: Mapping[Phase, PhaseView],
        decision: Decision,
        outcomes: Mapping[Phase, Outcome],
        foreign: tuple[str, ...],
        signal_error: str | None,
        memory: Memory,
        previous: list[Any],
        now: float,
    ) -> None:
        ref = _regarding(resource.namespace, resource.name)
        for phase, outcome in outcomes.items():
            d = decision.phases[phase]
            if isinstance(outcome, Scaled):
                removed = f" (removed {', '.join(outcome.removed)})" if outcome.removed else ""
                reason = "ScaledUp" if outcome.after > outcome.before else "ScaledDown"
                note = f"{phase.value} {outcome.before} -> {outcome.after}{removed}: {d.reason}: {d.message}"
                await self._emit(ref, reason=reason, note=note)
            elif isinstance(outcome, Draining) and outcome.marked:
                note = (
                    f"{phase.value}: draining {', '.join(outcome.marked)} before scaling "
                    f"{d.previous} -> {d.replicas}: {d.message}"
                )
                await self._emit(ref, reason="Draining", note=note, action="Drain")
        warnings = dict(self._warnings(resource, settings, views, decision, foreign, signal_error, now))
        await self._announce(ref, warnings, memory)
        phases = {
            phase: status.PhaseStatus(
                desired=decision.phases[phase].replicas,
                current=view.scale.replicas,
                ready=view.counts().ready,
                pending=sum(1 for p in view.pods if p.phase == "Pending" and not p.deleting),
                draining=_draining(view, outcomes.get(phase)),
                reason=decision.phases[phase].reason,
                message=decision.phases[phase].message,
                correction=memory.state.phase(phase).correction,
            )
            for phase, view in views.items()
        }
        new = [
            status.Condition(status.READY, True, "Resolved", "the spec is valid and its targets exist"),
            _signals_condition(decision, signal_error),
            _active_condition(resource, decision, outcomes, foreign),
            status.limited({phase: d.reason for phase, d in decision.phases.items()}),
        ]
        body = status.body(
            generation=resource.generation,
            now=now,
            conditions_now=status.conditions(new, previous=previous, generation=resource.generation, now=now),
            phases=phases,
            notes=decision.notes,
            decided=True,
        )
        await self._cluster.resources.patch_status(resource.namespace, resource.name, body)

    def _warnings(
        self,
        resource: AutoscalerResource,
        settings: PolicySettings,
        views: Mapping[Phase, PhaseView],
        decision: Decision,
        foreign: tuple[str, ...],
        signal_error: str | None,
        now: float,
    ) -> list[tuple[str, str]]:
        found = []
        if foreign:
            found.append(("ForeignAutoscaler", _foreign_message(foreign)))
        if signal_error is not None:
            found.append(("PrometheusUnavailable", f"holding: {signal_error}"))
        for phase, d in decision.phases.items():
            if d.reason.startswith("Hold") and signal_error is None:
                found.append((d.reason, f"{phase.value}: {d.message}"))
        patience = 2 * settings.profile.startup.mean_s.value
        for phase, view in views.items():
            stuck = [
                p.name
                for p in view.pods
                if p.phase == "Pending"
                and not p.deleting
                and p.created is not None
                and now - p.created > patience
            ]
            if stuck:
                message = (
                    f"{phase.value}: {', '.join(stuck)} Pending for over {patience:.0f}s; counted as "
                    "starting supply and removed first on scale-down"
                )
                found.append(("ReplicasPending", message))
        return found

    async def _announce(self, ref: WorkloadRef, warnings: Mapping[str, str], memory: Memory) -> None:
        """A Warning Event for each warning when it first appears (not every cycle while it lasts)."""
        for reason, message in warnings.items():
            if reason not in memory.warnings:
                await self._emit(ref, reason=reason, note=message, action="Hold", warning=True)
        memory.warnings = frozenset(warnings)

    async def _report_hold(
        self,
        namespace: str,
        name: str,
        hold: Hold,
        memory: Memory,
        generation: int,
        previous: list[Any],
        now: float,
    ) -> None:
        log.warning(hold.message, extra=_fields(namespace, name, reason=hold.reason))
        ref = _regarding(namespace, name)
        await self._announce(ref, {hold.reason: hold.message}, memory)
        new = [
            status.Condition(
                status.READY, hold.ready, "Resolved" if hold.ready else hold.reason, hold.message
            ),
            status.Condition(status.SIGNALS, None, "NotRead", "no signals were read this cycle"),
            status.Condition(status.ACTIVE, False, hold.reason, hold.message),
            status.Condition(status.LIMITED, False, "NotLimited", "no decision this cycle"),
        ]
        body = status.body(
            generation=generation,
            now=now,
            conditions_now=status.conditions(new, previous=previous, generation=generation, now=now),
        )
        try:
            await self._cluster.resources.patch_status(namespace, name, body)
        except errors.NotFound:
            self.forget(namespace, name)
        except errors.KubernetesError as error:
            log.warning("cannot write status", extra=_fields(namespace, name, error=str(error)))

    async def _emit(
        self, ref: WorkloadRef, *, reason: str, note: str, action: str = "Scale", warning: bool = False
    ) -> None:
        try:
            await self._cluster.events.emit(ref, reason=reason, note=note, action=action, warning=warning)
        except errors.KubernetesError as error:  # an Event is worth less than the cycle it reports on
            log.warning(
                "cannot emit event", extra=_fields(ref.namespace, ref.name, reason=reason, error=str(error))
            )


def _draining(view: PhaseView, outcome: Outcome | None) -> int:
    """Pods marked draining once the cycle has acted (a scale-down removed them; a scale-up unmarked them)."""
    if isinstance(outcome, Draining):
        return len(outcome.victims)
    if outcome is not None:
        return 0
    return sum(1 for p in view.pods if p.draining and not p.deleting)


def _regarding(namespace: str, name: str) -> WorkloadRef:
    return WorkloadRef(api_version=API_VERSION, kind=KIND, name=name, namespace=namespace, plural=PLURAL)


def _signals_condition(decision: Decision, signal_error: str | None) -> status.Condition:
    if signal_error is not None:
        return status.Condition(status.SIGNALS, False, "PrometheusUnavailable", signal_error)
    holds = {p: d for p, d in decision.phases.items() if d.reason.startswith("Hold")}
    if holds:
        reason = next(iter(holds.values())).reason
        message = "; ".join(f"{p.value}: {d.message}" for p, d in holds.items())
        return status.Condition(status.SIGNALS, False, reason, message)
    return status.Condition(status.SIGNALS, True, "SignalsFresh", "every phase has fresh, finite signals")


def _active_condition(
    resource: AutoscalerResource,
    decision: Decision,
    outcomes: Mapping[Phase, Outcome],
    foreign: tuple[str, ...],
) -> status.Condition:
    if foreign:
        return status.Condition(status.ACTIVE, False, "ForeignAutoscaler", _foreign_message(foreign))
    holds = [d for d in decision.phases.values() if d.reason.startswith("Hold")]
    if holds:
        return status.Condition(status.ACTIVE, False, holds[0].reason, holds[0].message)
    draining = {p: o for p, o in outcomes.items() if isinstance(o, Draining)}
    if draining:
        message = "; ".join(f"{p.value}: waiting for {', '.join(o.waiting)}" for p, o in draining.items())
        return status.Condition(status.ACTIVE, True, "Draining", message)
    if resource.spec.mode is Mode.ADVISORY:
        message = "publishing desired replicas for an HPA or KEDA to act on"
        return status.Condition(status.ACTIVE, True, "Advisory", message)
    summary = ", ".join(f"{p.value} {d.previous}->{d.replicas}" for p, d in decision.phases.items())
    return status.Condition(status.ACTIVE, True, "Actuating", summary)


def _foreign_message(foreign: tuple[str, ...]) -> str:
    return (
        f"refusing direct mode: {', '.join(foreign)} already scales the target; "
        "remove it or set spec.mode to advisory"
    )


def _fields(namespace: str, name: str, **more: str) -> dict[str, dict[str, str]]:
    return {"fields": {"namespace": namespace, "autoscaler": name, **more}}

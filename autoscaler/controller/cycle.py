"""One control cycle for one InferenceAutoscaler: read, decide (the pure policy), act, report.

1. Read the resource (gone: forget it) and parse its spec (invalid: say so in ``Ready`` and an Event, hold).
2. Read each phase's Scale and pods; in ``direct`` mode look for an HPA or ScaledObject on the same target
   (found: refuse to actuate, say so, keep publishing).
3. Read the signals (Prometheus down: the policy sees missing signals and holds), step the policy.
4. Publish the decision on the desired-replicas board (HPA/KEDA read it), then in ``direct`` mode move each
   phase (``actuation``), with an Event for each write as soon as it is done; a 409 means someone changed
   the workload: re-read and decide again, up to ``MAX_ATTEMPTS`` times, from the policy state as it was
   before the cycle.
5. Write the status, and a Warning Event for each warning when it first appears.

Every failure of one resource ends its cycle with a condition and an Event, never an exception: the loop
goes on with the other resources and tries again next interval. Policy state lives in memory (``Memory``);
a new leader starts fresh, and the policy then trusts the current counts, so it cannot scale down before a
full stabilization window of its own evidence.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Mapping
from typing import Any

from autoscaler.adapters import prometheus
from autoscaler.adapters.kubernetes import errors
from autoscaler.adapters.kubernetes.events import EventRecorder
from autoscaler.adapters.kubernetes.foreign import ForeignAutoscalerFinder
from autoscaler.adapters.kubernetes.pods import PodClient
from autoscaler.adapters.kubernetes.resources import CustomResources
from autoscaler.adapters.kubernetes.scale import ScaleClient
from autoscaler.adapters.kubernetes.workload import OPT_IN_LABEL, OPT_IN_VALUE, WorkloadRef
from autoscaler.adapters.publishing import DesiredReplicasBoard
from autoscaler.adapters.router_metrics import RouterLoadReader
from autoscaler.config.autoscaler_resource import (
    API_VERSION,
    KIND,
    PLURAL,
    AutoscalerResource,
    Mode,
    ResourceError,
)
from autoscaler.config.profiles import ProfileError
from autoscaler.controller import report
from autoscaler.controller.actuation import Actuator, Conflicted, Outcome, Scaled
from autoscaler.controller.report import PhaseView
from autoscaler.controller.signals import SignalReader, Values
from autoscaler.controller.telemetry import telemetry
from autoscaler.core.decision import Decision
from autoscaler.core.observation import Observation
from autoscaler.core.phases import Phase
from autoscaler.policy import wake
from autoscaler.policy.state import PolicyState
from autoscaler.policy.step import Autoscaler

MAX_ATTEMPTS = 3
POLICY_TIMEOUT_S = 10.0
# Routers read at once by the wake watch: many sleeping pools cost a longer look, not a burst of connections
# (a look that overruns its poll is coalesced with the next).
MAX_WAKE_READS = 16
log = logging.getLogger(__name__)


@dataclasses.dataclass
class Memory:
    """What the controller keeps per resource between cycles (in memory only)."""

    state: PolicyState = dataclasses.field(default_factory=PolicyState)
    warnings: frozenset[str] = frozenset()  # warning reasons already announced by an Event
    # The router to watch between cycles while the last decision left every phase at zero with nothing held
    # (None: awake, no router to ask, or woken and not yet decided again): at zero a held request is the only
    # sign of demand, and it should not wait for the next cycle to wake the pool.
    wake_url: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class ClusterClients:
    """The I/O a cycle uses."""

    resources: CustomResources
    scales: ScaleClient
    pods: PodClient
    events: EventRecorder
    foreign: ForeignAutoscalerFinder
    signals: SignalReader
    router: RouterLoadReader
    board: DesiredReplicasBoard


class Hold(Exception):
    """End the cycle without a decision: the conditions and the warning say why."""

    def __init__(self, reason: str, message: str, *, ready: bool) -> None:
        super().__init__(message)
        self.reason, self.message, self.ready = reason, message, ready


class Reconciler:
    def __init__(
        self,
        cluster: ClusterClients,
        *,
        leading: Callable[[], bool],
        on_scale: Callable[[AutoscalerResource, Phase, Scaled], None] = lambda *_: None,
        opt_in: tuple[str, str] = (OPT_IN_LABEL, OPT_IN_VALUE),
    ) -> None:
        self._cluster = cluster
        self._opt_in = opt_in  # (label, value) a target must carry before any write
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

    async def woken(self) -> list[tuple[str, str]]:
        """The resources asleep at zero whose router now holds a request: they should cycle at once."""
        if not self._leading():
            return []
        asleep = [(key, memory.wake_url) for key, memory in self.memory.items() if memory.wake_url]
        reads = asyncio.Semaphore(MAX_WAKE_READS)

        async def waiting(namespace: str, url: str) -> float | None:
            async with reads:
                return await self._cluster.router.waiting(url, namespace=namespace)

        held = await asyncio.gather(*(waiting(key[0], url) for key, url in asleep))
        woken = [key for (key, _), requests in zip(asleep, held, strict=True) if requests and requests >= 1]
        for key in woken:  # until a cycle decides again: a cycle that cannot finish is not rerun every poll
            self.memory[key].wake_url = None
        return woken

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
        key = (namespace, name)
        memory = self.memory.setdefault(key, Memory())
        try:
            return await self._cycle(obj, memory, now=now)
        except Hold as hold:
            await self._report_hold(key, hold, obj=obj, now=now)
            return "held"
        except errors.NotFound:  # deleted mid-cycle: its status write found nothing
            self.forget(namespace, name)
            return "gone"
        except errors.KubernetesError as error:
            await self._report_hold(
                key, Hold("ApiUnavailable", f"holding: {error}", ready=True), obj=obj, now=now
            )
            return "held"

    async def _cycle(self, obj: Mapping[str, Any], memory: Memory, *, now: float) -> str:
        try:
            resource = AutoscalerResource.parse(obj)
            settings = resource.policy_settings(resource.spec.profile.load())
        except (ResourceError, ProfileError) as error:
            raise Hold("InvalidSpec", str(error), ready=False) from error
        direct = resource.spec.mode is Mode.DIRECT
        foreign = await self._foreign(resource) if direct else ()
        if direct and not foreign:
            await self._require_opt_in(resource)
        policy = Autoscaler(settings)
        for _ in range(MAX_ATTEMPTS):
            views = await self._views(resource)
            values, signal_error = await self._signals(resource, now)
            counts = {phase: view.counts() for phase, view in views.items()}
            observation = prometheus.observation(pool=resource.pool, values=values, replicas=counts, now=now)
            # Read from the router itself, not a scrape ago: at zero replicas it is the only demand there is.
            router_url = resource.spec.router.metrics_url
            queue = await self._cluster.router.queue(router_url, namespace=resource.namespace)
            observation = dataclasses.replace(observation, router_queue=queue)
            decision, state = await _step(policy, observation, memory.state, now=now)
            gauges = telemetry(
                pool=resource.pool,
                observation=observation,
                ready={phase: c.ready for phase, c in counts.items()},
                state=state,
                settings=settings,
            )
            self._cluster.board.publish_decision(
                namespace=resource.namespace, autoscaler=resource.name, decision=decision, telemetry=gauges
            )
            outcomes: dict[Phase, Outcome] = {}
            if direct and not foreign:
                if not self._leading():
                    return "follower"
                outcomes = await self._act(resource, views, decision, now=now)
                if any(isinstance(o, Conflicted) for o in outcomes.values()):
                    continue  # someone changed a target since it was read: read again, decide again
            break
        else:
            message = f"the targets kept changing over {MAX_ATTEMPTS} attempts"
            raise Hold("ConflictRetriesExhausted", message, ready=True)
        memory.state = state
        memory.wake_url = router_url if wake.watched(decision, queue) else None
        facts = report.CycleFacts(
            resource=resource,
            settings=settings,
            views=views,
            decision=decision,
            outcomes=outcomes,
            corrections={phase: state.phase(phase).correction for phase in views},
            foreign=foreign,
            signal_error=signal_error,
        )
        await self._report(facts, memory=memory, previous=_conditions(obj), now=now)
        return "decided"

    async def _foreign(self, resource: AutoscalerResource) -> tuple[str, ...]:
        found: list[str] = []
        for target in resource.targets().values():
            found.extend(str(f) for f in await self._cluster.foreign.targeting(target))
        return tuple(found)

    async def _require_opt_in(self, resource: AutoscalerResource) -> None:
        """Hold unless every target carries the opt-in label: checked before any write (scale or pod)."""
        key, value = self._opt_in
        for phase, target in resource.targets().items():
            try:
                labels = await self._cluster.scales.labels(target)
            except errors.NotFound as error:
                raise Hold("TargetNotFound", f"{phase.value}: {target} not found", ready=False) from error
            if labels.get(key) != value:
                message = f"{phase.value}: {target} lacks the label {key}={value} that allows scaling it"
                raise Hold("TargetNotOptedIn", message, ready=False)

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
        load = await self._cluster.router.read(resource.spec.router.metrics_url, namespace=resource.namespace)
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
            event = report.outcome_event(phase, outcome, decision.phases[phase])
            if event is not None:
                ref = _regarding(resource.namespace, resource.name)
                await self._emit(ref, reason=event.reason, note=event.note, action=event.action)
        return outcomes

    # -- reporting ---------------------------------------------------------------------------------------

    async def _report(
        self, facts: report.CycleFacts, *, memory: Memory, previous: list[Any], now: float
    ) -> None:
        resource = facts.resource
        await self._announce(
            _regarding(resource.namespace, resource.name), report.warnings(facts, now=now), memory
        )
        body = report.decided_status(facts, previous=previous, now=now)
        await self._cluster.resources.patch_status(resource.namespace, resource.name, body)

    async def _report_hold(
        self, key: tuple[str, str], hold: Hold, *, obj: Mapping[str, Any], now: float
    ) -> None:
        namespace, name = key
        log.warning(hold.message, extra=_fields(namespace, name, reason=hold.reason))
        await self._announce(_regarding(namespace, name), {hold.reason: hold.message}, self.memory[key])
        body = report.held_status(
            reason=hold.reason,
            message=hold.message,
            ready=hold.ready,
            generation=_generation(obj),
            previous=_conditions(obj),
            now=now,
        )
        try:
            await self._cluster.resources.patch_status(namespace, name, body)
        except errors.NotFound:
            self.forget(namespace, name)
        except errors.KubernetesError as error:
            log.warning("cannot write status", extra=_fields(namespace, name, error=str(error)))

    async def _announce(self, ref: WorkloadRef, warnings: Mapping[str, str], memory: Memory) -> None:
        """A Warning Event for each warning when it first appears (not every cycle while it lasts)."""
        for reason, message in warnings.items():
            if reason not in memory.warnings:
                await self._emit(ref, reason=reason, note=message, action="Hold", warning=True)
        memory.warnings = frozenset(warnings)

    async def _emit(
        self, ref: WorkloadRef, *, reason: str, note: str, action: str = "Scale", warning: bool = False
    ) -> None:
        try:
            await self._cluster.events.emit(ref, reason=reason, note=note, action=action, warning=warning)
        except errors.KubernetesError as error:  # an Event is worth less than the cycle it reports on
            log.warning(
                "cannot emit event", extra=_fields(ref.namespace, ref.name, reason=reason, error=str(error))
            )


async def _step(
    policy: Autoscaler, observation: Observation, state: PolicyState, *, now: float
) -> tuple[Decision, PolicyState]:
    """The policy step in a worker thread, within ``POLICY_TIMEOUT_S``.

    Its cost is bounded (``capacity`` sizes any load in milliseconds), but the loop also renews the Lease and
    answers ``/healthz``: arithmetic must never make it wait. A step that overruns is left to finish in its
    thread (a thread cannot be cancelled); the cycle holds and says so.
    """
    try:
        return await asyncio.wait_for(
            asyncio.to_thread(policy.step, observation, state, now=now), timeout=POLICY_TIMEOUT_S
        )
    except TimeoutError as error:
        message = f"holding: the policy step took over {POLICY_TIMEOUT_S:g}s"
        raise Hold("PolicyTimeout", message, ready=True) from error


def _regarding(namespace: str, name: str) -> WorkloadRef:
    return WorkloadRef(api_version=API_VERSION, kind=KIND, name=name, namespace=namespace, plural=PLURAL)


def _generation(obj: Mapping[str, Any]) -> int:
    return int((obj.get("metadata") or {}).get("generation") or 0)


def _conditions(obj: Mapping[str, Any]) -> list[Any]:
    found = (obj.get("status") or {}).get("conditions")
    return found if isinstance(found, list) else []


def _fields(namespace: str, name: str, **more: str) -> dict[str, dict[str, str]]:
    return {"fields": {"namespace": namespace, "autoscaler": name, **more}}

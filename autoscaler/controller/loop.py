"""The live controller: leader election, a watch of the InferenceAutoscalers, one scheduled cycle each.

Every replica of the controller watches the resources and keeps an apscheduler interval job per resource
(``spec.controlIntervalSeconds``); a job's cycle does nothing unless this replica holds the Lease, so a new
leader starts acting at its next tick. Winning the lease, and a spec change (a new ``generation``), run the
affected cycles at once; so does a request held by the router of a pool asleep at zero replicas, which the
wake watch looks for every ``wake_poll_s`` (one read of each sleeping pool's router, nothing when none
sleeps), as Knative's activator pokes its autoscaler: a cold start should not also wait out an interval.
Shutdown (``stop`` set) stops the scheduler, the watch and the renewals, then releases the Lease so a
follower takes over without waiting out its duration.

Tests drive the same object one step at a time: ``elect()``, ``sync()``, ``reconcile(namespace, name)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import logging
import random
import time
from collections.abc import Mapping
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler  # type: ignore[import-untyped]
from apscheduler.triggers.interval import IntervalTrigger  # type: ignore[import-untyped]

from autoscaler.adapters.kubernetes import errors
from autoscaler.adapters.kubernetes.leases import LeaseElector
from autoscaler.adapters.kubernetes.resources import ResourceKind
from autoscaler.adapters.kubernetes.workload import OPT_IN_LABEL, OPT_IN_VALUE
from autoscaler.config.autoscaler_resource import GROUP, PLURAL, VERSION, AutoscalerResource
from autoscaler.controller.actuation import Scaled
from autoscaler.controller.backoff import Backoff
from autoscaler.controller.cycle import ClusterClients, Reconciler
from autoscaler.controller.health import ControllerMetrics, HealthServer
from autoscaler.controller.leadership import LeaderGate
from autoscaler.core import ports
from autoscaler.core.phases import Phase

KIND = ResourceKind(group=GROUP, version=VERSION, plural=PLURAL)
DEFAULT_INTERVAL_S = 30
WAKE_JOB = "wake-watch"  # no resource's job id (namespace/name) can take it
log = logging.getLogger(__name__)

Key = tuple[str, str]


@dataclasses.dataclass(frozen=True, slots=True)
class ControllerSettings:
    identity: str  # this replica's name in the Lease (the pod name)
    lease_namespace: str
    namespace: str | None = None  # the resources' namespace; None: all namespaces
    lease_name: str = "inference-autoscaler"
    lease_duration_s: int = 15
    renew_every_s: float = 5.0
    watch_timeout_s: int = 300
    request_timeout_s: float = 10.0
    opt_in: tuple[str, str] = (OPT_IN_LABEL, OPT_IN_VALUE)  # label a target carries before any write
    watch_backoff: Backoff = dataclasses.field(default_factory=Backoff)  # relisting after the API failed
    wake_poll_s: float = 2.0  # how often the routers of pools asleep at zero are asked for held requests


class Controller:
    """Elects, watches and schedules; ``cluster`` and ``elector`` come built from the composition root
    (``cli.controller.build_controller``), so the tests hand it the same clients over a fake API server."""

    def __init__(
        self,
        *,
        settings: ControllerSettings,
        cluster: ClusterClients,
        elector: LeaseElector,
        clock: ports.Clock,
        metrics: ControllerMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or ControllerMetrics()
        self._clock = clock
        self._resources = cluster.resources
        self.gate = LeaderGate(elector, clock=clock, on_elected=self._run_all_now, on_lost=self._abdicate)
        self.reconciler = Reconciler(
            cluster, leading=self.gate.leading, on_scale=self._count_scale, opt_in=settings.opt_in
        )
        self._tracked: dict[Key, tuple[int, int]] = {}  # key -> (interval, generation)
        self._scheduler: AsyncIOScheduler | None = None
        self._cycles: set[asyncio.Task[Any]] = set()  # cycles under way, finished before the lease goes
        self._rng = random.Random()  # jitter only: unseeded on purpose, replicas must not retry in step
        self.synced = False
        self.health_port: int | None = None  # where /healthz, /readyz and /metrics listen, once running

    # -- one step at a time (the scheduler's jobs and the tests call these) ------------------------------

    async def elect(self) -> bool:
        leading = await self.gate.step()
        self.metrics.leader.set(1 if leading else 0)
        return leading

    async def reconcile(self, namespace: str, name: str) -> str:
        started = time.perf_counter()
        task = asyncio.current_task()
        if task is not None:
            self._cycles.add(task)
        try:
            outcome = await self.reconciler.reconcile(namespace, name, now=self._clock.now())
        except Exception:  # a bug must cost one cycle of one resource, never the loop
            log.exception("cycle failed", extra={"fields": {"namespace": namespace, "autoscaler": name}})
            outcome = "error"
        finally:
            if task is not None:
                self._cycles.discard(task)
        self.metrics.cycle_seconds.observe(time.perf_counter() - started)
        self.metrics.cycles.labels(namespace, name, outcome).inc()
        if outcome == "gone":
            self._untrack((namespace, name))
        return outcome

    async def sync(self) -> str:
        """List the resources, track them all, forget the vanished; returns the version to watch from."""
        items, version = await self._resources.list(self.settings.namespace)
        seen = {self._track(item) for item in items}
        for key in set(self._tracked) - seen:
            self._untrack(key)
            self.reconciler.forget(*key)
        self.synced = True
        return version

    async def wake(self) -> list[Key]:
        """Run at once the cycles of the pools asleep at zero whose router holds a request; returns them."""
        try:
            woken = await self.reconciler.woken()
        except Exception:  # a bug must cost one look, never the watch
            log.exception("wake watch failed")
            return []
        for key in woken:
            log.info("woken by a held request", extra={"fields": {"namespace": key[0], "autoscaler": key[1]}})
            self._run_now(key)
        return woken

    def tracked(self) -> list[Key]:
        return sorted(self._tracked)

    def ready(self) -> bool:
        return self.synced and self.gate.reachable

    # -- the live loop ------------------------------------------------------------------------------------

    async def run(
        self, stop: asyncio.Event, *, health_host: str = "0.0.0.0", health_port: int | None = None
    ) -> None:
        """Run until ``stop`` is set, then shut down gracefully (the Lease is released)."""
        health = HealthServer(self.metrics, ready=self.ready)
        if health_port is not None:
            await health.start(host=health_host, port=health_port)
            self.health_port = health.port
            log.info("serving /healthz, /readyz, /metrics", extra={"fields": {"port": health.port}})
        self._scheduler = AsyncIOScheduler(timezone=datetime.UTC)
        self._scheduler.start()
        for key, (interval, _) in self._tracked.items():
            self._schedule(key, interval)
        self._scheduler.add_job(
            self.wake,
            trigger=IntervalTrigger(seconds=self.settings.wake_poll_s),
            id=WAKE_JOB,
            max_instances=1,
            coalesce=True,
        )
        tasks = [
            asyncio.create_task(self._renew(stop), name="lease"),
            asyncio.create_task(self._watch(stop), name="watch"),
        ]
        try:
            await stop.wait()
        finally:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
            for task in tasks:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*tasks, return_exceptions=True)
            if self._cycles:  # let a cycle under way finish its writes while the lease is still ours
                await asyncio.wait(set(self._cycles), timeout=self.settings.request_timeout_s * 3)
            await self.gate.release()
            self.metrics.leader.set(0)
            await health.stop()
            log.info("controller stopped", extra={"fields": {"identity": self.settings.identity}})

    async def _renew(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.elect()
            except Exception:  # a bug must not end the renewals: leadership would lapse unnoticed
                log.exception("election step failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.settings.renew_every_s)

    async def _watch(self, stop: asyncio.Event) -> None:
        """List, then watch from the list's version and from each event's; list again on 410 or error,
        after a delay that grows with the failures in a row (``backoff``)."""
        version = ""
        failures = 0
        while not stop.is_set():
            try:
                if not version:
                    version = await self.sync()
                    failures = 0
                async for event in self._resources.watch(
                    resource_version=version,
                    namespace=self.settings.namespace,
                    timeout_s=self.settings.watch_timeout_s,
                ):
                    version = event.resource_version or version
                    if event.type == "DELETED":
                        key = _key(event.object)
                        self._untrack(key)
                        self.reconciler.forget(*key)
                    else:
                        self._track(event.object)
            except errors.Expired:
                version = ""
            except Exception as error:  # API trouble or a bug: list again after a pause, never stop watching
                failures += 1
                pause = self.settings.watch_backoff.delay(failures, rng=self._rng)
                log.warning(
                    "resource watch failed",
                    extra={
                        "fields": {"error": repr(error), "failures": failures, "retry_in_s": round(pause, 1)}
                    },
                )
                version = ""
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=pause)

    # -- scheduling ---------------------------------------------------------------------------------------

    def _track(self, obj: Mapping[str, Any]) -> Key:
        key = _key(obj)
        interval = _interval(obj)
        generation = int((obj.get("metadata") or {}).get("generation") or 0)
        before = self._tracked.get(key)
        self._tracked[key] = (interval, generation)
        self.metrics.resources.set(len(self._tracked))
        if before is None or before[0] != interval:
            self._schedule(key, interval)
        elif before[1] != generation:
            self._run_now(key)
        return key

    def _untrack(self, key: Key) -> None:
        if self._tracked.pop(key, None) is not None and self._scheduler is not None:
            with contextlib.suppress(LookupError):
                self._scheduler.remove_job(_job_id(key))
        self.metrics.resources.set(len(self._tracked))

    def _schedule(self, key: Key, interval: int) -> None:
        if self._scheduler is None:
            return
        self._scheduler.add_job(
            self.reconcile,
            trigger=IntervalTrigger(seconds=interval),
            args=list(key),
            id=_job_id(key),
            replace_existing=True,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=interval,
            next_run_time=datetime.datetime.now(datetime.UTC),
        )

    def _run_now(self, key: Key) -> None:
        if self._scheduler is not None:
            with contextlib.suppress(LookupError):
                self._scheduler.modify_job(_job_id(key), next_run_time=datetime.datetime.now(datetime.UTC))

    async def _abdicate(self) -> None:
        """No longer the leader: drop what this replica published (the new leader publishes its own) and the
        policy state (it goes stale while another replica decides)."""
        self.reconciler.abdicate()

    async def _run_all_now(self) -> None:
        for key in list(self._tracked):
            self._run_now(key)

    def _count_scale(self, resource: AutoscalerResource, phase: Phase, scaled: Scaled) -> None:
        direction = "up" if scaled.after > scaled.before else "down"
        self.metrics.scales.labels(resource.namespace, resource.name, phase.value, direction).inc()


def _key(obj: Mapping[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or "default"), str(meta.get("name") or "")


def _interval(obj: Mapping[str, Any]) -> int:
    """The spec's control interval, or the default when the spec is too broken to say (the cycle reports)."""
    value = (obj.get("spec") or {}).get("controlIntervalSeconds")
    return (
        value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else DEFAULT_INTERVAL_S
    )


def _job_id(key: Key) -> str:
    return f"{key[0]}/{key[1]}"

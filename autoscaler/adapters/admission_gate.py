"""The admission queue (``autoscaler.routing.admission``) on an event loop, for both front doors.

``place`` either places a request with the router at once or parks its handler on a future until the
queue hands it a slot; the placement is made here, at dispatch, so it goes to the best endpoint with room
at that moment (a replica that joined meanwhile included). Waiting requests are re-examined whenever the
driver says capacity may have freed (``pump``: a request finished, an endpoint joined or was scraped)
and every ``tick_s`` (expiry). A handler cancelled while it waits (its client left) takes its request out
of the queue; one cancelled just after its dispatch releases the placement it never used.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import time
from collections.abc import Callable, Container, Hashable

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from autoscaler.routing.admission import (
    AdmissionQueue,
    AdmissionSettings,
    PriorityClass,
    Shed,
    Verdict,
    Waiting,
    room,
)
from autoscaler.routing.endpoint import Endpoint
from autoscaler.routing.interface import NoEndpointError, RouteRequest
from autoscaler.routing.router import AffinityRouter, RoutedPlacement

log = logging.getLogger(__name__)

QUEUED_REQUESTS = "autoscaler_router_queued_requests"
QUEUED_TOKENS = "autoscaler_router_queued_tokens"
WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)


class Refused(Exception):
    """The request leaves the queue without a placement: ``status`` 429 (queue full, TTL passed) or 503
    (the pool did not wake within ``wake_timeout_s``). No endpoint and none coming is ``NoEndpointError``,
    as from the router."""

    def __init__(self, status: int, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after_s = retry_after_s


@dataclasses.dataclass(frozen=True, slots=True)
class Admitted:
    placement: RoutedPlacement
    waited_s: float  # in the queue (0 when placed at once): not part of the placement's own time


class AdmissionGate:
    def __init__(
        self,
        router: AffinityRouter,
        queue: AdmissionQueue,
        *,
        pool: str,
        registry: CollectorRegistry,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._router = router
        self._queue = queue
        self._clock = clock
        self._waiters: dict[Hashable, asyncio.Future[RoutedPlacement]] = {}
        self._keys = itertools.count()
        self._ticker: asyncio.Task[None] | None = None
        self._pool = pool
        self._wait = Histogram(
            "autoscaler_router_queue_wait_seconds",
            "Time requests waited in the router's admission queue before dispatch",
            ["pool", "class"],
            buckets=WAIT_BUCKETS,
            registry=registry,
        )
        self._shed = Counter(
            "autoscaler_router_shed_requests",
            "Requests the admission queue turned away: full, expired (429), no-endpoint, not-woken (503)",
            ["pool", "class", "reason"],
            registry=registry,
        )
        registry.register(_QueueCollector(pool, queue))
        self._wait_by_class: dict[str, Histogram] = {}

    @property
    def settings(self) -> AdmissionSettings:
        return self._queue.settings

    @property
    def waiting(self) -> int:
        """Requests in the queue now."""
        return len(self._queue)

    def start(self) -> None:
        self._ticker = asyncio.get_running_loop().create_task(self._tick())

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker

    def priority(self, header: str | None) -> PriorityClass:
        """The request's class from its header (``UnknownClass`` for one not configured)."""
        return self._queue.settings.of(header)

    async def place(
        self, request: RouteRequest, priority: PriorityClass, *, eligible: Container[str] | None = None
    ) -> Admitted:
        """A placement for ``request``, now or once the queue dispatches it; ``Refused`` otherwise."""
        key = next(self._keys)
        now = self._clock()
        endpoints = self._endpoints()
        verdict, fitting = self._queue.admit(key, request, priority, endpoints, now=now)
        if verdict is Verdict.DISPATCH:
            self._waited(priority.name).observe(0.0)
            return Admitted(self._placed(request, fitting, eligible), 0.0)
        if verdict is Verdict.NO_ENDPOINT:
            self._shed.labels(self._pool, priority.name, verdict.value).inc()
            raise NoEndpointError("no ready endpoint, and the pool does not wake")
        if verdict is not Verdict.QUEUED:
            raise self._refusal(priority, verdict.value)
        future: asyncio.Future[RoutedPlacement] = asyncio.get_running_loop().create_future()
        self._waiters[key] = future
        try:
            return Admitted(await future, self._clock() - now)
        except asyncio.CancelledError:
            dispatched = not self._queue.remove(key, priority) and future.done() and not future.cancelled()
            if dispatched and future.exception() is None:  # placed, but its handler is gone
                self._router.finished(future.result(), now=self._clock())
            raise
        finally:
            self._waiters.pop(key, None)

    def pump(self) -> None:
        """Shed the requests that waited too long, then dispatch waiting ones while endpoints have room."""
        if not self._waiters:  # nothing waits (the common case, on every release)
            return
        now = self._clock()
        endpoints = self._endpoints()  # records updated in place: the list holds while none joins or leaves
        for expired, why in self._queue.expire(endpoints, now=now):
            self._fail(expired, why)
        while (waiting := self._queue.next_ready(endpoints)) is not None:
            future = self._waiters.get(waiting.key)
            if future is None or future.done():
                continue
            try:
                fitting = room(endpoints, self._queue.limits, waiting.request)
                placement = self._placed(waiting.request, fitting, None)
            except (NoEndpointError, ValueError) as error:  # the handler answers it, as if placed at once
                future.set_exception(error)
                continue
            self._waited(waiting.priority.name).observe(now - waiting.since)
            future.set_result(placement)

    def _waited(self, name: str) -> Histogram:
        """The class's wait histogram, looked up once (``labels()`` takes a lock and a dict lookup)."""
        child = self._wait_by_class.get(name)
        if child is None:
            child = self._wait_by_class[name] = self._wait.labels(self._pool, name)
        return child

    def _placed(
        self, request: RouteRequest, fitting: frozenset[str] | None, eligible: Container[str] | None
    ) -> RoutedPlacement:
        """Placed with the router, on the endpoints with room (``fitting``; None: any) the caller allows."""
        if eligible is not None and fitting is not None:
            fitting = frozenset(name for name in fitting if name in eligible)
        return self._router.place(request, now=self._clock(), eligible=fitting or eligible)

    def _fail(self, waiting: Waiting, why: Shed) -> None:
        future = self._waiters.get(waiting.key)
        if future is not None and not future.done():
            future.set_exception(self._refusal(waiting.priority, why.value))

    def _refusal(self, priority: PriorityClass, reason: str) -> Refused:
        self._shed.labels(self._pool, priority.name, reason).inc()
        retry = max(1, round(priority.ttl_s / 4))
        if reason == Verdict.FULL.value:
            return Refused(429, "the router's queue is full", retry_after_s=retry)
        if reason == Shed.EXPIRED.value:
            message = f"no capacity within the {priority.name} class's {priority.ttl_s:g} s"
            return Refused(429, message, retry_after_s=retry)
        return Refused(503, "no endpoint came up in time", retry_after_s=retry)

    def _endpoints(self) -> list[Endpoint]:
        router = self._router
        return [router.endpoint(name) for name in router.endpoints()]

    async def _tick(self) -> None:
        """Expiry and late dispatch; a failure is logged and the next tick tries again (a dead ticker
        would leave requests waiting until some other request finishes)."""
        while True:
            await asyncio.sleep(self._queue.settings.tick_s)
            try:
                self.pump()
            except Exception:
                log.exception("admission queue: pump failed")


class _QueueCollector(Collector):
    """Queued requests and tokens per class, read from the queue at scrape time: the demand the controller
    sees while the pool has no replica to report any."""

    def __init__(self, pool: str, queue: AdmissionQueue) -> None:
        self._pool = pool
        self._queue = queue

    def collect(self) -> list[GaugeMetricFamily]:
        requests = GaugeMetricFamily(
            QUEUED_REQUESTS, "Requests waiting in the router's admission queue", labels=["pool", "class"]
        )
        tokens = GaugeMetricFamily(
            QUEUED_TOKENS,
            "Prompt and expected output tokens (kind) of the requests waiting in the admission queue",
            labels=["pool", "class", "kind"],
        )
        for name, tally in self._queue.tally().items():
            requests.add_metric([self._pool, name], tally.requests)
            tokens.add_metric([self._pool, name, "prompt"], tally.prompt_tokens)
            tokens.add_metric([self._pool, name, "output"], tally.tokens - tally.prompt_tokens)
        return [requests, tokens]

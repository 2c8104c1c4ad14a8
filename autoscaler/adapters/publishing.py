"""The desired-replicas board: the controller's latest decision per autoscaler and phase, for the outside.

Clusters that keep their own actuator (a plain HPA, or KEDA) read our desired replicas instead of letting the
controller write ``scale``. The controller publishes every decision here; the readers render the board on
demand: the ``/metrics`` exporter (``autoscaler_desired_replicas``), the KEDA external scaler (gRPC) and the
``external.metrics.k8s.io`` API. Keeping one board between them means all three serve the same number, and
none of them reaches into the controller.

A board entry is keyed by (namespace, autoscaler name, phase) and holds what HPA or KEDA need (desired), what
an operator wants next to it (current replicas, the policy's reason and message) and when it was published
(wall-clock Unix seconds, stamped by the board: the controller's clock may be monotonic, while the external
metrics API and operators want wall time). The controller adds ``Telemetry`` for an operator's dashboard
(ready replicas, the rate read and forecast, the calibration, the SLO); HPA and KEDA never read it.

Writers may be any thread or the event loop; readers may be any thread; ``changed`` lets asyncio readers
(KEDA's ``StreamIsActive``) wait for the next change without polling. Every ``publish`` and effective
``remove`` bumps ``version``; a reader that cares about a particular field compares the entries itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
import time
from collections.abc import Callable, Mapping

from autoscaler.core.decision import Decision
from autoscaler.core.phases import Phase
from autoscaler.core.slo import Slo


@dataclasses.dataclass(frozen=True, slots=True, order=True)
class BoardKey:
    namespace: str
    autoscaler: str
    phase: Phase


@dataclasses.dataclass(frozen=True, slots=True)
class Telemetry:
    """What a dashboard shows beside one phase's decision, so its reason can be read against the evidence."""

    pool: str  # the engines' pool label, which joins these series to the engines' and the router's
    ready: int
    arrival_rate: float | None  # requests/s as the policy read it (None: no usable signal)
    forecast_rate: float | None  # requests/s the policy foresees over the start-up horizon
    calibration: float  # observed / predicted latency: the factor on the profile's times
    slo: Slo


@dataclasses.dataclass(frozen=True, slots=True)
class Published:
    desired: int
    current: int
    reason: str  # the policy's machine-readable tag, e.g. "ScaleUp"
    message: str  # one human sentence that says why
    time: float  # wall-clock Unix seconds when it was published
    telemetry: Telemetry | None = None


class DesiredReplicasBoard:
    """Thread-safe store of the latest published decision per (namespace, autoscaler, phase)."""

    def __init__(self, *, wall_clock: Callable[[], float] = time.time) -> None:
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        self._entries: dict[BoardKey, Published] = {}
        self._version = 0
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def publish(
        self,
        *,
        namespace: str,
        autoscaler: str,
        phase: Phase,
        desired: int,
        current: int,
        reason: str,
        message: str = "",
        telemetry: Telemetry | None = None,
    ) -> None:
        """Record the latest decision for one phase of one autoscaler, replacing the previous one."""
        entry = Published(
            desired=desired,
            current=current,
            reason=reason,
            message=message,
            time=self._wall_clock(),
            telemetry=telemetry,
        )
        with self._lock:
            self._entries[BoardKey(namespace, autoscaler, phase)] = entry
            self._bump()

    def publish_decision(
        self,
        *,
        namespace: str,
        autoscaler: str,
        decision: Decision,
        telemetry: Mapping[Phase, Telemetry] | None = None,
    ) -> None:
        """Publish every phase of a policy decision (``previous`` is the current count it started from)."""
        for phase, d in decision.phases.items():
            self.publish(
                namespace=namespace,
                autoscaler=autoscaler,
                phase=phase,
                desired=d.replicas,
                current=d.previous,
                reason=d.reason,
                message=d.message,
                telemetry=(telemetry or {}).get(phase),
            )

    def get(self, *, namespace: str, autoscaler: str, phase: Phase) -> Published | None:
        with self._lock:
            return self._entries.get(BoardKey(namespace, autoscaler, phase))

    def snapshot(self) -> dict[BoardKey, Published]:
        """A copy of every entry, sorted by key, so a scrape renders a consistent, stable view."""
        with self._lock:
            return dict(sorted(self._entries.items()))

    def remove(self, *, namespace: str, autoscaler: str) -> None:
        """Forget every phase of an autoscaler (its custom resource was deleted): its series disappear."""
        with self._lock:
            gone = [k for k in self._entries if k.namespace == namespace and k.autoscaler == autoscaler]
            for key in gone:
                del self._entries[key]
            if gone:
                self._bump()

    @property
    def version(self) -> int:
        with self._lock:
            return self._version

    async def changed(self, since: int) -> int:
        """Wait until ``version`` exceeds ``since`` (at once if it already does); return the new version."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._version > since:
                return self._version
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append((loop, waiter))
        try:
            await waiter
        finally:
            # A cancelled waiter (the stream closed) must not stay registered.
            with self._lock, contextlib.suppress(ValueError):
                self._waiters.remove((loop, waiter))
        return self.version

    def _bump(self) -> None:
        """Under the lock: a new version; wake each waiter on its own loop (writers may be other threads)."""
        self._version += 1
        waiters, self._waiters = self._waiters, []
        for loop, waiter in waiters:
            # A loop that has closed has no reader left to wake.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_wake, waiter)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)

"""Kubernetes Events (``events.k8s.io/v1``) about a scaled workload, so ``kubectl describe`` shows each scale.

Names follow client-go's recorder (``<object>.<hex nanoseconds>``) so that two events never collide, and the
event time comes from the injected clock (epoch seconds), not from a clock read here. When that clock has not
moved since the last event (two phases scaled in one cycle), the time is nudged forward by a microsecond so
that the two names differ.
"""

from __future__ import annotations

import datetime

from kubernetes.aio import client

from autoscaler.adapters.kubernetes import errors
from autoscaler.adapters.kubernetes.workload import WorkloadRef
from autoscaler.core import ports

REPORTING_CONTROLLER = "inference-autoscaler.io/controller"
_MAX_NOTE = 1024  # the API server rejects longer notes on new events
_MAX_SHORT = 128  # action, reason, reportingInstance


class EventRecorder:
    def __init__(
        self,
        api_client: client.ApiClient,
        *,
        instance: str,
        clock: ports.Clock,
        controller: str = REPORTING_CONTROLLER,
        timeout_s: float = 10.0,
    ) -> None:
        self._events = client.EventsV1Api(api_client)
        self._instance = instance[:_MAX_SHORT]
        self._clock = clock
        self._last = float("-inf")
        self._controller = controller
        self._timeout_s = timeout_s

    async def emit(
        self, regarding: WorkloadRef, *, reason: str, note: str, action: str = "Scale", warning: bool = False
    ) -> str:
        """Record one event; returns its name."""
        now = self._last = max(self._clock.now(), self._last + 1e-6)
        event = client.EventsV1Event(
            api_version="events.k8s.io/v1",
            kind="Event",
            metadata=client.V1ObjectMeta(
                name=f"{regarding.name}.{int(now * 1e9):x}", namespace=regarding.namespace
            ),
            event_time=datetime.datetime.fromtimestamp(now, datetime.UTC),
            action=action[:_MAX_SHORT],
            reason=reason[:_MAX_SHORT],
            note=note[:_MAX_NOTE],
            type="Warning" if warning else "Normal",
            regarding=client.V1ObjectReference(
                api_version=regarding.api_version,
                kind=regarding.kind,
                name=regarding.name,
                namespace=regarding.namespace,
            ),
            reporting_controller=self._controller,
            reporting_instance=self._instance,
        )
        with errors.translated(f"emit event {reason} on {regarding}"):
            created = await self._events.create_namespaced_event(
                regarding.namespace, event, _request_timeout=self._timeout_s
            )
        return created.metadata.name if created.metadata is not None and created.metadata.name else ""

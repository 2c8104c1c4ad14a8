"""The pods behind a scale target, and the two annotations through which scale-down removes chosen ones.

Scale-down removes exactly the replicas the controller chose: it marks them draining (the router watches
``DRAINING_ANNOTATION`` and stops sending them new requests) and gives them the lowest
``controller.kubernetes.io/pod-deletion-cost``, so that when the replica count drops the ReplicaSet
controller deletes those pods and no others. Both annotations go in one JSON merge patch, so a pod is never
seen draining without its cost or the reverse. The draining mark holds the time the drain began (epoch
seconds, written as RFC 3339), so a restarted controller can still bound how long it waits.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
from collections.abc import AsyncIterator, Mapping

from kubernetes.aio import client

from autoscaler.adapters.kubernetes import errors, watching

DRAINING_ANNOTATION = "inference-autoscaler.io/draining-since"
DELETION_COST_ANNOTATION = "controller.kubernetes.io/pod-deletion-cost"
MERGE_PATCH = "application/merge-patch+json"


@dataclasses.dataclass(frozen=True, slots=True)
class PodState:
    name: str
    namespace: str
    phase: str  # Pending, Running, Succeeded, Failed, Unknown
    ready: bool  # the Ready condition is True
    ip: str | None
    deleting: bool  # has a deletionTimestamp: on its way out whatever the replica count says
    draining_since: float | None  # epoch seconds, from DRAINING_ANNOTATION; None when not draining
    deletion_cost: int | None  # from DELETION_COST_ANNOTATION; None when unset (the ReplicaSet reads 0)
    created: float | None  # epoch seconds
    resource_version: str

    @property
    def draining(self) -> bool:
        return self.draining_since is not None


@dataclasses.dataclass(frozen=True, slots=True)
class PodList:
    pods: tuple[PodState, ...]  # ordered by name
    resource_version: str  # watch from here to follow every later change


@dataclasses.dataclass(frozen=True, slots=True)
class PodEvent:
    type: str  # ADDED, MODIFIED or DELETED (also when a pod stops matching the selector)
    pod: PodState


class PodClient:
    def __init__(self, api_client: client.ApiClient, *, timeout_s: float = 10.0) -> None:
        self._core = client.CoreV1Api(api_client)
        self._timeout_s = timeout_s

    async def list(self, namespace: str, selector: str) -> PodList:
        """The pods matching a label selector (a Scale's ``status.selector``)."""
        with errors.translated(f"list pods {namespace}/{selector!r}"):
            listed = await self._core.list_namespaced_pod(
                namespace, label_selector=selector, _request_timeout=self._timeout_s
            )
        pods = tuple(sorted((pod_state(pod) for pod in listed.items), key=lambda p: p.name))
        version = listed.metadata.resource_version if listed.metadata is not None else None
        return PodList(pods=pods, resource_version=version or "")

    async def watch(
        self, namespace: str, selector: str, *, resource_version: str, timeout_s: int = 300
    ) -> AsyncIterator[PodEvent]:
        """Changes to the selector's pods after ``resource_version`` (from ``list``), until the server ends
        this watch; resume from the last event's ``pod.resource_version`` (see ``watching``)."""
        changes = watching.events(
            self._core.list_namespaced_pod,
            namespace,
            operation=f"watch pods {namespace}/{selector!r}",
            resource_version=resource_version,
            timeout_s=timeout_s,
            label_selector=selector,
        )
        async with contextlib.aclosing(changes):
            async for kind, pod in changes:
                yield PodEvent(type=kind, pod=pod_state(pod))

    async def mark_draining(self, namespace: str, name: str, *, since: float, deletion_cost: int) -> PodState:
        return await self.annotate(
            namespace,
            name,
            {DRAINING_ANNOTATION: _rfc3339(since), DELETION_COST_ANNOTATION: str(deletion_cost)},
        )

    async def clear_draining(self, namespace: str, name: str) -> PodState:
        """Undo ``mark_draining`` (a scale-down that was called off): the pod takes traffic again."""
        return await self.annotate(
            namespace, name, {DRAINING_ANNOTATION: None, DELETION_COST_ANNOTATION: None}
        )

    async def annotate(self, namespace: str, name: str, annotations: Mapping[str, str | None]) -> PodState:
        """Set annotations (``None`` removes one) with a JSON merge patch; no other field is touched."""
        body = {"metadata": {"annotations": dict(annotations)}}
        with errors.translated(f"annotate pod {namespace}/{name}"):
            pod = await self._core.patch_namespaced_pod(
                name, namespace, body, _content_type=MERGE_PATCH, _request_timeout=self._timeout_s
            )
        return pod_state(pod)


def pod_state(pod: client.V1Pod) -> PodState:
    meta = pod.metadata or client.V1ObjectMeta()
    status = pod.status or client.V1PodStatus()
    annotations = meta.annotations or {}
    conditions = status.conditions or []
    draining = annotations.get(DRAINING_ANNOTATION)
    cost = annotations.get(DELETION_COST_ANNOTATION)
    return PodState(
        name=meta.name or "",
        namespace=meta.namespace or "",
        phase=status.phase or "Unknown",
        ready=any(c.type == "Ready" and c.status == "True" for c in conditions),
        ip=status.pod_ip,
        deleting=meta.deletion_timestamp is not None,
        draining_since=_epoch(draining) if draining is not None else None,
        deletion_cost=_int_or_none(cost),
        created=meta.creation_timestamp.timestamp() if meta.creation_timestamp is not None else None,
        resource_version=meta.resource_version or "",
    )


def _rfc3339(epoch_s: float) -> str:
    return datetime.datetime.fromtimestamp(epoch_s, datetime.UTC).isoformat().replace("+00:00", "Z")


def _epoch(text: str) -> float:
    """A draining mark written by hand or by an older version still counts as draining (since epoch 0)."""
    try:
        return datetime.datetime.fromisoformat(text).timestamp()
    except ValueError:
        return 0.0


def _int_or_none(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None

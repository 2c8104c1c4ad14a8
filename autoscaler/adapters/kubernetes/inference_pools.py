"""The members of a Gateway API Inference Extension ``InferencePool``: its pods, on its target ports.

An ``inference.networking.k8s.io/v1`` InferencePool names its model servers by a label selector
(``spec.selector.matchLabels``, same namespace) and the ports they serve on (``spec.targetPorts[].number``;
each port of a pod is a separate endpoint, e.g. one per data-parallel rank). An endpoint picker follows
the pool and its pods: ``snapshots`` lists the pool, then its pods, and yields the whole member list each
time it changes. A change to the pool's selector or ports restarts the pod watch; a pool that is deleted
or not there yet yields an empty list (the picker then answers 503) and is looked for again.

A pod is a member while it is Ready, has an IP and is not being deleted. The controller's draining mark
(``pods.DRAINING_ANNOTATION``) keeps it a member, flagged ``draining``, so the picker sends it no new
requests and lets the ones in flight finish, as the proxy's discovery does.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

from kubernetes.aio import client

from autoscaler.adapters.kubernetes import errors, pods, watching

log = logging.getLogger(__name__)

GROUP = "inference.networking.k8s.io"
VERSION = "v1"
PLURAL = "inferencepools"
_RETRY_S = 1.0
_WATCH_S = 300


@dataclasses.dataclass(frozen=True, slots=True)
class PoolSpec:
    """What the picker reads from an InferencePool: which pods, which ports."""

    selector: str  # the label selector as the pods API takes it, "k1=v1,k2=v2"
    ports: tuple[int, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class PoolMember:
    """One endpoint of the pool: a ready pod on one of the pool's target ports."""

    pod: str
    ip: str
    port: int
    labels: Mapping[str, str]
    draining: bool

    @property
    def address(self) -> str:
        """``ip:port`` as the endpoint picker protocol writes it (IPv6 in brackets)."""
        host = f"[{self.ip}]" if ":" in self.ip else self.ip
        return f"{host}:{self.port}"


def pool_spec(pool: Mapping[str, Any]) -> PoolSpec:
    """The selector and ports of an InferencePool object; ``ValueError`` when it has neither."""
    spec = pool.get("spec") or {}
    labels = (spec.get("selector") or {}).get("matchLabels") or {}
    if not isinstance(labels, Mapping) or not labels:
        raise ValueError("spec.selector.matchLabels is empty: the pool would select every pod")
    declared = [p.get("number") for p in spec.get("targetPorts") or () if isinstance(p, Mapping)]
    ports = tuple(p for p in declared if isinstance(p, int) and not isinstance(p, bool) and 1 <= p <= 65535)
    if not ports:
        raise ValueError("spec.targetPorts has no valid port number")
    return PoolSpec(selector=",".join(f"{k}={v}" for k, v in sorted(labels.items())), ports=ports)


def members(spec: PoolSpec, pod_objects: Mapping[str, client.V1Pod]) -> tuple[PoolMember, ...]:
    """The pool's endpoints among ``pod_objects`` (by name), ordered by pod then port."""
    found: list[PoolMember] = []
    for name in sorted(pod_objects):
        pod = pod_objects[name]
        state = pods.pod_state(pod)
        if not state.ready or not state.ip or state.deleting:
            continue
        labels = dict((pod.metadata.labels if pod.metadata is not None else None) or {})
        found.extend(
            PoolMember(pod=name, ip=state.ip, port=port, labels=labels, draining=state.draining)
            for port in spec.ports
        )
    return tuple(found)


async def snapshots(
    api_client: client.ApiClient, *, namespace: str, name: str
) -> AsyncIterator[tuple[PoolMember, ...]]:
    """The pool's members now and after every change, forever (errors are logged and retried)."""
    custom = client.CustomObjectsApi(api_client)
    core = client.CoreV1Api(api_client)
    while True:
        try:
            async for snapshot in _follow(custom, core, namespace=namespace, name=name):
                yield snapshot
            continue  # the pool's spec changed: follow it at once
        except asyncio.CancelledError:
            raise
        except Exception as err:  # the API is down, the watch expired, the pool is gone or invalid
            log.warning("inference pool %s/%s: %s; looking again", namespace, name, err)
            if isinstance(err, errors.NotFound | ValueError):
                yield ()  # no pool, no endpoints: the picker answers 503 until it is back
        await asyncio.sleep(_RETRY_S)


async def _follow(
    custom: client.CustomObjectsApi, core: client.CoreV1Api, *, namespace: str, name: str
) -> AsyncIterator[tuple[PoolMember, ...]]:
    """One pass: read the pool, list its pods, then follow both until the pool's spec changes."""
    operation = f"get inferencepool {namespace}/{name}"
    with errors.translated(operation):
        pool: dict[str, Any] = await custom.get_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name
        )  # type: ignore[assignment]
    spec = pool_spec(pool)
    with errors.translated(f"list pods {namespace}/{spec.selector!r}"):
        listed = await core.list_namespaced_pod(namespace, label_selector=spec.selector)
    current = {_name(p): p for p in listed.items}
    yield members(spec, current)
    changes: asyncio.Queue[tuple[str, str, Any]] = asyncio.Queue()
    watchers = [
        asyncio.create_task(
            _pump(
                changes,
                "pool",
                lambda version: watching.events(
                    custom.list_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    namespace,
                    PLURAL,
                    operation=f"watch {operation}",
                    resource_version=version,
                    timeout_s=_WATCH_S,
                    field_selector=f"metadata.name={name}",
                ),
                pool["metadata"].get("resourceVersion", ""),
            )
        ),
        asyncio.create_task(
            _pump(
                changes,
                "pod",
                lambda version: watching.events(
                    core.list_namespaced_pod,
                    namespace,
                    operation=f"watch pods {namespace}/{spec.selector!r}",
                    resource_version=version,
                    timeout_s=_WATCH_S,
                    label_selector=spec.selector,
                ),
                (listed.metadata.resource_version if listed.metadata is not None else None) or "",
            )
        ),
    ]
    try:
        while True:
            source, kind, obj = await changes.get()
            if source == "error":
                raise obj
            if source == "pool":
                if kind == "DELETED":
                    raise errors.NotFound(operation, status=404, reason="NotFound", message="deleted")
                if pool_spec(obj) != spec:
                    log.info("inference pool %s/%s changed its selector or ports", namespace, name)
                    return
                continue
            if kind == "DELETED":
                current.pop(_name(obj), None)
            else:
                current[_name(obj)] = obj
            yield members(spec, current)
    finally:
        for task in watchers:
            task.cancel()
        for task in watchers:
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _pump(
    queue: asyncio.Queue[tuple[str, str, Any]],
    source: str,
    watch: Any,
    version: str,
) -> None:
    """Put one watch's events on ``queue``, resuming each bounded watch from the last version seen; an
    error (including 410 Expired: the pass lists again) goes on the queue for the reader to raise."""
    try:
        while True:
            async for kind, obj in watch(version):
                version = _version(obj) or version
                await queue.put((source, kind, obj))
    except asyncio.CancelledError:
        raise
    except Exception as err:  # handed to the reader, which decides
        await queue.put(("error", "", err))


def _name(pod: client.V1Pod) -> str:
    return (pod.metadata.name if pod.metadata is not None else None) or ""


def _version(obj: Any) -> str | None:
    """An event object's resourceVersion: a mapping for custom objects, a model for pods."""
    if isinstance(obj, Mapping):
        return (obj.get("metadata") or {}).get("resourceVersion")
    return obj.metadata.resource_version if obj.metadata is not None else None

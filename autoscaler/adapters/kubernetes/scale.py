"""Read and write a workload's replica count through its ``scale`` subresource, with optimistic concurrency.

Every write is a PUT of an ``autoscaling/v1`` Scale that carries the resourceVersion the decision was based
on. If anyone (a person, a GitOps sync, another controller) changed the workload since, the server answers
409 and nothing is written; ``set_replicas`` then re-reads and returns ``ScaleConflict`` with the latest
state, so the caller decides again from fresh facts instead of overwriting someone else's change.

apps/v1 Deployments, StatefulSets and ReplicaSets go through ``AppsV1Api`` (typed ``V1Scale``); any other
kind with a scale subresource (LeaderWorkerSet, a custom resource) through ``CustomObjectsApi``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

from kubernetes.aio import client

from autoscaler.adapters.kubernetes import errors
from autoscaler.adapters.kubernetes.workload import WorkloadRef

FIELD_MANAGER = "inference-autoscaler"


@dataclasses.dataclass(frozen=True, slots=True)
class ScaleState:
    target: WorkloadRef
    replicas: int  # spec.replicas: what has been asked for
    observed_replicas: int  # status.replicas: what the workload's own controller reports
    selector: str  # status.selector, the pods' label selector; "" when the kind publishes none
    resource_version: str  # of the parent object: the precondition of the next write


@dataclasses.dataclass(frozen=True, slots=True)
class ScaleApplied:
    scale: ScaleState  # as the server answered the write


@dataclasses.dataclass(frozen=True, slots=True)
class ScaleConflict:
    """The workload changed after ``base`` was read; nothing was written. Decide again from ``latest``."""

    latest: ScaleState


ScaleWrite = ScaleApplied | ScaleConflict
_Read = Callable[..., Awaitable[client.V1Scale]]
_Replace = Callable[..., Awaitable[client.V1Scale]]


class ScaleClient:
    def __init__(
        self, api_client: client.ApiClient, *, timeout_s: float = 10.0, field_manager: str = FIELD_MANAGER
    ) -> None:
        self._apps = client.AppsV1Api(api_client)
        self._custom = client.CustomObjectsApi(api_client)
        self._timeout_s = timeout_s
        self._field_manager = field_manager

    async def read(self, target: WorkloadRef) -> ScaleState:
        with errors.translated(f"read scale of {target}"):
            if target.is_apps:
                read, _ = self._apps_methods(target.kind)
                scale = await read(target.name, target.namespace, _request_timeout=self._timeout_s)
            else:
                raw = await self._custom.get_namespaced_custom_object_scale(
                    *_path(target),
                    _request_timeout=self._timeout_s,
                )
                scale = _scale_from_dict(raw)
        return _state(target, scale)

    async def labels(self, target: WorkloadRef) -> dict[str, str]:
        """The workload's own labels (the Scale carries none): where its owner says it may be scaled."""
        with errors.translated(f"read {target}"):
            raw = await self._custom.get_namespaced_custom_object(
                *_path(target),
                _request_timeout=self._timeout_s,
            )
        labels = ((raw or {}).get("metadata") or {}).get("labels") if isinstance(raw, dict) else None
        return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}

    async def set_replicas(self, base: ScaleState, replicas: int) -> ScaleWrite:
        """Write ``replicas`` if the workload is still at ``base.resource_version``; else re-read."""
        if replicas < 0:
            raise ValueError(f"replicas cannot be negative, got {replicas}")
        target = base.target
        body = client.V1Scale(
            api_version="autoscaling/v1",
            kind="Scale",
            metadata=client.V1ObjectMeta(
                name=target.name, namespace=target.namespace, resource_version=base.resource_version
            ),
            spec=client.V1ScaleSpec(replicas=replicas),
        )
        try:
            with errors.translated(f"set replicas of {target} to {replicas}"):
                scale = await self._replace(target, body)
        except errors.Conflict:
            return ScaleConflict(latest=await self.read(target))
        return ScaleApplied(scale=_state(target, scale))

    async def _replace(self, target: WorkloadRef, body: client.V1Scale) -> client.V1Scale:
        options: dict[str, Any] = {"field_manager": self._field_manager, "_request_timeout": self._timeout_s}
        if target.is_apps:
            _, replace = self._apps_methods(target.kind)
            return await replace(target.name, target.namespace, body, **options)
        raw = await self._custom.replace_namespaced_custom_object_scale(
            *_path(target),
            body.to_dict(serialize=True),
            **options,
        )
        return _scale_from_dict(raw)

    def _apps_methods(self, kind: str) -> tuple[_Read, _Replace]:
        apps = self._apps
        methods: dict[str, tuple[_Read, _Replace]] = {
            "Deployment": (apps.read_namespaced_deployment_scale, apps.replace_namespaced_deployment_scale),
            "StatefulSet": (
                apps.read_namespaced_stateful_set_scale,
                apps.replace_namespaced_stateful_set_scale,
            ),
            "ReplicaSet": (apps.read_namespaced_replica_set_scale, apps.replace_namespaced_replica_set_scale),
        }
        return methods[kind]


def _scale_from_dict(raw: object) -> client.V1Scale:
    scale = client.V1Scale.from_dict(raw) if isinstance(raw, dict) else None
    if scale is None:
        raise errors.Rejected(
            "decode Scale", status=None, reason="BadResponse", message=f"not a Scale: {raw!r}"
        )
    return scale


def _state(target: WorkloadRef, scale: client.V1Scale) -> ScaleState:
    spec, status, meta = scale.spec, scale.status, scale.metadata
    return ScaleState(
        target=target,
        replicas=(spec.replicas if spec is not None else None) or 0,
        observed_replicas=status.replicas if status is not None else 0,
        selector=(status.selector if status is not None else None) or "",
        resource_version=(meta.resource_version if meta is not None else None) or "",
    )


def _path(target: WorkloadRef) -> tuple[str, str, str, str, str]:
    """A custom workload's place in the API: group, version, namespace, plural, name."""
    return target.group, target.version, target.namespace, target.plural, target.name

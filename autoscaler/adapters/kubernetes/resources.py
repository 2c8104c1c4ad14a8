"""The controller's custom resources: get, list, one bounded watch (see ``watching``), and status writes.

Objects stay plain JSON mappings here: their schema is this project's CRD, parsed at the controller's edge.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Mapping
from typing import Any

from kubernetes.aio import client

from autoscaler.adapters.kubernetes import errors, watching

MERGE_PATCH = "application/merge-patch+json"


@dataclasses.dataclass(frozen=True, slots=True)
class ResourceKind:
    group: str
    version: str
    plural: str

    def __str__(self) -> str:
        return f"{self.plural}.{self.group}/{self.version}"


@dataclasses.dataclass(frozen=True, slots=True)
class WatchEvent:
    type: str  # ADDED, MODIFIED or DELETED
    object: Mapping[str, Any]

    @property
    def resource_version(self) -> str:
        return str(self.object.get("metadata", {}).get("resourceVersion", ""))


class CustomResources:
    def __init__(self, api_client: client.ApiClient, kind: ResourceKind, *, timeout_s: float = 10.0) -> None:
        self._api_client = api_client
        self._custom = client.CustomObjectsApi(api_client)
        self._kind = kind
        self._timeout_s = timeout_s

    async def get(self, namespace: str, name: str) -> dict[str, Any]:
        kind = self._kind
        with errors.translated(f"get {kind} {namespace}/{name}"):
            found = await self._custom.get_namespaced_custom_object(
                kind.group, kind.version, namespace, kind.plural, name, _request_timeout=self._timeout_s
            )
        return _mapping(found)

    async def list(self, namespace: str | None = None) -> tuple[list[dict[str, Any]], str]:
        """The objects (in ``namespace``, or all namespaces) and the resourceVersion to watch from."""
        kind = self._kind
        with errors.translated(f"list {kind} in {namespace or 'all namespaces'}"):
            if namespace is None:
                listed = await self._custom.list_cluster_custom_object(
                    kind.group, kind.version, kind.plural, _request_timeout=self._timeout_s
                )
            else:
                listed = await self._custom.list_namespaced_custom_object(
                    kind.group, kind.version, namespace, kind.plural, _request_timeout=self._timeout_s
                )
        body = _mapping(listed)
        items = [item for item in body.get("items") or [] if isinstance(item, dict)]
        return items, str((body.get("metadata") or {}).get("resourceVersion", ""))

    async def watch(
        self, *, resource_version: str, namespace: str | None = None, timeout_s: int = 300
    ) -> AsyncIterator[WatchEvent]:
        """Changes after ``resource_version``, until the server ends this watch (``timeout_s``)."""
        kind = self._kind
        operation = f"watch {kind} from {resource_version}"
        if namespace is None:
            changes = watching.events(
                self._custom.list_cluster_custom_object,
                kind.group,
                kind.version,
                kind.plural,
                operation=operation,
                resource_version=resource_version,
                timeout_s=timeout_s,
            )
        else:
            changes = watching.events(
                self._custom.list_namespaced_custom_object,
                kind.group,
                kind.version,
                namespace,
                kind.plural,
                operation=operation,
                resource_version=resource_version,
                timeout_s=timeout_s,
            )
        async with contextlib.aclosing(changes):
            async for kind_of_change, obj in changes:
                yield WatchEvent(type=kind_of_change, object=_mapping(obj))

    async def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> dict[str, Any]:
        """Merge ``status`` into the object's status subresource (``None`` values remove fields)."""
        kind = self._kind
        with errors.translated(f"update status of {kind} {namespace}/{name}"):
            patched = await self._custom.patch_namespaced_custom_object_status(
                kind.group,
                kind.version,
                namespace,
                kind.plural,
                name,
                {"status": dict(status)},
                _content_type=MERGE_PATCH,
                _request_timeout=self._timeout_s,
            )
        return _mapping(patched)


def _mapping(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise errors.Rejected(
            "decode object", status=None, reason="BadResponse", message=f"not an object: {value!r}"
        )
    return value

"""The fake API server's object store: etcd-like resourceVersions, optimistic concurrency and watch history.

One counter orders every write, as etcd's revision does: each create, update or delete takes the next
``resourceVersion``, lists report the counter as the list's resourceVersion, and a watch started from a
version replays every later change before the live ones. A write whose ``metadata.resourceVersion`` is set
and differs from the stored one fails with 409 Conflict; a write that changes nothing is not a write (no new
version, no watch event), as on the real server. ``metadata.generation`` moves when anything outside
``metadata`` and ``status`` changes.

The store is shared by the server's event-loop thread and the test's thread, so every method takes one
re-entrant lock; watch events cross into the server loop with ``call_soon_threadsafe``. Listeners (the
workload controllers of ``kube_workloads``) run inside the lock, right after each change, so the changes they
cause are ordered after the one that caused them, as a controller's would be.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import datetime
import itertools
import threading
import uuid
from collections.abc import Callable
from typing import Any

from tests.fakes.kube_resources import ApiError, ResourceType
from tests.fakes.kube_selectors import Predicate

Obj = dict[str, Any]
ObjectKey = tuple[tuple[str, str, str], str, str]
_ANY: Predicate = lambda obj: True  # noqa: E731
_SUBRESOURCES = (None, "status")


@dataclasses.dataclass(frozen=True, slots=True)
class Change:
    type: str  # ADDED, MODIFIED or DELETED
    rtype: ResourceType
    obj: Obj
    old: Obj | None
    rv: int


class WatchStream:
    """One open watch: the changes of one type (in one namespace or all) that pass a selector."""

    def __init__(
        self,
        *,
        loop: asyncio.AbstractEventLoop,
        rtype: ResourceType,
        namespace: str | None,
        predicate: Predicate,
    ) -> None:
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._loop, self._rtype, self._namespace, self._predicate = loop, rtype, namespace, predicate

    def offer(self, change: Change) -> None:
        event = self.translate(change)
        if event is not None:
            self._loop.call_soon_threadsafe(self.queue.put_nowait, event)

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self.queue.put_nowait, None)

    def translate(self, change: Change) -> dict[str, Any] | None:
        """The event this watcher sees: an object that starts or stops matching is ADDED or DELETED for it."""
        if change.rtype.key != self._rtype.key:
            return None
        if self._namespace is not None and change.obj["metadata"].get("namespace") != self._namespace:
            return None
        now = self._predicate(change.obj) and change.type != "DELETED"
        before = change.old is not None and self._predicate(change.old)
        if now:
            kind = "MODIFIED" if before else "ADDED"
        elif before:
            kind = "DELETED"
        else:
            return None
        return {"type": kind, "object": copy.deepcopy(change.obj)}


class Store:
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._rv = 1000
        self._compacted_rv = self._rv
        self._types: dict[tuple[str, str, str], ResourceType] = {}
        self._objects: dict[ObjectKey, Obj] = {}
        self._history: list[Change] = []
        self._watches: set[WatchStream] = set()
        self._listeners: list[Callable[[Change], None]] = []
        self._names = itertools.count(1)

    # -- types and listeners -------------------------------------------------------------------------
    def register(self, rtype: ResourceType) -> None:
        with self._lock:
            self._types[rtype.key] = rtype

    def resource(self, group: str, version: str, plural: str) -> ResourceType:
        with self._lock:
            found = self._types.get((group, version, plural))
        if found is None:
            path = f"{group}/{version}/{plural}" if group else f"{version}/{plural}"
            raise ApiError(404, "NotFound", f"the server could not find the requested resource ({path})")
        return found

    def listen(self, listener: Callable[[Change], None]) -> None:
        with self._lock:
            self._listeners.append(listener)

    # -- reads -----------------------------------------------------------------------------------------
    def get(self, rtype: ResourceType, namespace: str, name: str) -> Obj:
        with self._lock:
            found = self._objects.get((rtype.key, namespace, name))
            if found is None:
                raise ApiError.not_found(rtype, name)
            return copy.deepcopy(found)

    def list(
        self, rtype: ResourceType, namespace: str | None, predicate: Predicate = _ANY
    ) -> tuple[list[Obj], str]:
        with self._lock:
            items = [
                copy.deepcopy(obj)
                for (key, ns, _), obj in sorted(self._objects.items(), key=lambda kv: kv[0])
                if key == rtype.key and namespace in (None, ns) and predicate(obj)
            ]
            return items, str(self._rv)

    # -- writes ----------------------------------------------------------------------------------------
    def create(self, rtype: ResourceType, namespace: str, obj: Obj) -> Obj:
        with self._lock:
            meta = dict(obj.get("metadata") or {})
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = f"{meta['generateName']}{next(self._names):05x}"
            name = meta.get("name")
            if not name:
                raise ApiError.invalid(
                    rtype, "", "metadata.name: Required value: name or generateName is required"
                )
            if meta.get("namespace", namespace) != namespace:
                raise ApiError(
                    400, "BadRequest", "the namespace of the provided object does not match the request"
                )
            if (rtype.key, namespace, name) in self._objects:
                raise ApiError.already_exists(rtype, name)
            meta.pop("resourceVersion", None)
            meta.update(
                namespace=namespace,
                uid=str(uuid.UUID(int=next(self._names))),
                creationTimestamp=_timestamp(),
            )
            if "spec" in obj:
                meta["generation"] = 1
            stored = {
                **copy.deepcopy(obj),
                "apiVersion": rtype.api_version,
                "kind": rtype.kind,
                "metadata": meta,
            }
            return self._commit(rtype, "ADDED", stored, None)

    def replace(
        self, rtype: ResourceType, namespace: str, name: str, obj: Obj, *, subresource: str | None = None
    ) -> Obj:
        """PUT: the whole object; its resourceVersion, when set, is the precondition."""
        with self._lock:
            if not (obj.get("metadata") or {}).get("resourceVersion") and not rtype.unconditional_update:
                raise ApiError.invalid(
                    rtype,
                    name,
                    "metadata.resourceVersion: Invalid value: 0x0: must be specified for an update",
                )
            return self._write(rtype, namespace, name, obj, subresource=subresource)

    def update(
        self,
        rtype: ResourceType,
        namespace: str,
        name: str,
        change: Callable[[Obj], Obj],
        *,
        subresource: str | None = None,
    ) -> Obj:
        """Read, transform, write atomically (PATCH, scale); checks a resourceVersion that ``change`` sets."""
        with self._lock:
            return self._write(
                rtype, namespace, name, change(self.get(rtype, namespace, name)), subresource=subresource
            )

    def delete(self, rtype: ResourceType, namespace: str, name: str) -> Obj:
        with self._lock:
            current = self.get(rtype, namespace, name)
            del self._objects[(rtype.key, namespace, name)]
            return self._commit(rtype, "DELETED", current, copy.deepcopy(current))

    def _write(
        self, rtype: ResourceType, namespace: str, name: str, obj: Obj, *, subresource: str | None
    ) -> Obj:
        if subresource not in _SUBRESOURCES:
            raise ApiError(404, "NotFound", f"{rtype.qualified_name} has no subresource {subresource}")
        current = self.get(rtype, namespace, name)
        meta = dict(obj.get("metadata") or {})
        if meta.get("name", name) != name:
            raise ApiError(400, "BadRequest", "the name of the object does not match the name on the URL")
        precondition = meta.get("resourceVersion")
        if precondition and precondition != current["metadata"]["resourceVersion"]:
            raise ApiError.conflict(rtype, name)
        if subresource == "status":
            updated = {**current, "status": copy.deepcopy(obj.get("status"))}
        else:
            updated = {**copy.deepcopy(obj), "apiVersion": rtype.api_version, "kind": rtype.kind}
            keep = ("name", "namespace", "uid", "creationTimestamp", "generation", "resourceVersion")
            updated["metadata"] = {**meta, **{k: v for k, v in current["metadata"].items() if k in keep}}
            if rtype.status_subresource:
                updated["status"] = copy.deepcopy(current.get("status"))
        updated = {k: v for k, v in updated.items() if v is not None}
        if updated == current:
            return current
        if _spec_of(updated) != _spec_of(current) and "generation" in current["metadata"]:
            updated["metadata"]["generation"] = current["metadata"]["generation"] + 1
        return self._commit(rtype, "MODIFIED", updated, current)

    def _commit(self, rtype: ResourceType, kind: str, obj: Obj, old: Obj | None) -> Obj:
        self._rv += 1
        # A deleted object's last event carries the deletion's version, so a watch resumes after it.
        obj["metadata"]["resourceVersion"] = str(self._rv)
        if kind != "DELETED":
            self._objects[(rtype.key, obj["metadata"]["namespace"], obj["metadata"]["name"])] = obj
        change = Change(kind, rtype, copy.deepcopy(obj), old, self._rv)
        self._history.append(change)
        for stream in list(self._watches):
            stream.offer(change)
        for listener in list(self._listeners):
            listener(change)
        return copy.deepcopy(obj)

    # -- watches ---------------------------------------------------------------------------------------
    def watch(
        self, stream: WatchStream, rtype: ResourceType, namespace: str | None, since: str | None
    ) -> None:
        """Open ``stream``: replay the changes after ``since`` (or the current objects as ADDED), then live.

        A version older than the last compaction answers 410 Gone, as etcd's compaction makes the server do.
        """
        with self._lock:
            if since in (None, "", "0"):
                for obj in self.list(rtype, namespace)[0]:
                    stream.offer(Change("ADDED", rtype, obj, None, int(obj["metadata"]["resourceVersion"])))
            else:
                start = _parse_rv(since)
                if start < self._compacted_rv:
                    raise ApiError(
                        410, "Expired", f"too old resource version: {start} ({self._compacted_rv})"
                    )
                for change in self._history:
                    if change.rv > start:
                        stream.offer(change)
            self._watches.add(stream)

    def unwatch(self, stream: WatchStream) -> None:
        with self._lock:
            self._watches.discard(stream)

    def compact(self) -> None:
        """Forget the change history, as etcd compaction does: older watch versions now get 410 Gone."""
        with self._lock:
            self._history.clear()
            self._compacted_rv = self._rv

    def close_watches(self) -> None:
        with self._lock:
            for stream in self._watches:
                stream.close()
            self._watches.clear()


def _spec_of(obj: Obj) -> Obj:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def _parse_rv(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ApiError(400, "BadRequest", f"invalid resource version: {value!r}") from None


def _timestamp() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

"""An in-process fake of the Kubernetes API server, over real HTTP on 127.0.0.1, for contract tests.

No kube-apiserver can run on this machine, so the contract tests drive the official ``kubernetes`` client
against this aiohttp server instead. It is faithful where the project relies on the API:

- REST paths of namespaced resources (``/api/v1/...`` and ``/apis/<group>/<version>/...``): get, list
  (label and field selectors, all namespaces), create (``generateName`` too), replace, patch (merge,
  strategic merge, JSON patch), delete, and the ``status`` and ``scale`` subresources;
- ``autoscaling/v1`` Scale objects derived from the parent (``spec.replicas``, ``status.replicas``,
  ``status.selector``); resourceVersion bumped on every write; 409 Conflict with a real ``Status`` object when
  a PUT or PATCH carries a stale ``metadata.resourceVersion``; ``metadata.generation``;
- ``?watch=1``: newline-delimited JSON events (ADDED, MODIFIED, DELETED) honouring ``resourceVersion``
  (replay, or 410 Gone after ``compact()``) and ``timeoutSeconds``;
- the pods the ReplicaSet and StatefulSet controllers would make (``kube_workloads``);
- fault injection: ``server.faults.inject(...)`` makes the next N matching requests answer an error status,
  or wait before answering (past a client's timeout).

Every request is recorded (``server.requests``) so tests can assert what went over the wire.

Usage::

    with FakeKubeApiServer(custom_types=[MY_CRD]) as server:
        configuration.host = server.url
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from aiohttp import web

from tests.fakes import kube_patch
from tests.fakes.kube_resources import (
    BUILTIN_TYPES,
    PODS,
    ApiError,
    ResourceType,
    apply_scale,
    scale_of,
)
from tests.fakes.kube_selectors import Predicate, SelectorError, field_predicate, label_predicate
from tests.fakes.kube_store import Obj, Store, WatchStream
from tests.fakes.kube_workloads import WorkloadSimulator

_BODY = web.RequestKey("body", object)  # the request's JSON body, parsed once by the middleware
_REASONS = {
    400: "BadRequest",
    409: "Conflict",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


@dataclasses.dataclass(slots=True)
class Fault:
    """The next ``times`` requests whose method and path match answer ``status`` after ``delay_s``."""

    path: str  # a regular expression searched in the request path
    status: int | None  # None: answer normally (after the delay)
    times: int
    delay_s: float
    method: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    content_type: str
    body: Any
    authorization: str  # the Authorization header ("" when none): which credentials the client used


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[Fault] = []

    def inject(
        self,
        path: str,
        *,
        status: int | None = 500,
        times: int = 1,
        delay_s: float = 0.0,
        method: str | None = None,
    ) -> None:
        with self._lock:
            self._rules.append(Fault(path, status, times, delay_s, method.upper() if method else None))

    def take(self, method: str, path: str) -> Fault | None:
        """The first rule the request matches, with one of its uses spent."""
        with self._lock:
            for rule in self._rules:
                if rule.method in (None, method) and re.search(rule.path, path):
                    rule.times -= 1
                    if rule.times <= 0:
                        self._rules.remove(rule)
                    return rule
        return None


class FakeKubeApiServer:
    def __init__(self, *, custom_types: Sequence[ResourceType] = ()) -> None:
        self.store = Store()
        for rtype in (*BUILTIN_TYPES, *custom_types):
            self.store.register(rtype)
        self.workloads = WorkloadSimulator(self.store)
        self.faults = Faults()
        self.requests: list[RecordedRequest] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="fake-kube-apiserver", daemon=True
        )
        self._runner: web.AppRunner | None = None
        self._stopping: asyncio.Event | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- lifecycle ------------------------------------------------------------------------------------
    def start(self) -> FakeKubeApiServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=10)
            self._runner = None
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> FakeKubeApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _start(self) -> None:
        self._stopping = asyncio.Event()
        app = web.Application(middlewares=[self._record_and_inject])
        app.router.add_route("*", "/api/{version}/namespaces/{namespace}/{plural}", self._collection)
        app.router.add_route("*", "/api/{version}/namespaces/{namespace}/{plural}/{name}", self._item)
        app.router.add_route("*", "/api/{version}/namespaces/{namespace}/{plural}/{name}/{sub}", self._item)
        app.router.add_route("GET", "/api/{version}/{plural}", self._collection)
        prefix = "/apis/{group}/{version}"
        app.router.add_route("*", prefix + "/namespaces/{namespace}/{plural}", self._collection)
        app.router.add_route("*", prefix + "/namespaces/{namespace}/{plural}/{name}", self._item)
        app.router.add_route("*", prefix + "/namespaces/{namespace}/{plural}/{name}/{sub}", self._item)
        app.router.add_route("GET", prefix + "/{plural}", self._collection)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def _stop(self) -> None:
        assert self._runner is not None and self._stopping is not None
        self._stopping.set()
        self.store.close_watches()
        await self._runner.cleanup()

    # -- seeding and inspection helpers for tests (unlike an HTTP create, ``create`` keeps the status) ---
    def create(self, rtype: ResourceType, obj: Obj, *, namespace: str = "default") -> Obj:
        return self.store.create(rtype, obj["metadata"].get("namespace", namespace), obj)

    def get(self, rtype: ResourceType, name: str, *, namespace: str = "default") -> Obj:
        return self.store.get(rtype, namespace, name)

    def list(
        self, rtype: ResourceType, *, namespace: str | None = "default", selector: str = ""
    ) -> list[Obj]:
        return self.store.list(rtype, namespace, label_predicate(selector))[0]

    def delete(self, rtype: ResourceType, name: str, *, namespace: str = "default") -> Obj:
        return self.store.delete(rtype, namespace, name)

    def requests_to(self, path: str, *, method: str | None = None) -> list[RecordedRequest]:
        return [r for r in list(self.requests) if re.search(path, r.path) and method in (None, r.method)]

    # -- HTTP ------------------------------------------------------------------------------------------
    @web.middleware
    async def _record_and_inject(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body: Any = None
        if request.can_read_body:
            raw = await request.read()
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                return _status(ApiError(400, "BadRequest", "the request body is not JSON"))
        request[_BODY] = body
        self.requests.append(
            RecordedRequest(
                request.method,
                request.path,
                dict(request.query),
                request.content_type,
                body,
                request.headers.get("Authorization", ""),
            )
        )
        fault = self.faults.take(request.method, request.path)
        if fault is not None:
            if fault.delay_s > 0:
                await self._sleep(fault.delay_s)
            if fault.status is not None:
                reason = _REASONS.get(fault.status, "InternalError")
                return _status(ApiError(fault.status, reason, f"injected fault: {reason}"))
        try:
            response: web.StreamResponse = await handler(request)
        except ApiError as error:
            return _status(error)
        return response

    async def _sleep(self, seconds: float) -> None:
        assert self._stopping is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)

    async def _collection(self, request: web.Request) -> web.StreamResponse:
        rtype = self._resource(request)
        namespace = request.match_info.get("namespace")
        if request.method == "GET":
            try:
                selector = label_predicate(request.query.get("labelSelector", ""))
                fields = field_predicate(request.query.get("fieldSelector", ""))
            except SelectorError as error:
                raise ApiError(400, "BadRequest", str(error)) from None
            predicate = _both(selector, fields)
            if request.query.get("watch") in ("1", "true"):
                return await self._watch(request, rtype, namespace, predicate)
            items, rv = self.store.list(rtype, namespace, predicate)
            return _json(
                {
                    "kind": f"{rtype.kind}List",
                    "apiVersion": rtype.api_version,
                    "metadata": {"resourceVersion": rv},
                    "items": items,
                }
            )
        if request.method == "POST" and namespace is not None:
            body = _body(request)
            if rtype.status_subresource:  # a client cannot create an object with a status of its choosing
                body = {key: value for key, value in body.items() if key != "status"}
            return _json(self.store.create(rtype, namespace, body), status=201)
        raise ApiError(405, "MethodNotAllowed", f"{request.method} is not supported on a collection")

    async def _item(self, request: web.Request) -> web.StreamResponse:
        rtype = self._resource(request)
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        sub = request.match_info.get("sub")
        if sub == "scale":
            return _json(self._scale(request, rtype, namespace, name))
        if sub not in (None, "status") or (sub == "status" and not rtype.status_subresource):
            raise ApiError(404, "NotFound", f"the server could not find the requested resource ({sub})")
        if request.method == "GET":
            return _json(self.store.get(rtype, namespace, name))
        if request.method == "PUT":
            return _json(self.store.replace(rtype, namespace, name, _body(request), subresource=sub))
        if request.method == "PATCH":
            patch = _patcher(request)
            return _json(self.store.update(rtype, namespace, name, patch, subresource=sub))
        if request.method == "DELETE" and rtype.key == PODS.key:  # the kubelet's grace period applies
            return _json(self.workloads.delete_pod(namespace, name))
        if request.method == "DELETE":
            return _json(self.store.delete(rtype, namespace, name))
        raise ApiError(405, "MethodNotAllowed", f"{request.method} is not supported")

    def _scale(self, request: web.Request, rtype: ResourceType, namespace: str, name: str) -> Obj:
        if rtype.scale is None:
            raise ApiError(404, "NotFound", f"{rtype.qualified_name} has no scale subresource")
        if request.method == "GET":
            return scale_of(rtype, self.store.get(rtype, namespace, name))
        if request.method == "PUT":
            scale = _body(request)
            updated = self.store.update(
                rtype, namespace, name, lambda parent: apply_scale(rtype, parent, scale)
            )
        elif request.method == "PATCH":
            patch = _patcher(request)
            updated = self.store.update(
                rtype,
                namespace,
                name,
                lambda parent: apply_scale(rtype, parent, patch(scale_of(rtype, parent))),
            )
        else:
            raise ApiError(405, "MethodNotAllowed", f"{request.method} is not supported on scale")
        # The object as written: its status is still the old one, since no controller has acted on it yet.
        return scale_of(rtype, updated)

    async def _watch(
        self, request: web.Request, rtype: ResourceType, namespace: str | None, predicate: Predicate
    ) -> web.StreamResponse:
        stream = WatchStream(
            loop=asyncio.get_running_loop(), rtype=rtype, namespace=namespace, predicate=predicate
        )
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        try:
            self.store.watch(stream, rtype, namespace, request.query.get("resourceVersion"))
        except ApiError as error:
            await _send(response, {"type": "ERROR", "object": error.status()})
            return response
        timeout = float(request.query.get("timeoutSeconds", "1800"))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            while (remaining := deadline - loop.time()) > 0:
                try:
                    event = await asyncio.wait_for(stream.queue.get(), timeout=remaining)
                except TimeoutError:
                    break
                if event is None:
                    break
                await _send(response, event)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.store.unwatch(stream)
        return response

    def _resource(self, request: web.Request) -> ResourceType:
        info = request.match_info
        return self.store.resource(info.get("group", ""), info["version"], info["plural"])


def _patcher(request: web.Request) -> Callable[[Obj], Obj]:
    patch, content_type = request[_BODY], request.content_type

    def apply(obj: Obj) -> Obj:
        try:
            return kube_patch.apply_patch(content_type, obj, patch)
        except kube_patch.UnsupportedPatchType:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format: {content_type}",
            ) from None
        except (kube_patch.PatchError, KeyError, IndexError, TypeError, ValueError) as error:
            raise ApiError(422, "Invalid", f"the patch could not be applied: {error}") from None

    return apply


def _both(first: Predicate, second: Predicate) -> Predicate:
    return lambda obj: first(obj) and second(obj)


def _body(request: web.Request) -> Obj:
    body = request[_BODY]
    if not isinstance(body, dict):
        raise ApiError(400, "BadRequest", "the request body must be a JSON object")
    return body


def _json(obj: Obj, *, status: int = 200) -> web.Response:
    return web.json_response(obj, status=status)


def _status(error: ApiError) -> web.Response:
    return web.json_response(error.status(), status=error.code)


async def _send(response: web.StreamResponse, event: dict[str, Any]) -> None:
    await response.write(json.dumps(event).encode() + b"\n")


def running_server(*, custom_types: Sequence[ResourceType] = ()) -> Iterator[FakeKubeApiServer]:
    """Generator for a pytest fixture: a started server, stopped afterwards."""
    with FakeKubeApiServer(custom_types=custom_types) as server:
        yield server

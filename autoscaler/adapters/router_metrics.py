"""What the router says about each replica: requests in flight and prefix blocks cached.

Scale-down removes the replicas that cost least to lose (fewest requests in flight, least cached state) and
waits until the chosen ones have no request left. Both facts are on the router's ``/metrics`` per endpoint
(``autoscaler_router_endpoint_in_flight_requests`` and ``autoscaler_router_endpoint_index_blocks``; the
endpoint label is the pod's name), read directly rather than through Prometheus so a drain is judged on the
router's state now, not a scrape ago. Unreachable or unset: ``None``, and the drain falls back to its bound.

``spec.router.metricsUrl`` is written by whoever may create the resource, and the controller fetches it from
inside the cluster: unchecked, that is a request forgery (any host, any size, and a fake answer that says the
pods drained). So the URL must name a Service of the resource's own namespace
(``http://<service>.<namespace>.svc[.cluster.local][:port]/path``) or a host the controller was told to trust
(``allowed_hosts``: the chart passes its own router's Service); no user info, no redirects followed, and at
most ``max_bytes`` of answer.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
import time
from collections.abc import Callable
from typing import TypeVar

import httpx
from prometheus_client.parser import text_string_to_metric_families

from autoscaler.core.observation import RouterQueue

IN_FLIGHT = "autoscaler_router_endpoint_in_flight_requests"
BLOCKS = "autoscaler_router_endpoint_index_blocks"
QUEUED_REQUESTS = "autoscaler_router_queued_requests"
QUEUED_TOKENS = "autoscaler_router_queued_tokens"
SHED = "autoscaler_router_shed_requests"  # a counter (``_total``)

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclasses.dataclass(frozen=True, slots=True)
class EndpointLoad:
    in_flight: float
    cached_blocks: float


RouterLoad = dict[str, EndpointLoad]  # by endpoint (pod) name


class TooLarge(Exception):
    """The router's answer exceeded the size limit."""


def refusal(metrics_url: str, *, namespace: str, allowed_hosts: frozenset[str]) -> str | None:
    """Why ``metrics_url`` may not be fetched for a resource of ``namespace``; None when it may."""
    try:
        url = httpx.URL(metrics_url)
    except httpx.InvalidURL:
        return "not a URL"
    if url.scheme not in ("http", "https") or url.userinfo:
        return "only http(s) without user info"
    host = url.host.lower()
    authority = f"{host}:{url.port}" if url.port is not None else host
    if host in allowed_hosts or authority in allowed_hosts:
        return None
    labels = host.removesuffix(".cluster.local").split(".")
    if len(labels) == 3 and labels[2] == "svc" and _DNS_LABEL.fullmatch(labels[0]) and labels[1] == namespace:
        return None
    return (
        f"host {host!r} is neither a Service of namespace {namespace!r} (<name>.{namespace}.svc) nor allowed"
    )


class RouterLoadReader:
    def __init__(
        self,
        *,
        timeout_s: float = 2.0,
        allowed_hosts: frozenset[str] = frozenset(),
        max_bytes: int = 4 * 1024 * 1024,
    ) -> None:
        self._timeout_s = timeout_s
        self._allowed_hosts = allowed_hosts
        self._max_bytes = max_bytes
        self._shed: dict[str, tuple[float, float]] = {}  # by URL: (monotonic time, shed total) last read

    async def read(self, metrics_url: str | None, *, namespace: str) -> RouterLoad | None:
        return await self._parsed(metrics_url, namespace=namespace, parser=parse)

    async def queue(self, metrics_url: str | None, *, namespace: str) -> RouterQueue | None:
        """The requests waiting in the router's admission queue (scale from zero reads them as demand), and
        the rate it shed requests at since this router was last read (0 the first time, or after the
        router restarted and its counter went back)."""
        reading = await self._parsed(metrics_url, namespace=namespace, parser=parse_queue)
        if reading is None or metrics_url is None:
            return None
        queue, shed = reading
        now = time.monotonic()
        last = self._shed.get(metrics_url)
        self._shed[metrics_url] = (now, shed)
        if last is None or now <= last[0] or shed < last[1]:
            return queue
        return dataclasses.replace(queue, shed_per_s=(shed - last[1]) / (now - last[0]))

    async def waiting(self, metrics_url: str | None, *, namespace: str) -> float | None:
        """The requests waiting in the router's admission queue now, for the wake watch: unlike ``queue``
        it leaves the shed counter's last reading alone, so the cycle's shed rate keeps its span."""
        reading = await self._parsed(metrics_url, namespace=namespace, parser=parse_queue)
        return None if reading is None else reading[0].requests

    async def _parsed(
        self, metrics_url: str | None, *, namespace: str, parser: Callable[[str], T | None]
    ) -> T | None:
        if not metrics_url:
            return None
        refused = refusal(metrics_url, namespace=namespace, allowed_hosts=self._allowed_hosts)
        if refused is not None:
            log.warning("router metrics URL refused", extra={"fields": {"url": metrics_url, "why": refused}})
            return None
        try:
            text = await self._fetch(metrics_url)
        except (httpx.HTTPError, TooLarge) as error:
            log.warning(
                "router metrics unavailable", extra={"fields": {"url": metrics_url, "error": str(error)}}
            )
            return None
        try:
            return parser(text)
        except ValueError as error:  # the parser's word for text that is not the exposition format
            log.warning(
                "router metrics unreadable", extra={"fields": {"url": metrics_url, "error": str(error)}}
            )
            return None

    async def _fetch(self, metrics_url: str) -> str:
        """The body, read in chunks and abandoned past ``max_bytes``; redirects are not followed."""
        body = bytearray()
        http = httpx.AsyncClient(timeout=self._timeout_s, follow_redirects=False)
        async with http, http.stream("GET", metrics_url) as response:
            response.raise_for_status()
            async for chunk in response.aiter_bytes():
                body.extend(chunk)
                if len(body) > self._max_bytes:
                    raise TooLarge(f"answer larger than {self._max_bytes} bytes")
        return body.decode("utf-8", errors="replace")


def parse(text: str) -> RouterLoad:
    in_flight: dict[str, float] = {}
    blocks: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        target = {IN_FLIGHT: in_flight, BLOCKS: blocks}.get(family.name)
        if target is None:
            continue
        for sample in family.samples:
            endpoint = sample.labels.get("endpoint")
            if endpoint:
                target[endpoint] = target.get(endpoint, 0.0) + sample.value
    return {
        name: EndpointLoad(in_flight=in_flight.get(name, 0.0), cached_blocks=blocks.get(name, 0.0))
        for name in in_flight.keys() | blocks.keys()
    }


def parse_queue(text: str) -> tuple[RouterQueue, float] | None:
    """The admission queue's totals over its classes, and the requests it shed in all (its counter); None
    when the router exports no queue (an older router) or the numbers are not a queue's (negative, not
    finite)."""
    totals = {"requests": 0.0, "prompt": 0.0, "output": 0.0, "shed": 0.0}
    seen = False
    for family in text_string_to_metric_families(text):
        if family.name not in (QUEUED_REQUESTS, QUEUED_TOKENS, SHED):
            continue
        seen = seen or family.name == QUEUED_REQUESTS
        for sample in family.samples:
            if family.name == SHED:
                key = "shed" if sample.name.endswith("_total") else ""
            else:
                key = "requests" if family.name == QUEUED_REQUESTS else sample.labels.get("kind", "")
            if key in totals:
                totals[key] += sample.value
    if not seen:
        return None
    try:
        queue = RouterQueue(
            requests=totals["requests"], prompt_tokens=totals["prompt"], output_tokens=totals["output"]
        )
    except ValueError:
        log.warning("router queue metrics out of range", extra={"fields": totals})
        return None
    shed = totals["shed"]
    return queue, shed if math.isfinite(shed) and shed >= 0 else 0.0

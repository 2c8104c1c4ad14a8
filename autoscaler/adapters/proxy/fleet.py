"""The proxy's view of its engines, kept in step with the router.

The fleet reconciles discovery snapshots into the router (add, remove, draining), scrapes every engine's
``/metrics`` on an interval (queue, running, KV use, KV capacity from ``cache_config_info``), subscribes to
KV events in precise mode, and takes an engine out of rotation while it is unhealthy: at once when it
refuses a connection, after ``_SCRAPE_FAILURES`` failed scrapes in a row; one good scrape brings it back.
A draining engine keeps its in-flight requests; it only gets no new ones. So does an unhealthy one, but
the requests waiting on it give up once it stays silent (``stalls``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence

import aiohttp

from autoscaler.adapters.kv_events import KvEventSubscriber
from autoscaler.adapters.proxy import discovery, engine_metrics
from autoscaler.adapters.proxy.settings import ProxySettings, StaticEndpoint
from autoscaler.adapters.proxy.stalls import StallWatch
from autoscaler.routing.interface import EndpointMetrics
from autoscaler.routing.router import AffinityRouter

log = logging.getLogger(__name__)

_SCRAPE_FAILURES = 3


class Fleet:
    def __init__(self, settings: ProxySettings, router: AffinityRouter) -> None:
        self._settings = settings
        self._router = router
        self._client: aiohttp.ClientSession | None = None
        self._scrape_timeout = aiohttp.ClientTimeout(total=settings.scrape_timeout_s)
        self._specs: dict[str, StaticEndpoint] = {}
        self._unhealthy: set[str] = set()
        self._failures: dict[str, int] = {}
        self._capacity: dict[str, int] = {}
        self._events: KvEventSubscriber | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.discovered = asyncio.Event()  # set once the first snapshot is in
        self.stalls = StallWatch(grace_s=settings.stall_timeout_s)

    def url(self, name: str) -> str:
        return self._specs[name].url

    def ready(self) -> list[str]:
        """Endpoints that take new requests."""
        return [n for n, s in self._specs.items() if not s.draining and n not in self._unhealthy]

    async def start(self, client: aiohttp.ClientSession) -> None:
        """Follow discovery and scrape the engines with ``client`` until ``stop``."""
        self._client = client
        if self._settings.hashing.mode == "precise":
            self._events = KvEventSubscriber(self._router)
        self._tasks = [
            asyncio.create_task(self._follow_discovery(), name="fleet:discovery"),
            asyncio.create_task(self._scrape_forever(), name="fleet:scrape"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._events is not None:
            await self._events.close()

    def apply(self, snapshot: Sequence[StaticEndpoint]) -> None:
        """Make the router's endpoints those of ``snapshot``."""
        wanted = {spec.key: spec for spec in snapshot}
        for name in [n for n, spec in self._specs.items() if wanted.get(n) != spec]:
            old = self._specs[name]
            new = wanted.get(name)
            if new is not None and (new.url, new.phase, new.kv_events) == (old.url, old.phase, old.kv_events):
                self._specs[name] = new  # only draining changed
                self._sync_draining(name)
                continue
            self._forget(name)
        now = time.monotonic()
        for name, spec in wanted.items():
            if name in self._specs:
                continue
            self._specs[name] = spec
            self.stalls.up(name)  # a new engine under a known name starts healthy
            self._router.add_endpoint(
                name, phase=spec.phase, kv_capacity_tokens=self._settings.default_kv_capacity_tokens, now=now
            )
            self._sync_draining(name)
            if self._events is not None and spec.kv_events:
                self._events.add(name, spec.kv_events)
            log.info("endpoint %s (%s, %s) joined", name, spec.url, spec.phase.value)

    def mark_unhealthy(self, name: str) -> None:
        """The engine refused a connection or missed its scrapes: no new requests until a scrape succeeds,
        and the requests waiting on it stop waiting if it stays silent."""
        if name in self._specs and name not in self._unhealthy:
            self._unhealthy.add(name)
            self._sync_draining(name)
            self.stalls.down(name)
            log.warning("endpoint %s is unreachable; out of rotation until a scrape succeeds", name)

    async def scrape_once(self) -> None:
        names = list(self._specs)
        results = await asyncio.gather(*(self._scrape(n) for n in names), return_exceptions=True)
        now = time.monotonic()
        for name, result in zip(names, results, strict=True):
            if name not in self._specs:
                continue  # removed while scraping
            if isinstance(result, BaseException):
                self._failures[name] = self._failures.get(name, 0) + 1
                if self._failures[name] >= _SCRAPE_FAILURES:
                    self.mark_unhealthy(name)
                continue
            self._failures[name] = 0
            self._router.update_metrics(
                name,
                EndpointMetrics(
                    queue_length=result.waiting, running=result.running, kv_usage=result.kv_usage
                ),
                now=now,
            )
            if result.kv_capacity_tokens and result.kv_capacity_tokens != self._capacity.get(name):
                self._capacity[name] = result.kv_capacity_tokens
                self._router.set_kv_capacity(name, result.kv_capacity_tokens)
            if name in self._unhealthy:
                self._unhealthy.discard(name)
                self._sync_draining(name)
                self.stalls.up(name)
                log.info("endpoint %s is back", name)

    async def _scrape(self, name: str) -> engine_metrics.EngineScrape:
        assert self._client is not None, "the fleet is not started"
        url = f"{self._specs[name].url}/metrics"
        async with self._client.get(url, timeout=self._scrape_timeout) as response:
            response.raise_for_status()
            return engine_metrics.parse(await response.text())

    async def _scrape_forever(self) -> None:
        await self.discovered.wait()
        while True:
            await self.scrape_once()
            await asyncio.sleep(self._settings.scrape_interval_s)

    async def _follow_discovery(self) -> None:
        async for snapshot in discovery.snapshots(self._settings.endpoints):
            self.apply(snapshot)
            self.discovered.set()

    def _sync_draining(self, name: str) -> None:
        self._router.set_draining(name, self._specs[name].draining or name in self._unhealthy)

    def _forget(self, name: str) -> None:
        del self._specs[name]
        self._unhealthy.discard(name)
        self._failures.pop(name, None)
        self._capacity.pop(name, None)
        if self._events is not None:
            self._events.remove(name)
        self._router.remove_endpoint(name)
        log.info("endpoint %s left", name)

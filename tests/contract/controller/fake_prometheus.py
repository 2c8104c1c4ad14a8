"""A fake of Prometheus' instant-query API (``GET /api/v1/query``), over real HTTP on 127.0.0.1.

It answers the reader's queries (``autoscaler.adapters.prometheus``) from values a test sets per pool and
phase, recognising each query by the metric it reads. ``newest_sample`` is the query time unless a test
makes the signals stale; ``fail_status`` makes every query fail as a broken Prometheus would.
"""

from __future__ import annotations

import math
from typing import Any

from aiohttp import web

# (signal, a fragment only that signal's query contains), checked in order
_SIGNATURES = (
    ("newest_sample", "timestamp("),
    ("ttft", "time_to_first_token"),
    ("itl", "inter_token_latency"),
    ("prefix_hit_rate", "prefix_cache_hits"),
    ("prefix_hit_rate", "cached_prompt_tokens"),
    ("prompt_tokens_mean", "request_prompt_tokens"),
    ("output_tokens_mean", "request_generation_tokens"),
    ("queue_length", "num_requests_waiting"),
    ("kv_usage", "kv_cache_usage"),
    ("arrival_rate", "request_success_total"),
    ("arrival_rate", "autoscaler_router_requests_total"),
)


class FakePrometheus:
    def __init__(self) -> None:
        self.series: dict[tuple[str, str], dict[str, float]] = {}
        self.stale_s = 0.0  # how old the newest sample is
        self.fail_status: int | None = None
        self.queries = 0
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set(self, pool: str, phase: str, **signals: float) -> None:
        self.series[(pool, phase)] = dict(signals)

    def load(
        self, pool: str, phase: str, *, rate: float, prompt: float = 1000.0, output: float = 200.0
    ) -> None:
        """A steady load: ``rate`` requests/s of ``prompt`` and ``output`` tokens, nothing queued."""
        self.set(
            pool,
            phase,
            arrival_rate=rate,
            prompt_tokens_mean=prompt,
            output_tokens_mean=output,
            queue_length=0,
        )

    async def start(self) -> FakePrometheus:
        app = web.Application()
        app.router.add_get("/api/v1/query", self._query)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _query(self, request: web.Request) -> web.Response:
        self.queries += 1
        if self.fail_status is not None:
            return web.json_response({"status": "error", "error": "injected"}, status=self.fail_status)
        query, at = request.query["query"], float(request.query.get("time", "0"))
        signal = next((name for name, fragment in _SIGNATURES if fragment in query), None)
        result: list[dict[str, Any]] = []
        for (pool, phase), signals in self.series.items():
            value = at - self.stale_s if signal == "newest_sample" else signals.get(signal or "")
            if value is None:
                continue
            text = "NaN" if isinstance(value, float) and math.isnan(value) else repr(float(value))
            result.append({"metric": {"pool": pool, "phase": phase}, "value": [at, text]})
        return web.json_response({"status": "success", "data": {"resultType": "vector", "result": result}})

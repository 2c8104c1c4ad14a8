"""A fake of Prometheus' instant-query API (``GET /api/v1/query``), over real HTTP on 127.0.0.1.

A test sets the signals it wants the policy to see, per pool and phase (``arrival_rate``,
``prompt_tokens_mean``, ``output_tokens_mean``, ``prefix_hit_rate``, ``queue_length``, ``kv_usage``, ``ttft``,
``itl``); the fake answers the reader's raw-family queries (``autoscaler.adapters.prometheus``) with counter
increases, histogram buckets and gauges from which ``autoscaler.core.signal_derivation`` gives those signals
back, recognising each query by the metric it reads. ``newest_sample`` is the query time unless a test makes
the signals stale; ``fail_status`` makes every query fail as a broken Prometheus would.
"""

from __future__ import annotations

import math
import re
import ssl
from typing import Any

from aiohttp import web

from autoscaler.adapters.prometheus import window_seconds

# (family, a fragment only that family's query contains), checked in order
_SIGNATURES = (
    ("newest_sample", "timestamp("),
    ("kv_capacity_tokens", "cache_config_info"),
    ("ttft_sum", "time_to_first_token_seconds_sum"),
    ("ttft", "time_to_first_token"),
    ("itl_sum", "inter_token_latency_seconds_sum"),
    ("itl", "inter_token_latency"),
    ("prefix_hit", "prefix_cache_hits"),
    ("prefix_hit", "cached_prompt_tokens"),
    ("prefix_queried", "prefix_cache_queries"),
    ("prefix_queried", "router_prompt_tokens"),
    ("prompt_tokens_sum", "request_prompt_tokens_sum"),
    ("prompt_tokens", "request_prompt_tokens"),
    ("output_tokens_sum", "request_generation_tokens_sum"),
    ("output_tokens", "request_generation_tokens"),
    ("replicas", "count by"),
    ("waiting", "num_requests_waiting"),
    ("running", "num_requests_running"),
    ("kv_usage", "kv_cache_usage"),
    ("requests", "request_success_total"),
    ("requests", "autoscaler_router_requests_total"),
)
_QUERIED_TOKENS = 1000.0  # prefix-cache tokens queried per window, when a test sets a hit rate


def _answer(family: str, signals: dict[str, float], window_s: float) -> list[tuple[dict[str, str], float]]:
    """The (extra labels, value) series Prometheus would answer for ``family`` given the derived signals."""
    rate = signals.get("arrival_rate")
    n = rate * window_s if rate is not None else None
    means = {"prompt_tokens": "prompt_tokens_mean", "output_tokens": "output_tokens_mean"}
    mean = signals.get(means.get(family.removesuffix("_sum"), ""))
    if mean is not None and n is not None:  # all in +Inf: the mean is exact, the CV unknown
        return [({}, n * mean)] if family.endswith("_sum") else [({"le": "+Inf"}, n)]
    latency = signals.get(family.removesuffix("_sum"))
    if family in ("ttft", "itl") and latency is not None:  # every observation past it: the quantile reads it
        return [({"le": repr(latency)}, 0.0), ({"le": "+Inf"}, 1.0)]
    if family in ("ttft_sum", "itl_sum") and latency is not None:
        return [({}, latency)]
    hit = signals.get("prefix_hit_rate")
    gauges = {"waiting": signals.get("queue_length"), "kv_usage": signals.get("kv_usage")}
    plain = {
        "requests": n,
        "prefix_queried": _QUERIED_TOKENS if hit is not None else None,
        "prefix_hit": _QUERIED_TOKENS * hit if hit is not None else None,
        "replicas": 1.0 if any(v is not None for v in gauges.values()) else None,
        **gauges,
    }
    value = plain.get(family)
    return [] if value is None else [({}, value)]


class FakePrometheus:
    def __init__(self) -> None:
        self.series: dict[tuple[str, str], dict[str, float]] = {}
        self.stale_s = 0.0  # how old the newest sample is
        self.fail_status: int | None = None
        self.queries = 0
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.scheme = "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

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

    async def start(self, *, tls: ssl.SSLContext | None = None) -> FakePrometheus:
        """Serve on a free port of 127.0.0.1, over TLS with ``tls`` (a server context)."""
        app = web.Application()
        app.router.add_get("/api/v1/query", self._query)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self.scheme = "https" if tls is not None else "http"
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=tls)
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
        family = next((name for name, fragment in _SIGNATURES if fragment in query), "")
        window = re.search(r"\[(\w+)\]", query)
        window_s = window_seconds(window.group(1)) if window else 60.0
        result: list[dict[str, Any]] = []
        for (pool, phase), signals in self.series.items():
            if family == "newest_sample":
                answers = [({}, at - self.stale_s)]
            else:
                answers = _answer(family, signals, window_s)
            for labels, value in answers:
                text = "NaN" if math.isnan(value) else repr(float(value))
                metric = {"pool": pool, "phase": phase, **labels}
                result.append({"metric": metric, "value": [at, text]})
        return web.json_response({"status": "success", "data": {"resultType": "vector", "result": result}})

"""The Prometheus reader: every pool's signals in one batch of PromQL queries.

One query per signal, grouped ``by (pool, phase)``, so the cost of a control cycle does not grow with the
number of pools. The pool and phase of a series come from target labels that the scrape configuration
attaches (a ServiceMonitor relabelling pod labels, or static ``labels:`` in a plain scrape config); the
label names are settings. Metric names accept both vLLM spellings, ``vllm:x`` and ``vllm_x`` (an
OpenMetrics scrape through prometheus-client >= 0.23 rewrites the colon), through ``__name__`` regexes.

Queries are ``string.Template`` strings (``$window``, ``$quantile``, ``$by``) so that PromQL's own braces
need no escaping, and every one can be overridden for engines with other metric names. A query that fails
(Prometheus down, timeout, bad PromQL) raises ``SignalsUnavailable`` naming the signal; the caller holds
(fail static). A series that is simply absent is a missing signal for that pool and phase, not an error.
"""

from __future__ import annotations

import dataclasses
import math
import string
from collections.abc import Mapping
from typing import Any

from autoscaler.core.observation import Observation, PhaseSignals, ReplicaCounts
from autoscaler.core.phases import Phase


class SignalsUnavailable(RuntimeError):
    """Prometheus could not answer; the message names the signal and the cause."""


def _vllm(name: str) -> str:
    return f'{{__name__=~"vllm[:_]{name}"}}'


def _mean(histogram: str) -> str:
    return (
        f"sum by ($by) (rate({_vllm(histogram + '_sum')}[$window]))"
        f" / sum by ($by) (rate({_vllm(histogram + '_count')}[$window]))"
    )


def _quantile(histogram: str) -> str:
    return f"histogram_quantile($quantile, sum by ($by, le) (rate({_vllm(histogram + '_bucket')}[$window])))"


@dataclasses.dataclass(frozen=True, slots=True)
class SignalQueries:
    """PromQL per signal. Each answers one series per (pool, phase); defaults read vLLM's own metrics."""

    arrival_rate: str = f"sum by ($by) (rate({_vllm('request_success_total')}[$window]))"
    prompt_tokens_mean: str = _mean("request_prompt_tokens")
    output_tokens_mean: str = _mean("request_generation_tokens")
    prefix_hit_rate: str = (
        f"sum by ($by) (rate({_vllm('prefix_cache_hits_total')}[$window]))"
        f" / sum by ($by) (rate({_vllm('prefix_cache_queries_total')}[$window]))"
    )
    queue_length: str = f"sum by ($by) ({_vllm('num_requests_waiting')})"
    kv_usage: str = f"avg by ($by) ({_vllm('kv_cache_usage_perc')})"
    ttft: str = _quantile("time_to_first_token_seconds")
    itl: str = _quantile("inter_token_latency_seconds")
    newest_sample: str = f"max by ($by) (timestamp({_vllm('num_requests_waiting')}))"


ROUTER_QUERIES = dataclasses.replace(
    SignalQueries(),
    arrival_rate="sum by ($by) (rate(autoscaler_router_requests_total[$window]))",
    prefix_hit_rate=(
        "sum by ($by) (rate(autoscaler_router_cached_prompt_tokens_total[$window]))"
        " / sum by ($by) (rate(autoscaler_router_prompt_tokens_total[$window]))"
    ),
)
"""With our router in front: arrivals as offered (not completed) load, hit rate as the router estimates it."""


class QueryClient:
    """The one call the reader needs; ``prometheus_api_client.PrometheusConnect`` satisfies it."""

    def custom_query(
        self, query: str, params: dict[str, Any] | None = None, timeout: int | None = None
    ) -> Any:
        raise NotImplementedError


@dataclasses.dataclass(frozen=True, slots=True)
class ReaderSettings:
    window: str = "1m"
    ttft_quantile: float = 0.9
    itl_quantile: float = 0.9
    pool_label: str = "pool"
    phase_label: str = "phase"
    timeout_s: float = 5.0
    queries: SignalQueries = SignalQueries()


class PrometheusReader:
    """Builds an ``Observation`` per pool from one batch of queries."""

    def __init__(self, client: QueryClient, settings: ReaderSettings = ReaderSettings()) -> None:
        self._client = client
        self._settings = settings

    @classmethod
    def connect(cls, url: str, settings: ReaderSettings = ReaderSettings()) -> PrometheusReader:
        from prometheus_api_client import PrometheusConnect

        return cls(PrometheusConnect(url=url, disable_ssl=True), settings)

    def read(self, *, now: float) -> dict[tuple[str, Phase], dict[str, float]]:
        """Every signal for every (pool, phase) that Prometheus has series for, evaluated at ``now``."""
        s = self._settings
        values: dict[tuple[str, Phase], dict[str, float]] = {}
        for field in dataclasses.fields(s.queries):
            quantile = s.ttft_quantile if field.name == "ttft" else s.itl_quantile
            query = string.Template(getattr(s.queries, field.name)).substitute(
                window=s.window, quantile=repr(quantile), by=f"{s.pool_label}, {s.phase_label}"
            )
            try:
                result = self._client.custom_query(
                    query, params={"time": now}, timeout=math.ceil(s.timeout_s)
                )
            except Exception as exc:  # the client raises requests' and its own exception types
                raise SignalsUnavailable(f"{field.name}: Prometheus query failed: {exc}") from exc
            for series in result:
                labels = series.get("metric", {})
                try:
                    key = (labels[s.pool_label], Phase(labels[s.phase_label]))
                except (KeyError, ValueError):
                    continue  # a series without our labels belongs to no pool we manage
                values.setdefault(key, {})[field.name] = float(series["value"][1])
        return values

    def observe(self, *, pool: str, replicas: Mapping[Phase, ReplicaCounts], now: float) -> Observation:
        return observation(pool=pool, values=self.read(now=now), replicas=replicas, now=now)


def observation(
    *,
    pool: str,
    values: Mapping[tuple[str, Phase], Mapping[str, float]],
    replicas: Mapping[Phase, ReplicaCounts],
    now: float,
) -> Observation:
    """One pool's Observation from a batch read; phases Prometheus knows nothing of get missing signals."""
    phases = {}
    for phase, counts in replicas.items():
        v = values.get((pool, phase), {})
        newest = v.get("newest_sample")
        phases[phase] = PhaseSignals(
            replicas=counts,
            arrival_rate=v.get("arrival_rate"),
            prompt_tokens_mean=v.get("prompt_tokens_mean"),
            output_tokens_mean=v.get("output_tokens_mean"),
            prefix_hit_rate=v.get("prefix_hit_rate"),
            queue_length=v.get("queue_length"),
            kv_usage=v.get("kv_usage"),
            ttft_observed_s=v.get("ttft"),
            itl_observed_s=v.get("itl"),
            age_s=now - newest if newest is not None else math.inf,
        )
    return Observation(pool=pool, time=now, phases=phases)

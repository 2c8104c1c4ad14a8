"""The Prometheus reader: every pool's raw metric families in one batch of PromQL queries.

The reader fetches what the engines (or our router) count, not what they mean: per (pool, phase), the increase
over the rate window of each counter and of each histogram bucket (``sum by (pool, phase, le)``), and the
gauges summed at the evaluation time. ``autoscaler.core.signal_derivation`` turns those families into the
policy's signals, the same code the simulator calls on the families it counts, so a field means the same in
both drivers. One query per family, grouped ``by (pool, phase)``, so the cost of a control cycle does not grow
with the number of pools. The pool and phase of a series come from target labels that the scrape configuration
attaches (a ServiceMonitor relabelling pod labels, or static ``labels:`` in a plain scrape config); the label
names are settings. Metric names accept both vLLM spellings, ``vllm:x`` and ``vllm_x`` (an OpenMetrics scrape
through prometheus-client >= 0.23 rewrites the colon), through ``__name__`` regexes.

Queries are ``string.Template`` strings (``$window``, ``$by``) so that PromQL's own braces need no escaping,
and every one can be overridden for engines with other metric names. A query that fails (Prometheus down,
timeout, bad PromQL) raises ``SignalsUnavailable`` naming the family; the caller holds (fail static). A
series that is simply absent is a missing family for that pool and phase, not an error.
"""

from __future__ import annotations

import dataclasses
import math
import re
import string
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autoscaler.core.families import Histogram, PhaseFamilies
from autoscaler.core.observation import Observation, ReplicaCounts
from autoscaler.core.phases import Phase
from autoscaler.core.signal_derivation import derive, phase_signals

if TYPE_CHECKING:
    import requests

__all__ = [
    "ROUTER_QUERIES",
    "PrometheusReader",
    "QueryClient",
    "ReaderSettings",
    "SignalQueries",
    "SignalsUnavailable",
    "observation",
    "verified_session",
    "window_seconds",
]


class SignalsUnavailable(RuntimeError):
    """Prometheus could not answer; the message names the family and the cause."""


def _vllm(name: str) -> str:
    return f'{{__name__=~"vllm[:_]{name}"}}'


def _increase(counter: str) -> str:
    return f"sum by ($by) (increase({counter}[$window]))"


def _buckets(histogram: str) -> str:
    return f"sum by ($by, le) (increase({_vllm(histogram + '_bucket')}[$window]))"


@dataclasses.dataclass(frozen=True, slots=True)
class SignalQueries:
    """PromQL per raw family (``PhaseFamilies``); defaults read vLLM's own metrics.

    Histograms take two queries: ``<name>`` answers one series per bucket (``le``), ``<name>_sum`` the
    increase of ``_sum``. ``kv_capacity_tokens`` answers ``vllm:cache_config_info`` grouped by its
    ``num_gpu_blocks`` and ``block_size`` labels, whose product is the capacity.
    """

    requests: str = _increase(_vllm("request_success_total"))
    prompt_tokens: str = _buckets("request_prompt_tokens")
    prompt_tokens_sum: str = _increase(_vllm("request_prompt_tokens_sum"))
    output_tokens: str = _buckets("request_generation_tokens")
    output_tokens_sum: str = _increase(_vllm("request_generation_tokens_sum"))
    prefix_queried: str = _increase(_vllm("prefix_cache_queries_total"))
    prefix_hit: str = _increase(_vllm("prefix_cache_hits_total"))
    ttft: str = _buckets("time_to_first_token_seconds")
    ttft_sum: str = _increase(_vllm("time_to_first_token_seconds_sum"))
    itl: str = _buckets("inter_token_latency_seconds")
    itl_sum: str = _increase(_vllm("inter_token_latency_seconds_sum"))
    replicas: str = f"count by ($by) ({_vllm('num_requests_waiting')})"
    waiting: str = f"sum by ($by) ({_vllm('num_requests_waiting')})"
    running: str = f"sum by ($by) ({_vllm('num_requests_running')})"
    kv_usage: str = f"sum by ($by) ({_vllm('kv_cache_usage_perc')})"
    kv_capacity_tokens: str = f"max by ($by, num_gpu_blocks, block_size) ({_vllm('cache_config_info')})"
    newest_sample: str = f"max by ($by) (timestamp({_vllm('num_requests_waiting')}))"


ROUTER_QUERIES = dataclasses.replace(
    SignalQueries(),
    requests=_increase("autoscaler_router_requests_total"),
    prefix_queried=_increase("autoscaler_router_prompt_tokens_total"),
    prefix_hit=_increase("autoscaler_router_cached_prompt_tokens_total"),
)
"""With our router in front: arrivals as offered (not completed) load, hit rate as the router estimates it."""

_HISTOGRAMS = ("prompt_tokens", "output_tokens", "ttft", "itl")
_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def window_seconds(window: str) -> float:
    """A PromQL range (``90s``, ``1m``, ``1h30m``) in seconds."""
    match = _DURATION.match(window)
    if not window or match is None:
        raise ValueError(f"not a PromQL range in h/m/s: {window!r}")
    hours, minutes, seconds = (int(part or 0) for part in match.groups())
    total = 3600.0 * hours + 60.0 * minutes + seconds
    if total <= 0:
        raise ValueError(f"the rate window must be positive: {window!r}")
    return total


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


def verified_session(ca_bundle: Path | None) -> requests.Session:
    """An HTTP session that verifies Prometheus' certificate (https URLs): against ``ca_bundle`` (a PEM file)
    when given, else the system's trust store. Never off: a forged answer would scale the fleet."""
    import requests

    session = requests.Session()
    session.verify = str(ca_bundle) if ca_bundle is not None else True
    return session


class PrometheusReader:
    """Fetches every pool's raw families in one batch of queries and derives their signals."""

    def __init__(self, client: QueryClient, settings: ReaderSettings = ReaderSettings()) -> None:
        self._client = client
        self._settings = settings
        self._window_s = window_seconds(settings.window)

    @classmethod
    def connect(
        cls, url: str, settings: ReaderSettings = ReaderSettings(), *, ca_bundle: Path | None = None
    ) -> PrometheusReader:
        from prometheus_api_client import PrometheusConnect

        return cls(PrometheusConnect(url=url, session=verified_session(ca_bundle)), settings)

    def fetch(self, *, now: float) -> dict[tuple[str, Phase], PhaseFamilies]:
        """Every family for every (pool, phase) that Prometheus has series for, evaluated at ``now``."""
        raw: dict[tuple[str, Phase], dict[str, Any]] = {}
        for name in (field.name for field in dataclasses.fields(SignalQueries)):
            for key, labels, value in self._query(name, now=now):
                families = raw.setdefault(key, {})
                if name in _HISTOGRAMS:
                    families.setdefault(name, []).append((_bound(labels.get("le")), value))
                elif name == "kv_capacity_tokens":
                    capacity = _capacity(labels)
                    if capacity is not None:
                        families[name] = max(capacity, families.get(name, 0.0))
                else:
                    families[name] = value
        return {key: self._families(found, now=now) for key, found in raw.items()}

    def read(self, *, now: float) -> dict[tuple[str, Phase], dict[str, float]]:
        """The signals (``PhaseSignals`` field names) that ``fetch``'s families define, per (pool, phase)."""
        s = self._settings
        return {
            key: derive(families, ttft_quantile=s.ttft_quantile, itl_quantile=s.itl_quantile)
            for key, families in self.fetch(now=now).items()
        }

    def observe(self, *, pool: str, replicas: Mapping[Phase, ReplicaCounts], now: float) -> Observation:
        return observation(pool=pool, values=self.read(now=now), replicas=replicas, now=now)

    def _query(self, name: str, *, now: float) -> list[tuple[tuple[str, Phase], dict[str, str], float]]:
        s = self._settings
        query = string.Template(getattr(s.queries, name)).substitute(
            window=s.window, by=f"{s.pool_label}, {s.phase_label}"
        )
        try:
            result = self._client.custom_query(query, params={"time": now}, timeout=math.ceil(s.timeout_s))
        except Exception as exc:  # the client raises requests' and its own exception types
            raise SignalsUnavailable(f"{name}: Prometheus query failed: {exc}") from exc
        found = []
        for series in result:
            labels = series.get("metric", {})
            try:
                key = (labels[s.pool_label], Phase(labels[s.phase_label]))
                value = float(series["value"][1])
            except (KeyError, ValueError, IndexError, TypeError):
                continue  # a series without our labels belongs to no pool we manage
            found.append((key, labels, value))
        return found

    def _families(self, found: Mapping[str, Any], *, now: float) -> PhaseFamilies:
        newest = found.get("newest_sample")

        def histogram(name: str) -> Histogram | None:
            return _histogram(found.get(name, []), found.get(f"{name}_sum"))

        return PhaseFamilies(
            window_s=self._window_s,
            age_s=now - newest if newest is not None and math.isfinite(newest) else math.inf,
            requests=found.get("requests"),
            prompt_tokens=histogram("prompt_tokens"),
            output_tokens=histogram("output_tokens"),
            prefix_queried=found.get("prefix_queried"),
            prefix_hit=found.get("prefix_hit"),
            ttft=histogram("ttft"),
            itl=histogram("itl"),
            replicas=found.get("replicas"),
            waiting=found.get("waiting"),
            running=found.get("running"),
            kv_usage=found.get("kv_usage"),
            kv_capacity_tokens=found.get("kv_capacity_tokens"),
        )


def _bound(le: str | None) -> float:
    try:
        return float(le) if le is not None else math.nan
    except ValueError:
        return math.nan


def _capacity(labels: Mapping[str, str]) -> float | None:
    try:
        capacity = float(labels["num_gpu_blocks"]) * float(labels["block_size"])
    except (KeyError, ValueError):
        return None
    return capacity if math.isfinite(capacity) and capacity > 0 else None


def _histogram(buckets: list[tuple[float, float]], total: float | None) -> Histogram | None:
    """Bucket increases (``le``, value) as a ``Histogram``; None without a ``+Inf`` bucket or a ``_sum``."""
    buckets = sorted((le, value) for le, value in buckets if not math.isnan(le))
    if total is None or not buckets or buckets[-1][0] != math.inf:
        return None
    bounds = tuple(le for le, _ in buckets[:-1])
    if len(set(bounds)) != len(bounds):
        return None
    return Histogram(bounds=bounds, cumulative=tuple(value for _, value in buckets), total=total)


def observation(
    *,
    pool: str,
    values: Mapping[tuple[str, Phase], Mapping[str, float]],
    replicas: Mapping[Phase, ReplicaCounts],
    now: float,
) -> Observation:
    """One pool's Observation from a batch read; phases Prometheus knows nothing of get missing signals."""
    phases = {
        phase: phase_signals(replicas=counts, values=values.get((pool, phase), {}))
        for phase, counts in replicas.items()
    }
    return Observation(pool=pool, time=now, phases=phases)

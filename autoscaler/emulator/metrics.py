"""vLLM's ``/metrics``: the same names, types, labels and histogram buckets, in Prometheus text format 0.0.4.

Names follow vLLM v1 (``vllm/v1/metrics/loggers.py``, reference/dependencies.md "Prometheus metrics"): every
series carries ``model_name`` and ``engine`` ("0"); counters are exposed with ``_total`` (and ``_created``,
as prometheus_client and vLLM do); ``vllm:cache_config_info`` is an info-style gauge whose labels are the
cache configuration. Text is rendered with ``generate_latest`` on a private registry, whatever the scraper's
``Accept`` header, exactly as vLLM's ``/metrics`` route does: prometheus_client's OpenMetrics negotiation
would rewrite ``vllm:`` to ``vllm_`` on the sample lines.

Times are the engine model's seconds: with ``--speed K`` a client sees them divided by ``K``, but the
histograms keep the latencies the modelled replica would have.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from autoscaler.core.vllm_buckets import ITL_BUCKETS, REQUEST_LATENCY_BUCKETS, TTFT_BUCKETS, buckets_1_2_5

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

PARAMS_N_BUCKETS = (1, 2, 5, 10, 20)
PREEMPTION_BUCKETS = (1, 2, 3, 4, 5, 10, 20)
FINISHED_REASONS = ("stop", "length", "abort", "error", "repetition")
KV_FETCH_STAGES = ("waiting_to_start", "in_progress", "completed_waiting")


@dataclasses.dataclass(frozen=True, slots=True)
class EngineGauges:
    """What the engine holds at scrape time, and its cumulative counters."""

    running: int
    waiting: int
    kv_fetching: int  # P/D decode side: requests whose KV is still arriving (counted in ``waiting`` too)
    kv_usage: float
    prefix_queries: int
    prefix_hits: int
    preemptions: int


@dataclasses.dataclass(frozen=True, slots=True)
class FinishedRequest:
    """One completed request's timeline (engine seconds) and token counts."""

    arrival: float
    admitted: float
    first_token: float
    finished: float
    prompt_tokens: int
    generated: int
    max_tokens: int
    preemptions: int


class VllmMetrics:
    """The vLLM metric families of one engine, in a private registry."""

    def __init__(
        self, *, model_name: str, max_model_len: int, cache_config: Mapping[str, str], kv_consumer: bool
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        labels = {"model_name": model_name, "engine": "0"}
        names = list(labels)

        def gauge(name: str, doc: str) -> Gauge:
            return Gauge(name, doc, names, registry=self.registry).labels(**labels)

        def counter(name: str, doc: str) -> Counter:
            return Counter(name, doc, names, registry=self.registry).labels(**labels)

        def histogram(name: str, doc: str, buckets: tuple[float, ...]) -> Histogram:
            family = Histogram(name, doc, names, buckets=buckets, registry=self.registry)
            return family.labels(**labels)

        self._running = gauge("vllm:num_requests_running", "Number of requests in model execution batches.")
        self._waiting = gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.")
        by_reason = Gauge(
            "vllm:num_requests_waiting_by_reason",
            "Number of requests waiting, by reason.",
            [*names, "reason"],
            registry=self.registry,
        )
        self._waiting_capacity = by_reason.labels(**labels, reason="capacity")
        by_reason.labels(**labels, reason="deferred").set(0)
        self._kv_fetch: Gauge | None = None
        if kv_consumer:
            fetch = Gauge(
                "vllm:num_requests_kv_fetch_by_stage",
                "Number of requests fetching KV from a remote prefill, by stage.",
                [*names, "stage"],
                registry=self.registry,
            )
            for stage in KV_FETCH_STAGES:
                fetch.labels(**labels, stage=stage).set(0)
            self._kv_fetch = fetch.labels(**labels, stage="in_progress")
        sleep = Gauge(
            "vllm:engine_sleep_state", "Engine sleep state.", [*names, "sleep_state"], registry=self.registry
        )
        for state, value in (("awake", 1), ("weights_offloaded", 0), ("discard_all", 0)):
            sleep.labels(**labels, sleep_state=state).set(value)
        self._kv_usage = gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.")
        info = Gauge(
            "vllm:cache_config_info",
            "Information of the LLMEngine CacheConfig",
            [*cache_config, "engine"],
            registry=self.registry,
        )
        info.labels(**cache_config, engine="0").set(1)

        self._prefix_queries = counter(
            "vllm:prefix_cache_queries", "Prefix cache queries, in terms of number of queried tokens."
        )
        self._prefix_hits = counter(
            "vllm:prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens."
        )
        self._preemptions = counter("vllm:num_preemptions", "Cumulative number of preemptions.")
        self._seen = EngineGauges(0, 0, 0, 0.0, 0, 0, 0)
        self.prompt_tokens = counter("vllm:prompt_tokens", "Number of prefill tokens processed.")
        self.generation_tokens = counter("vllm:generation_tokens", "Number of generation tokens processed.")
        by_source = Counter(
            "vllm:prompt_tokens_by_source",
            "Number of prompt tokens by source.",
            [*names, "source"],
            registry=self.registry,
        )
        self._by_source = {
            source: by_source.labels(**labels, source=source)
            for source in ("local_compute", "local_cache_hit", "external_kv_transfer")
        }
        self._cached = counter("vllm:prompt_tokens_cached", "Number of cached prompt tokens.")
        success = Counter(
            "vllm:request_success",
            "Count of successfully processed requests.",
            [*names, "finished_reason"],
            registry=self.registry,
        )
        self._success = {
            reason: success.labels(**labels, finished_reason=reason) for reason in FINISHED_REASONS
        }

        self._ttft = histogram(
            "vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", TTFT_BUCKETS
        )
        self._itl = histogram(
            "vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", ITL_BUCKETS
        )
        self._tpot = histogram(
            "vllm:request_time_per_output_token_seconds",
            "Histogram of time_per_output_token_seconds per request.",
            ITL_BUCKETS,
        )
        latency = {
            "e2e_request_latency": "Histogram of e2e request latency in seconds.",
            "request_queue_time": "Histogram of time spent in WAITING phase for request.",
            "request_inference_time": "Histogram of time spent in RUNNING phase for request.",
            "request_prefill_time": "Histogram of time spent in PREFILL phase for request.",
            "request_decode_time": "Histogram of time spent in DECODE phase for request.",
        }
        self._latency = {
            key: histogram(f"vllm:{key}_seconds", doc, REQUEST_LATENCY_BUCKETS)
            for key, doc in latency.items()
        }
        tokens = buckets_1_2_5(max_model_len)
        sizes = {
            "request_prompt_tokens": "Number of prefill tokens processed.",
            "request_generation_tokens": "Number of generation tokens processed.",
            "request_max_num_generation_tokens": "Histogram of maximum requested generation tokens.",
            "request_params_max_tokens": "Histogram of the max_tokens request parameter.",
        }
        self._sizes = {key: histogram(f"vllm:{key}", doc, tokens) for key, doc in sizes.items()}
        self._params_n = histogram(
            "vllm:request_params_n", "Histogram of the n request parameter.", PARAMS_N_BUCKETS
        )
        self._request_preemptions = histogram(
            "vllm:request_num_preemptions", "Number of preemptions per request.", PREEMPTION_BUCKETS
        )

    # --- observations, as the emulator sees them happen ---------------------------------------------

    def first_token(self, *, ttft: float, prompt_tokens: int, cached_tokens: int, transferred: bool) -> None:
        self._ttft.observe(ttft)
        self.prompt_tokens.inc(prompt_tokens)
        source = "external_kv_transfer" if transferred else "local_compute"
        self._by_source[source].inc(prompt_tokens - cached_tokens)
        self._by_source["local_cache_hit"].inc(cached_tokens)
        self._cached.inc(cached_tokens)

    def next_token(self, *, itl: float) -> None:
        self._itl.observe(itl)

    def finished(self, request: FinishedRequest) -> None:
        """A request that ran to ``max_tokens`` (the emulator samples no end-of-sequence token)."""
        self._success["length"].inc()
        latency = self._latency
        latency["e2e_request_latency"].observe(request.finished - request.arrival)
        latency["request_queue_time"].observe(request.admitted - request.arrival)
        latency["request_inference_time"].observe(request.finished - request.admitted)
        latency["request_prefill_time"].observe(request.first_token - request.admitted)
        latency["request_decode_time"].observe(request.finished - request.first_token)
        if request.generated > 1:
            self._tpot.observe((request.finished - request.first_token) / (request.generated - 1))
        self._sizes["request_prompt_tokens"].observe(request.prompt_tokens)
        self._sizes["request_generation_tokens"].observe(request.generated)
        self._sizes["request_max_num_generation_tokens"].observe(request.max_tokens)
        self._sizes["request_params_max_tokens"].observe(request.max_tokens)
        self._params_n.observe(1)
        self._request_preemptions.observe(request.preemptions)

    def aborted(self) -> None:
        self._success["abort"].inc()

    def render(self, gauges: EngineGauges) -> bytes:
        """The exposition text, gauges and engine counters brought up to ``gauges`` first."""
        self._running.set(gauges.running)
        self._waiting.set(gauges.waiting)
        self._waiting_capacity.set(gauges.waiting)
        if self._kv_fetch is not None:
            self._kv_fetch.set(gauges.kv_fetching)
        self._kv_usage.set(gauges.kv_usage)
        seen = self._seen
        self._prefix_queries.inc(gauges.prefix_queries - seen.prefix_queries)
        self._prefix_hits.inc(gauges.prefix_hits - seen.prefix_hits)
        self._preemptions.inc(gauges.preemptions - seen.preemptions)
        self._seen = gauges
        return generate_latest(self.registry)

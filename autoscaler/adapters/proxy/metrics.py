"""The router's own metrics: the controller's signals, in Prometheus naming (``_total``, ``_seconds``).

Per pool and phase (the phase where the work lands: ``prefill`` for a remote prefill, ``decode`` or
``aggregated`` for the serving endpoint):

- ``autoscaler_router_requests_total``: requests entering the phase;
- ``autoscaler_router_prompt_tokens_total`` and ``autoscaler_router_cached_prompt_tokens_total``: prompt
  tokens prefilled there and the router's estimate of those already cached (their ratio is the prefix hit
  rate the capacity model reads);
- ``autoscaler_router_pd_decisions_total{decision, reason}``: ``prefill-decode`` or ``decode-only``, and why;
- ``autoscaler_router_placement_seconds``: time spent choosing endpoints (hashing included);
- ``autoscaler_router_responses_total{code}``, ``autoscaler_router_upstream_errors_total{endpoint, kind}``;
- per endpoint, read from the router at scrape time (so removed endpoints leave no stale series):
  ``autoscaler_router_endpoint_in_flight_requests``, ``autoscaler_router_endpoint_in_flight_tokens``,
  ``autoscaler_router_endpoint_index_blocks``, and ``autoscaler_router_endpoints{phase, state}``.
"""

from __future__ import annotations

import dataclasses
from collections import Counter as Tally
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from autoscaler.core.phases import Phase
from autoscaler.routing.router import AffinityRouter, RoutedPlacement

PLACEMENT_BUCKETS = (1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 1e-2, 0.1)


@dataclasses.dataclass(frozen=True, slots=True)
class _PhaseSeries:
    requests: Counter
    prompt_tokens: Counter
    cached_prompt_tokens: Counter


class RouterMetrics:
    def __init__(self, *, pool: str, router: AffinityRouter) -> None:
        self.pool = pool
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ["pool", "phase"]
        self.requests = Counter(
            "autoscaler_router_requests", "Requests entering a phase", labels, registry=self.registry
        )
        self.prompt_tokens = Counter(
            "autoscaler_router_prompt_tokens",
            "Prompt tokens prefilled in a phase",
            labels,
            registry=self.registry,
        )
        self.cached_prompt_tokens = Counter(
            "autoscaler_router_cached_prompt_tokens",
            "Prompt tokens the router estimates were already cached where they were prefilled",
            labels,
            registry=self.registry,
        )
        self.pd_decisions = Counter(
            "autoscaler_router_pd_decisions",
            "P/D decisions: prefill-decode (remote prefill) or decode-only, with the decider's reason",
            ["pool", "decision", "reason"],
            registry=self.registry,
        )
        self.placement_seconds = Histogram(
            "autoscaler_router_placement_seconds",
            "Time to choose endpoints for one request, hashing included",
            ["pool"],
            buckets=PLACEMENT_BUCKETS,
            registry=self.registry,
        )
        self.responses = Counter(
            "autoscaler_router_responses",
            "Responses by status code",
            ["pool", "code"],
            registry=self.registry,
        )
        self.upstream_errors = Counter(
            "autoscaler_router_upstream_errors",
            "Failures talking to an engine (refused, timeout, prefill)",
            ["pool", "endpoint", "kind"],
            registry=self.registry,
        )
        self.registry.register(_EndpointCollector(pool, router))
        self._placement = self.placement_seconds.labels(pool)
        self._phases: dict[Phase, _PhaseSeries] = {}

    def timed(self, seconds: float) -> None:
        """One placement took ``seconds`` (a request placed again after a refusal counts twice here)."""
        self._placement.observe(seconds)

    def placed(self, placement: RoutedPlacement, *, phase: Phase) -> None:
        """Count a request once, where it was finally placed (``phase``: the serving endpoint's phase)."""
        prefill_phase = Phase.PREFILL if placement.prefill_endpoint is not None else phase
        self._of(phase).requests.inc()
        prefill = self._of(prefill_phase)
        if prefill_phase is not phase:
            prefill.requests.inc()
        prefill.prompt_tokens.inc(placement.request.prompt_tokens)
        prefill.cached_prompt_tokens.inc(placement.cached_tokens)
        if placement.prefill_reason:
            decision = "prefill-decode" if placement.prefill_endpoint is not None else "decode-only"
            self.pd_decisions.labels(self.pool, decision, placement.prefill_reason).inc()

    def _of(self, phase: Phase) -> _PhaseSeries:
        """The phase's labelled series, looked up once (``labels()`` costs a locked dict lookup each call)."""
        series = self._phases.get(phase)
        if series is None:
            values = (self.pool, phase.value)
            series = self._phases[phase] = _PhaseSeries(
                requests=self.requests.labels(*values),
                prompt_tokens=self.prompt_tokens.labels(*values),
                cached_prompt_tokens=self.cached_prompt_tokens.labels(*values),
            )
        return series

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _EndpointCollector(Collector):
    def __init__(self, pool: str, router: AffinityRouter) -> None:
        self._pool = pool
        self._router = router

    def collect(self) -> Iterator[GaugeMetricFamily]:
        labels = ["pool", "endpoint", "phase"]
        requests = GaugeMetricFamily(
            "autoscaler_router_endpoint_in_flight_requests",
            "Requests the router has in flight on the endpoint",
            labels=labels,
        )
        tokens = GaugeMetricFamily(
            "autoscaler_router_endpoint_in_flight_tokens",
            "Uncached prompt tokens still to prefill plus expected output tokens in flight on the endpoint",
            labels=labels,
        )
        blocks = GaugeMetricFamily(
            "autoscaler_router_endpoint_index_blocks",
            "Prefix blocks the router believes the endpoint holds",
            labels=labels,
        )
        states = GaugeMetricFamily(
            "autoscaler_router_endpoints", "Endpoints known to the router", labels=["pool", "phase", "state"]
        )
        tally: Tally[tuple[str, str]] = Tally()
        for name in self._router.endpoints():
            endpoint = self._router.endpoint(name)
            values = [self._pool, name, endpoint.phase.value]
            requests.add_metric(values, endpoint.in_flight)
            tokens.add_metric(values, endpoint.in_flight_tokens)
            blocks.add_metric(values, self._router.index_size(name))
            tally[endpoint.phase.value, "draining" if endpoint.draining else "ready"] += 1
        for (phase, state), count in sorted(tally.items()):
            states.add_metric([self._pool, phase, state], count)
        yield from (requests, tokens, blocks, states)

"""What a policy sees in the simulator: the metric families Prometheus would have stored, derived as live.

The live controller reads counters, histogram buckets and gauges that Prometheus scraped every
``scrape_interval_s``, takes their increase over ``rate_window_s``, and reads them up to ``delay_s`` late;
``autoscaler.core.signal_derivation`` turns those families into the signals. The simulator keeps the same
families, counted where vLLM (or our router) counts them, samples them at its scrapes, and calls the same
derivation on the newest sample at least ``delay_s`` old and the oldest one inside the rate window before it.
No signal reaches the policy by another path.

Where each family is counted (``Counted``, one per phase, fed by the driver):

- vLLM's request counter (``request_success_total``) counts a request where it *finishes* on an engine:
  a P/D prefill replica when the prompt is prefilled (it serves the request with ``max_tokens=1``), the
  serving replica (decode or aggregated) when the last token is out, and any engine that drops it (an
  abandoned request is ``finished_reason="abort"``). The router's counter (``ScrapeSettings.source``
  ``"router"``, as ``spec.metrics.source: router`` live) counts requests entering the phase at placement.
- The token histograms observe the finished request's prompt and generated tokens (one token on a P/D
  prefill replica), bucketed at vLLM's 1-2-5 boundaries up to the max model length.
- TTFT is observed by the engine that produced the first token: a P/D prefill replica from arrival to
  prefill done; a decode replica from the KV's handover (prefill done) to its first token; aggregated from
  arrival. ITL is observed once per generated token after the first (``output - 1`` observations at the
  request's mean ITL: within one request the simulator knows only the mean). Both at vLLM's boundaries, and
  both counted when the driver learns them (the first token when the request finishes, at most a few
  seconds after vLLM would have).
- The prefix counters are the engines' (tokens queried and found at admission), or the router's own
  estimate with the router source. The gauges are summed over the replicas Prometheus scrapes (ready or
  draining), with the KV capacity per replica as ``vllm:cache_config_info`` gives it.
- Replica counts come from the actuator (Kubernetes), which the controller reads directly: never delayed.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import numpy.typing as npt

from autoscaler.core.families import Histogram, PhaseFamilies
from autoscaler.core.observation import CounterSource, Observation, PhaseSignals
from autoscaler.core.phases import Phase
from autoscaler.core.signal_derivation import derive, phase_signals
from autoscaler.core.slo import Slo
from autoscaler.core.vllm_buckets import ITL_BUCKETS, TTFT_BUCKETS, buckets_1_2_5
from autoscaler.sim.cluster import Cluster, ReplicaState

__all__ = ["Counted", "ScrapeSettings", "Scraper"]

FloatArray = npt.NDArray[np.float64]


@dataclasses.dataclass(frozen=True, slots=True)
class ScrapeSettings:
    scrape_interval_s: float = 15.0
    rate_window_s: float = 60.0
    delay_s: float = 15.0  # scrape-to-query delay: what the controller reads is this old at least
    source: CounterSource = "vllm"  # the request and prefix counters: engines' or router's


class _Bucketed:
    """One histogram family: observations since the last scrape, folded into cumulative buckets at it."""

    __slots__ = ("bounds", "per_bucket", "sum", "values", "weights")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.per_bucket = np.zeros(len(bounds) + 1, dtype=np.float64)
        self.sum = 0.0
        self.values: list[float] = []
        self.weights: list[float] = []  # only for weighted families (ITL); empty otherwise

    def fold(self) -> tuple[FloatArray, float]:
        """Cumulative ``le`` counts (``+Inf`` last) and ``_sum``, with everything observed so far."""
        if self.values:
            values = np.asarray(self.values, dtype=np.float64)
            weights = np.asarray(self.weights, dtype=np.float64) if self.weights else None
            index = np.searchsorted(np.asarray(self.bounds), values, side="left")  # le: value <= bound
            self.per_bucket += np.bincount(index, weights=weights, minlength=len(self.bounds) + 1)
            self.sum += float(values @ weights) if weights is not None else float(values.sum())
            self.values.clear()
            self.weights.clear()
        return np.cumsum(self.per_bucket), self.sum


class Counted:
    """The counters of one phase: what its engines count (vLLM) and what the router counts for it.

    The driver updates the attributes directly (the hot loop pays one list append per observation).
    """

    __slots__ = ("itl", "output", "prompt", "requests", "routed", "routed_cached", "routed_prompt", "ttft")

    def __init__(self, *, max_model_len: int) -> None:
        tokens = tuple(float(b) for b in buckets_1_2_5(max_model_len))
        self.requests = 0  # finished on this phase's engines, any reason
        self.prompt = _Bucketed(tokens)
        self.output = _Bucketed(tokens)
        self.ttft = _Bucketed(TTFT_BUCKETS)
        self.itl = _Bucketed(ITL_BUCKETS)
        self.routed = 0  # entering the phase, as the router counts them
        self.routed_prompt = 0  # prompt tokens the router sent here to prefill
        self.routed_cached = 0  # of those, the router's estimate of the cached ones


@dataclasses.dataclass(frozen=True, slots=True)
class _PhaseSample:
    requests: float
    prefix_queried: float
    prefix_hit: float
    histograms: dict[str, tuple[FloatArray, float]]
    replicas: int
    waiting: int
    running: int
    kv_usage: float


@dataclasses.dataclass(frozen=True, slots=True)
class _Sample:
    time: float
    phases: dict[Phase, _PhaseSample]


_HISTOGRAMS = ("prompt", "output", "ttft", "itl")


class Scraper:
    def __init__(
        self, cluster: Cluster, *, settings: ScrapeSettings, slo: Slo, pool: str, max_model_len: int
    ) -> None:
        self._cluster = cluster
        self._settings = settings
        self._slo = slo
        self._pool = pool
        self._capacity = float(cluster.profile.kv_capacity_tokens)
        self.counted = {phase: Counted(max_model_len=max_model_len) for phase in cluster.phases}
        self._samples: list[_Sample] = []

    def scrape(self, now: float) -> None:
        self._samples.append(
            _Sample(time=now, phases={phase: self._phase_sample(phase) for phase in self._cluster.phases})
        )

    def _phase_sample(self, phase: Phase) -> _PhaseSample:
        hits = queries = waiting = running = reporting = 0
        usage = 0.0
        for replica in self._cluster.replicas.values():
            if replica.phase is not phase:
                continue
            engine = replica.engine
            hits += engine.hit_tokens
            queries += engine.query_tokens
            if replica.state is ReplicaState.READY or replica.state is ReplicaState.DRAINING:
                reporting += 1
                waiting += engine.num_waiting
                running += engine.num_running
                usage += engine.kv_usage
        counted = self.counted[phase]
        router = self._settings.source == "router"
        return _PhaseSample(
            requests=counted.routed if router else counted.requests,
            prefix_queried=counted.routed_prompt if router else queries,
            prefix_hit=counted.routed_cached if router else hits,
            histograms={name: getattr(counted, name).fold() for name in _HISTOGRAMS},
            replicas=reporting,
            waiting=waiting,
            running=running,
            kv_usage=usage,
        )

    def families(self, phase: Phase, now: float) -> PhaseFamilies | None:
        """What the live reader would fetch for ``phase`` at ``now``; None before the first visible scrape."""
        newest, oldest = self._window(now)
        if newest is None:
            return None
        new = newest.phases[phase]
        scraped = new.replicas > 0  # with no replica scraped there is no gauge series at all
        gauges = PhaseFamilies(
            self._settings.rate_window_s,
            age_s=now - newest.time,
            replicas=float(new.replicas) if scraped else None,
            waiting=float(new.waiting) if scraped else None,
            running=float(new.running) if scraped else None,
            kv_usage=new.kv_usage if scraped else None,
            kv_capacity_tokens=self._capacity if scraped else None,
        )
        if oldest is None:  # increase() needs two samples in the window
            return gauges
        old = oldest.phases[phase]

        def histogram(name: str) -> Histogram:
            (new_counts, new_sum), (old_counts, old_sum) = new.histograms[name], old.histograms[name]
            increase = tuple((new_counts - old_counts).tolist())
            bounds = getattr(self.counted[phase], name).bounds
            return Histogram(bounds=bounds, cumulative=increase, total=new_sum - old_sum)

        return dataclasses.replace(
            gauges,
            window_s=newest.time - oldest.time,
            requests=new.requests - old.requests,
            prompt_tokens=histogram("prompt"),
            output_tokens=histogram("output"),
            prefix_queried=new.prefix_queried - old.prefix_queried,
            prefix_hit=new.prefix_hit - old.prefix_hit,
            ttft=histogram("ttft"),
            itl=histogram("itl"),
        )

    def observe(self, now: float) -> Observation:
        """The observation a controller would build at ``now``: delayed, windowed, as Prometheus serves it."""
        phases = {phase: self._signals(phase, now) for phase in self._cluster.phases}
        return Observation(pool=self._pool, time=now, phases=phases)

    def _signals(self, phase: Phase, now: float) -> PhaseSignals:
        families = self.families(phase, now)
        slo = self._slo
        values = (
            derive(families, ttft_quantile=slo.ttft.quantile, itl_quantile=slo.itl.quantile)
            if families is not None
            else {}
        )
        return phase_signals(replicas=self._cluster.counts(phase), values=values)

    def _window(self, now: float) -> tuple[_Sample | None, _Sample | None]:
        samples = self._samples
        visible = now - self._settings.delay_s
        newest_i = len(samples) - 1
        while newest_i >= 0 and samples[newest_i].time > visible + 1e-9:
            newest_i -= 1
        if newest_i < 0:
            return None, None
        newest = samples[newest_i]
        oldest_i = newest_i
        while (
            oldest_i > 0 and samples[oldest_i - 1].time >= newest.time - self._settings.rate_window_s - 1e-9
        ):
            oldest_i -= 1
        return newest, (samples[oldest_i] if oldest_i < newest_i else None)

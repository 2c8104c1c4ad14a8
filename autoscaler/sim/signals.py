"""What a policy sees in the simulator: the cluster as Prometheus would have delivered it.

The live controller reads counters and gauges that Prometheus scraped every ``scrape_interval_s`` and turns
them into rates over ``rate_window_s``; by the time it reads them they are up to ``delay_s`` old. The
simulator reproduces exactly that: ``Scraper.scrape`` stores a sample of the cluster's cumulative counters
and gauges, and ``Scraper.observe`` builds the ``Observation`` for a control step from the newest sample
at least ``delay_s`` old and the oldest sample inside the rate window before it.

- Demand (arrival rate, prompt and output means and CVs) is counted at the router, once per request, and
  reported for every phase of the pool (each phase serves every request).
- The prefix hit rate is the prefill side's: cached over queried prompt tokens at admission.
- TTFT percentiles go to the prefill phase, ITL percentiles to the decode phase (both to aggregated);
  both are observed when a request finishes (its TTFT a few seconds after its first token, at most).
- Replica counts come from the actuator (Kubernetes), which the controller reads directly: never delayed.
- Zero traffic is a real signal: a window without arrivals reports rate 0, and the token means fall back to
  the run's means so far (the policy can still size the minimum), never NaN.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from autoscaler.core.observation import Observation, PhaseSignals
from autoscaler.core.phases import Phase
from autoscaler.core.slo import Slo
from autoscaler.sim.cluster import Cluster, ReplicaState

__all__ = ["Demand", "ScrapeSettings", "Scraper"]


@dataclasses.dataclass(frozen=True, slots=True)
class ScrapeSettings:
    scrape_interval_s: float = 15.0
    rate_window_s: float = 60.0
    delay_s: float = 15.0  # scrape-to-query delay: what the controller reads is this old at least


class Demand:
    """Cumulative counters kept by the driver (the router's view) and the latency observations so far."""

    __slots__ = (
        "arrivals",
        "gap_sq",
        "gap_sum",
        "itl",
        "last_arrival",
        "output_sq",
        "output_sum",
        "prompt_sq",
        "prompt_sum",
        "ttft",
    )

    def __init__(self) -> None:
        self.arrivals = 0
        self.last_arrival = 0.0
        self.gap_sum = 0.0  # inter-arrival gaps, for their coefficient of variation
        self.gap_sq = 0.0
        self.prompt_sum = 0.0
        self.prompt_sq = 0.0
        self.output_sum = 0.0
        self.output_sq = 0.0
        self.ttft: list[float] = []  # in the order first tokens happened
        self.itl: list[float] = []  # per-request mean ITL, in the order requests finished


@dataclasses.dataclass(frozen=True, slots=True)
class _PhaseSample:
    hit_tokens: int
    query_tokens: int
    queue: int
    kv_usage: float | None


@dataclasses.dataclass(frozen=True, slots=True)
class _Sample:
    time: float
    arrivals: int
    prompt_sum: float
    prompt_sq: float
    output_sum: float
    output_sq: float
    gap_sum: float
    gap_sq: float
    ttft_count: int
    itl_count: int
    phases: dict[Phase, _PhaseSample]


def _mean_cv(count: float, total: float, squares: float) -> tuple[float, float]:
    mean = total / count
    variance = max(0.0, squares / count - mean * mean)
    return mean, (math.sqrt(variance) / mean if mean > 0 else 0.0)


class Scraper:
    def __init__(self, cluster: Cluster, demand: Demand, *, settings: ScrapeSettings, slo: Slo, pool: str):
        self._cluster = cluster
        self._demand = demand
        self._settings = settings
        self._slo = slo
        self._pool = pool
        self._samples: list[_Sample] = []

    def scrape(self, now: float) -> None:
        d = self._demand
        phases = {phase: self._phase_sample(phase) for phase in self._cluster.phases}
        self._samples.append(
            _Sample(
                time=now,
                arrivals=d.arrivals,
                prompt_sum=d.prompt_sum,
                prompt_sq=d.prompt_sq,
                output_sum=d.output_sum,
                output_sq=d.output_sq,
                gap_sum=d.gap_sum,
                gap_sq=d.gap_sq,
                ttft_count=len(d.ttft),
                itl_count=len(d.itl),
                phases=phases,
            )
        )

    def _phase_sample(self, phase: Phase) -> _PhaseSample:
        hits = queries = queue = 0
        usage: list[float] = []
        for replica in self._cluster.replicas.values():
            if replica.phase is not phase:
                continue
            engine = replica.engine
            hits += engine.hit_tokens
            queries += engine.query_tokens
            if replica.state in (ReplicaState.READY, ReplicaState.DRAINING):
                queue += engine.num_waiting
                usage.append(engine.kv_usage)
        return _PhaseSample(
            hit_tokens=hits,
            query_tokens=queries,
            queue=queue,
            kv_usage=sum(usage) / len(usage) if usage else None,
        )

    def observe(self, now: float) -> Observation:
        """The observation a controller would build at ``now``: delayed, windowed, as Prometheus serves it."""
        newest, oldest = self._window(now)
        phases = {phase: self._signals(phase, newest, oldest, now) for phase in self._cluster.phases}
        return Observation(pool=self._pool, time=now, phases=phases)

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

    def _signals(self, phase: Phase, new: _Sample | None, old: _Sample | None, now: float) -> PhaseSignals:
        counts = self._cluster.counts(phase)
        if new is None or old is None:
            return PhaseSignals(
                replicas=counts, arrival_rate=None, prompt_tokens_mean=None, output_tokens_mean=None
            )
        count = new.arrivals - old.arrivals
        prompt_mean = prompt_cv = output_mean = output_cv = arrival_cv = None
        if count > 1:
            _, arrival_cv = _mean_cv(count, new.gap_sum - old.gap_sum, new.gap_sq - old.gap_sq)
        if count > 0:
            prompt_mean, prompt_cv = _mean_cv(
                count, new.prompt_sum - old.prompt_sum, new.prompt_sq - old.prompt_sq
            )
            output_mean, output_cv = _mean_cv(
                count, new.output_sum - old.output_sum, new.output_sq - old.output_sq
            )
        elif new.arrivals > 0:
            prompt_mean, prompt_cv = _mean_cv(new.arrivals, new.prompt_sum, new.prompt_sq)
            output_mean, output_cv = _mean_cv(new.arrivals, new.output_sum, new.output_sq)
        p_new, p_old = new.phases[phase], old.phases[phase]
        queried = p_new.query_tokens - p_old.query_tokens
        hit_rate = (p_new.hit_tokens - p_old.hit_tokens) / queried if queried > 0 else None
        ttft = itl = None
        if phase is not Phase.DECODE:
            ttft = self._quantile(self._demand.ttft, old.ttft_count, new.ttft_count, self._slo.ttft.quantile)
        if phase is not Phase.PREFILL:
            itl = self._quantile(self._demand.itl, old.itl_count, new.itl_count, self._slo.itl.quantile)
        return PhaseSignals(
            replicas=counts,
            arrival_rate=count / (new.time - old.time),
            prompt_tokens_mean=prompt_mean,
            output_tokens_mean=output_mean,
            prompt_tokens_cv=prompt_cv,
            output_tokens_cv=output_cv,
            arrival_cv=arrival_cv,
            prefix_hit_rate=hit_rate,
            queue_length=float(p_new.queue),
            kv_usage=p_new.kv_usage,
            ttft_observed_s=ttft,
            itl_observed_s=itl,
            age_s=now - new.time,
        )

    @staticmethod
    def _quantile(values: list[float], start: int, stop: int, quantile: float) -> float | None:
        if stop <= start:
            return None
        return float(np.quantile(np.asarray(values[start:stop]), quantile))

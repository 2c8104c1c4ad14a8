"""One signal path: the live reader and the simulator fill the same PhaseSignals fields, the same way.

A small simulation records, at every control step, the raw families its scraper built and the observation
it handed the policy. Each step's families are then served as Prometheus would answer the live reader's
queries (a recorded answer: one vector per query, one series per pool/phase and, for histograms, per
``le``), and the reader's observation must match the simulator's field by field: the same fields set, the
same values. Every field of ``PhaseSignals`` is enumerated, so a new field that one driver fills and the
other does not fails here.

Then once through a real Prometheus: vLLM-format exporters (one per simulated replica) whose counters grow
at the rates of one recorded window, scraped every second and read with the reader's own queries; the
reader must give the simulator's values again (rates within Prometheus' extrapolation, the rest as ratios
of counters scraped together, exactly up to rounding).
"""

from __future__ import annotations

import dataclasses
import math
import string
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from autoscaler.adapters import prometheus
from autoscaler.config.profiles import load_profile
from autoscaler.core.decision import Decision, PhaseDecision
from autoscaler.core.families import Histogram, PhaseFamilies
from autoscaler.core.observation import Observation, PhaseSignals
from autoscaler.core.phases import Phase, ServingMode
from autoscaler.core.slo import LatencyTarget, Slo
from autoscaler.profiles.schema import Profile
from autoscaler.routing.least_loaded import LeastLoadedPlacer
from autoscaler.sim import signals as sim_signals
from autoscaler.sim.driver import SimSettings, simulate
from autoscaler.sim.workloads.trace import Trace
from tests.integration.prometheus_server import prometheus_server
from tests.integration.text_exporter import text_exporter

POOL = "parity"
WINDOW = "60s"
SLO = Slo(ttft=LatencyTarget(1.0, 90.0), itl=LatencyTarget(0.03, 95.0))
FIELDS = tuple(f.name for f in dataclasses.fields(PhaseSignals) if f.name != "replicas")
NO_SOURCE = {"arrival_cv"}  # neither vLLM nor our router counts inter-arrival times
BLOCK = 16


@dataclasses.dataclass
class _Step:
    time: float
    families: dict[Phase, PhaseFamilies | None]
    observation: Observation


class _Recorder:
    """Grows the replica counts over the run so that queues, starts and several replicas all show up."""

    name = "recorder"

    def __init__(self) -> None:
        self.seen: list[Observation] = []

    def initial_state(self) -> None:
        return None

    def step(self, observation: Observation, state: None, *, now: float) -> tuple[Decision, None]:
        self.seen.append(observation)
        wanted = 1 if now < 120 else 2
        phases = {
            phase: PhaseDecision(
                replicas=wanted, previous=s.replicas.current, reason="Hold", message="parity"
            )
            for phase, s in observation.phases.items()
        }
        return Decision(pool=observation.pool, time=now, phases=phases), None


def _trace() -> Trace:
    rng = np.random.default_rng(11)
    n = 900
    return Trace(
        name="parity",
        arrival_s=np.sort(rng.uniform(0.0, 300.0, n)),
        prompt_tokens=rng.integers(50, 3000, n),
        output_tokens=rng.integers(1, 400, n),
    )


def _simulate(
    profile: Profile, mode: ServingMode, source: str, monkeypatch: pytest.MonkeyPatch
) -> list[_Step]:
    steps: list[_Step] = []
    observe = sim_signals.Scraper.observe

    def recording(self: sim_signals.Scraper, now: float) -> Observation:
        observation = observe(self, now)
        families = {phase: self.families(phase, now) for phase in observation.phases}
        steps.append(_Step(now, families, observation))
        return observation

    monkeypatch.setattr(sim_signals.Scraper, "observe", recording)
    initial = dict.fromkeys(mode.phases, 1)
    scrape = sim_signals.ScrapeSettings(source=source)  # type: ignore[arg-type]
    settings = SimSettings(mode=mode, slo=SLO, initial_replicas=initial, scrape=scrape, pool=POOL)
    simulate(
        _trace(), profile=profile, policy=_Recorder(), placer=LeastLoadedPlacer(), settings=settings, seed=1
    )
    return steps


def _series(phase: Phase, value: float, **labels: str) -> dict[str, Any]:
    return {"metric": {"pool": POOL, "phase": phase.value, **labels}, "value": [0.0, repr(float(value))]}


def _le(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(float(bound))


class _RecordedPrometheus:
    """Answers each of the reader's queries with what Prometheus would for the recorded families."""

    def __init__(
        self, families: dict[Phase, PhaseFamilies | None], queries: prometheus.SignalQueries, now: float
    ):
        self._now = now
        self._families = {phase: f for phase, f in families.items() if f is not None}
        by = "pool, phase"
        self._names = {
            string.Template(getattr(queries, field.name)).substitute(window=WINDOW, by=by): field.name
            for field in dataclasses.fields(queries)
        }

    def custom_query(
        self, query: str, params: dict[str, Any] | None = None, timeout: int | None = None
    ) -> Any:
        name = self._names[query]
        return [series for phase, f in self._families.items() for series in self._answer(name, phase, f)]

    def _answer(self, name: str, phase: Phase, f: PhaseFamilies) -> list[dict[str, Any]]:
        if name == "newest_sample":
            return [_series(phase, self._now - f.age_s)] if math.isfinite(f.age_s) else []
        if name == "kv_capacity_tokens":
            if f.kv_capacity_tokens is None:
                return []
            blocks = str(int(f.kv_capacity_tokens // BLOCK))
            return [_series(phase, 1.0, num_gpu_blocks=blocks, block_size=str(BLOCK))]
        family = getattr(f, name.removesuffix("_sum"))
        if family is None:
            return []
        if isinstance(family, Histogram):
            if name.endswith("_sum"):
                return [_series(phase, family.total)]
            bounds = (*family.bounds, math.inf)
            return [_series(phase, n, le=_le(b)) for b, n in zip(bounds, family.cumulative, strict=True)]
        return [_series(phase, family)]


def _same(sim: float | None, live: float | None) -> bool:
    if sim is None or live is None:
        return sim is live
    return sim == pytest.approx(live, rel=1e-9, abs=1e-9) or (math.isnan(sim) and math.isnan(live))


@pytest.mark.parametrize(
    ("name", "mode", "source"),
    [
        ("P/D, vLLM's counters", ServingMode.DISAGGREGATED, "vllm"),
        ("P/D, the router's counters", ServingMode.DISAGGREGATED, "router"),
        ("aggregated, vLLM's counters", ServingMode.AGGREGATED, "vllm"),
    ],
)
def test_live_reader_and_simulator_derive_every_field_alike(
    monkeypatch: pytest.MonkeyPatch, name: str, mode: ServingMode, source: str
) -> None:
    profile = load_profile("llama-3.1-8b/h100-tp1")
    queries = prometheus.ROUTER_QUERIES if source == "router" else prometheus.SignalQueries()
    settings = prometheus.ReaderSettings(
        window=WINDOW, ttft_quantile=SLO.ttft.quantile, itl_quantile=SLO.itl.quantile, queries=queries
    )
    steps = _simulate(profile, mode, source, monkeypatch)
    compared = 0
    filled: set[str] = set()
    for step in steps:
        windows = {f.window_s for f in step.families.values() if f is not None and f.requests is not None}
        if windows != {60.0}:  # Prometheus extrapolates a partial window; compare full windows only
            continue
        client = _RecordedPrometheus(step.families, queries, step.time)
        counts = {phase: s.replicas for phase, s in step.observation.phases.items()}
        reader = prometheus.PrometheusReader(client, settings)  # type: ignore[arg-type]
        live = reader.observe(pool=POOL, replicas=counts, now=step.time)
        for phase, sim in step.observation.phases.items():
            for field in FIELDS:
                a, b = getattr(sim, field), getattr(live.phases[phase], field)
                assert _same(a, b), f"{name}: {phase.value}.{field} at {step.time}: sim {a}, live {b}"
                if a is not None:
                    filled.add(field)
        compared += 1
    assert compared >= 5, name
    assert filled == set(FIELDS) - NO_SOURCE, (
        f"{name}: fields never filled: {set(FIELDS) - NO_SOURCE - filled}"
    )


_NAMES = {  # PhaseFamilies histogram -> vLLM family
    "prompt_tokens": "request_prompt_tokens",
    "output_tokens": "request_generation_tokens",
    "ttft": "time_to_first_token_seconds",
    "itl": "inter_token_latency_seconds",
}


def _exposition(f: PhaseFamilies, *, share: float, elapsed: float) -> str:
    """One replica's vLLM text: counters grown for ``elapsed`` s at ``f``'s rates, its ``share`` of it all."""
    grown = share * elapsed / f.window_s
    labels = 'model_name="m",engine="0"'
    lines = []

    def sample(kind: str, name: str, value: float | None, extra: str = "") -> None:
        if value is not None:
            lines.append(f"# TYPE vllm:{name} {kind}")
            lines.append(f"vllm:{name}{{{labels}{extra}}} {value!r}")

    sample("counter", "request_success_total", f.requests * grown if f.requests is not None else None)
    sample("counter", "prefix_cache_queries_total", (f.prefix_queried or 0.0) * grown)
    sample("counter", "prefix_cache_hits_total", (f.prefix_hit or 0.0) * grown)
    for field, name in _NAMES.items():
        histogram = getattr(f, field)
        if histogram is None:
            continue
        lines.append(f"# TYPE vllm:{name} histogram")
        for bound, count in zip((*histogram.bounds, math.inf), histogram.cumulative, strict=True):
            lines.append(f'vllm:{name}_bucket{{{labels},le="{_le(bound)}"}} {count * grown!r}')
        lines.append(f"vllm:{name}_sum{{{labels}}} {histogram.total * grown!r}")
        lines.append(f"vllm:{name}_count{{{labels}}} {histogram.count * grown!r}")
    sample("gauge", "num_requests_waiting", f.waiting * share if f.waiting is not None else None)
    sample("gauge", "num_requests_running", f.running * share if f.running is not None else None)
    sample("gauge", "kv_cache_usage_perc", f.kv_usage * share if f.kv_usage is not None else None)
    if f.kv_capacity_tokens is not None:
        blocks = int(f.kv_capacity_tokens // BLOCK)
        extra = f',block_size="{BLOCK}",num_gpu_blocks="{blocks}"'
        lines.append("# TYPE vllm:cache_config_info gauge")
        lines.append(f'vllm:cache_config_info{{engine="0"{extra}}} 1.0')
    return "\n".join(lines) + "\n"


def _busiest(steps: list[_Step]) -> _Step:
    """A full-window step with traffic and latencies on every phase, the most sequences running."""
    full = [
        step
        for step in steps
        if all(
            f is not None and f.window_s == 60.0 and f.requests and f.replicas and f.ttft and f.ttft.count
            for f in step.families.values()
        )
    ]
    return max(full, key=lambda step: sum(f.running or 0 for f in step.families.values() if f))


def test_through_a_real_prometheus_the_reader_derives_what_the_simulator_did(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    profile = load_profile("llama-3.1-8b/h100-tp1")
    step = _busiest(_simulate(profile, ServingMode.DISAGGREGATED, "vllm", monkeypatch))
    start = time.monotonic()
    settings = prometheus.ReaderSettings(
        window="6s", ttft_quantile=SLO.ttft.quantile, itl_quantile=SLO.itl.quantile
    )
    with ExitStack() as stack:
        targets = []
        for phase, f in step.families.items():
            assert f is not None and f.replicas
            n = int(f.replicas)
            for _ in range(n):
                render = lambda f=f, n=n: _exposition(f, share=1 / n, elapsed=time.monotonic() - start)  # noqa: E731
                address = stack.enter_context(text_exporter(render))
                targets.append((address, {"pool": POOL, "phase": phase.value}))
        url = stack.enter_context(prometheus_server(targets, tmp_path))
        reader = prometheus.PrometheusReader.connect(url, settings)
        deadline = time.monotonic() + 30
        while not all(
            "arrival_rate" in reader.read(now=time.time()).get((POOL, p), {}) for p in step.families
        ):
            assert time.monotonic() < deadline, "the exporters' first scrapes"
            time.sleep(0.5)
        time.sleep(7)  # the rate window fills (increase() over a partial one extrapolates from less)
        counts = {phase: s.replicas for phase, s in step.observation.phases.items()}
        live = reader.observe(pool=POOL, replicas=counts, now=time.time())
    for phase, sim in step.observation.phases.items():
        got = live.phases[phase]
        for field in FIELDS:
            a, b = getattr(sim, field), getattr(got, field)
            assert (a is None) == (b is None), f"{phase.value}.{field}: sim {a}, live {b}"
            if a is None or b is None or field == "age_s":  # live is as old as its last 1 s scrape
                continue
            tolerance = 0.05 if field == "arrival_rate" else 1e-6
            assert b == pytest.approx(a, rel=tolerance, abs=1e-9), f"{phase.value}.{field}: sim {a}, live {b}"

"""The policy sees the cluster as Prometheus delivers it: scraped, windowed, delayed; no traffic is rate 0."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from autoscaler.core.decision import Decision, PhaseDecision
from autoscaler.core.observation import Observation
from autoscaler.core.phases import Phase, ServingMode
from autoscaler.core.slo import Slo
from autoscaler.profiles.schema import Profile
from autoscaler.routing.least_loaded import LeastLoadedPlacer
from autoscaler.sim.driver import SimSettings, simulate
from autoscaler.sim.signals import ScrapeSettings
from autoscaler.sim.workloads.trace import Trace


@dataclasses.dataclass
class Recorder:
    """Keeps one replica per phase and records every observation it is shown."""

    seen: list[Observation] = dataclasses.field(default_factory=list)
    name: str = "recorder"

    def initial_state(self) -> None:
        return None

    def step(self, observation: Observation, state: None, *, now: float) -> tuple[Decision, None]:
        self.seen.append(observation)
        phases = {
            phase: PhaseDecision(replicas=1, previous=s.replicas.current, reason="Hold", message="recording")
            for phase, s in observation.phases.items()
        }
        return Decision(pool=observation.pool, time=now, phases=phases), None


def _observations(profile: Profile, slo: Slo, trace: Trace) -> list[Observation]:
    recorder = Recorder()
    settings = SimSettings(
        mode=ServingMode.DISAGGREGATED,
        slo=slo,
        initial_replicas={Phase.PREFILL: 1, Phase.DECODE: 1},
        scrape=ScrapeSettings(scrape_interval_s=15.0, rate_window_s=60.0, delay_s=15.0),
    )
    simulate(trace, profile=profile, policy=recorder, placer=LeastLoadedPlacer(), settings=settings, seed=0)
    return recorder.seen


def _steady_then_silent() -> Trace:
    """2 req/s of 1000-token prompts for 600 s, then nothing until one last request at 1200 s."""
    arrivals = np.concatenate([np.arange(0.0, 600.0, 0.5), [1200.0]])
    n = arrivals.size
    return Trace(name="steady", arrival_s=arrivals, prompt_tokens=[1000] * n, output_tokens=[50] * n)


def test_rates_are_windowed_and_delayed(profile: Profile, slo: Slo) -> None:
    seen = _observations(profile, slo, _steady_then_silent())
    at_300 = next(o for o in seen if o.time == 300.0)
    prefill = at_300.phases[Phase.PREFILL]
    assert prefill.arrival_rate == pytest.approx(2.0, rel=0.02)
    assert prefill.prompt_tokens_mean == pytest.approx(1000.0)
    assert prefill.prompt_tokens_cv == pytest.approx(0.0, abs=1e-6)
    assert prefill.arrival_cv == pytest.approx(0.0, abs=1e-6)  # evenly spaced arrivals
    assert prefill.age_s == pytest.approx(15.0)
    assert prefill.ttft_observed_s is not None and prefill.ttft_observed_s < 1.0
    assert at_300.phases[Phase.DECODE].itl_observed_s is not None
    # At 630 s the delayed window [555, 615] still holds traffic: the delay shows.
    assert next(o for o in seen if o.time == 630.0).phases[Phase.PREFILL].arrival_rate > 0.0


def test_zero_traffic_is_rate_zero_not_missing(profile: Profile, slo: Slo) -> None:
    seen = _observations(profile, slo, _steady_then_silent())
    silent = next(o for o in seen if o.time == 900.0).phases[Phase.PREFILL]
    assert silent.arrival_rate == 0.0
    assert silent.missing() == ()
    assert silent.prompt_tokens_mean == pytest.approx(1000.0)


def test_latency_percentiles_go_to_their_phase(profile: Profile, slo: Slo) -> None:
    seen = _observations(profile, slo, _steady_then_silent())
    at_300 = next(o for o in seen if o.time == 300.0)
    prefill, decode = at_300.phases[Phase.PREFILL], at_300.phases[Phase.DECODE]
    assert prefill.ttft_observed_s is not None and prefill.itl_observed_s is None
    assert decode.itl_observed_s is not None and decode.ttft_observed_s is None
    assert prefill.prefix_hit_rate == 0.0  # prompts without block hashes never hit
    assert decode.replicas.ready == 1 and decode.replicas.starting == 0

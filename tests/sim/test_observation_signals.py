"""The policy sees the cluster as Prometheus delivers it: scraped families, windowed, delayed, derived."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from autoscaler.core.decision import Decision, PhaseDecision
from autoscaler.core.observation import Observation, PhaseSignals
from autoscaler.core.phases import Phase, ServingMode
from autoscaler.core.slo import Slo
from autoscaler.policy.step import Autoscaler
from autoscaler.profiles.schema import Profile
from autoscaler.routing.least_loaded import LeastLoadedPlacer
from autoscaler.sim import policies
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
    """2 req/s of 1000-token prompts, 400 tokens out, for 600 s; then nothing until one request at 1200 s."""
    arrivals = np.concatenate([np.arange(0.0, 600.0, 0.5), [1200.0]])
    n = arrivals.size
    return Trace(name="steady", arrival_s=arrivals, prompt_tokens=[1000] * n, output_tokens=[400] * n)


@pytest.fixture(scope="module")
def seen(profile: Profile, slo: Slo) -> list[Observation]:
    return _observations(profile, slo, _steady_then_silent())


def _at(seen: list[Observation], time: float, phase: Phase) -> PhaseSignals:
    return next(o for o in seen if o.time == time).phases[phase]


# 1000-token prompts fall in vLLM's (500, 1000] bucket: uniform over it, the CV the buckets allow is this
BUCKET_CV = (500 / math.sqrt(12)) / 750


@pytest.mark.parametrize(
    ("name", "time", "phase", "field", "expected"),
    [
        ("finished requests per second over the window", 300.0, Phase.PREFILL, "arrival_rate", 2.0),
        ("the decode side counts its own finishes", 300.0, Phase.DECODE, "arrival_rate", 2.0),
        (
            "prompt mean is exact (histogram _sum over count)",
            300.0,
            Phase.PREFILL,
            "prompt_tokens_mean",
            1000.0,
        ),
        ("prompt CV is as coarse as the buckets", 300.0, Phase.PREFILL, "prompt_tokens_cv", BUCKET_CV),
        ("a prefill replica generates one token", 300.0, Phase.PREFILL, "output_tokens_mean", 1.0),
        ("the decode side generates the rest", 300.0, Phase.DECODE, "output_tokens_mean", 400.0),
        ("signals are as old as the scrape delay", 300.0, Phase.PREFILL, "age_s", 15.0),
        (
            "KV capacity per replica, as cache_config_info says",
            300.0,
            Phase.DECODE,
            "kv_capacity_tokens",
            None,
        ),
        ("one replica scraped per phase", 300.0, Phase.DECODE, "running_per_replica", "positive"),
        (
            "KV in use per running sequence is about a context",
            300.0,
            Phase.DECODE,
            "kv_tokens_per_running",
            "context",
        ),
        ("no source has the arrival CV", 300.0, Phase.PREFILL, "arrival_cv", "unset"),
        ("prompts without block hashes never hit", 300.0, Phase.PREFILL, "prefix_hit_rate", 0.0),
        (
            "the delayed window [555, 615] still holds traffic",
            630.0,
            Phase.PREFILL,
            "arrival_rate",
            "positive",
        ),
        ("zero traffic is rate 0", 900.0, Phase.PREFILL, "arrival_rate", 0.0),
        ("zero traffic has no token mean (0/0)", 900.0, Phase.PREFILL, "prompt_tokens_mean", "unset"),
    ],
)
def test_signals_are_derived_from_scraped_families(
    seen: list[Observation],
    profile: Profile,
    name: str,
    time: float,
    phase: Phase,
    field: str,
    expected: object,
) -> None:
    value = getattr(_at(seen, time, phase), field)
    if expected == "unset":
        assert value is None, name
    elif expected == "positive":
        assert value is not None and value > 0, name
    elif expected == "context":  # a 1000-token prompt plus up to 400 generated tokens
        assert value is not None and 1000 <= value <= 1400, name
    elif expected is None:
        assert value == profile.kv_capacity_tokens, name
    else:
        assert value == pytest.approx(expected, rel=0.02, abs=1e-9), name


def test_zero_traffic_is_a_complete_signal(seen: list[Observation]) -> None:
    assert _at(seen, 900.0, Phase.PREFILL).missing() == ()


@pytest.mark.parametrize(
    ("name", "phase", "ttft", "itl"),
    [
        ("a prefill replica reports TTFT, no ITL (one token)", Phase.PREFILL, True, False),
        ("a decode replica reports its own TTFT (from the KV handover) and ITL", Phase.DECODE, True, True),
    ],
)
def test_latency_percentiles_come_from_the_phase_that_observes_them(
    seen: list[Observation], name: str, phase: Phase, ttft: bool, itl: bool
) -> None:
    signals = _at(seen, 300.0, phase)
    assert (signals.ttft_observed_s is not None) is ttft, name
    assert (signals.itl_observed_s is not None) is itl, name
    assert signals.replicas.ready == 1 and signals.replicas.starting == 0


def test_percentiles_read_from_vllm_buckets_as_histogram_quantile_does(seen: list[Observation]) -> None:
    itl = _at(seen, 300.0, Phase.DECODE).itl_observed_s
    ttft = _at(seen, 300.0, Phase.PREFILL).ttft_observed_s
    # every token gap is under 10 ms, in vLLM's first ITL bucket (0, 0.01]: p90 interpolates to 0.009
    assert itl == pytest.approx(0.009)
    assert ttft is not None and ttft < 1.0


def test_our_policy_reads_rates_as_the_scenario_counts_them(profile: Profile, slo: Slo) -> None:
    """Over the window the rates were counted over (in-flight growth, a jump's height), and as what they
    count: the router's counter (``signal_source: router``) counts requests entering, vLLM's finished."""
    context = policies.PolicyContext(
        profile=profile,
        slo=slo,
        mode=ServingMode.DISAGGREGATED,
        min_replicas=dict.fromkeys((Phase.PREFILL, Phase.DECODE), 1),
        max_replicas=dict.fromkeys((Phase.PREFILL, Phase.DECODE), 8),
        initial_replicas=dict.fromkeys((Phase.PREFILL, Phase.DECODE), 1),
        control_interval_s=30.0,
        rate_window_s=120.0,
        counter_source="router",
        gpu_budget=None,
    )
    policy = policies.build_policy(policies.OURS, context)
    assert isinstance(policy, Autoscaler)
    assert policy.settings.forecast.rate_window_s == 120.0
    assert policy.settings.counter_source == "router"

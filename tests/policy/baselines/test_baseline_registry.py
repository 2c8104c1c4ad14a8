"""Every baseline is built by name, answers every phase it sees, and is a pure step function."""

from __future__ import annotations

import math

import pytest

from autoscaler.core.decision import Reason
from autoscaler.core.observation import Observation
from autoscaler.core.phases import Phase
from autoscaler.core.slo import LatencyTarget, Slo
from autoscaler.policy.baselines import NAMES, ReplicaBounds, StaticPolicy, StaticSettings, build_baseline
from tests.policy.baselines.builders import drive, observe, round_profile, signals

SLO = Slo(ttft=LatencyTarget(1.0), itl=LatencyTarget(0.02))
BOUNDS = {phase: ReplicaBounds(1, 8) for phase in Phase}
OBSERVATIONS = {
    "disaggregated": observe(
        0.0,
        prefill=signals(current=2, queue=30.0, ttft=0.3),
        decode=signals(current=3, kv=0.8, queue=6.0, itl=0.03),
    ),
    "aggregated": observe(0.0, aggregated=signals(current=2, queue=12.0, ttft=0.2, itl=0.02)),
}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("mode", sorted(OBSERVATIONS))
def test_each_baseline_answers_every_phase_purely(name: str, mode: str) -> None:
    policy = build_baseline(name, profile=round_profile(), slo=SLO, bounds=BOUNDS, gpu_budget=None)
    observation: Observation = OBSERVATIONS[mode]
    state = policy.initial_state()
    decision, _ = policy.step(observation, state, now=0.0)
    again, _ = policy.step(observation, state, now=0.0)
    assert policy.name == name
    assert decision == again  # same inputs, same outputs; the state passed in was not mutated
    assert (decision.pool, decision.time) == ("pool", 0.0)
    assert set(decision.phases) == set(observation.phases)
    for phase, phase_decision in decision.phases.items():
        assert phase_decision.previous == observation.phases[phase].replicas.current
        assert BOUNDS[phase].minimum <= phase_decision.replicas <= BOUNDS[phase].maximum
        assert phase_decision.reason and phase_decision.message


def test_unknown_baseline_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="static, keda, wva, dynamo"):
        build_baseline("hpa-cpu", profile=round_profile(), slo=SLO, bounds=BOUNDS)


@pytest.mark.parametrize(
    ("static_replicas", "expected"),
    [
        (None, {Phase.PREFILL: 8, Phase.DECODE: 8}),
        ({Phase.PREFILL: 2, Phase.DECODE: 5}, {Phase.PREFILL: 2, Phase.DECODE: 5}),
    ],
    ids=["defaults to each phase's maximum", "given counts"],
)
def test_static_replicas_ignore_load_and_missing_signals(
    static_replicas: dict[Phase, int] | None, expected: dict[Phase, int]
) -> None:
    policy = build_baseline(
        "static", profile=round_profile(), slo=SLO, bounds=BOUNDS, static_replicas=static_replicas
    )
    heavy = observe(0.0, prefill=signals(current=1, queue=500.0), decode=signals(current=1, kv=1.0))
    blind = observe(
        15.0, prefill=signals(current=1, rate=None, queue=None), decode=signals(current=1, kv=math.nan)
    )
    decisions = drive(policy, [heavy, blind])
    assert [d.replicas() for d in decisions] == [expected, expected]
    assert {d.phases[Phase.PREFILL].reason for d in decisions} == {Reason.STATIC}


def test_static_policy_rejects_a_phase_it_was_not_given() -> None:
    policy = StaticPolicy(StaticSettings(replicas={Phase.AGGREGATED: 2}))
    with pytest.raises(KeyError, match="prefill"):
        drive(policy, [observe(0.0, prefill=signals(), decode=signals())])

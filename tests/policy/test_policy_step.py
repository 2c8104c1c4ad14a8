"""Our policy, table-driven: fail static, fast up, slow down, budget split, zero traffic, supply."""

from __future__ import annotations

import dataclasses
import math

import pytest

from autoscaler.capacity import plan as planning
from autoscaler.capacity.load import Load
from autoscaler.core.decision import Reason
from autoscaler.core.phases import Phase, ServingMode
from autoscaler.policy.bounds import ReplicaBounds
from autoscaler.policy.settings import Forecast, PolicySettings
from autoscaler.policy.state import PhaseState, PolicyState
from autoscaler.policy.step import Autoscaler, step
from tests.policy.builders import SLO, make_settings, observation, phase_signals


def steady_state(settings: PolicySettings, *, rate: float, replicas: int, steps: int = 12) -> PolicyState:
    """Run the policy at a steady load so forecast and windows have history."""
    state = PolicyState()
    for i in range(steps):
        sig = phase_signals(rate=rate, replicas=(replicas, replicas, 0))
        _, state = step(observation(i * 30.0, prefill=sig, decode=sig), state, settings, now=i * 30.0)
    return state


def needed(phase: Phase, rate: float) -> int:
    load = Load.of(rate=rate, prompt_tokens=1_200, output_tokens=250, prompt_cv=0.5)
    return planning.plan(make_settings().profile, load, SLO, ServingMode.DISAGGREGATED).phases[phase].replicas


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"age_s": 600.0}, Reason.HOLD_STALE_SIGNALS),
        ({"arrival_rate": math.nan}, Reason.HOLD_MISSING_SIGNALS),
        ({"arrival_rate": None}, Reason.HOLD_MISSING_SIGNALS),
        ({"output_tokens_mean": math.inf}, Reason.HOLD_MISSING_SIGNALS),
        ({"kv_usage": math.nan}, Reason.HOLD_MISSING_SIGNALS),
        ({"prefix_hit_rate": 1.7}, Reason.HOLD_CONTRADICTORY_SIGNALS),
        ({"queue_length": -3.0}, Reason.HOLD_CONTRADICTORY_SIGNALS),
    ],
    ids=[
        "stale signals hold",
        "NaN rate holds",
        "missing rate holds",
        "infinite token mean holds",
        "NaN KV use holds",
        "hit rate above one holds",
        "negative queue holds",
    ],
)
def test_unusable_signals_hold_current_replicas(overrides: dict, reason: str) -> None:
    settings = make_settings()
    bad = phase_signals(rate=1.0, replicas=(7, 7, 0), **overrides)
    decision, state = step(observation(0.0, prefill=bad, decode=bad), PolicyState(), settings, now=0.0)
    for phase_decision in decision.phases.values():
        assert phase_decision.replicas == 7
        assert phase_decision.reason == reason
        assert "holding" in phase_decision.message
    assert all(phase_state == PhaseState() for phase_state in state.phases.values())


def test_one_phase_holds_while_the_other_acts() -> None:
    settings = make_settings()
    good = phase_signals(rate=200.0, replicas=(1, 1, 0))
    bad = phase_signals(rate=math.nan, replicas=(1, 1, 0))
    decision, _ = step(observation(0.0, prefill=good, decode=bad), PolicyState(), settings, now=0.0)
    assert decision.phases[Phase.PREFILL].replicas > 1
    assert decision.phases[Phase.DECODE].reason == Reason.HOLD_MISSING_SIGNALS


def test_spike_scales_up_within_one_step() -> None:
    settings = make_settings()
    state = steady_state(settings, rate=10.0, replicas=2)
    spike = phase_signals(rate=80.0, replicas=(2, 2, 0))
    decision, _ = step(observation(400.0, prefill=spike, decode=spike), state, settings, now=400.0)
    for phase in (Phase.PREFILL, Phase.DECODE):
        assert decision.phases[phase].replicas >= needed(phase, 80.0), decision.phases[phase].message


def test_scale_down_waits_for_its_window() -> None:
    settings = make_settings(forecast=Forecast(window_s=1.0))  # one sample: the forecast is the rate now
    high = needed(Phase.DECODE, 120.0)
    state = steady_state(settings, rate=120.0, replicas=high)
    t0 = 12 * 30.0
    replicas, times = high, []
    for i in range(20):
        now = t0 + i * 30.0
        low = phase_signals(rate=5.0, replicas=(replicas, replicas, 0))
        decision, state = step(observation(now, prefill=low, decode=low), state, settings, now=now)
        d = decision.phases[Phase.DECODE]
        if d.replicas < replicas:
            times.append(now - t0)
        elif i == 0:
            assert d.reason == Reason.SCALE_DOWN_STABILIZED
        replicas = d.replicas
    assert times, "never scaled down"
    assert times[0] >= settings.behavior.down_window_s
    assert replicas == needed(Phase.DECODE, 5.0)


def test_zero_traffic_goes_to_the_minimum() -> None:
    """With no requests the token means are 0/0 over the window (missing): still a complete signal."""
    settings = make_settings()
    state = steady_state(settings, rate=60.0, replicas=6)
    replicas = 6
    for i in range(30):
        now = 400.0 + 30.0 * i
        idle = phase_signals(
            rate=0.0, replicas=(replicas, replicas, 0), prompt_tokens_mean=None, output_tokens_mean=math.nan
        )
        decision, state = step(observation(now, prefill=idle, decode=idle), state, settings, now=now)
        replicas = decision.phases[Phase.DECODE].replicas
    assert replicas == settings.bounds[Phase.DECODE].minimum
    assert decision.phases[Phase.DECODE].reason == Reason.NO_TRAFFIC


def test_starting_replicas_count_as_supply() -> None:
    settings = make_settings()
    want = needed(Phase.DECODE, 60.0)
    state = steady_state(settings, rate=60.0, replicas=want)
    booting = phase_signals(rate=60.0, replicas=(want, 1, want - 1))
    decision, _ = step(observation(400.0, prefill=booting, decode=booting), state, settings, now=400.0)
    assert decision.phases[Phase.DECODE].replicas == want


def test_replica_stuck_pending_does_not_freeze_the_loop() -> None:
    settings = make_settings()
    state = PolicyState()
    for i in range(10):
        stuck = phase_signals(rate=60.0, replicas=(5, 4, 1))  # one replica never becomes ready
        decision, state = step(
            observation(30.0 * i, prefill=stuck, decode=stuck), state, settings, now=30.0 * i
        )
        assert not decision.phases[Phase.DECODE].reason.startswith(Reason.STEADY)


def test_budget_split_is_explained() -> None:
    settings = make_settings(gpu_budget=6)
    heavy = phase_signals(rate=150.0, replicas=(3, 3, 0))
    decision, _ = step(observation(0.0, prefill=heavy, decode=heavy), PolicyState(), settings, now=0.0)
    total = sum(d.replicas for d in decision.phases.values())
    assert total <= 6
    assert any("GPU budget 6" in note and "split" in note for note in decision.notes), decision.notes
    assert all(
        d.reason == Reason.BUDGET_LIMITED
        for d in decision.phases.values()
        if d.replicas < needed(Phase.DECODE, 150)
    )


def test_budget_goes_where_it_buys_attainment() -> None:
    """Decode needs few replicas at this load; the budget goes to the starved prefill side first."""
    settings = make_settings(gpu_budget=5)
    sig = phase_signals(rate=150.0, replicas=(1, 1, 0), prompt_tokens_mean=4_000.0, output_tokens_mean=50.0)
    decision, _ = step(observation(0.0, prefill=sig, decode=sig), PolicyState(), settings, now=0.0)
    assert decision.phases[Phase.PREFILL].replicas > decision.phases[Phase.DECODE].replicas


def test_rising_load_is_sized_for_the_forecast() -> None:
    settings = make_settings()
    state = PolicyState()
    replicas = {Phase.PREFILL: 1, Phase.DECODE: 1}
    for i in range(10):
        rate = 10.0 + 4.0 * i
        now = 30.0 * i
        obs = observation(
            now,
            prefill=phase_signals(rate=rate, replicas=(replicas[Phase.PREFILL],) * 2 + (0,)),
            decode=phase_signals(rate=rate, replicas=(replicas[Phase.DECODE],) * 2 + (0,)),
        )
        decision, state = step(obs, state, settings, now=now)
        replicas = decision.replicas()
    assert replicas[Phase.DECODE] > needed(Phase.DECODE, rate)


def test_calibration_is_bounded() -> None:
    settings = make_settings()
    state = PolicyState()
    for i in range(40):
        # a loaded replica (in the calibration band) that is far slower than any model
        slow = phase_signals(rate=25.0, replicas=(1, 1, 0), itl_observed_s=1.0)
        _, state = step(observation(30.0 * i, prefill=slow, decode=slow), state, settings, now=30.0 * i)
    assert state.phases[Phase.DECODE].correction == pytest.approx(settings.calibration.maximum)


def test_aggregated_pool_has_one_phase() -> None:
    settings = make_settings(mode=ServingMode.AGGREGATED, bounds={Phase.AGGREGATED: ReplicaBounds(1, 40)})
    sig = phase_signals(rate=50.0, replicas=(1, 1, 0))
    decision, _ = step(observation(0.0, aggregated=sig), PolicyState(), settings, now=0.0)
    assert set(decision.phases) == {Phase.AGGREGATED}
    assert decision.phases[Phase.AGGREGATED].replicas > 1


def test_same_inputs_same_outputs() -> None:
    settings = make_settings()
    policy = Autoscaler(settings)
    sig = phase_signals(rate=33.0, replicas=(2, 2, 0), ttft_observed_s=0.4, itl_observed_s=0.03)
    obs = observation(0.0, prefill=sig, decode=sig)
    assert policy.step(obs, policy.initial_state(), now=0.0) == policy.step(
        obs, policy.initial_state(), now=0.0
    )


def test_settings_reject_a_budget_below_the_minimums() -> None:
    with pytest.raises(ValueError, match="budget"):
        make_settings(
            gpu_budget=1, bounds={Phase.PREFILL: ReplicaBounds(1, 4), Phase.DECODE: ReplicaBounds(1, 4)}
        )


def test_settings_need_bounds_for_every_phase() -> None:
    with pytest.raises(ValueError, match="bounds missing"):
        dataclasses.replace(make_settings(), bounds={Phase.PREFILL: ReplicaBounds()})

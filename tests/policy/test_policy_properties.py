"""Properties of ``policy.step`` over generated loads and histories (hypothesis).

- every decision stays within the phase's min/max (from a count within them);
- unusable signals never scale down;
- a constant load settles on one count and stays there;
- more load (the same history, a higher rate now) never asks for fewer replicas.
"""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.core.decision import Decision
from autoscaler.core.observation import PhaseSignals
from autoscaler.core.phases import Phase
from autoscaler.policy.state import PolicyState
from autoscaler.policy.step import step
from tests.policy.builders import make_settings, observation, phase_signals

INTERVAL = 30.0
POLICY = make_settings()
BOUNDS = POLICY.bounds

rates = st.floats(min_value=0.0, max_value=300.0, allow_nan=False)
histories = st.lists(rates, min_size=0, max_size=8)
counts = st.integers(min_value=BOUNDS[Phase.PREFILL].minimum, max_value=BOUNDS[Phase.PREFILL].maximum)
prompts = st.floats(min_value=20.0, max_value=20_000.0)
outputs = st.floats(min_value=1.0, max_value=2_000.0)
examples = settings(max_examples=30, deadline=None)


def signals(rate: float, current: int, **overrides: object) -> PhaseSignals:
    return phase_signals(rate=rate, replicas=(current, current, 0), **overrides)


def replay(history: list[float], current: int, **overrides: object) -> PolicyState:
    """The state after ``history`` at a fixed replica count (so the last step alone decides)."""
    state = PolicyState()
    for i, rate in enumerate(history):
        sig = signals(rate, current, **overrides)
        _, state = step(observation(i * INTERVAL, prefill=sig, decode=sig), state, POLICY, now=i * INTERVAL)
    return state


def last(state: PolicyState, at: int, rate: float, current: int, **overrides: object) -> Decision:
    sig = signals(rate, current, **overrides)
    decision, _ = step(observation(at * INTERVAL, prefill=sig, decode=sig), state, POLICY, now=at * INTERVAL)
    return decision


@examples
@given(history=histories, rate=rates, current=counts, prompt=prompts, output=outputs)
def test_decisions_stay_within_the_replica_bounds(
    history: list[float], rate: float, current: int, prompt: float, output: float
) -> None:
    lengths = {"prompt_tokens_mean": prompt, "output_tokens_mean": output}
    state = replay(history, current, **lengths)
    decision = last(state, len(history), rate, current, **lengths)
    for phase, d in decision.phases.items():
        assert BOUNDS[phase].minimum <= d.replicas <= BOUNDS[phase].maximum


unusable = st.sampled_from(
    [
        {"arrival_rate": None},
        {"arrival_rate": math.nan},
        {"age_s": 10_000.0},
        {"output_tokens_mean": math.inf},
        {"queue_length": -1.0},
        {"kv_usage": math.nan},
        {"prefix_hit_rate": 2.0},
    ]
)


@examples
@given(history=histories, current=counts, bad=unusable)
def test_unusable_signals_never_scale_down(
    history: list[float], current: int, bad: dict[str, object]
) -> None:
    state = replay(history, current)
    sig = phase_signals(rate=1.0, replicas=(current, current, 0), **bad)
    now = len(history) * INTERVAL
    decision, _ = step(observation(now, prefill=sig, decode=sig), state, POLICY, now=now)
    for d in decision.phases.values():
        assert d.replicas >= current
        assert d.reason.fail_static


@examples
@given(rate=st.floats(min_value=0.5, max_value=250.0), prompt=prompts, output=outputs)
def test_a_constant_load_settles_on_one_count(rate: float, prompt: float, output: float) -> None:
    state, replicas = PolicyState(), {Phase.PREFILL: 2, Phase.DECODE: 2}
    history = []
    for i in range(30):
        sig = {
            p: signals(rate, replicas[p], prompt_tokens_mean=prompt, output_tokens_mean=output)
            for p in replicas
        }
        decision, state = step(
            observation(i * INTERVAL, prefill=sig[Phase.PREFILL], decode=sig[Phase.DECODE]),
            state,
            POLICY,
            now=i * INTERVAL,
        )
        replicas = decision.replicas()
        history.append(replicas)
    assert all(h == history[-1] for h in history[-10:]), history


@examples
@given(history=histories, rate=rates, extra=st.floats(min_value=0.0, max_value=200.0), current=counts)
def test_more_load_never_asks_for_fewer_replicas(
    history: list[float], rate: float, extra: float, current: int
) -> None:
    state = replay(history, current)
    lower = last(state, len(history), rate, current)
    higher = last(state, len(history), rate + extra, current)
    for phase in lower.phases:
        assert higher.phases[phase].replicas >= lower.phases[phase].replicas

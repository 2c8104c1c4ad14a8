"""llm-d WVA saturation V2: token capacity min(k1, k2), demand with queue charges, 0.85 / 0.70, then the HPA.

The round test engine has 100,000 KV tokens, so k1 = 80,000 tokens per replica; with I = 1000 and O = 200
the derived k2 (256 x 1100) is larger, so a replica is worth 80,000 tokens unless a queue says otherwise.
"""

from __future__ import annotations

import math

import pytest

from autoscaler.core.decision import Reason
from autoscaler.core.observation import PhaseSignals
from autoscaler.core.phases import Phase
from autoscaler.policy.baselines import ReplicaBounds, WvaPolicy, WvaSettings
from tests.policy.baselines.builders import drive, observe, round_profile, signals


def wva(maximum: int = 20) -> WvaPolicy:
    bounds = {phase: ReplicaBounds(1, maximum) for phase in Phase}
    return WvaPolicy(profile=round_profile(), settings=WvaSettings(bounds=bounds))


@pytest.mark.parametrize(
    ("phase", "phase_signals", "expected", "reason"),
    [
        (Phase.DECODE, signals(current=2, kv=0.7, queue=4), 3, Reason.SCALE_UP),
        (Phase.DECODE, signals(current=2, kv=0.5, queue=4), 2, Reason.STEADY),
        (Phase.DECODE, signals(current=3, starting=1, kv=0.7, queue=4), 3, Reason.STEADY),
        (Phase.PREFILL, signals(current=2, kv=0.63, queue=9), 2, Reason.STEADY),
        (Phase.DECODE, signals(current=2, kv=0.63, queue=9), 3, Reason.SCALE_UP),
        (Phase.AGGREGATED, signals(current=2, kv=0.63, queue=9), 3, Reason.SCALE_UP),
        (Phase.DECODE, signals(current=2, kv=0.5, queue=12), 3, Reason.SCALE_UP),
        (Phase.DECODE, signals(current=2, kv=0.95, queue=100), 5, Reason.SCALE_UP),
        (Phase.DECODE, signals(current=10, kv=0.69, queue=0), 10, Reason.STEADY),
        (Phase.DECODE, signals(current=4, kv=0.1, queue=0), 4, Reason.SCALE_DOWN_STABILIZED),
    ],
    ids=[
        "decode: 144.8k tokens / 0.85 > 2 x 80k supply: +1",
        "decode: 104.8k / 0.85 fits, spare under one replica: hold",
        "a starting replica counts as anticipated supply: hold",
        "prefill charges a waiting request I = 1000 tokens: 135k / 0.85 fits in 160k",
        "decode charges I + O = 1200: 136.8k / 0.85 does not",
        "aggregated charges I + O like decode",
        "6 waiting per replica: observed k2 = tokens in use (50k) shrinks capacity: +1",
        "heavy queue: (310k / 0.85 - 160k) / 80k rounds up to +3 in one step",
        "desired 11 on 10 replicas is inside the HPA's 10 % band: hold",
        "spare capacity: the HPA's 300 s window holds the first scale-down",
    ],
)
def test_first_cycle(phase: Phase, phase_signals: PhaseSignals, expected: int, reason: str) -> None:
    [decision] = drive(wva(), [observe(0.0, **{phase.value: phase_signals})])
    assert (decision.phases[phase].replicas, decision.phases[phase].reason) == (expected, reason)


def test_tolerance_hides_the_desired_count_it_computed() -> None:
    [decision] = drive(wva(), [observe(0.0, decode=signals(current=10, kv=0.69, queue=0))])
    assert "wva_desired_replicas 11" in decision.phases[Phase.DECODE].message


def test_scale_up_stops_at_the_maximum() -> None:
    [decision] = drive(wva(maximum=4), [observe(0.0, decode=signals(current=2, kv=0.95, queue=100))])
    assert decision.phases[Phase.DECODE].replicas == 4


def test_observed_capacity_is_remembered_per_output_bucket_across_roles() -> None:
    """WVA keys its k2 history by model, accelerator, GPUs and output bucket, not by role."""
    decisions = drive(
        wva(),
        [
            observe(
                0.0, prefill=signals(current=2, kv=0.5, queue=12), decode=signals(current=2, kv=0.5, queue=0)
            ),
            observe(15.0, decode=signals(current=2, kv=0.5, queue=0, output=150.0)),
            observe(30.0, decode=signals(current=2, kv=0.5, queue=0, output=600.0)),
        ],
    )
    assert "k2 observed" in decisions[0].phases[Phase.PREFILL].message
    assert "k2 historical" in decisions[0].phases[Phase.DECODE].message
    assert "k2 historical" in decisions[1].phases[Phase.DECODE].message  # same "medium" bucket
    assert "k2 derived" in decisions[2].phases[Phase.DECODE].message  # "long" bucket has no history


def test_scale_down_removes_one_replica_a_minute_after_the_window() -> None:
    policy = wva()
    state = policy.initial_state()
    current, replicas = 4, {}
    for i in range(31):  # t = 0 .. 450 s
        now = 15.0 * i
        decision, state = policy.step(
            observe(now, decode=signals(current=current, kv=0.1, queue=0)), state, now=now
        )
        current = replicas[now] = decision.phases[Phase.DECODE].replicas
    assert (replicas[285.0], replicas[300.0], replicas[345.0], replicas[360.0], replicas[420.0]) == (
        4,
        3,
        3,
        2,
        1,
    )


@pytest.mark.parametrize(
    "phase_signals",
    [
        signals(current=3, kv=None, queue=50),
        signals(current=3, kv=0.9, queue=None),
        signals(current=3, kv=math.nan, queue=50),
        signals(current=3, kv=0.9, queue=50, prompt=None),
        signals(current=3, kv=0.9, queue=50, output=math.inf),
        signals(current=3, ready=0, starting=3, kv=0.9, queue=50),
    ],
    ids=["no KV use", "no queue", "NaN KV use", "no prompt mean", "infinite output mean", "no ready replica"],
)
def test_missing_saturation_inputs_hold(phase_signals: PhaseSignals) -> None:
    [decision] = drive(wva(), [observe(0.0, decode=phase_signals)])
    assert (decision.phases[Phase.DECODE].replicas, decision.phases[Phase.DECODE].reason) == (
        3,
        Reason.HOLD_MISSING_SIGNALS,
    )


def test_between_cycles_holds() -> None:
    decisions = drive(
        wva(),
        [
            observe(0.0, decode=signals(current=2, kv=0.7, queue=4)),
            observe(10.0, decode=signals(current=3, kv=0.99, queue=50)),
        ],
    )
    assert (decisions[1].phases[Phase.DECODE].replicas, decisions[1].phases[Phase.DECODE].reason) == (
        3,
        Reason.HOLD_SYNC_PERIOD,
    )


def test_minimum_below_one_is_rejected() -> None:
    with pytest.raises(ValueError, match="scale to zero"):
        WvaSettings(bounds={Phase.DECODE: ReplicaBounds(0, 4)})

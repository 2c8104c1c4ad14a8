"""Scale from zero and back, through the whole policy step: the router's queue wakes every phase together,
and an idle pool goes to zero together."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import pytest

from autoscaler.core.decision import Decision, PhaseDecision, Reason
from autoscaler.core.observation import Observation, RouterQueue
from autoscaler.core.phases import Phase
from autoscaler.policy import wake
from autoscaler.policy.bounds import ReplicaBounds
from autoscaler.policy.state import PolicyState
from autoscaler.policy.step import step
from tests.policy.builders import make_settings, observation, phase_signals

ZERO_TO_FOUR = {Phase.PREFILL: ReplicaBounds(0, 4), Phase.DECODE: ReplicaBounds(0, 4)}
# What a phase with no replica reports: nothing (no engine to scrape, the router placed nothing).
SILENT: dict[str, Any] = dict(
    replicas=(0, 0, 0), rate=None, prompt_tokens_mean=None, output_tokens_mean=None, queue_length=None
)
IDLE: dict[str, Any] = dict(
    rate=0.0, prompt_tokens_mean=None, output_tokens_mean=None, queue_length=0.0, kv_usage=0.0
)


def at(time: float, queue: RouterQueue | None, **phases: Mapping[str, Any]) -> Observation:
    signals = {name: phase_signals(**values) for name, values in phases.items()}
    built = observation(time, **signals)
    return dataclasses.replace(built, router_queue=queue)


@dataclasses.dataclass(frozen=True)
class WakeCase:
    name: str
    queue: RouterQueue | None
    prefill: Mapping[str, Any]
    decode: Mapping[str, Any]
    want: dict[Phase, tuple[int, int]]  # phase -> (lowest, highest) replicas


CASES = [
    WakeCase(
        "a queued request wakes prefill and decode together",
        RouterQueue(requests=1, prompt_tokens=1_200, output_tokens=250),
        SILENT,
        SILENT,
        {Phase.PREFILL: (1, 1), Phase.DECODE: (1, 1)},
    ),
    WakeCase(
        "a large queue wakes each phase to the capacity model's size for it",
        RouterQueue(requests=12_000, prompt_tokens=12_000 * 8_000, output_tokens=12_000 * 250),
        SILENT,
        SILENT,
        {Phase.PREFILL: (2, 4), Phase.DECODE: (1, 4)},
    ),
    WakeCase(
        "nothing queued and nothing arriving: stays at zero",
        RouterQueue(requests=0, prompt_tokens=0, output_tokens=0),
        SILENT,
        SILENT,
        {Phase.PREFILL: (0, 0), Phase.DECODE: (0, 0)},
    ),
    WakeCase(
        "no router to ask and nothing reported: held at zero (fail static)",
        None,
        SILENT,
        SILENT,
        {Phase.PREFILL: (0, 0), Phase.DECODE: (0, 0)},
    ),
    WakeCase(
        "decode woke alone (its minimum): prefill wakes with it on demand",
        RouterQueue(requests=3, prompt_tokens=3_600, output_tokens=750),
        SILENT,
        dict(replicas=(1, 0, 1), rate=None, queue_length=None),
        {Phase.PREFILL: (1, 1), Phase.DECODE: (1, 1)},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_wake_from_zero(case: WakeCase) -> None:
    settings = make_settings(bounds=ZERO_TO_FOUR)
    decision, _ = step(
        at(1_000.0, case.queue, prefill=case.prefill, decode=case.decode),
        PolicyState(),
        settings,
        now=1_000.0,
    )
    for phase, (low, high) in case.want.items():
        got = decision.phases[phase]
        assert low <= got.replicas <= high, (phase, got)
        if got.replicas > 0:
            assert got.message  # the decision says why


def test_the_step_keeps_the_woken_pool_up_after_the_queue_drains() -> None:
    """The wake is a recommendation like any other: the scale-down window holds it once the queue is gone."""
    settings = make_settings(bounds=ZERO_TO_FOUR)
    queue = RouterQueue(requests=5, prompt_tokens=6_000, output_tokens=1_250)
    decision, state = step(at(0.0, queue, prefill=SILENT, decode=SILENT), PolicyState(), settings, now=0.0)
    assert all(d.replicas >= 1 for d in decision.phases.values())
    ready = dict(IDLE, replicas=(1, 1, 0))
    later, _ = step(at(60.0, None, prefill=ready, decode=ready), state, settings, now=60.0)
    assert all(d.replicas >= 1 for d in later.phases.values()), later


@dataclasses.dataclass(frozen=True)
class SleepCase:
    name: str
    prefill_bounds: ReplicaBounds
    prefill_replicas: int
    want_prefill: int
    reason: Reason | None


SLEEP_CASES = [
    SleepCase("idle and decode at zero: prefill follows", ReplicaBounds(0, 4), 1, 0, Reason.DEACTIVATED),
    SleepCase("idle but prefill's minimum is 1: it stays", ReplicaBounds(1, 4), 1, 1, None),
]


@pytest.mark.parametrize("case", SLEEP_CASES, ids=lambda c: c.name)
def test_idle_phases_go_to_zero_together(case: SleepCase) -> None:
    settings = make_settings(bounds={Phase.PREFILL: case.prefill_bounds, Phase.DECODE: ReplicaBounds(0, 4)})
    decision = wake.together(
        _decision(prefill=case.prefill_replicas, decode=0),
        at(0.0, RouterQueue(0, 0, 0), prefill=dict(IDLE), decode=dict(IDLE, replicas=(0, 0, 0))),
        settings,
    )
    assert decision.phases[Phase.PREFILL].replicas == case.want_prefill
    if case.reason is not None:
        assert decision.phases[Phase.PREFILL].reason is case.reason
        assert "scales to zero together" in decision.phases[Phase.PREFILL].message


def test_queued_demand_is_added_to_a_silent_phase_only() -> None:
    settings = make_settings(bounds=ZERO_TO_FOUR)
    queue = RouterQueue(requests=60, prompt_tokens=60 * 2_000, output_tokens=60 * 100)
    seen = wake.with_router_queue(
        at(0.0, queue, prefill=SILENT, decode=dict(replicas=(2, 2, 0), rate=None)), settings
    )
    prefill, decode = seen.phases[Phase.PREFILL], seen.phases[Phase.DECODE]
    assert prefill.arrival_rate == pytest.approx(60 / settings.forecast.backlog_drain_s)
    assert (prefill.prompt_tokens_mean, prefill.output_tokens_mean) == (2_000, 100)
    assert decode.arrival_rate is None  # serving, and its own rate unreadable: still fail static


def _decision(*, prefill: int, decode: int) -> Decision:
    return Decision(
        pool="pool",
        time=0.0,
        phases={
            Phase.PREFILL: PhaseDecision(prefill, prefill, Reason.STEADY, "held"),
            Phase.DECODE: PhaseDecision(decode, 1, Reason.SCALE_DOWN, "idle"),
        },
    )


def test_an_idle_pool_goes_to_zero_through_the_step_and_says_why() -> None:
    """No request for long enough: the step's own scale-down (window, rate limit) takes both to zero."""
    settings = make_settings(bounds=ZERO_TO_FOUR)
    state = PolicyState()
    serving = dict(IDLE, replicas=(1, 1, 0))
    seen: list[dict[Phase, int]] = []
    for t in range(0, 900, 30):
        decision, state = step(
            at(float(t), RouterQueue(0, 0, 0), prefill=serving, decode=serving), state, settings, now=float(t)
        )
        seen.append(decision.replicas())
        if all(n == 0 for n in seen[-1].values()):
            break
    assert seen[-1] == {Phase.PREFILL: 0, Phase.DECODE: 0}, seen
    assert all(n >= 1 for n in seen[0].values())  # not at once: idle for the scale-down window first
    assert all(d.message for d in decision.phases.values())


@pytest.mark.parametrize(
    ("replicas", "queue", "expected"),
    [
        ((0, 0), RouterQueue(0, 0, 0), True),
        ((0, 0), None, True),
        ((0, 0), RouterQueue(3, 3000, 300), False),
        ((0, 1), RouterQueue(0, 0, 0), False),
    ],
    ids=[
        "asleep, nothing held: watched",
        "asleep, router unread: watched",
        "asleep on a held request: not rerun sooner",
        "a phase awake: the cycles serve it",
    ],
)
def test_the_wake_watch_watches_only_a_pool_asleep_with_nothing_held(
    replicas: tuple[int, int], queue: RouterQueue | None, expected: bool
) -> None:
    decision = _decision(prefill=replicas[0], decode=replicas[1])
    assert wake.watched(decision, queue) is expected

"""The ways the policy failed on workloads nobody tuned it for, one behaviour per test (issue #12).

Each test drives ``policy.step`` with a few numbers: decode sized from the KV the engines report, prompts
that cannot meet the TTFT target even alone, a short spike, a backlog inside the prefill engines, noisy load
at a boundary between two counts, and the calibration's visible bounds.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from typing import Any

import pytest

from autoscaler.capacity import decode, prefill
from autoscaler.capacity.load import Load
from autoscaler.core.decision import Adjustment, Decision, PhaseDecision, Reason
from autoscaler.core.observation import CounterSource, PhaseSignals
from autoscaler.core.phases import Phase
from autoscaler.policy.settings import Behavior, PolicySettings, RateLimit
from autoscaler.policy.state import PolicyState
from autoscaler.policy.step import step
from tests.policy.builders import make_settings, observation, phase_signals

INTERVAL = 30.0


def unlimited_up() -> PolicySettings:
    """Settings whose scale-up is not rate-limited, so a decision shows the sizing itself."""
    return make_settings(behavior=Behavior(up_limit=RateLimit(pods=1_000, percent=1_000.0, period_s=15.0)))


Signals = Callable[[int, dict[Phase, int]], dict[str, PhaseSignals]]


def drive(
    count: int, signals: Signals, *, asked: dict[Phase, int], settings: PolicySettings | None = None
) -> tuple[list[Decision], PolicyState]:
    """``count`` steps 30 s apart from a fresh state: ``signals(i, asked)`` gives step ``i``'s signals per
    phase name from the replicas the previous decision asked for (``asked`` before the first); the
    settings are ``unlimited_up()`` unless given."""
    settings, state, decisions = settings or unlimited_up(), PolicyState(), []
    for i in range(count):
        now = i * INTERVAL
        decision, state = step(observation(now, **signals(i, asked)), state, settings, now=now)
        asked = decision.replicas()
        decisions.append(decision)
    return decisions, state


def run(rates: list[float], **overrides: Any) -> tuple[Decision, PolicyState]:
    """Steps at ``rates`` (30 s apart) with replicas following the decisions; the last decision."""

    def signals(i: int, asked: dict[Phase, int]) -> dict[str, PhaseSignals]:
        return {
            p.value: phase_signals(rate=rates[i], replicas=(n, n, 0), **overrides) for p, n in asked.items()
        }

    decisions, state = drive(len(rates), signals, asked={Phase.PREFILL: 1, Phase.DECODE: 1})
    return decisions[-1], state


def one_step(**phases: dict[str, Any]) -> Decision:
    """One step from a fresh state with per-phase signal overrides."""
    signals = {
        name: phase_signals(**{"replicas": (1, 1, 0), **overrides}) for name, overrides in phases.items()
    }
    decision, _ = step(observation(0.0, **signals), PolicyState(), unlimited_up(), now=0.0)
    return decision


MODEL_CONTEXT = float(
    decode.context_per_sequence(Load.of(rate=20.0, prompt_tokens=1_200, output_tokens=250, output_cv=1.0))
)


@pytest.mark.parametrize(
    ("reported", "running", "more_than_model"),
    [
        (1.7 * MODEL_CONTEXT, 40.0, True),  # correlated lengths: the engines hold 1.7x the model's figure
        (1.7 * MODEL_CONTEXT, 2.0, False),  # too few sequences to average over: the model stands
        (None, None, False),  # an engine that does not report it
    ],
    ids=["reported KV above the model sizes decode up", "few running sequences keep the model", "unreported"],
)
def test_decode_is_sized_from_the_kv_the_engines_report_per_running_sequence(
    reported: float | None, running: float | None, more_than_model: bool
) -> None:
    rate = 150.0
    plain = one_step(decode={"rate": rate}).phases[Phase.DECODE]
    observed = one_step(
        decode={"rate": rate, "kv_tokens_per_running": reported, "running_per_replica": running}
    ).phases[Phase.DECODE]
    assert (observed.replicas > plain.replicas) is more_than_model
    assert (Adjustment.KV_OBSERVED in observed.adjustments) is more_than_model


LONG_PROMPTS: dict[str, Any] = {"rate": 3.0, "prompt_tokens_mean": 12_000.0, "prompt_tokens_cv": 1.45}


@pytest.mark.parametrize(
    ("prompt", "reason", "adjustment"),
    [
        (LONG_PROMPTS, Reason.SCALE_DOWN, Adjustment.INFEASIBLE_EXCLUDED),
        ({**LONG_PROMPTS, "prompt_tokens_mean": 200_000.0}, Reason.SLO_UNATTAINABLE, None),
    ],
    ids=["a tail that cannot meet the target is excluded", "even the median cannot: hold, not max"],
)
def test_prompts_that_cannot_meet_the_ttft_target_alone_do_not_send_prefill_to_max(
    prompt: dict[str, Any], reason: Reason, adjustment: Adjustment | None
) -> None:
    got = one_step(prefill={**prompt, "replicas": (4, 4, 0)}, decode={}).phases[Phase.PREFILL]
    assert got.replicas <= 4 < make_settings().bounds[Phase.PREFILL].maximum
    if adjustment is not None:  # the fresh policy's window holds the count; what matters is the sizing
        assert adjustment in got.adjustments
        assert "cannot meet the TTFT target" in got.message
    else:
        assert got.reason is reason


def test_a_short_spike_is_served_as_it_is_not_extrapolated() -> None:
    """A 1-minute rate read 30 s apart going 100 -> 360 says the newest 30 s ran at 100 + 260 x 2 = 620
    req/s; that is served, nothing beyond it (the issue's failure: a line through the spike, 1,300 req/s)."""
    steady = [100.0] * 6
    decision, _ = run([*steady, 360.0])
    spiked = decision.phases[Phase.PREFILL]
    newest = 100.0 + (360.0 - 100.0) * make_settings().forecast.rate_window_s / INTERVAL
    at_spike, _ = run([newest])  # what the newest interval's rate alone asks for, with no history at all
    assert Adjustment.SPIKE_SERVED in spiked.adjustments
    assert Adjustment.TREND not in spiked.adjustments
    assert f"{newest:.2f} req/s in the newest interval" in spiked.message
    assert spiked.replicas <= at_spike.phases[Phase.PREFILL].replicas


def _prefill_clears_within_horizon(ready: int) -> float:
    """The backlog ``ready`` prefill replicas clear, beyond the arrivals, within the start-up horizon."""
    settings = make_settings()
    sig = phase_signals()
    assert sig.arrival_rate is not None and sig.prompt_tokens_mean is not None
    assert sig.output_tokens_mean is not None
    load = Load.of(
        rate=sig.arrival_rate,
        prompt_tokens=sig.prompt_tokens_mean,
        output_tokens=sig.output_tokens_mean,
        prompt_cv=sig.prompt_tokens_cv or 1.0,
    )
    work = float(prefill.work(settings.profile, load)[0])
    return (ready / work - sig.arrival_rate) * settings.horizon_s


@pytest.mark.parametrize(
    ("prefill_replicas", "backlog", "incoming"),
    [
        ((1, 1, 0), 0.0, False),
        ((1, 1, 0), 0.5, False),
        ((1, 1, 0), 2.0, True),
        ((3, 1, 2), 2.0, True),
    ],
    ids=[
        "no backlog",
        "a backlog the ready prefill replicas clear before a decode replica could start: not sized for",
        "a backlog that outlasts the start-up horizon: decode is sized for it",
        "prefill replicas still starting do not clear it earlier: decode is sized for it",
    ],
)
def test_a_prefill_backlog_does_not_scale_prefill_and_sizes_decode_only_if_it_outlasts_start_up(
    prefill_replicas: tuple[int, int, int], backlog: float, incoming: bool
) -> None:
    """``backlog``: the queue on prefill, in multiples of what its ready replicas clear within the horizon."""
    queue = backlog * _prefill_clears_within_horizon(prefill_replicas[1])
    calm = one_step(prefill={"replicas": prefill_replicas}, decode={})
    backlogged = one_step(prefill={"replicas": prefill_replicas, "queue_length": queue}, decode={})
    assert backlogged.phases[Phase.PREFILL].replicas == calm.phases[Phase.PREFILL].replicas
    assert (Adjustment.BACKLOG_ON_REPLICAS in backlogged.phases[Phase.PREFILL].adjustments) is (queue > 0)
    decode_adjustments = backlogged.phases[Phase.DECODE].adjustments
    assert (Adjustment.BACKLOG_INCOMING in decode_adjustments) is incoming
    grown = backlogged.phases[Phase.DECODE].replicas > calm.phases[Phase.DECODE].replicas
    assert grown is incoming


def test_decode_context_is_the_batch_weighted_mean_over_the_window_not_one_snapshot() -> None:
    """Engines' gauges are snapshots: one that catches a few long sequences must not size decode alone."""
    settings, rate = unlimited_up(), 150.0
    usual = {"kv_tokens_per_running": 1.2 * MODEL_CONTEXT, "running_per_replica": 60.0}
    swing = {"kv_tokens_per_running": 3.0 * MODEL_CONTEXT, "running_per_replica": 5.0}
    state = PolicyState()
    decision = None
    for i in range(6):
        now = i * INTERVAL
        sig = phase_signals(rate=rate, replicas=(4, 4, 0), **(swing if i == 5 else usual))
        decision, state = step(observation(now, prefill=sig, decode=sig), state, settings, now=now)
    assert decision is not None
    alone = one_step(decode={"rate": rate, "replicas": (4, 4, 0), **swing}).phases[Phase.DECODE]
    windowed = decision.phases[Phase.DECODE]
    assert Adjustment.KV_OBSERVED in windowed.adjustments
    assert f"KV {1.2 * MODEL_CONTEXT:.0f}" not in windowed.message  # the swing moved it, by its weight only
    assert windowed.replicas < alone.replicas


def test_noisy_load_at_a_boundary_does_not_flap() -> None:
    """Load alternating +-8 % around a level: after the first scale-up, the count never changes again."""
    rates = [60.0 * (1.08 if i % 2 else 0.92) for i in range(40)]
    settings = make_settings()
    state, replicas, counts = PolicyState(), 2, []
    for i, rate in enumerate(rates):
        now = i * INTERVAL
        sig = phase_signals(rate=rate, replicas=(replicas, replicas, 0))
        decision, state = step(observation(now, prefill=sig, decode=sig), state, settings, now=now)
        replicas = decision.phases[Phase.PREFILL].replicas
        counts.append(replicas)
    changes = sum(1 for a, b in itertools.pairwise(counts[10:]) if a != b)
    assert changes == 0, counts


def test_calibration_state_and_bounds_are_in_the_decision() -> None:
    settings = make_settings()
    state = PolicyState()
    slow = {"itl_observed_s": 0.2, "replicas": (2, 2, 0)}
    for i in range(20):
        now = i * INTERVAL
        sig = phase_signals(rate=50.0, **slow)
        decision, state = step(observation(now, prefill=sig, decode=sig), state, settings, now=now)
    got = decision.phases[Phase.DECODE]
    correction = state.phase(Phase.DECODE).correction
    assert settings.calibration.minimum <= correction <= settings.calibration.maximum
    assert correction > 1.0 and Adjustment.CALIBRATED in got.adjustments
    assert f"x{correction:.2f}" in got.message and f"{settings.calibration.maximum:g}" in got.message


def run_phases(steps: list[dict[str, dict[str, Any]]], **settings_overrides: Any) -> list[Decision]:
    """Steps 30 s apart with per-phase signal overrides; replicas follow the decisions."""

    def signals(i: int, asked: dict[Phase, int]) -> dict[str, PhaseSignals]:
        return {
            p.value: phase_signals(**{"replicas": (n, n, 0), **steps[i].get(p.value, {})})
            for p, n in asked.items()
        }

    settings = dataclasses.replace(unlimited_up(), **settings_overrides)
    decisions, _ = drive(len(steps), signals, asked={Phase.PREFILL: 2, Phase.DECODE: 2}, settings=settings)
    return decisions


@pytest.mark.parametrize(
    ("source", "queue_per_step", "demand"),
    [
        ("vllm", 0.0, 50.0),
        ("vllm", 1_800.0, 110.0),
        ("vllm", -600.0, 30.0),
        ("router", 1_800.0, 50.0),
        ("router", -600.0, 50.0),
    ],
    ids=[
        "steady queue: demand is completions",
        "piling up: completions hide arrivals",
        "draining",
        "the router's counter is the arrivals: a piling queue is not counted twice",
        "the router's counter is the arrivals: a draining backlog is not taken off them",
    ],
)
def test_demand_is_what_engines_complete_plus_the_growth_of_what_they_hold(
    source: CounterSource, queue_per_step: float, demand: float
) -> None:
    """Engines count requests when they finish: at their throughput the rate read stays flat while a
    queue grows, and while a backlog drains it exceeds what arrives (which must not keep prefill out).
    The router counts them as they enter, which is already what arrives."""
    base = 5_000.0
    steps = [
        {"prefill": {"rate": 50.0, "queue_length": base + queue_per_step * i}, "decode": {"rate": 50.0}}
        for i in range(4)
    ]
    last = run_phases(steps, counter_source=source)[-1].phases[Phase.PREFILL]
    counted = "entering" if source == "router" else "finished"
    assert f"demand {demand:.2f} from 50.00 {counted}" in last.message
    corrected = source == "vllm" and queue_per_step != 0
    assert (Adjustment.INFLIGHT_GROWTH in last.adjustments) is corrected


def test_decode_is_sized_for_prefill_demand_before_its_own_completions_show_it() -> None:
    steps = [{"prefill": {"rate": 50.0}, "decode": {"rate": 50.0}}] * 3
    rising = [*steps, {"prefill": {"rate": 120.0}, "decode": {"rate": 50.0}}]
    flat, ahead = run_phases(steps)[-1], run_phases(rising)[-1]
    assert ahead.phases[Phase.DECODE].replicas > flat.phases[Phase.DECODE].replicas
    assert Adjustment.UPSTREAM_DEMAND in ahead.phases[Phase.DECODE].adjustments


def test_replicas_ordered_for_a_spike_are_not_held_by_the_stabilization_window() -> None:
    calm = {"prefill": {"rate": 60.0}, "decode": {"rate": 60.0}}
    spike = {"prefill": {"rate": 240.0}, "decode": {"rate": 240.0}}
    decisions = run_phases([calm] * 6 + [spike] + [calm] * 4)
    at_spike, after = decisions[6].phases[Phase.PREFILL], decisions[8].phases[Phase.PREFILL]
    assert Adjustment.SPIKE_SERVED in at_spike.adjustments
    assert at_spike.replicas > decisions[5].phases[Phase.PREFILL].replicas
    assert after.replicas < at_spike.replicas  # back down within a minute, not after the 3-minute window


@pytest.mark.parametrize(
    ("swing", "more_prefill"),
    [(0.0, False), (0.5, True)],
    ids=["smooth rate: Poisson assumed", "rate dispersed beyond Poisson: bursts priced"],
)
def test_a_rate_dispersed_beyond_poisson_gets_headroom_for_its_bursts(
    swing: float, more_prefill: bool
) -> None:
    """Live, vLLM gives no inter-arrival CV: a rate that disperses far more than Poisson counts would over
    a window is bursty; the dispersion widens the forecast's band and raises the arrival CV the queueing
    model prices (the same mean, more prefill)."""
    shape = [0.0, 0.6, -0.4, 0.3, -0.7, 0.5, -0.2, 0.0]  # bursts of a client mix, mean zero
    rates = [40.0 * (1.0 + swing * x) for x in shape]
    smooth = [{"prefill": {"rate": 40.0, "arrival_cv": None}, "decode": {"rate": 40.0}}] * 8
    steps = [{"prefill": {"rate": r, "arrival_cv": None}, "decode": {"rate": r}} for r in rates]
    base, got = run_phases(smooth)[-1], run_phases(steps)[-1]
    grew = got.phases[Phase.PREFILL].replicas > base.phases[Phase.PREFILL].replicas
    assert grew is more_prefill


def _decode_decisions(
    queues: list[float], *, rate: float, replicas: Callable[[int, int], tuple[int, int, int]]
) -> list[PhaseDecision]:
    """Decode's decisions, one per queue length, 30 s apart, behind two ready prefill replicas at ``rate``;
    ``replicas(i, asked)`` gives decode's (current, ready, starting) at step ``i`` from its last decision."""

    def signals(i: int, asked: dict[Phase, int]) -> dict[str, PhaseSignals]:
        return {
            "prefill": phase_signals(rate=rate, replicas=(2, 2, 0)),
            "decode": phase_signals(
                rate=rate, replicas=replicas(i, asked[Phase.DECODE]), queue_length=queues[i]
            ),
        }

    decisions, _ = drive(len(queues), signals, asked={Phase.PREFILL: 2, Phase.DECODE: 2})
    return [d.phases[Phase.DECODE] for d in decisions]


def _after_a_growing_decode_backlog(decode_replicas: tuple[int, int, int]) -> PhaseDecision:
    """Decode's decision once its queue grew from 1,000 to 2,000 in 30 s at 20 req/s completed."""
    return _decode_decisions([1_000.0, 2_000.0], rate=20.0, replicas=lambda i, asked: decode_replicas)[-1]


def test_a_growing_decode_backlog_with_no_replica_on_its_way_is_sized_for_as_it_will_be() -> None:
    """A burst's decode queue grows until replicas asked for now are ready, two minutes on: draining the
    queue as it is now leaves them short of the one they will find. Once a replica is starting, the policy
    has reacted: the queue as it is, as before."""
    none_coming = _after_a_growing_decode_backlog((2, 2, 0))
    one_coming = _after_a_growing_decode_backlog((3, 2, 1))
    projected = "by the time replicas asked for now are ready"
    assert projected in none_coming.message
    assert projected not in one_coming.message
    assert none_coming.replicas > one_coming.replicas


def _decode_around_a_backlog(starting_after: int) -> list[PhaseDecision]:
    """Decode's decisions at 60 req/s: three minutes calm, a minute with 3,000 queued, then none queued,
    with ``starting_after`` of its replicas still starting once the queue is gone."""

    def replicas(i: int, asked: int) -> tuple[int, int, int]:
        starting = starting_after if i >= 8 else 0
        return asked, asked - starting, starting

    return _decode_decisions([0.0] * 6 + [3_000.0] * 2 + [0.0] * 3, rate=60.0, replicas=replicas)


@pytest.mark.parametrize(
    ("starting_after", "released"),
    [(0, True), (1, False)],
    ids=[
        "backlog gone, none starting: released",
        "a replica still starting: only it is released, the ready ones held by the down window",
    ],
)
def test_replicas_a_drained_backlog_asked_for_are_not_held_once_it_is_gone(
    starting_after: int, released: bool
) -> None:
    """A backlog's drain needs replicas only while it lasts: once the queue is gone and no replica is on
    its way, the down window holds what the load alone asked for, not the drain's count (as for a spike).
    While a replica is still starting the policy has not seen the new supply serve: the down window holds
    the ready ones, and the one still starting, which they do without, is released."""
    decisions = _decode_around_a_backlog(starting_after)
    calm, peak, after = decisions[5].replicas, decisions[7].replicas, decisions[-1]
    assert peak > calm
    assert after.replicas < peak
    assert ("the backlog is gone" in after.message) is released
    if not released:
        assert after.replicas == after.previous - starting_after
        assert Adjustment.STARTING_RELEASED in after.adjustments


def _prefill_after_a_spike(*, rate_after: float, ready_after: int) -> PhaseDecision:
    """Prefill's decision two steps after a minute at 240 req/s that followed three minutes at 60, while
    the replicas the spike asked for start: ``ready_after`` of them are ready by then."""
    rates = [60.0] * 6 + [240.0] * 2 + [rate_after] * 2
    ready = 3

    def signals(i: int, asked: dict[Phase, int]) -> dict[str, PhaseSignals]:
        nonlocal ready
        current = asked[Phase.PREFILL]
        ready = current if i < 6 else ready_after if i >= 8 else ready
        sig = phase_signals(rate=rates[i], replicas=(current, ready, current - ready))
        return {"prefill": sig, "decode": sig}

    decisions, _ = drive(len(rates), signals, asked={Phase.PREFILL: 3, Phase.DECODE: 3})
    return decisions[-1].phases[Phase.PREFILL]


@pytest.mark.parametrize(
    ("rate_after", "ready_after", "released"),
    [(60.0, 6, True), (60.0, 3, False), (240.0, 6, False)],
    ids=[
        "spike over, the ready ones hold the load with the tolerance: the starting ones released",
        "spike over, the ready ones only just enough: the starting ones held by the down window",
        "the load stays: nothing released",
    ],
)
def test_replicas_still_starting_are_released_once_the_ready_ones_hold_the_load(
    rate_after: float, ready_after: int, released: bool
) -> None:
    """A spike shorter than a start-up asks for replicas that are ready after it: a replica that has served
    nobody is no capacity to keep against the load's return, so once even the ready replicas would hold
    the load with the tolerance's margin, the ones still starting go at once instead of being started and
    then held by the down window for minutes."""
    after = _prefill_after_a_spike(rate_after=rate_after, ready_after=ready_after)
    assert after.previous > ready_after
    assert (Adjustment.STARTING_RELEASED in after.adjustments) is released
    if released:
        assert after.replicas == ready_after
        assert after.reason is Reason.SCALE_DOWN
    else:
        assert after.replicas >= after.previous


def _decode_through_a_rise(*, prefill_draining: bool) -> list[PhaseDecision]:
    """Decode's decisions while its arrivals go 60 -> 160 -> 60 req/s for a minute and a half: either
    prefill's backlog (9,000 queued, standing) flushing through as prefill clears it, or prefill's own
    arrivals rising the same way (load that came and went)."""
    rates = [60.0] * 6 + [160.0] * 3 + [60.0] * 5
    queues = [9_000.0] * 6 + [6_000.0, 3_000.0] if prefill_draining else []

    def signals(i: int, asked: dict[Phase, int]) -> dict[str, PhaseSignals]:
        queue = queues[i] if i < len(queues) else 0.0
        prefill_n, decode_n = asked[Phase.PREFILL], asked[Phase.DECODE]
        return {
            "prefill": phase_signals(rate=rates[i], replicas=(prefill_n, prefill_n, 0), queue_length=queue),
            "decode": phase_signals(rate=rates[i], replicas=(decode_n, decode_n, 0)),
        }

    decisions, _ = drive(len(rates), signals, asked={Phase.PREFILL: 2, Phase.DECODE: 3})
    return [d.phases[Phase.DECODE] for d in decisions]


def test_decode_replicas_for_a_prefill_backlog_flushing_through_are_not_held_once_it_is_gone() -> None:
    """Every request passes prefill first, so while prefill clears a backlog, decode's arrivals beyond
    prefill's own demand are that backlog passing through: a drain, over when prefill's queue is empty.
    The down window then keeps what prefill's load asks of decode, not the flush's count; the same rise
    arriving at prefill is load, and the down window holds it as before."""
    flushed = _decode_through_a_rise(prefill_draining=True)
    arrived = _decode_through_a_rise(prefill_draining=False)
    after = slice(8, None)  # from the last step of the rise on
    assert max(d.replicas for d in flushed[after]) < max(d.replicas for d in arrived[after])
    assert arrived[-1].reason is Reason.SCALE_DOWN_STABILIZED
    held = [d.replicas for d in arrived if Adjustment.SPIKE_SERVED not in d.adjustments]
    assert arrived[-1].replicas == max(held)  # a spike's own count is served, never held (test above)


def test_a_prefill_backlog_flushing_through_decode_is_never_read_as_decode_level() -> None:
    """While prefill clears a backlog, decode's forecast line takes prefill's demand, not decode's own
    arrivals: the flush is served as the rate now, and once it has passed decode does not scale up again
    for a level that its readings of the flush would have made (the arrivals are back at 60 req/s)."""
    flushed = _decode_through_a_rise(prefill_draining=True)
    assert max(d.replicas for d in flushed) > flushed[5].replicas  # the flush is served
    assert all(d.replicas <= d.previous for d in flushed[9:])
